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

``scale="relative"`` (an explicit option; the default ``"absolute"`` is the paper). Why: with
L_i ≥ 0 and ε_i ≤ ε_0 = 0.05, x = L − ε ≥ −ε, so φ ≥ tanh(1 − 3ε) ≈ 0.72 and the downstream weights
1/(1 + φ) stay in (0.5, 0.59]; and Eq. 5, which only ever lowers ε_i, parks it in the lower tail of
the noisy batch loss, where x is a small positive number and φ ≈ tanh(1) to 1 for good: on
BCE-sized losses Eq. 6 is in effect L_1 + ½ Σ L_i. Three departures, each bounded:

1. Thresholds relative to each task's initial loss: ε_i(0) = ``eps0`` · L_i at the first step
   (``eps0`` defaults to 1.0 in this mode: the threshold starts at the task's own first loss;
   Sec. 4.1.1 sets the absolute ε_0 = 0.05 for every task).
2. The barrier argument in units of the threshold (Eq. 3 / Eq. 7 take x = L − ε in loss units):
   x_i = L_i/ε_i − 1, the relative violation, so the sharpness s = 3 means the same for a 40 %
   task and a 0.2 % task: x = −1/s (the loss a third below its threshold) gives φ = 0 and a
   downstream weight of 1, x ≥ 1 (twice the threshold) φ ≈ 1 and a weight of ½.
3. Eq. 5 made two-sided: ε_i ← γ ε_i when L_i ≤ ε_i (Eq. 5 as printed) **and ε_i ← ε_i / γ when
   L_i > ε_i** (where Eq. 5 keeps ε_i). In log ε this is a Robbins-Monro step of ± log(1/γ), whose
   fixed point is P(L_i ≤ ε_i) = ½: ε_i follows the running *median* of the task's loss (the
   curriculum still tightens the threshold as the loss falls), so the constraint holds on about
   half the steps and x crosses 0 with the loss instead of sitting just above it. (A decay-only ε
   that tracks the loss keeps x ≈ 0⁺, φ ≈ tanh(1) ≈ 0.76, and nothing moves.) In ``update="epoch"``
   mode the same two-sided step is applied once per epoch to the epoch-mean loss. ε_i is floored
   at 1e-12 so the ratio stays defined.

Bound: φ is clamped to [0, 1] (any barrier of Table 5): since L ≥ 0, x ≥ −1, where
tanh(s·x + 1) reaches tanh(1 − s) ≈ −0.96 and 1/(1 + φ) ≈ 26 (and φ → −1 makes it explode; a
negative φ also turns the first task's term into gradient ascent). With the clamp the first task's
weight φ_1 lies in [0, 1] and every downstream weight 1/(1 + φ_{i−1}) in [½, 1]: from "upstream
violated" (½, Lemma 8's limit) through "at its threshold" (1/(1 + tanh 1) ≈ 0.57) to "comfortably
satisfied" (1, a plain sum) — the range Sec. 3.3 describes, reached at real loss scales. Where the
clamp binds, no gradient flows through φ (the barrier is flat there). x is also capped at 10
(the loss 11 times its threshold), where every barrier is at its clamp or within 5e-5 of 1, so
``exp`` cannot overflow.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import choose, positive
from .barriers import BARRIERS
from .base import LossStage
from .support import StageProfile
from .registry import register_stage

UPDATES = {"step": "step", "epoch": "epoch"}
SCALES = {"absolute": "absolute", "relative": "relative"}
DEFAULT_SHARPNESS = 3.0
DEFAULT_EPS0 = {"absolute": 0.05, "relative": 1.0}  # Sec. 4.1.1 | the task's first loss
MIN_THRESHOLD = 1e-12  # relative mode: ε_i never reaches 0 (x = L/ε − 1)
MAX_RELATIVE_X = 10.0  # relative mode: x capped where every Table 5 barrier is saturated (exp overflow)


@register_stage("hb_aho")
class HbAhoStage(LossStage):
    """HB-AHO (seed 000). Hyper-parameters: ``eps0`` (0.05; in relative mode 1.0, a multiple of
    the first loss), ``decay`` (γ, 0.95), ``sharpness`` (s, 3.0; tanh only), ``barrier`` (tanh |
    sigmoid | gaussian | softplus | exp | quadratic | cubic, Table 5), ``update`` (step | epoch),
    ``scale`` (absolute = the paper | relative, see the module docstring)."""
    profile = StageProfile("losses", "O(K)", "O(K)")

    def __init__(
        self,
        tasks: Sequence[str],
        eps0: float | None = None,
        decay: float = 0.95,
        sharpness: float = DEFAULT_SHARPNESS,
        barrier: str = "tanh",
        update: str = "step",
        scale: str = "absolute",
    ) -> None:
        super().__init__(tasks)
        self.scale = choose(self.name, "scale", scale, SCALES)
        eps0 = positive(self.name, "eps0", DEFAULT_EPS0[self.scale] if eps0 is None else eps0)
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
        if self.scale == "relative":  # ε_i(0) = eps0 · L_i(first step): set at the first step
            self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def objective(self, losses: Tensor) -> Tensor:
        relative = self.scale == "relative"
        if relative and not bool(self.started):
            self.eps.mul_(losses.detach().to(self.eps)).clamp_(min=MIN_THRESHOLD)
            self.started.fill_(True)
        eps = self.eps.clone().to(losses)   # the buffer decays after the objective
        if relative:                                                  # x_i = L_i/ε_i − 1, φ in [0, 1]
            x = (losses / eps - 1.0).clamp(max=MAX_RELATIVE_X)
            phi = self._phi(x, self.sharpness).clamp(0.0, 1.0)
        else:
            phi = self._phi(losses - eps, self.sharpness)             # Eq. 3, x_i = L_i − ε_i
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
        """ε_i ← γ^{δ(L_i ≤ ε_i)} ε_i (Eq. 5 / Eq. 27); in relative mode ε_i ← ε_i/γ where violated
        (two-sided, see the module docstring), floored at 1e-12."""
        if self.scale == "relative":
            down, up = self.eps.new_tensor(self.decay), self.eps.new_tensor(1.0 / self.decay)
            factor = torch.where(satisfied, down, up)
            self.eps.mul_(factor).clamp_(min=MIN_THRESHOLD)
            return
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
            f"decay={self.decay}, update={self.update!r}, scale={self.scale!r}"
        )
