"""Per-task gradients, their Gram matrix, and the single backward of a combined direction.

Every gradient stage (MGDA, PCGrad, CAGrad, IMTL-G, GetMTL, GradNorm, Nash-MTL, FairGrad)
returns a direction that is a linear combination ``d = Σ_i c_i g_i = cᵀG`` of the per-task
gradients ``g_i`` (rows of the K x D matrix ``G``), with coefficients ``c`` computed from the
K x K Gram matrix ``G Gᵀ`` (and the losses). :class:`GradientStage` does the part they share:

1. ``g_i = ∂L_i/∂shared`` by ``torch.autograd.grad`` (``retain_graph=True``): no ``.grad`` is
   written and no node upstream of ``shared`` runs, so TorchRec's fused embedding optimizer, which
   updates rows inside the lookup's backward, is not triggered;
2. under ``torch.distributed`` every rank combines the same global gradients: in parameter mode
   the K x D matrix is averaged over ranks (DDP averages gradients); in rep-grad mode the rows of
   the representation are rank-local samples of one global batch, so the Gram matrix is summed and
   divided by R² (each rank's loss is a mean over its own samples);
3. ``c = stage.combine(gram, losses)``;
4. exactly ONE backward pass: of ``Σ_i h_i L_i`` (``h`` the stage's head weights: task-specific
   parameters get ``h_i ∂L_i/∂θ_i``; 1 for PCGrad/CAGrad/IMTL-G/GetMTL as in their reference
   code, ``c`` for MGDA/GradNorm/Nash-MTL/FairGrad, which scale the losses themselves), with

   * rep-grad (``shared`` is the shared representation, non-leaf tensors): the representation is a
     second root of the same backward with gradient ``(c − h)ᵀG``, so it receives
     ``hᵀG + (c − h)ᵀG = d`` and the trunk below it is back-propagated once, with ``d``;
   * parameters (``shared`` are leaf parameters): after the backward their ``.grad`` is set to
     (the gradient they held before) + ``d`` (the rank-averaged ``d`` under DDP).

Parameters upstream of a representation (embeddings, the trunk) receive the combination;
parameters upstream of listed shared parameters (embeddings below a dense trunk) receive the
gradient of ``Σ h_i L_i``.

**Task views** (:mod:`.task_views`): where a model gives each task its own view of the shared
tensors ``S_j`` at the point where the task paths separate, step 1 is ONE backward of ``Σ_i L_i``
that stops at the views and yields every ``∂L_i/∂S_j`` (the heads are back-propagated once, not K
times through the trunk), and step 4 back-propagates ``d`` through the trunk once with the sources
``S_j`` as roots.

**Full-matrix hook**: stages whose direction is no combination ``cᵀG`` of the current gradients
(GradDrop, MoCo, DB-MTL) override ``backward``, take the K x D matrix themselves
(:func:`parameter_gradient_matrix` for those that keep it across steps) and back-propagate their own
direction in the same single pass with :func:`backward_direction`.
"""

from __future__ import annotations

from typing import ClassVar, Iterable, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from .base import LossStage, with_extra
from .task_views import MatrixBlock, MixtureBlock, TaskViews, gram_matrix, view_gradient_blocks


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def shared_tensors(
    shared: Tensor | Iterable[Tensor] | None, stage: str
) -> tuple[list[Tensor], bool]:
    """The tensors of ``shared`` and whether they are a representation (rep-grad mode).

    Leaf tensors (parameters) select parameter mode; non-leaf tensors (activations) rep-grad mode.
    """
    if shared is None:
        raise ValueError(
            f"stage '{stage}' combines per-task gradients: call backward(losses, shared=...) with "
            "the shared parameters or the shared representation tensor"
        )
    items = [shared] if torch.is_tensor(shared) else list(shared)
    if not items or not all(torch.is_tensor(t) for t in items):
        raise ValueError(f"stage '{stage}': shared must be a tensor or a non-empty list of tensors")
    if not all(t.requires_grad for t in items):
        raise ValueError(f"stage '{stage}': every shared tensor must require grad")
    leaves = [t.is_leaf for t in items]
    if any(leaves) and not all(leaves):
        raise ValueError(
            f"stage '{stage}': shared mixes parameters (leaf tensors) and representation tensors; "
            "pass either the shared parameters or the shared representation"
        )
    unique = list({id(t): t for t in items}.values())
    return unique, not leaves[0]


