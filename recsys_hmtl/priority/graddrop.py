"""GradDrop (Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov, "Just Pick a Sign: Optimizing
Deep Multitask Models with Gradient Sign Dropout", NeurIPS 2020), as LibMTL's
``weighting/GradDrop.py``.

Every coordinate of the shared tensor keeps, at random, only the task gradients of one sign: the
sign is positive with probability P, the gradients' positive sign purity at that coordinate:

    a_i = Σ_b sign(A_b) ⊙ ∇_{A_b} L_i          (batch-marginalised gradient at the activations A,
                                                the paper's Algorithm 1; b runs over the batch)
    P = ½ (1 + Σ_i a_i / (Σ_i |a_i| + 1e-7))    (Eq. 1, sign purity; 1e-7 as LibMTL)
    M_i = I[P > U] ∘ I[a_i > 0] + I[P < U] ∘ I[a_i < 0],   U ~ U(0, 1) per coordinate   (Eq. 2,
                                                f the identity)
    d_b = Σ_i (ℓ + (1 − ℓ) M_i) ∘ ∇_{A_b} L_i    (the leak ℓ of Algorithm 1, LibMTL's ``leak``)

The mask M_i is drawn per coordinate of one sample and applies to every row of the batch. The
direction d is no combination of the task gradients, so this stage needs every coordinate of them
(the full K x D matrix) and overrides ``backward`` with the full-matrix hook of task_grads.py.
Task-specific parameters get their plain ∂L_i/∂θ_i (LibMTL back-propagates each loss with weight
1 to the heads and only replaces the representation's gradient).

Modes. **rep-grad** (the method's and LibMTL's mode: the gradients at the shared activations): the
representation ``[B, *F]`` gives a_i over its F coordinates (batch dim 0), a task view of it the
same, and a mixture view of experts ``[E, B, H]`` gives a_i over E·H coordinates (batch dim 1)
without materialising the K x E·B·H block. **Parameter mode** (``grad_mode: params``, which LibMTL
refuses): the same rule on the shared parameters' gradients, coordinate by coordinate, with a_i = g_i
(a parameter gradient is already summed over the batch and has no activation sign); it is
LibMTL's computation on a one-row representation with positive entries, and is checked that way.
Under ``--nproc`` the a_i are summed over the ranks (rep-grad) or the matrix averaged (parameters)
before P, and every rank draws the same U, so every rank keeps the same coordinates.

Randomness: U comes from the stage's own ``torch.Generator`` seeded by ``seed`` (never the global
RNG), one ``torch.rand(n, dtype=float64)`` per step (n coordinates, in the order of the shared
tensors); its state is the buffer ``rng_state``, so a resumed run draws the same masks.

Hyper-parameters: ``leak`` ℓ in [0, 1] (LibMTL's ``--leak``, 0.0), ``seed`` (0). Diagnostics:
``kept/<task>`` (the share of task i's non-zero coordinates a_i that its mask keeps), ``grad_norm``,
``mixed_sign`` (the share of coordinates whose a_i have both signs), ``direction_norm``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from ._hparams import positive
from .registry import register_stage
from .support import StageProfile
from .task_grads import (
    GradientStage,
    _world_size,
    backward_direction,
    global_rep_gram,
    mean_over_ranks,
    shared_tensors,
    task_gradient_matrix,
)
from .task_views import MatrixBlock, MixtureBlock, TaskViews, gram_matrix, view_gradient_blocks

_F64 = torch.float64
PURITY_EPS = 1e-7  # LibMTL's constant in P's denominator


def signed_batch_sums(block: MatrixBlock | MixtureBlock, source: Tensor) -> Tensor:
    """K x F (float64): a_i = Σ_b sign(source_b) ⊙ g_{i,b}, the batch on dim 0 of a representation
    (dim 1 of a mixture's experts ``[E, B, H]``; a 0-dim source has no batch)."""
    sign = torch.sign(source.detach())
    if isinstance(block, MixtureBlock):  # one expert at a time: never the K x B x E x H product,
        # in the gradients' own precision (as LibMTL sums them), the K x E·H result in float64
        weights, delta, sign = block.weights, block.delta, sign.to(block.delta.dtype)
        k, _, e = weights.shape
        out = torch.empty(k, e, delta.shape[2], dtype=delta.dtype, device=delta.device)
        for j in range(e):  # a[k, j, h] = Σ_b w[k, b, j] δ[k, b, h] sign[j, b, h]
            out[:, j] = torch.bmm(weights[:, :, j].unsqueeze(1), delta * sign[j]).squeeze(1)
        return out.reshape(k, -1).to(_F64)
    k = block.matrix.shape[0]
    if source.dim() == 0:
        return block.matrix.to(_F64) * sign.to(_F64)
    b = source.shape[0]
    per_sample = block.matrix.reshape(k, b, -1).to(_F64)
    return (per_sample * sign.reshape(1, b, -1).to(_F64)).sum(1)


def masked_sum(block: MatrixBlock | MixtureBlock, source: Tensor, keep: Tensor, batched: bool = True) -> Tensor:
    """``Σ_i keep_i ⊙ g_i`` shaped like ``source``; ``keep`` (K x F) repeats over the batch
    (``batched``: a representation; else one factor per coordinate, parameters)."""
    if isinstance(block, MixtureBlock):  # one expert at a time: never the K x B x E x H product
        k, b, e = block.weights.shape
        factor = keep.to(block.delta).reshape(k, e, -1)  # [K, E, H]
        out = torch.empty(e, b, block.delta.shape[2], dtype=block.delta.dtype, device=block.delta.device)
        for j in range(e):  # out[j, b, h] = Σ_k w[k, b, j] δ[k, b, h] keep[k, j, h]
            torch.sum(block.delta * factor[:, j].unsqueeze(1) * block.weights[:, :, j].unsqueeze(2), 0, out=out[j])
        return out
    k = block.matrix.shape[0]
    if not batched or source.dim() == 0:
        return (block.matrix * keep.to(block.matrix)).sum(0).reshape(source.shape)
    b = source.shape[0]
    per_sample = block.matrix.reshape(k, b, -1)
    return (per_sample * keep.to(per_sample).unsqueeze(1)).sum(0).reshape(source.shape)


@register_stage("graddrop")
class GradDropStage(GradientStage):
    """GradDrop (Chen et al. 2020). Hyper-parameters: ``leak`` (ℓ in [0, 1], 0.0), ``seed`` (0)."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(K·D) sign masks",
                           "O(K·D) (parameters: + K·D float64 masks)")

    def __init__(self, tasks: Sequence[str], leak: float = 0.0, seed: int = 0) -> None:
        super().__init__(tasks)
        self.leak = positive(self.name, "leak", leak, allow_zero=True)
        if self.leak > 1.0:
            raise ValueError(f"stage '{self.name}': leak must lie in [0, 1], got {leak!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"stage '{self.name}': seed must be an integer, got {seed!r}")
        self.seed = seed
        self._generator = torch.Generator()
        self._generator.manual_seed(seed)
        self.register_buffer("rng_state", self._generator.get_state())

    # ------------------------------------------------------------------------------ the method
    def draw_uniform(self, n: int) -> Tensor:
        """U (float64, CPU, [n]) from the stage's generator; advances ``rng_state``."""
        self._generator.set_state(self.rng_state.cpu())
        u = torch.rand(n, dtype=_F64, generator=self._generator)
        self.rng_state.copy_(self._generator.get_state().to(self.rng_state.device))
        return u

    def keep_factors(self, signed: Tensor) -> Tensor:
        """ℓ + (1 − ℓ) M_i (K x F, float64) from the batch-marginalised gradients a (Eqs. 1-2)."""
        purity = 0.5 * (1 + signed.sum(0) / (signed.abs().sum(0) + PURITY_EPS))
        u = self.draw_uniform(purity.numel()).to(purity.device)
        mask = (purity.gt(u) & signed.gt(0)) | (purity.lt(u) & signed.lt(0))
        nonzero = signed.ne(0)
        kept = mask.sum(1).to(_F64) / nonzero.sum(1).clamp_min(1).to(_F64)
        mixed = (signed.gt(0).any(0) & signed.lt(0).any(0)).to(_F64).mean()
        self.record("kept", kept.cpu())
        self._diagnostics["mixed_sign"] = float(mixed)
        return self.leak + (1 - self.leak) * mask.to(_F64)

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:  # pragma: no cover - not used
        raise TypeError(f"stage '{self.name}' needs the task gradients' coordinates: use backward()")

    # -------------------------------------------------------------------------- the single pass
    def backward(
        self, losses: Mapping[str, Tensor], shared=None, extra: Tensor | None = None
    ) -> Tensor:
        """Per-task gradients w.r.t. ``shared``, sign-dropped coordinate by coordinate (module
        docstring), back-propagated once; returns the detached Σ_i L_i (what the heads receive)."""
        stacked = self.stack(losses)
        per_task = [losses[t].reshape(()) for t in self.tasks]
        if isinstance(shared, TaskViews):
            tensors, rep_mode = shared.sources, True
            blocks = view_gradient_blocks(per_task, shared)
            gram = sum(block.gram() for block in blocks)
        else:
            tensors, rep_mode = shared_tensors(shared, self.name)
            self._workspace = task_gradient_matrix(per_task, tensors, out=self._workspace)
            matrix = self._workspace if rep_mode else mean_over_ranks(self._workspace)
            gram = gram_matrix(matrix)
            blocks = [MatrixBlock(m) for m in matrix.split([t.numel() for t in tensors], dim=1)]
        if rep_mode:
            gram = global_rep_gram(gram)
        gram = gram.detach().to("cpu", _F64)
        finite = torch.isfinite(gram.diagonal())
        if not bool(finite.all()):
            task = self.tasks[int((~finite).nonzero()[0])]
            raise FloatingPointError(f"stage '{self.name}': non-finite gradient for task '{task}'")
        if rep_mode:
            signed = [signed_batch_sums(b, t) for b, t in zip(blocks, tensors)]
        else:  # parameters: a_i = g_i, one "sample" with positive activations
            signed = [b.matrix.detach().to(_F64) for b in blocks]
        sizes = [s.shape[1] for s in signed]
        signed_all = torch.cat(signed, dim=1)
        if rep_mode and _world_size() > 1:
            signed_all = signed_all.contiguous().clone()
            dist.all_reduce(signed_all)
        keep = self.keep_factors(signed_all).split(sizes, dim=1)
        directions = [masked_sum(b, t, f, rep_mode) for b, t, f in zip(blocks, tensors, keep)]
        ones = torch.ones(self.num_tasks, dtype=_F64)
        backward_direction(stacked, tensors, rep_mode, blocks, directions, ones, extra)
        norms = gram.diagonal().clamp_min(0).sqrt()
        self.record("grad_norm", norms)
        self._diagnostics["direction_norm"] = float(
            sum(float(torch.linalg.vector_norm(d.detach(), dtype=_F64)) ** 2 for d in directions) ** 0.5)
        return stacked.detach().sum()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, leak={self.leak}, seed={self.seed}"
