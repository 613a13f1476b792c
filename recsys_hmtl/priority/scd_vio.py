"""SCD-VIO: self-calibrated stratified gates (seed 001, Algorithm 1, Eq. 2-7).

Per step, in priority order i = 1..K:

1. ε_i ← threshold of the detached L_i *including this step* (Welford mean, Eq. 2 / Alg. 1 l. 4-7;
   or the Table 5 ablations ``ema`` | ``median`` | ``fixed``);
2. r_i = L_i − ε_i, ε_i detached, L_i not (Alg. 1 l. 8);
3. g_1 = 1 and, for i ≥ 2, g_i = Π_{j<i} σ(−r_j/α) (``recursive``, Eq. 5 / Alg. 1 l. 12-14),
   σ(−r_i/α) (``independent``, Table 5) or 1 (``none``, Table 5);
4. objective Σ_i g_i (1 + softplus(r_i/α)) L_i (Eq. 7 / Alg. 1 l. 17), or Σ_i g_i L_i with
   ``softplus_penalty=False`` (Table 5, "remove p_i / softplus penalty"); autograd flows through
   g_i and the softplus.

Diagnostics: ``gate`` g_i, ``violation`` p_i = σ(r_i/α) (Eq. 5), ``residual`` r_i, ``threshold`` ε_i,
``weight`` g_i·(1 + softplus(r_i/α)) and ``feasibility_gap`` = mean over i > 1 of max(0, r_i)
(App. B.3; 0 for a single task); with ``alpha='auto'`` also ``alpha`` α_i.

``alpha='auto'`` (an explicit option; the default is the paper's α = 1.0, Sec. 4 / App. B): one
smoothing scale per task, α_i = the running standard deviation of the detached L_i (Welford over the
steps seen, this step included; 1.0 until two steps have been seen; floored at 1e-8). It departs from
Eq. 5 and Eq. 7 (Alg. 1 l. 9, 14 and 17), where one scalar α divides every residual: with BCE losses
the residuals r_i = L_i − ε_i are 0.02-0.2 in size, so with α = 1 every factor σ(−r_j/α) is ≈ 0.5 and
the gates are a fixed 0.5^(i−1) weighting whatever the residuals (App. B's sweep holds α fixed across
tasks whose loss scales differ by orders of magnitude). With α_i the residual is read in units of
the task's own spread: σ(−r_j/α_j) is ≈ 1 when task j is clearly below its threshold and ≈ 0 when
clearly above, which is the switch Eq. 5 describes ("≈ 1 if all prior tasks feasible"). Both the
gates (Eq. 5, with α_j of the upstream task j) and the penalty softplus(r_i/α_i) (Eq. 7) use α_i;
α_i is detached (no gradient flows through the spread). Proposition 1 still holds: scaling L_i by
c_i scales r_i and α_i alike, so r_i/α_i is scale-free.

With ``alpha='auto'`` the weights w_i = g_i (1 + softplus(r_i/α_i)) are also **detached**: the
objective is Σ_i sg[w_i] L_i, so each task's gradient is w_i ∇L_i, where Alg. 1 l. 17-18
differentiates through g_i and the softplus. Why: ∂σ(−r_j/α_j)/∂L_j and ∂softplus(r_j/α_j)/∂L_j
are O(1/α_j), and α_j is now the batch-to-batch spread of L_j (1e-3 to 1e-2 on BCE losses), so
∂objective/∂L_j = w_j + g_j L_j σ(r_j/α_j)/α_j − σ(r_j/α_j)/α_j · Σ_{i>j} w_i L_i (recursive gates)
is dominated by two terms ~ L/α ≈ 100: the gradient scale explodes, and the negative term rewards
*raising* an upstream loss to close the downstream gates. Measured on the KuaiRand demo (531 steps,
MMoE) with autograd through the gates: the upstream losses rose (is_click 0.704 → 0.713) and the
mean val AUC fell to 0.51 (0.71 for ``sum``). At α = 1 those terms are O(L) and harmless, which
is why the paper differentiates through them; the paper default keeps doing so.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ._hparams import choose, positive
from .base import LossStage
from .support import StageProfile
from .registry import register_stage
from .thresholds import RunningSpread, build_threshold

AUTO = "auto"


Alpha = Union[float, Tensor]  # one α for every task, or a [K] tensor (alpha='auto')


def _part(alpha: Alpha, part: slice) -> Alpha:
    """The α entries of the residuals ``part`` (a scalar α is shared by every task)."""
    return alpha[part] if torch.is_tensor(alpha) else alpha


def recursive_gates(residuals: Tensor, alpha: Alpha) -> Tensor:
    """g_1 = 1, g_i = Π_{j<i} σ(−r_j/α_j) (Eq. 5 of seed 001; α_j = α unless alpha='auto')."""
    upstream = torch.sigmoid(-residuals[:-1] / _part(alpha, slice(None, -1)))
    return torch.cat([residuals.new_ones(1), torch.cumprod(upstream, dim=0)])


def independent_gates(residuals: Tensor, alpha: Alpha) -> Tensor:
    """g_1 = 1, g_i = σ(−r_i/α_i) from the task's own residual (Table 5 of seed 001)."""
    own = torch.sigmoid(-residuals[1:] / _part(alpha, slice(1, None)))
    return torch.cat([residuals.new_ones(1), own])


