"""Weighted-Chebyshev penalty scalarisation (seed 004, WC-penalty algorithm; SPEC §5).

    objective = μ·logsumexp_i(p_i (L_i − z_i) / μ) + ρ·Σ_j h_j²

p is a preference vector on the simplex (default uniform), z_i the ideal point: the running minimum
of the detached L_i, this step included (so L_i − z_i ≥ 0). μ > 0 smooths max_i p_i (L_i − z_i); μ = 0
is the exact (sub-differentiable) max. h_j are equality constraints the model may declare, passed as
``stage(losses, constraints=h)`` or ``stage.backward(losses, constraints=h)`` (a tensor of any shape,
or a mapping name -> tensor); none by default. Sweeping p over the simplex explores the Pareto front.

Diagnostics: ``weight`` ∂objective/∂L_i = p_i·softmax_i(p(L − z)/μ), ``ideal`` z_i, ``gap`` L_i − z_i,
``penalty`` ρ Σ h².
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

from ._hparams import per_task, positive
from .base import LossStage, NonFiniteLossError, with_extra
from .support import StageProfile
from .registry import register_stage

Constraints = Tensor | Mapping[str, Tensor] | None


@register_stage("wc_penalty")
class WcPenaltyStage(LossStage):
    """WC-penalty (seed 004). Hyper-parameters: ``preference`` (p on the simplex, list in priority
    order or ``{task: p}``; uniform), ``mu`` (smoothing μ, 0.01; 0 = exact max), ``rho`` (penalty
    weight ρ on the equality constraints, 1.0)."""
    profile = StageProfile("losses", "O(K)", "O(K)")

    def __init__(
        self,
        tasks: Sequence[str],
        preference: Sequence[float] | Mapping[str, float] | None = None,
        mu: float = 0.01,
        rho: float = 1.0,
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
            penalty = self.rho * (constraints.to(losses) ** 2).sum()        # ρ Σ_j h_j²
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
            f"mu={self.mu}, rho={self.rho}"
        )
