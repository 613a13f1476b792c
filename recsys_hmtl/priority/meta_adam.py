"""Adam on a stage's meta-learned vector (Auto-Lambda's λ, MOML's a), its state in the stage's own
buffers (saved with the stage, so a resumed run continues it): ``torch.optim.Adam`` with its default
betas and eps, which both official codes use, without weight decay."""

from __future__ import annotations

import torch
from torch import Tensor

BETAS, EPS = (0.9, 0.999), 1e-8


@torch.no_grad()
def adam_step(param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, steps: Tensor, lr: float) -> None:
    """One Adam step of ``param`` along ``grad``; ``steps`` (a 0-dim long tensor) counts them."""
    b1, b2 = BETAS
    steps += 1
    t = int(steps)
    exp_avg.mul_(b1).add_(grad, alpha=1 - b1)
    exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
    denom = (exp_avg_sq / (1 - b2 ** t)).sqrt_().add_(EPS)
    param.addcdiv_(exp_avg, denom, value=-lr / (1 - b1 ** t))