def task_gradient_matrix(
    losses: Tensor | Sequence[Tensor], tensors: Sequence[Tensor], out: Tensor | None = None
) -> Tensor:
    """K x D matrix whose row i is ∂losses[i]/∂tensors, flattened and concatenated (zeros where a
    loss does not depend on a tensor). The graph is retained for the one later backward.

    ``out`` (reused when its shape, dtype and device fit) saves a fresh K x D allocation per step,
    whose page faults cost as much as the copies on CPU.
    """
    per_task = list(losses) if not torch.is_tensor(losses) else [losses[i] for i in range(losses.numel())]
    if not all(loss.requires_grad for loss in per_task):
        raise ValueError("task losses do not require grad: nothing to back-propagate")
    sizes = [t.numel() for t in tensors]
    ref = tensors[0]
    shape = (len(per_task), sum(sizes))
    fits = out is not None and (out.shape, out.dtype, out.device) == (shape, ref.dtype, ref.device)
    matrix = out if fits else torch.empty(shape, dtype=ref.dtype, device=ref.device)
    for i, loss in enumerate(per_task):
        grads = torch.autograd.grad(loss, tensors, retain_graph=True, allow_unused=True)
        for row, grad in zip(matrix[i].split(sizes), grads):
            if grad is None:
                row.zero_()
            else:
                row.view(grad.shape).copy_(grad)  # one strided pass, no reshape copy
    return matrix


def mean_over_ranks(matrix: Tensor) -> Tensor:
    """Parameter mode under DDP: the K x D matrix averaged over ranks (module docstring, step 2)."""
    world = _world_size()
    if world == 1:
        return matrix
    dist.all_reduce(matrix)
    return matrix / world


def global_rep_gram(gram: Tensor) -> Tensor:
    """Rep-grad mode: the ranks' Gram matrices summed and divided by R² (module docstring, step 2)."""
    world = _world_size()
    if world > 1:
        dist.all_reduce(gram)
        gram = gram / world**2
    return gram


def backward_combination(
    losses: Tensor,
    tensors: Sequence[Tensor],
    rep_mode: bool,
    blocks: Sequence[MatrixBlock | MixtureBlock],
    coeffs: Tensor,
    head_weights: Tensor,
    extra: Tensor | None = None,
) -> None:
    """The single backward pass of the combination (module docstring, step 4), ``blocks[j]`` the
    gradient block of ``tensors[j]``; ``extra`` (an auxiliary scalar, weight 1) joins the
    surrogate, so it is back-propagated in the same pass."""
    h = head_weights.to(losses)
    surrogate = with_extra((h * losses).sum(), extra)
    if rep_mode:
        delta = coeffs.double() - h.detach().to("cpu", torch.float64)
        roots, grads = [surrogate], [torch.ones_like(surrogate)]
        if bool(delta.ne(0).any()):
            roots += list(tensors)
            grads += [b.combine(delta).reshape(t.shape).to(t.dtype) for b, t in zip(blocks, tensors)]
        torch.autograd.backward(roots, grads)
        return
    before = [None if t.grad is None else t.grad.detach().clone() for t in tensors]
    surrogate.backward()
    for t, prior, block in zip(tensors, before, blocks):
        d = block.combine(coeffs).reshape(t.shape).to(t.dtype)
        value = d if prior is None else prior + d
        if t.grad is None:
            t.grad = value.clone()
        else:
            t.grad.copy_(value)


def backward_direction(
    losses: Tensor,
    tensors: Sequence[Tensor],
    rep_mode: bool,
    blocks: Sequence[MatrixBlock | MixtureBlock] | None,
    directions: Sequence[Tensor],
    head_weights: Tensor,
    extra: Tensor | None = None,
) -> None:
    """Full-matrix hook: step 4 for a direction that is no combination ``cᵀG`` of the current task
    gradients (GradDrop's masked coordinates, MoCo's and DB-MTL's running averages of past ones).

    ``directions[j]`` (``tensors[j]``'s shape or flat) is what ``tensors[j]`` receives; the heads get
    the gradient of ``Σ h_i L_i`` (``head_weights``) and ``extra``, all in ONE backward pass, as in
    :func:`backward_combination`: in rep-grad mode the representation is a second root with gradient
    ``d − hᵀG`` (``blocks`` give ``hᵀG``), in parameter mode ``.grad`` becomes (what it held) + d
    (``blocks`` unused)."""
    h = head_weights.to(losses)
    surrogate = with_extra((h * losses).sum(), extra)
    if rep_mode:
        if blocks is None:
            raise ValueError("rep-grad mode needs the gradient blocks of the representation")
        hd = h.detach().to("cpu", torch.float64)
        roots, grads = [surrogate], [torch.ones_like(surrogate)]
        for t, block, d in zip(tensors, blocks, directions):
            roots.append(t)
            grads.append(d.reshape(t.shape).to(t.dtype) - block.combine(hd).reshape(t.shape).to(t.dtype))
        torch.autograd.backward(roots, grads)
        return
    before = [None if t.grad is None else t.grad.detach().clone() for t in tensors]
    surrogate.backward()
    for t, prior, d in zip(tensors, before, directions):
        d = d.detach().reshape(t.shape).to(t.dtype)
        value = d if prior is None else prior + d
        if t.grad is None:
            t.grad = value.clone()
        else:
            t.grad.copy_(value)


