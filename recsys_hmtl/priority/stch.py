"""Smooth Tchebycheff scalarisation (Lin, Zhang, Yang, Liu, Wang & Zhang, "Smooth Tchebycheff
Scalarization for Multi-Objective Optimization", ICML 2024), as LibMTL's ``weighting/STCH.py`` (the
authors' own MTL code, ``Xi-L/STCH/STCH_MTL``, is the same file) computes it.

The paper smooths the Tchebycheff scalarisation max_i λ_i (f_i − z_i*) (λ on the simplex, z* the
ideal point) into

    g_μ(f | λ) = μ·log Σ_i exp(λ_i (f_i − z_i*) / μ)          (the paper's STCH scalarisation)

with max_i λ_i(f_i − z_i*) <= g_μ <= max_i λ_i(f_i − z_i*) + μ log K. For multi-task learning
LibMTL applies it to log-normalised losses after a warm-up, epoch by epoch (``end_epoch``):

* epochs e < W (``warmup_epoch``): objective Σ_i log(L_i + 1e-20) (the scale-invariant ``si``
  stage);
* epoch e = W: the same objective, and the detached losses are averaged over the epoch into the
  normaliser n_i (LibMTL's ``nadir_vector``);
* epochs e > W: f_i = log(L_i / n_i + 1e-20) and

      objective = K·μ·log Σ_i exp(K·λ_i·f_i / μ),

  i.e. K·g_μ(f | Kλ) with ideal point z* = 0 in the normalised log space (z_i* = log n_i for
  f_i = log L_i: the warm-up mean loss is the reference point). With the default uniform
  preference λ_i = 1/K, K·λ_i = 1 and this is exactly LibMTL's ``K·μ·log Σ exp(f_i/μ)`` (LibMTL
  has no preference vector; its implicit λ_i = 1 is our uniform λ scaled by K). The gradient is
  Σ_i K²λ_i·s_i·∇L_i / (L_i + 1e-20·n_i), s = softmax(Kλf/μ).

Deviations from LibMTL, none of which changes a gradient LibMTL computes finitely: (1) LibMTL's
reported loss is K·μ·log Σ exp((f_i − max f)/μ), its log-sum-exp shifted by the detached max and
never shifted back, so it is K·max_i f_i below the objective here (``torch.logsumexp`` is the
shifted computation with the shift added back); (2) a negative loss is refused with a
ValueError (LibMTL would take the log of a negative number); (3) the normaliser is averaged in
float64; (4) if no loss was seen during epoch W the normaliser is undefined (LibMTL divides 0 by
0): a RuntimeError says so. The preference λ is our addition (the paper's λ; uniform reproduces
LibMTL) and weighs only the STCH phase: the warm-up objective is LibMTL's unweighted Σ log L_i.

Diagnostics: ``weight`` ∂objective/∂L_i, ``warmup`` (1 during the warm-up, 0 after), ``epoch``,
and ``normalizer`` n_i once it is fixed.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

from ._hparams import per_task, positive
from .base import LossStage
from .support import StageProfile
from .registry import register_stage

LOG_OFFSET = 1e-20  # LibMTL's log(L + 1e-20) and log(L / n + 1e-20)


def _epochs(stage: str, key: str, value) -> int:
    """A whole number of epochs >= 0 (an int, or a float with no fractional part)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    try:
        ok = ok and value == int(value) and value >= 0
    except (ValueError, OverflowError):  # nan, inf
        ok = False
    if not ok:
        raise ValueError(f"stage '{stage}': {key} must be a whole number of epochs >= 0, got {value!r}")
    return int(value)


