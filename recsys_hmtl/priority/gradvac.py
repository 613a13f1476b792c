"""Gradient Vaccine (Wang, Tsvetkov, Firat & Cao, "Gradient Vaccine: Investigating and Improving
Multi-task Optimization in Massively Multilingual Models", ICLR 2021), as LibMTL's
``weighting/GradVac.py`` with its default ``GradVac_group_type=0`` (one group: all shared tensors).

GradVac keeps, per ordered task pair (i, j), an EMA target φ̂_ij of the cosine similarity between
task gradients (0 at the start). Each task gradient, visiting the other tasks in its own random
order (Algorithm 1), is moved towards the target whenever it is less aligned than the target:

    φ_ij = g_i'·g_j / (‖g_i'‖ ‖g_j‖ + ε)
    if φ_ij < φ̂_ij:  g_i' ← g_i' + a·g_j,
        a = ‖g_i'‖ (φ̂_ij √(1 − φ_ij²) − φ_ij √(1 − φ̂_ij²)) / (‖g_j‖ √(1 − φ̂_ij²) + ε)
    φ̂_ij ← (1 − β) φ̂_ij + β φ_ij          (every visited pair, corrected or not)

(a is the paper's closed-form coefficient that makes cos(g_i' + a g_j, g_j) = φ̂_ij, with the
coefficient on g_i' fixed to 1; ε = 1e-8 as LibMTL; with ``eps=0`` a zero denominator, i.e. a zero
gradient, counts as φ_ij = 0 and makes no correction, where the formulas would give NaN).
The direction is d = Σ_i g_i'. With φ̂ ≡ 0 and β = 0 this is PCGrad. Every g_i' stays in the
span of the original gradients, so it is tracked as a coefficient row over G (row i of C:
g_i' = C_i G, so g_i'·g_j = (C Gram)_ij and ‖g_i'‖² = C_i Gram C_iᵀ) and the whole method needs
only the Gram matrix; d = (Σ_i C_i) G.

Task-specific parameters get their plain ∂L_i/∂θ_i (LibMTL back-propagates every loss with
weight 1 and only replaces the shared gradient).

State: the targets φ̂ (K x K, float64, ``targets``) and the generator of the random orders
(``rng_state``, seeded by ``seed``: a ``state_dict`` round trip continues the same sequence).

Deviations from LibMTL: (1) the random orders come from this stage's own seeded torch generator, not
the global ``random`` module; (2) √(1 − x²) is taken of max(0, 1 − x²) (as TorchJD's
``GradVacWeighting``), where LibMTL would give NaN if round-off pushed |φ| above 1; (3) only the
whole-model grouping is offered: LibMTL's per-layer / per-matrix groups (``GradVac_group_type`` 1,
2) adjust each block with its own coefficients, which no single combination d = Σ c_i g_i of the
task gradients expresses; (4) LibMTL refuses representation gradients (rep-grad); here the Gram
matrix of the representation gradients (or of the task views) is used like that of parameters,
as for every gradient stage. LibMTL's loop is the paper's Algorithm 1 (target update for every
visited pair, the modified g_i' in φ_ij and in a); the paper also studies finer groupings of the
parameters (encoder/decoder, layers, matrices), which are LibMTL's group types 1 and 2 (see (3)).

Diagnostics (besides the gradient stages' ``weight``, ``grad_norm``, ``cosine``):
``adjustments`` (corrections made this step), ``min_target`` (the lowest φ̂_ij after the step).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import positive
from .support import StageProfile
from .registry import register_stage
from .task_grads import GradientStage


@register_stage("gradvac")
class GradVacStage(GradientStage):
    """GradVac (Wang et al. 2021). Hyper-parameters: ``beta`` (EMA rate β of the targets in [0, 1],
    LibMTL's ``GradVac_beta``, 0.5), ``eps`` (ε in the denominators, 1e-8), ``seed`` (0)."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(K³) adjustments", "O(K·D)")

    def __init__(self, tasks: Sequence[str], beta: float = 0.5, eps: float = 1e-8, seed: int = 0) -> None:
        super().__init__(tasks)
        self.beta = positive(self.name, "beta", beta, allow_zero=True)
        if self.beta > 1.0:
            raise ValueError(f"stage '{self.name}': beta must lie in [0, 1], got {beta!r}")
        self.eps = positive(self.name, "eps", eps, allow_zero=True)
        k = self.num_tasks
        self.register_buffer("targets", torch.zeros(k, k, dtype=torch.float64))  # φ̂_ij
        state = torch.Generator().manual_seed(int(seed)).get_state()
        self.register_buffer("rng_state", state)

    def _orders(self) -> list[list[int]]:
        """Row i: the tasks j != i in task i's random visiting order."""
        gen = torch.Generator()
        gen.set_state(self.rng_state.cpu())
        k = self.num_tasks
        orders = []
        for i in range(k):
            others = [j for j in range(k) if j != i]
            orders.append([others[p] for p in torch.randperm(k - 1, generator=gen).tolist()])
        self.rng_state.copy_(gen.get_state())
        return orders

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        k = self.num_tasks
        orders = self._orders()
        targets = self.targets.detach().to("cpu", torch.float64).clone()
        coef = torch.eye(k, dtype=gram.dtype)
        norms = gram.diagonal().clamp_min(0).sqrt()                 # ‖g_j‖
        adjustments = 0
        for i in range(k):
            dots = coef[i] @ gram                                   # g_i'·g_j for every j
            for j in orders[i]:
                norm_i = (dots @ coef[i]).clamp_min(0).sqrt()        # ‖g_i'‖
                denom = norm_i * norms[j] + self.eps
                phi = dots[j] / denom if bool(denom > 0) else torch.zeros_like(denom)
                target = targets[i, j].clone()
                if bool(phi < target):
                    sin_phi = (1 - phi * phi).clamp_min(0).sqrt()
                    sin_target = (1 - target * target).clamp_min(0).sqrt()
                    denom_a = norms[j] * sin_target + self.eps
                    if bool(denom_a > 0):                            # eps = 0 and g_j = 0: no move
                        a = norm_i * (target * sin_phi - phi * sin_target) / denom_a
                        coef[i, j] += a
                        dots = dots + a * gram[j]
                        adjustments += 1
                targets[i, j] = (1 - self.beta) * target + self.beta * phi
        self.targets.copy_(targets)
        self._diagnostics["adjustments"] = float(adjustments)
        if k > 1:
            off = ~torch.eye(k, dtype=torch.bool)
            self._diagnostics["min_target"] = float(targets[off].min())
        return coef.sum(0)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta={self.beta}, eps={self.eps}"
