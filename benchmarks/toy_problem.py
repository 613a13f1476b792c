"""The two-task toy problem of seed 003, App. A.3 (from CAGrad, reused by Nash-MTL and FAMO).

With x = (x1, x2), c1 = max(tanh(x2/2), 0), c2 = max(tanh(−x2/2), 0):

    f1 = log(max(|0.5(−x1 − 7) − tanh(−x2)|, 5e−6)) + 6
    f2 = log(max(|0.5(−x1 + 3) ± tanh(−x2) + 2|, 5e−6)) + 6
    g1 = ((−x1 + 7)² + 0.1 (−x2 − 8)²)/10 − 20,   g2 = ((−x1 − 7)² + 0.1 (−x2 − 8)²)/10 − 20
    L1 = scale · (c1 f1 + c2 g1),                 L2 = c1 f2 + c2 g2,   scale = 0.1.

The sign in f2 is where the sources differ: seed 003 prints ``− tanh(−x2)``, the published toy code
(Nash-MTL ``experiments/toy/problem.py``, used by FAMO) has ``+ tanh(−x2)``. ``PUBLISHED_SIGN`` is
the default; ``SEED_SIGN`` reproduces the printed formula. The Pareto front the published code
plots is x2 = −8.3552, x1 ∈ [−7, 7] (only the g-branch is active there).
"""

from __future__ import annotations

import torch
from torch import Tensor

PUBLISHED_SIGN = 1.0  # f2 = ... + tanh(-x2) ... (Nash-MTL / FAMO toy code)
SEED_SIGN = -1.0  # f2 = ... - tanh(-x2) ... (seed 003, App. A.3 as printed)
LOWER = 5e-6
L1_SCALE = 0.1
FRONT_X2 = -8.3552

# Start points: the published code's five, and the five of seed 003 A.3 / Figure 1.
PUBLISHED_STARTS = ((-8.5, 7.5), (0.0, 0.0), (9.0, 9.0), (-7.5, -0.5), (9.0, -1.0))
SEED_STARTS = ((-8.5, 7.5), (-8.5, 5.0), (0.0, 0.0), (9.0, 9.0), (10.0, -8.0))


def toy_losses(x: Tensor, f2_sign: float = PUBLISHED_SIGN, scale: float = L1_SCALE) -> Tensor:
    """``[..., 2]`` losses (L1, L2) at points ``x`` of shape ``[..., 2]`` (differentiable)."""
    x1, x2 = x[..., 0], x[..., 1]
    t = torch.tanh(-x2)
    f1 = torch.clamp((0.5 * (-x1 - 7) - t).abs(), LOWER).log() + 6
    f2 = torch.clamp((0.5 * (-x1 + 3) + f2_sign * t + 2).abs(), LOWER).log() + 6
    g1 = ((-x1 + 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    g2 = ((-x1 - 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    c1 = torch.clamp(torch.tanh(0.5 * x2), min=0)
    c2 = torch.clamp(torch.tanh(-0.5 * x2), min=0)
    return torch.stack([scale * (c1 * f1 + c2 * g1), c1 * f2 + c2 * g2], dim=-1)


def pareto_front(n: int = 500, f2_sign: float = PUBLISHED_SIGN) -> Tensor:
    """``[n, 2]`` losses along the front the published code plots (x2 = −8.3552, x1 ∈ [−7, 7])."""
    x1 = torch.linspace(-7.0, 7.0, n, dtype=torch.float64)
    x = torch.stack([x1, torch.full_like(x1, FRONT_X2)], dim=-1)
    return toy_losses(x, f2_sign)
