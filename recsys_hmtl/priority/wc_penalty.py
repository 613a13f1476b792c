"""Weighted-Chebyshev penalty scalarisation (seed 004, WC-penalty algorithm; SPEC §5).

    objective = μ·logsumexp_i(p_i (L_i − z_i) / μ) + ρ·Σ_j h_j²

p is a preference vector on the simplex (default uniform), z_i the ideal point: the running minimum
of the detached L_i, this step included (so L_i − z_i ≥ 0). μ > 0 smooths max_i p_i (L_i − z_i); μ = 0
is the exact (sub-differentiable) max. h_j are equality constraints the model may declare, passed as
``stage(losses, constraints=h)`` or ``stage.backward(losses, constraints=h)`` (a tensor of any shape,
or a mapping name -> tensor); none by default. Sweeping p over the simplex explores the Pareto front.

ρ grows with the constrained steps taken, ρ_t = ρ₀ √(1 + t) (``rho_schedule: sqrt``, the default,
as seed 004's O(S T^-1/2) penalty analysis suggests; ``constant`` keeps ρ₀): t counts the calls that
passed constraints (a buffer, so a resumed run continues the schedule). In the training job's
bilevel mode h_i = ∇_{y_i} f_i(x, y_i), the stationarity of task i's head on training batches, and
L_i = F_i, the task's loss on the held-out slice (our reading of seed 004's ECMO; README).

Diagnostics: ``weight`` ∂objective/∂L_i = p_i·softmax_i(p(L − z)/μ), ``ideal`` z_i, ``gap`` L_i − z_i,
``penalty`` ρ Σ h².
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import Tensor

from ._hparams import choose, per_task, positive
from .base import LossStage, NonFiniteLossError, with_extra
from .support import StageProfile
from .registry import register_stage

Constraints = Tensor | Mapping[str, Tensor] | None
RHO_SCHEDULES = {"sqrt": lambda t: math.sqrt(1.0 + t), "constant": lambda t: 1.0}


@register_stage("wc_penalty")
class WcPenaltyStage(LossStage):
    """WC-penalty (seed 004). Hyper-parameters: ``preference`` (p on the simplex, list in priority
    order or ``{task: p}``; uniform), ``mu`` (smoothing μ, 0.01; 0 = exact max), ``rho`` (penalty
    weight ρ₀ on the equality constraints, 1.0), ``rho_schedule`` (sqrt | constant)."""
    profile = StageProfile("losses", "O(K)", "O(K)")
    accepts_constraints = True

    def __init__(
        self,
        tasks: Sequence[str],
        preference: Sequence[float] | Mapping[str, float] | None = None,
        mu: float = 0.01,
        rho: float = 1.0,
        rho_schedule: str = "sqrt",
    ) -> None:
        super().__init__(tasks)
        k = self.num_tasks
        uniform = [1.0 / k] * k
        p = per_task(self.name, "preference", uniform if preference is None else preference, self.tasks)
        if bool((p < 0).any()) or abs(float(p.sum()) - 1.0) > 1e-6:
            raise ValueError(
                f"stage '{self.name}': preference must lie on the simplex (entries >= 0 summing to 1), "
                f"got {p.tolist()} (sum {float(p.sum()):.6g})"
            )
        self.register_buffer("preference", p)
        self.mu = positive(self.name, "mu", mu, allow_zero=True)
        self.rho = positive(self.name, "rho", rho, allow_zero=True)
        self._rho_growth = choose(self.name, "rho_schedule", rho_schedule, RHO_SCHEDULES)
        self.rho_schedule = rho_schedule
        self.register_buffer("constrained_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("ideal", torch.full((k,), float("inf")))

    def forward(self, losses: Mapping[str, Tensor], constraints: Constraints = None) -> Tensor:
        stacked = self.stack(losses)
        h = self._constraints(constraints)            # checked before the ideal point moves
        return self.objective(stacked, h)

    def backward(
        self,
        losses: Mapping[str, Tensor],
        shared=None,
        extra: Tensor | None = None,
        constraints: Constraints = None,
    ) -> Tensor:
        objective = self(losses, constraints=constraints)
        with_extra(objective, extra).backward()
        return objective.detach()

    def objective(self, losses: Tensor, constraints: Tensor | None = None) -> Tensor:
        torch.minimum(self.ideal, losses.detach().to(self.ideal), out=self.ideal)   # ideal point z
        gap = losses - self.ideal.clone().to(losses)
        scaled = self.preference.to(losses) * gap
        if self.mu > 0:
            chebyshev = self.mu * torch.logsumexp(scaled / self.mu, dim=0)  # smoothed max p_i(L_i − z_i)
        else:
            chebyshev = scaled.max()
        penalty = losses.new_zeros(())
        if constraints is not None:
            rho = self.current_rho()
            penalty = rho * (constraints.to(losses) ** 2).sum()             # ρ_t Σ_j h_j²
            self.constrained_steps += 1
            self._diagnostics["rho"] = rho
        objective = chebyshev + penalty
        if self.mu > 0:
            mix = torch.softmax(scaled.detach() / self.mu, dim=0)
        else:
            mix = torch.zeros_like(gap).scatter_(0, scaled.detach().argmax().reshape(1), 1.0)
        self.record("weight", self.preference.to(losses) * mix)
        self.record("ideal", self.ideal)
        self.record("gap", gap)
        self._diagnostics["penalty"] = float(penalty.detach())
        return objective

    def current_rho(self) -> float:
        """ρ_t of the next constrained step: ρ₀ √(1 + t) (sqrt) or ρ₀ (constant)."""
        return self.rho * self._rho_growth(int(self.constrained_steps))

    def _constraints(self, constraints: Constraints) -> Tensor | None:
        if constraints is None:
            return None
        if isinstance(constraints, Mapping):
            parts = []
            for name, value in constraints.items():
                self._check_finite(str(name), value)
                parts.append(value.reshape(-1))
            return torch.cat(parts) if parts else None
        self._check_finite("constraints", constraints)
        return constraints.reshape(-1)

    def _check_finite(self, what: str, value) -> None:
        if not torch.is_tensor(value):
            raise ValueError(f"stage '{self.name}': {what} must be a tensor, got {type(value).__name__}")
        flat = value.detach().reshape(-1)
        bad = ~torch.isfinite(flat)
        if bool(bad.any()):
            raise NonFiniteLossError(f"{what} (equality constraint)", float(flat[bad][0]))

    def extra_repr(self) -> str:
        return (
            f"tasks={list(self.tasks)}, preference={self.preference.tolist()}, "
            f"mu={self.mu}, rho={self.rho}, rho_schedule={self.rho_schedule!r}"
        )
