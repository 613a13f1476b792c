"""The two-task toy problem of seed 003, App. A.3 (from CAGrad, reused by Nash-MTL and FAMO).

With x = (x1, x2), c1 = max(tanh(x2/2), 0), c2 = max(tanh(−x2/2), 0):

    f1 = log(max(|0.5(−x1 − 7) − tanh(−x2)|, 5e−6)) + 6
    f2 = log(max(|0.5(−x1 + 3) ± tanh(−x2) + 2|, 5e−6)) + 6
    g1 = ((−x1 + 7)² + 0.1 (−x2 − 8)²)/10 − 20,   g2 = ((−x1 − 7)² + 0.1 (−x2 − 8)²)/10 − 20
    L1 = scale · (c1 f1 + c2 g1),                 L2 = c1 f2 + c2 g2,   scale = 0.1.

The sign in f2 is where the sources differ: seed 003 prints ``− tanh(−x2)``, the published toy code
(Nash-MTL ``experiments/toy/problem.py``, used by FAMO) has ``+ tanh(−x2)``. ``PUBLISHED_SIGN`` is
the default; ``SEED_SIGN`` reproduces the printed formula. The Pareto front the published code
plots is x2 = −8.3552, x1 ∈ [−7, 7] (only the g-branch is active there); :func:`numerical_front`
computes the front itself, from a dense grid of x.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

PUBLISHED_SIGN = 1.0  # f2 = ... + tanh(-x2) ... (Nash-MTL / FAMO toy code)
SEED_SIGN = -1.0  # f2 = ... - tanh(-x2) ... (seed 003, App. A.3 as printed)
LOWER = 5e-6
L1_SCALE = 0.1
FRONT_X2 = -8.3552
BOX = (-10.0, 10.0)  # the square of x the numerical front is searched in (the published plots' range)
FRONT_GRID = 1001  # points per axis of that search: a step of 0.02

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


def non_dominated(points: Tensor) -> Tensor:
    """The points ``[N, 2]`` no other point weakly dominates (both coordinates minimised), sorted
    by the first: after sorting by (L1, L2), a point is kept when its L2 is below every earlier one's."""
    order = torch.argsort(points[:, 1], stable=True)
    order = order[torch.argsort(points[order, 0], stable=True)]
    ranked = points[order]
    earlier = torch.cummin(ranked[:, 1], dim=0).values
    keep = torch.ones(len(ranked), dtype=torch.bool)
    keep[1:] = ranked[1:, 1] < earlier[:-1]
    return ranked[keep]


def numerical_front(grid: int = FRONT_GRID, f2_sign: float = PUBLISHED_SIGN, chunk_rows: int = 64) -> Tensor:
    """``[M, 2]`` (L1, L2) of the non-dominated points among the losses at a ``grid`` x ``grid``
    lattice of x over :data:`BOX`², float64, sorted by L1. Rows of the lattice are evaluated
    ``chunk_rows`` at a time and reduced to their own non-dominated points (memory stays
    ~``chunk_rows · grid`` points). Cached per (grid, f2_sign): the result is read-only."""
    return _front(int(grid), float(f2_sign), int(chunk_rows)).clone()


@lru_cache(maxsize=8)
def _front(grid: int, f2_sign: float, chunk_rows: int) -> Tensor:
    if grid < 2:
        raise ValueError(f"numerical_front: grid must be at least 2 points per axis, got {grid}")
    axis = torch.linspace(*BOX, grid, dtype=torch.float64)
    kept = []
    for start in range(0, grid, chunk_rows):
        x1 = axis[start:start + chunk_rows]
        x = torch.stack(torch.meshgrid(x1, axis, indexing="ij"), dim=-1).reshape(-1, 2)
        kept.append(non_dominated(toy_losses(x, f2_sign)))
    return non_dominated(torch.cat(kept))


def distance_to_front(points: Tensor, front: Tensor, chunk: int = 256) -> Tensor:
    """Euclidean distance in the loss plane from each of ``points [N, 2]`` to the polyline through
    ``front [M, 2]`` (consecutive points joined by segments; one point: the distance to it),
    ``chunk`` points at a time (memory ~``chunk · M``)."""
    points, front = points.to(torch.float64).reshape(-1, 2), front.to(torch.float64)
    if len(front) == 1:
        return (points - front).norm(dim=1)
    a, ab = front[:-1], front[1:] - front[:-1]                     # [S, 2] segment starts, directions
    length2 = (ab * ab).sum(1).clamp_min(1e-300)
    out = []
    for part in points.split(chunk):
        rel = part[:, None, :] - a[None]                           # [n, S, 2]
        t = ((rel * ab[None]).sum(-1) / length2).clamp(0.0, 1.0)   # the nearest point of each segment
        out.append((rel - t[..., None] * ab[None]).norm(dim=-1).min(dim=1).values)
    return torch.cat(out) if out else points.new_zeros(0)