@register_stage("stch")
class STCHStage(LossStage):
    """STCH (Lin et al. 2024) as LibMTL. Hyper-parameters: ``mu`` (μ > 0, LibMTL's ``STCH_mu``, 1.0),
    ``warmup_epoch`` (W, LibMTL's ``STCH_warmup_epoch``, 4: epochs 0..W train on Σ log L_i, epoch W
    also averages the losses into the normaliser), ``preference`` (λ on the simplex, list in
    priority order or ``{task: λ}``; uniform)."""
    profile = StageProfile("losses", "O(K)", "O(K)")

    def __init__(
        self,
        tasks: Sequence[str],
        mu: float = 1.0,
        warmup_epoch: int = 4,
        preference: Sequence[float] | Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(tasks)
        k = self.num_tasks
        self.mu = positive(self.name, "mu", mu)
        self.warmup_epoch = _epochs(self.name, "warmup_epoch", warmup_epoch)
        p = self._preference(preference)
        if bool((p < 0).any()) or abs(float(p.sum()) - 1.0) > 1e-6:
            raise ValueError(
                f"stage '{self.name}': preference must lie on the simplex (entries >= 0 summing to 1), "
                f"got {p.tolist()} (sum {float(p.sum()):.6g})"
            )
        self.register_buffer("preference", p)
        self.register_buffer("epoch", torch.zeros((), dtype=torch.int64))
        self.register_buffer("loss_sum", torch.zeros(k, dtype=torch.float64))
        self.register_buffer("loss_count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("normalizer", torch.ones(k, dtype=torch.float64))
        self.register_buffer("has_normalizer", torch.zeros((), dtype=torch.bool))

    def _preference(self, preference) -> Tensor:
        """λ as float64 (checked by ``per_task``, whose float32 copy would round: K·λ_i must be
        exactly 1 for the uniform default, and 3·float32(1/3) is not)."""
        k = self.num_tasks
        if preference is None:
            return torch.full((k,), 1.0 / k, dtype=torch.float64)
        per_task(self.name, "preference", preference, self.tasks)   # validation, clear messages
        if isinstance(preference, Mapping):
            preference = [preference[t] for t in self.tasks]
        if torch.is_tensor(preference):
            return preference.detach().reshape(-1).to("cpu", torch.float64).clone()
        return torch.tensor([float(v) for v in preference], dtype=torch.float64)

    def objective(self, losses: Tensor) -> Tensor:
        detached = losses.detach()
        negative = detached < 0
        if bool(negative.any()):
            i = int(negative.nonzero()[0])
            raise ValueError(
                f"stage '{self.name}' takes log L_i and needs every loss >= 0; task "
                f"'{self.tasks[i]}' has loss {float(detached[i])}"
            )
        epoch = int(self.epoch)
        self._diagnostics["epoch"] = float(epoch)
        if epoch <= self.warmup_epoch:
            if epoch == self.warmup_epoch:
                self.loss_sum += detached.to(self.loss_sum)
                self.loss_count += 1
            self._diagnostics["warmup"] = 1.0
            self.record("weight", 1.0 / (detached + LOG_OFFSET))
            return torch.log(losses + LOG_OFFSET).sum()
        if not bool(self.has_normalizer):
            if int(self.loss_count) == 0:
                raise RuntimeError(
                    f"stage '{self.name}': no losses were seen during epoch {self.warmup_epoch} "
                    "(warmup_epoch), so the normaliser (their mean) is undefined"
                )
            self.normalizer.copy_(self.loss_sum / self.loss_count)
            self.has_normalizer.fill_(True)
        k = self.num_tasks
        n = self.normalizer.clone().to(losses)
        pref = (k * self.preference).to(losses)                # K·λ (1 each when uniform)
        f = torch.log(losses / n + LOG_OFFSET)
        objective = k * self.mu * torch.logsumexp(pref * f / self.mu, dim=0)
        mix = torch.softmax(pref * f.detach() / self.mu, dim=0)
        self._diagnostics["warmup"] = 0.0
        self.record("weight", k * mix * pref / (detached + LOG_OFFSET * n))
        self.record("normalizer", n)
        return objective

    def end_epoch(self) -> None:
        self.epoch += 1

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, mu={self.mu}, warmup_epoch={self.warmup_epoch}, "
            f"preference={self.preference.tolist()}"
        )
