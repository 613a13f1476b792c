"""ExcessMTL (He, Zhou, Zhang, Yun, Xu, Zeng, Chilimbi & Zhao, "Robust Multi-Task Learning with
Excess Risks", ICML 2024), as LibMTL's ``weighting/ExcessMTL.py`` (identical to the authors'
yifei-he/ExcessMTL ``LibMTL/LibMTL/weighting/ExcessMTL.py``).

Tasks are weighted by their excess risks, L_i(θ) − L_i(θ_i*), estimated by a second-order Taylor
expansion around the task's optimum with a diagonal AdaGrad-style approximation of the Hessian
(the paper's Eqs. 6-7), and the weights follow an exponentiated-gradient step (its Eq. 9), scaled by
each task's first estimate so that tasks are comparable:

    A_i ← A_i + g_i ⊙ g_i                                   (per coordinate, accumulated over steps)
    e_i = Σ_d g_{i,d}² / √(A_{i,d} + 1e-7)                   (constant factors cancel in e_i / e_i⁰)
    first step: e_i⁰ = e_i, weights unchanged (λ = 1)
    later:      λ_i ← λ_i · exp(η · e_i / e_i⁰),   λ ← K · λ / Σ_j λ_j

and the whole model (heads included) is trained on Σ_i λ_i L_i (LibMTL back-propagates that sum).

The estimate needs every coordinate of the task gradients, not only their Gram matrix, so this
stage keeps the K x D' matrix of accumulators A as state. Its coordinates are, as in LibMTL: in
parameter mode, the shared parameters' entries (the rank-averaged gradients under DDP); in rep-grad
mode, the representation's gradient **summed over the batch** (LibMTL's ``grads.sum(dim=0)``), so D'
is one sample's size whatever the batch: for a representation ``[B, *F]`` (and an expanded task view
of one) the F entries, for a mixture view of experts ``[E, B, H]`` the E·H entries
``Σ_b w[i, b, e] δ_i[b, h]``. Under ``--nproc`` in rep-grad mode the batch sums are summed over the
ranks and divided by R (each rank's loss is a mean over its own rows), so every rank keeps the same
state.

State (buffers, exact ``state_dict`` round trips): ``grad_sq_sum`` (A, float64, sized at the first
step; a checkpoint's shape is adopted on load), ``initial_risk`` (e⁰), ``loss_weights`` (λ, sum K)
and ``steps``. Deviation: LibMTL divides by e⁰ even when it is 0 (a task whose first gradient is
zero), which makes every weight NaN; here such a task takes its first positive estimate as e⁰
and its ratio counts as 0 until then (for every other task this is LibMTL's rule, the first step
being the case where all ratios are 0).

Hyper-parameters: ``robust_step_size`` η (LibMTL's ``--robust_step_size``, 1e-2), ``eps`` (1e-7, in
the square root). Diagnostics: ``weight`` λ_i, ``excess_risk`` e_i, ``risk_ratio`` e_i / e_i⁰.
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
    backward_combination,
    global_rep_gram,
    mean_over_ranks,
    shared_tensors,
    task_gradient_matrix,
)
from .task_views import MatrixBlock, MixtureBlock, TaskViews, gram_matrix, view_gradient_blocks

_F64 = torch.float64


def batch_summed(block: MatrixBlock | MixtureBlock, source: Tensor) -> Tensor:
    """K x F: each task's gradient of a batch-first representation ``source`` summed over its
    batch (dim 0; dim 1 of a mixture's experts ``[E, B, H]``)."""
    if isinstance(block, MixtureBlock):
        k = block.weights.shape[0]
        return torch.einsum("kbe,kbh->keh", block.weights, block.delta).reshape(k, -1)
    k = block.matrix.shape[0]
    if source.dim() == 0:
        return block.matrix.reshape(k, -1)
    return block.matrix.reshape(k, source.shape[0], -1).sum(1)


@register_stage("excess_mtl")
class ExcessMTLStage(GradientStage):
    """Exponentiated-gradient weights on the excess-risk estimates; the losses are scaled by them
    everywhere (``heads_follow_coeffs``), as LibMTL's single backward of Σ λ_i L_i."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(K·D') risk estimates",
                           "O(K·D) + K·D' accumulators (state)")

    heads_follow_coeffs = True

    def __init__(self, tasks: Sequence[str], robust_step_size: float = 1e-2, eps: float = 1e-7) -> None:
        super().__init__(tasks)
        self.robust_step_size = positive(self.name, "robust_step_size", robust_step_size, allow_zero=True)
        self.eps = positive(self.name, "eps", eps)
        k = self.num_tasks
        self.register_buffer("grad_sq_sum", torch.zeros(0, dtype=_F64))
        self.register_buffer("initial_risk", torch.zeros(k, dtype=_F64))
        self.register_buffer("loss_weights", torch.ones(k, dtype=_F64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    # ------------------------------------------------------------------------------ the method
    def update_weights(self, coords: Tensor) -> Tensor:
        """One ExcessMTL step from the K x D' coordinate gradients: accumulators, risk estimates,
        weights (module docstring); returns λ (float64, CPU)."""
        v = coords.detach().to(_F64)
        acc = self.grad_sq_sum
        if acc.numel() == 0:
            acc = torch.zeros_like(v)
        elif tuple(acc.shape) != tuple(v.shape):
            raise ValueError(
                f"stage '{self.name}': the task gradients have {tuple(v.shape)} coordinates but the "
                f"accumulated squares {tuple(acc.shape)}; the shared tensors changed size (a "
                "representation whose length varies by batch, e.g. ERE's tokens: use stage.grad_mode=params)"
            )
        acc = acc.to(v.device) + v * v
        risk = ((v * v) / torch.sqrt(acc + self.eps)).sum(1).to("cpu", _F64)
        initial = self.initial_risk.detach().to("cpu", _F64).clone()
        fresh = initial <= 0
        initial = torch.where(fresh, risk, initial)
        ratio = torch.where(fresh, torch.zeros_like(risk), risk / initial.clamp_min(1e-300))
        weights = self.loss_weights.detach().to("cpu", _F64) * torch.exp(self.robust_step_size * ratio)
        weights = weights / weights.sum() * self.num_tasks
        self.grad_sq_sum = acc
        self.initial_risk.copy_(initial)
        self.loss_weights.copy_(weights)
        self.steps += 1
        self.record("excess_risk", risk)
        self.record("risk_ratio", ratio)
        return weights

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:  # pragma: no cover - not used
        raise TypeError(f"stage '{self.name}' needs the task gradients' coordinates: use backward()")

    # -------------------------------------------------------------------------- the single pass
    def backward(
        self, losses: Mapping[str, Tensor], shared=None, extra: Tensor | None = None
    ) -> Tensor:
        """As :meth:`GradientStage.backward`, with the coefficients from the coordinates of the
        task gradients (module docstring) instead of their Gram matrix alone."""
        stacked = self.stack(losses)
        per_task = [losses[t].reshape(()) for t in self.tasks]
        if isinstance(shared, TaskViews):
            tensors, rep_mode = shared.sources, True
            blocks = view_gradient_blocks(per_task, shared)
            gram = sum(block.gram() for block in blocks)
            coords = torch.cat([batch_summed(b, t) for b, t in zip(blocks, tensors)], dim=1)
        else:
            tensors, rep_mode = shared_tensors(shared, self.name)
            self._workspace = task_gradient_matrix(per_task, tensors, out=self._workspace)
            matrix = self._workspace if rep_mode else mean_over_ranks(self._workspace)
            gram = gram_matrix(matrix)
            blocks = [MatrixBlock(m) for m in matrix.split([t.numel() for t in tensors], dim=1)]
            coords = (torch.cat([batch_summed(b, t) for b, t in zip(blocks, tensors)], dim=1)
                      if rep_mode else matrix)
        if rep_mode:
            gram = global_rep_gram(gram)
            world = _world_size()
            if world > 1:
                coords = coords.contiguous().clone()
                dist.all_reduce(coords)
                coords = coords / world
        gram = gram.detach().to("cpu", _F64)
        finite = torch.isfinite(gram.diagonal())
        if not bool(finite.all()):
            task = self.tasks[int((~finite).nonzero()[0])]
            raise FloatingPointError(f"stage '{self.name}': non-finite gradient for task '{task}'")
        detached = stacked.detach()
        coeffs = self.update_weights(coords)
        backward_combination(
            stacked, tensors, rep_mode, blocks, coeffs, self.head_weights(coeffs), extra
        )
        self._record_gradient_diagnostics(gram, coeffs)
        return (coeffs.to(detached) * detached).sum()

    # ---------------------------------------------------------------------------------- state
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        """Adopt the checkpoint's accumulator shape (sized lazily at the first step)."""
        incoming = state_dict.get(prefix + "grad_sq_sum")
        if torch.is_tensor(incoming) and tuple(incoming.shape) != tuple(self.grad_sq_sum.shape):
            self.grad_sq_sum = torch.zeros(incoming.shape, dtype=_F64, device=self.grad_sq_sum.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, robust_step_size={self.robust_step_size}, eps={self.eps}"
