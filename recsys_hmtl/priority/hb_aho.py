"""HB-AHO: hyperbolic barrier with adaptive thresholds (seed 000, Eq. 2-6 and App. C).

Objective for K ordered tasks (Eq. 6 / Eq. 26):

    φ(L_1 − ε_1)·L_1 + Σ_{i≥2} L_i / (1 + φ(L_{i−1} − ε_{i−1})),   φ(x) = tanh(s·x + 1)  (Eq. 3)

differentiated by autograd through φ. After the objective is formed, each threshold decays by γ
when its constraint holds (Eq. 5 / Eq. 27): ε_i ← γ·ε_i if L_i ≤ ε_i (L_i detached), else unchanged.
``update="step"`` applies Eq. 5 to every step's loss; ``update="epoch"`` applies it once per epoch,
in :meth:`end_epoch`, to the epoch-mean loss. ε_i(0) = ``eps0`` (0.05, Sec. 4.1.1).

Diagnostics: ``threshold`` ε_i used this step, ``barrier`` φ(L_i − ε_i), ``weight`` (the
coefficient multiplying L_i: φ_1 for the first task, 1/(1 + φ_{i−1}) after it), ``satisfied``
(1 where L_i ≤ ε_i this step).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import choose, positive
from .barriers import BARRIERS
from .base import LossStage
from .registry import register_stage

UPDATES = {"step": "step", "epoch": "epoch"}
DEFAULT_SHARPNESS = 3.0


@register_stage("hb_aho")
class HbAhoStage(LossStage):
    """HB-AHO (seed 000). Hyper-parameters: ``eps0`` (0.05), ``decay`` (γ, 0.95), ``sharpness``
    (s, 3.0; tanh only), ``barrier`` (tanh | sigmoid | gaussian | softplus | exp | quadratic | cubic,
    Table 5), ``update`` (step | epoch)."""

    def __init__(
        self,
        tasks: Sequence[str],
        eps0: float = 0.05,
        decay: float = 0.95,
        sharpness: float = DEFAULT_SHARPNESS,
        barrier: str = "tanh",
        update: str = "step",
    ) -> None:
        super().__init__(tasks)
        eps0 = positive(self.name, "eps0", eps0)
        self.decay = positive(self.name, "decay", decay)
        if self.decay > 1.0:
            raise ValueError(f"stage '{self.name}': decay (γ) must lie in (0, 1], got {decay!r}")
        self.sharpness = positive(self.name, "sharpness", sharpness)
        self.barrier = barrier
        self._phi = choose(self.name, "barrier", barrier, BARRIERS)
        if barrier != "tanh" and self.sharpness != DEFAULT_SHARPNESS:
            raise ValueError(
                f"stage '{self.name}': sharpness applies to barrier='tanh' only (Eq. 3); "
                f"the Table 5 barrier '{barrier}' has none"
            )
        self.update = choose(self.name, "update", update, UPDATES)
        self.register_buffer("eps", torch.full((self.num_tasks,), eps0))
        self.register_buffer("epoch_sum", torch.zeros(self.num_tasks))
        self.register_buffer("epoch_steps", torch.zeros((), dtype=torch.int64))

    def objective(self, losses: Tensor) -> Tensor:
        eps = self.eps.clone().to(losses)   # the buffer decays after the objective
        phi = self._phi(losses - eps, self.sharpness)                 # Eq. 3, x_i = L_i − ε_i
        denominators = 1.0 + phi[:-1]
        if bool((denominators.detach() <= 0).any()):
            i = int((denominators.detach() <= 0).nonzero()[0])
            raise ValueError(
                f"stage '{self.name}': 1 + φ(L − ε) = {float(denominators[i]):.4g} <= 0 for task "
                f"'{self.tasks[i]}' with barrier '{self.barrier}'; use a smaller eps0 or another barrier"
            )
        weights = torch.cat([phi[:1], 1.0 / denominators])          # Eq. 6
        objective = (weights * losses).sum()

        detached = losses.detach().to(self.eps)
        satisfied = detached <= self.eps
        self.record("threshold", self.eps)
        self.record("barrier", phi)
        self.record("weight", weights)
        self.record("satisfied", satisfied.float())
        if self.update == "step":
            self._decay_where(satisfied)                               # Eq. 5, after the objective
        else:
            self.epoch_sum += detached
            self.epoch_steps += 1
        return objective

    def _decay_where(self, satisfied: Tensor) -> None:
        """ε_i ← γ^{δ(L_i ≤ ε_i)} ε_i (Eq. 5 / Eq. 27)."""
        self.eps.mul_(torch.where(satisfied, self.eps.new_tensor(self.decay), self.eps.new_tensor(1.0)))

    def end_epoch(self) -> None:
        """In ``update='epoch'`` mode, apply Eq. 5 to the epoch-mean losses and reset the epoch sums."""
        if self.update != "epoch" or int(self.epoch_steps) == 0:
            return
        mean = self.epoch_sum / self.epoch_steps.to(self.epoch_sum)
        self._decay_where(mean <= self.eps)
        self.epoch_sum.zero_()
        self.epoch_steps.zero_()

    def extra_repr(self) -> str:
        return (
            f"tasks={list(self.tasks)}, barrier={self.barrier!r}, sharpness={self.sharpness}, "
            f"decay={self.decay}, update={self.update!r}"
        )
