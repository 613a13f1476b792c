"""Scale-invariant linear scalarisation ("SI", the ``scaleinvls`` baseline in the code of Navon et
al., "Multi-Task Learning as a Bargaining Game", ICML 2022; also in the FAMO code, which forks it):

    objective = Σ_i w_i·log L_i,   ∂objective/∂L_i = w_i / L_i,

so multiplying a task's loss by a constant leaves the direction unchanged (the gradient is
Σ_i w_i ∇L_i / L_i). ``w`` defaults to 1 per task, as the reference's ``task_weights``
(``methods/weight_methods.py``, ``ScaleInvariantLinearScalarization``: ``sum(log(losses) * w)``).

Sum of log losses is this stage, not LibMTL's ``GLS`` (geometric loss strategy,
``(Π_i L_i)^(1/K)``): its gradient is GLS/K·Σ_i ∇L_i/L_i, the same direction scaled by the current
geometric mean.

The reference takes ``log`` of whatever it gets (−inf or NaN for L_i <= 0). Here a negative loss is
a ValueError naming the task, before anything is computed; a loss of exactly 0 is a positive loss
that underflowed (BCE of a confident model on a batch without positives of a rare task: on the
genuine KuaiRand rows ``is_hate`` reaches 0.0 within 5 epochs, and the run stopped) and adds
nothing that step (log 1 = 0: no gradient, effective weight 0).

Diagnostics: ``weight`` w_i / L_i (the effective weight on L_i).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

from ._hparams import per_task
from .base import LossStage
from .support import StageProfile
from .registry import register_stage


@register_stage("si")
class ScaleInvariantStage(LossStage):
    """Σ_i w_i log L_i. Hyper-parameter: ``weights`` (w, list in priority order or
    ``{task: w}``; 1 each; >= 0), the reference's ``task_weights``."""
    profile = StageProfile("losses", "O(K)", "O(K)")

    def __init__(
        self, tasks: Sequence[str], weights: Sequence[float] | Mapping[str, float] | None = None
    ) -> None:
        super().__init__(tasks)
        values = [1.0] * self.num_tasks if weights is None else weights
        w = per_task(self.name, "weights", values, self.tasks)
        if bool((w < 0).any()):
            raise ValueError(f"stage '{self.name}': weights must be >= 0, got {w.tolist()}")
        self.register_buffer("weights", w)

    def objective(self, losses: Tensor) -> Tensor:
        detached = losses.detach()
        bad = ~(detached >= 0)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise ValueError(
                f"stage '{self.name}' takes log L_i and needs every loss >= 0; task "
                f"'{self.tasks[i]}' has loss {float(detached[i])}"
            )
        w = self.weights.to(losses)
        underflow = detached == 0
        self.record("weight", torch.where(underflow, torch.zeros_like(w), w / detached))
        return (w * torch.log(torch.where(underflow, torch.ones_like(losses), losses))).sum()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, weights={self.weights.tolist()}"