def parameter_gradient_matrix(
    stage: LossStage, per_task: Sequence[Tensor], shared
) -> tuple[list[Tensor], Tensor]:
    """Full-matrix hook, parameter mode only (stages that keep task gradients across steps, MoCo
    and DB-MTL: a representation's rows are the batch's samples and change every step): the shared
    parameters and their K x D task gradient matrix (rank-averaged, steps 1-2), checked finite;
    a representation or task views are refused before anything is computed."""
    tensors, rep_mode = (None, True) if isinstance(shared, TaskViews) else shared_tensors(shared, stage.name)
    if rep_mode:
        raise ValueError(
            f"stage '{stage.name}' keeps the task gradients across steps, which needs the shared "
            "parameters (stage.grad_mode: params), not the shared representation: its rows are the "
            "batch's samples and change every step"
        )
    stage._workspace = task_gradient_matrix(per_task, tensors, out=getattr(stage, "_workspace", None))
    matrix = mean_over_ranks(stage._workspace)
    finite = torch.isfinite(matrix).all(dim=1)
    if not bool(finite.all()):
        task = stage.tasks[int((~finite).nonzero()[0])]
        raise FloatingPointError(f"stage '{stage.name}': non-finite gradient for task '{task}'")
    return tensors, matrix


class GradientStage(LossStage):
    """Base of the stages that combine per-task gradients (``needs_task_grads``).

    Subclasses implement :meth:`combine`; ``heads_follow_coeffs`` says whether task-specific
    parameters are weighted by the coefficients (True) or get their plain ∂L_i/∂θ_i (False).
    """

    needs_task_grads: ClassVar[bool] = True
    heads_follow_coeffs: ClassVar[bool] = False
    # The K x D gradient matrix of the last step, reused as the next step's storage (not state).
    _workspace: Tensor | None = None

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Coefficients ``c`` (float64, CPU, shape [K]) of ``d = Σ c_i g_i`` from the float64 Gram
        matrix and the detached losses."""
        raise NotImplementedError

    def head_weights(self, coeffs: Tensor) -> Tensor:
        """Weights ``h`` of ``Σ h_i L_i`` for the task-specific parameters."""
        return coeffs if self.heads_follow_coeffs else torch.ones_like(coeffs)

    def backward(
        self, losses: Mapping[str, Tensor], shared=None, extra: Tensor | None = None
    ) -> Tensor:
        """Per-task gradients w.r.t. ``shared``, combined, back-propagated once; returns the
        detached ``Σ c_i L_i`` (its gradient at ``shared`` is the combined direction). ``extra``
        is added to the single backward unweighted and is not part of the combination."""
        stacked = self.stack(losses)
        # each task's own loss tensor, not a row of the stack: autograd would carry the stack's zero
        # gradients through every other task's graph too (K backward passes of all K heads)
        per_task = [losses[t].reshape(()) for t in self.tasks]
        if isinstance(shared, TaskViews):
            tensors, rep_mode = shared.sources, True
            blocks = view_gradient_blocks(per_task, shared)
            gram = sum(block.gram() for block in blocks)
        else:
            tensors, rep_mode = shared_tensors(shared, self.name)
            self._workspace = task_gradient_matrix(per_task, tensors, out=self._workspace)
            matrix = self._workspace if rep_mode else mean_over_ranks(self._workspace)
            gram = gram_matrix(matrix)  # one Gram of the whole matrix
            blocks = [MatrixBlock(m) for m in matrix.split([t.numel() for t in tensors], dim=1)]
        if rep_mode:
            gram = global_rep_gram(gram)
        gram = gram.detach().to("cpu", torch.float64)
        finite = torch.isfinite(gram.diagonal())
        if not bool(finite.all()):
            task = self.tasks[int((~finite).nonzero()[0])]
            raise FloatingPointError(f"stage '{self.name}': non-finite gradient for task '{task}'")
        detached = stacked.detach()
        coeffs = self.combine(gram, detached.to("cpu", torch.float64))
        backward_combination(
            stacked, tensors, rep_mode, blocks, coeffs, self.head_weights(coeffs), extra
        )
        self._record_gradient_diagnostics(gram, coeffs)
        return (coeffs.to(detached) * detached).sum()

    def _record_gradient_diagnostics(self, gram: Tensor, coeffs: Tensor) -> None:
        """weight/<task> = c_i, grad_norm/<task> = ‖g_i‖, cosine/<task> = cos(g_i, d), and the
        most negative pairwise cosine between task gradients (``min_pair_cosine``)."""
        norms = gram.diagonal().clamp_min(0).sqrt()
        gc = gram @ coeffs
        d_norm = float(coeffs @ gc) ** 0.5 if float(coeffs @ gc) > 0 else 0.0
        denom = (norms * d_norm).clamp_min(1e-30)
        self.record("weight", coeffs)
        self.record("grad_norm", norms)
        self.record("cosine", gc / denom)
        self._diagnostics["direction_norm"] = d_norm
        if self.num_tasks > 1:
            cos = gram / torch.outer(norms, norms).clamp_min(1e-30)
            off = ~torch.eye(self.num_tasks, dtype=torch.bool)
            self._diagnostics["min_pair_cosine"] = float(cos[off].min())
