"""Distance from points to a dense reference front (how far a sweep lands from the true front)."""

from __future__ import annotations

from typing import Sequence

__all__ = ["distance_to_front"]


def distance_to_front(points: Sequence[Sequence[float]], front: Sequence[Sequence[float]]) -> list[float]:
    """Per point, the Euclidean distance (in the metrics' own units) to the nearest point of
    ``front``; NaN for a point with a NaN value. Both are K-dimensional."""
    import torch

    ref = _matrix(front, "front")
    if ref.shape[0] == 0:
        raise ValueError("front must hold at least one point")
    if not torch.isfinite(ref).all():
        raise ValueError("front must hold finite values only")
    pts = _matrix(points, "points", width=ref.shape[1])
    if pts.shape[0] == 0:
        return []
    return torch.cdist(pts, ref).min(dim=1).values.tolist()


def _matrix(rows: Sequence[Sequence[float]], name: str, width: int | None = None):
    import torch

    try:
        matrix = torch.as_tensor([[float(v) for v in row] for row in rows], dtype=torch.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of equally long rows of numbers ({exc})") from None
    if matrix.numel() == 0:
        return matrix.reshape(0, width or 0)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a sequence of rows, got shape {tuple(matrix.shape)}")
    if width is not None and matrix.shape[1] != width:
        raise ValueError(f"{name} has {matrix.shape[1]} values per row but front has {width}")
    return matrix
