"""GradNorm (Chen et al., ICML 2018): learnable loss weights w_i that equalise the training rates.

The model is trained on Σ_i w_i L_i (w detached). The weights are stage parameters (hand
``stage.parameters()`` to the optimizer) with their own loss, Eq. 2:
L_grad = Σ_i |G_W^(i) − Ḡ_W · r_i^α|, where G_W^(i) = ‖∇_W w_i L_i‖ = w_i ‖g_i‖ is the norm at
``shared`` (the last shared layer's parameters, or the shared representation in rep-grad mode),
Ḡ_W its mean over tasks, r_i = L̃_i / mean(L̃) and L̃_i = L_i / L_i(0) (the first losses seen,
kept in a buffer). The target Ḡ_W r_i^α is a constant (Sec. 3.2), so
∂L_grad/∂w_i = sign(G_W^(i) − Ḡ_W r_i^α) ‖g_i‖ is written to ``loss_weights.grad`` in closed form.
After each optimizer step the weights are renormalised to Σ_i w_i = K (Sec. 3.2); this is done at
the start of the next ``backward`` (clamped at 1e-6 first, to keep them positive).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ._hparams import positive
from .support import StageProfile
from .registry import register_stage
from .task_grads import GradientStage

_MIN_WEIGHT = 1e-6


@register_stage("gradnorm")
class GradNormStage(GradientStage):
    """Σ w_i L_i everywhere (``heads_follow_coeffs``); ``alpha`` is the restoring-force strength."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(K)", "O(K·D)")

    heads_follow_coeffs = True

    def __init__(self, tasks: Sequence[str], alpha: float = 1.5) -> None:
        super().__init__(tasks)
        self.alpha = positive(self.name, "alpha", alpha, allow_zero=True)
        self.loss_weights = nn.Parameter(torch.ones(self.num_tasks))
        self.register_buffer("initial_losses", torch.ones(self.num_tasks))
        self.register_buffer("has_initial", torch.zeros((), dtype=torch.bool))

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        bad = losses < 0 if bool(self.has_initial) else losses <= 0  # L(0) divides: positive; later ≥ 0
        if bool(bad.any()):
            task = self.tasks[int(bad.nonzero()[0])]
            raise ValueError(
                f"stage '{self.name}' needs positive first task losses and non-negative ones after "
                f"(training rates L_i/L_i(0)); task '{task}' has loss {float(losses[self.tasks.index(task)])}"
            )
        with torch.no_grad():
            self.loss_weights.clamp_(min=_MIN_WEIGHT)
            self.loss_weights.mul_(self.num_tasks / self.loss_weights.sum())
            if not bool(self.has_initial):
                self.initial_losses.copy_(losses)
                self.has_initial.fill_(True)
        w = self.loss_weights.detach().to("cpu", torch.float64)
        norms = gram.diagonal().clamp_min(0).sqrt()
        g_w = w * norms  # G_W^(i)
        ratio = losses / self.initial_losses.to("cpu", torch.float64)  # L̃_i (0 for a loss that underflowed)
        relative = ratio / ratio.mean() if bool(ratio.mean() > 0) else torch.ones_like(ratio)
        target = g_w.mean() * relative ** self.alpha
        grad = (torch.sign(g_w - target) * norms).to(self.loss_weights)
        if self.loss_weights.grad is None:
            self.loss_weights.grad = grad
        else:
            self.loss_weights.grad.add_(grad)
        self._diagnostics["gradnorm_loss"] = float((g_w - target).abs().sum())
        self.record("target_norm", target)
        return w

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha}"
