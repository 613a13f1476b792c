"""The toy's "model": the point x ∈ R² itself, trained from ``model.start`` (SPEC §9 contract).

``forward`` returns :class:`~recsys_hmtl.training.outputs.TaskOutputs` with ``losses`` = {f1: L1,
f2: L2} (App. A.3, :func:`~.problem.toy_losses`) and ``shared`` = ``x · 1``, a non-leaf view of x
from which the losses are computed: rep-grad gradient stages (MGDA, PCGrad, CAGrad, ...) take
∂L_i/∂shared = ∂L_i/∂x and hand the combined direction back through it to x.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...training.outputs import TaskOutputs
from .config import TASKS
from .problem import toy_losses


class ToyModel(nn.Module):
    """``x``: the trained point (float32, as the published toy code); ``f2_sign``: ±1 (App. A.3)."""

    def __init__(self, start: tuple[float, float], f2_sign: float) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.tensor(start, dtype=torch.float32))
        self.f2_sign = float(f2_sign)

    def forward(self, batch=None) -> TaskOutputs:
        shared = self.x * 1.0
        losses = toy_losses(shared, self.f2_sign)
        return TaskOutputs(losses=dict(zip(TASKS, losses.unbind())), shared=shared, extra=None, batch_size=1)

    @torch.no_grad()
    def losses(self) -> Tensor:
        """(L1, L2) at x, in float64."""
        return toy_losses(self.x.detach().double(), self.f2_sign)
