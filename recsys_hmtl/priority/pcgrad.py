"""PCGrad (Yu et al., NeurIPS 2020, Algorithm 1): each task gradient, in its own random order of
the other tasks, drops its component along every task gradient it conflicts with,
g_i ← g_i − (g_i·g_j / ‖g_j‖²) g_j if g_i·g_j < 0, and the projected gradients are summed
(``reduction="sum"``, the paper) or averaged.

Projected gradients stay in the span of the originals, so each is tracked as a coefficient row
over ``G`` and the projections need only the Gram matrix: row i of ``C`` holds g_i^PC = C_i G, and
g_i^PC·g_j = (C Gram)_ij. The K sequences are advanced together, one projection per task per step.
The random orders come from a seeded generator whose state is a buffer (``rng_state``), so a
``state_dict`` round trip continues the same sequence.

A gradient whose squared norm is below ``TINY`` times the largest one (‖g_j‖ < 1e-10 ‖g_max‖, e.g. a
task whose loss underflowed to ~0) is not projected onto: its direction is float rounding, and the
coefficient g_i·g_j / ‖g_j‖² of a float32 gradient near 1e-39 overflows float32 when the direction
is formed (measured: a PCGrad run on the genuine KuaiRand rows diverged at batch 93).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import choose
from .support import StageProfile
from .registry import register_stage
from .task_grads import GradientStage

# reduction -> factor applied to the sum of the projected gradients, given K
REDUCTIONS = {"sum": lambda k: 1.0, "mean": lambda k: 1.0 / k}
TINY = 1e-20  # squared-norm ratio below which a task gradient counts as zero (module doc)


@register_stage("pcgrad")
class PCGradStage(GradientStage):
    """Task-specific parameters get ∂L_i/∂θ_i (weight 1 for ``sum``, 1/K for ``mean``)."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(K³) projections", "O(K·D)")

    def __init__(self, tasks: Sequence[str], reduction: str = "sum", seed: int = 0) -> None:
        super().__init__(tasks)
        self.reduction = reduction
        self._scale = choose(self.name, "reduction", reduction, REDUCTIONS)(self.num_tasks)
        state = torch.Generator().manual_seed(int(seed)).get_state()
        self.register_buffer("rng_state", state)

    def _orders(self) -> Tensor:
        """[K, K]: row i is task i's random order over all tasks (itself included, a no-op)."""
        gen = torch.Generator()
        gen.set_state(self.rng_state.cpu())
        orders = torch.rand(self.num_tasks, self.num_tasks, generator=gen).argsort(dim=1)
        self.rng_state.copy_(gen.get_state())
        return orders

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        k = self.num_tasks
        rows = torch.arange(k)
        orders = self._orders()
        coef = torch.eye(k, dtype=gram.dtype)
        sq_norms = gram.diagonal().clamp_min(1e-300)
        negligible = sq_norms <= TINY * sq_norms.max()
        projections = 0
        for step in range(k):
            j = orders[:, step]
            dots = (coef @ gram)[rows, j]
            conflict = (dots < 0) & ~negligible[j]
            coef[rows, j] -= torch.where(conflict, dots / sq_norms[j], torch.zeros_like(dots))
            projections += int(conflict.sum())
        self._diagnostics["projections"] = float(projections)
        return coef.sum(0) * self._scale

    def head_weights(self, coeffs: Tensor) -> Tensor:
        return torch.full_like(coeffs, self._scale)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, reduction={self.reduction!r}"