def no_gates(residuals: Tensor, alpha: Alpha) -> Tensor:
    """g_i ≡ 1 (Table 5 of seed 001, "no gating")."""
    return torch.ones_like(residuals)


GATES: dict[str, Callable[[Tensor, Alpha], Tensor]] = {
    "recursive": recursive_gates,
    "independent": independent_gates,
    "none": no_gates,
}


@register_stage("scd_vio")
class ScdVioStage(LossStage):
    """SCD-VIO (seed 001). Hyper-parameters: ``alpha`` (α, 1.0; or ``"auto"``: per-task α_i = the
    running spread of L_i, see the module docstring), ``gate`` (recursive | independent |
    none), ``threshold`` (mean | ema | median | fixed), ``softplus_penalty`` (True), and the options
    of the chosen threshold: ``ema_decay`` (0.9, ema), ``window`` (1000 steps, median),
    ``fixed_thresholds`` (one per task, fixed)."""
    profile = StageProfile("losses", "O(K)", "O(K)")

    def __init__(
        self,
        tasks: Sequence[str],
        alpha: float | str = 1.0,
        gate: str = "recursive",
        threshold: str = "mean",
        softplus_penalty: bool = True,
        ema_decay: float | None = None,
        window: int | None = None,
        fixed_thresholds: Sequence[float] | Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(tasks)
        if isinstance(alpha, str):
            if alpha != AUTO:
                raise ValueError(
                    f"stage '{self.name}': alpha must be a number > 0 or 'auto', got {alpha!r}"
                )
            self.alpha: float | str = AUTO
            self.spread = RunningSpread(self.num_tasks)   # buffers: α_i resumes exactly
        else:
            self.alpha = positive(self.name, "alpha", alpha)
        self.gate = gate
        self._gates = choose(self.name, "gate", gate, GATES)
        if not isinstance(softplus_penalty, bool):
            raise ValueError(f"stage '{self.name}': softplus_penalty must be true or false")
        self.softplus_penalty = softplus_penalty
        self.thresholds = build_threshold(
            self.name, threshold, self.tasks,
            ema_decay=ema_decay, window=window, fixed_thresholds=fixed_thresholds,
        )

    def objective(self, losses: Tensor) -> Tensor:
        eps = self.thresholds.update(losses.detach()).to(losses)   # Alg. 1 l. 4-7 (this step included)
        residuals = losses - eps                                    # Alg. 1 l. 8, ε detached
        if self.alpha == AUTO:                                      # per-task α_i (module docstring)
            alpha: Alpha = self.spread.update(losses.detach()).to(losses)
            self.record("alpha", alpha)
        else:
            alpha = self.alpha
        gates = self._gates(residuals, alpha)                       # Eq. 5 / Table 5
        if self.softplus_penalty:
            weights = gates * (1.0 + F.softplus(residuals / alpha))  # Eq. 7
        else:
            weights = gates
        if self.alpha == AUTO:
            weights = weights.detach()  # Σ sg[w_i] L_i (module docstring: gate gradients ~ 1/α_i)
        r = residuals.detach()
        self.record("gate", gates)
        self.record("violation", torch.sigmoid(r / alpha))
        self.record("residual", r)
        self.record("threshold", eps)
        self.record("weight", weights)
        gap = r[1:].clamp_min(0).mean() if self.num_tasks > 1 else r.new_zeros(())
        self._diagnostics["feasibility_gap"] = float(gap)           # App. B.3
        return (weights * losses).sum()

    def extra_repr(self) -> str:
        return (
            f"tasks={list(self.tasks)}, alpha={self.alpha}, gate={self.gate!r}, "
            f"softplus_penalty={self.softplus_penalty}"
        )
