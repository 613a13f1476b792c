"""FAMO: fast adaptive multitask optimization (Liu, Liang, Liu, Stone & Liu, NeurIPS 2023).

Task logits w define z = softmax(w). The model minimises

    Σ_i c⁻¹·z_i·log(L_i − m_i + 1e-8),   c = Σ_i z_i / (L_i − m_i + 1e-8)  (detached),

whose gradient is Σ_i (z_i / (c·D_i))·∇L_i, D_i = L_i − m_i + 1e-8, m_i a lower bound of L_i (0).
FAMO then moves the logits along −J_softmax(w)ᵀ δ, δ_i = log D_i(before) − log D_i(after the model
update), with Adam (lr ``w_lr``, L2 weight decay γ = ``gamma``), as the official ``FAMO.update``.

Design: the logits are not trained by the model's optimizer; they are buffers the stage updates
itself, with its own Adam moments in buffers, so the update uses FAMO's own step size and decay
whatever optimizer the trainer runs, and resumes exactly. The "after" loss is the loss the stage
receives at the next call (one-step-delayed update on the next batch, which saves the reference
code's extra forward pass): each call first updates w from (previous loss, this loss), then weighs
this loss. The reference code's gradient clipping belongs to the trainer.

Diagnostics: ``weight`` z_i / (c·D_i) (the effective weight on L_i), ``softmax`` z_i, ``logit`` w_i.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

from ._hparams import per_task, positive
from .base import LossStage
from .support import StageProfile
from .registry import register_stage

OFFSET = 1e-8  # the official code's D_i = L_i − m_i + 1e-8
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@register_stage("famo")
class FamoStage(LossStage):
    """FAMO (Liu et al. 2023). Hyper-parameters: ``w_lr`` (0.025), ``gamma`` (0.01),
    ``min_losses`` (m_i, lower bounds of the losses; 0 each)."""
    profile = StageProfile("losses", "O(K)", "O(K)")

    def __init__(
        self,
        tasks: Sequence[str],
        w_lr: float = 0.025,
        gamma: float = 0.01,
        min_losses: Sequence[float] | Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(tasks)
        k = self.num_tasks
        self.w_lr = positive(self.name, "w_lr", w_lr)
        self.gamma = positive(self.name, "gamma", gamma, allow_zero=True)
        bounds = [0.0] * k if min_losses is None else min_losses
        self.register_buffer("min_losses", per_task(self.name, "min_losses", bounds, self.tasks))
        self.register_buffer("logits", torch.zeros(k))
        self.register_buffer("adam_m", torch.zeros(k))
        self.register_buffer("adam_v", torch.zeros(k))
        self.register_buffer("adam_steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("previous", torch.zeros(k))
        self.register_buffer("has_previous", torch.zeros((), dtype=torch.bool))

    def objective(self, losses: Tensor) -> Tensor:
        detached = losses.detach().to(self.logits)
        below = detached < self.min_losses
        if bool(below.any()):
            i = int(below.nonzero()[0])
            raise ValueError(
                f"stage '{self.name}': loss {float(detached[i])} of task '{self.tasks[i]}' is below its "
                f"lower bound min_losses={float(self.min_losses[i])}; FAMO takes log(L − m)"
            )
        if bool(self.has_previous):
            delta = torch.log(self.previous - self.min_losses + OFFSET) - torch.log(
                detached - self.min_losses + OFFSET
            )
            self._adam_step(self._softmax_vjp(delta))
        z = torch.softmax(self.logits, dim=0).to(losses)
        d = losses - self.min_losses.to(losses) + OFFSET
        c = (z / d.detach()).sum()
        self.previous.copy_(detached)
        self.has_previous.fill_(True)
        self.record("weight", z / (c * d.detach()))
        self.record("softmax", z)
        self.record("logit", self.logits)
        return (z * torch.log(d)).sum() / c

    def _softmax_vjp(self, delta: Tensor) -> Tensor:
        """J_softmax(w)ᵀ δ = z ⊙ (δ − z·δ)."""
        z = torch.softmax(self.logits, dim=0)
        return z * (delta - (z * delta).sum())

    def _adam_step(self, grad: Tensor) -> None:
        """torch.optim.Adam with L2 weight decay γ, one step on the logits."""
        grad = grad + self.gamma * self.logits
        self.adam_steps += 1
        t = int(self.adam_steps)
        self.adam_m.mul_(BETAS[0]).add_(grad, alpha=1 - BETAS[0])
        self.adam_v.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
        m_hat = self.adam_m / (1 - BETAS[0] ** t)
        v_hat = self.adam_v / (1 - BETAS[1] ** t)
        self.logits.sub_(self.w_lr * m_hat / (v_hat.sqrt() + ADAM_EPS))
