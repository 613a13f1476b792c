"""Exact hypervolume of a front and the common reference point to measure fronts against.

Values are in the metrics' own units with a "max"/"min" direction per objective; internally every
objective is minimised (the "max" ones negated). K = 2 is a sort-and-sweep; K = 3 the HSO
recursion (slice along the last objective: the 2-D hypervolume of the points below each slice times
the slice's depth); K ≥ 4 the WFG recursion (While, Bradstreet & Barone 2012: the sum of each
point's exclusive volume, its box minus the volume of the later points limited to that box), which
slices along the last objective the same way but is several times faster than HSO there (100
points in 6-D: ~3 s against ~20 s in pure Python). Both are exact.
"""

from __future__ import annotations

import math
from typing import Sequence

from .dominance import weakly_dominates
from .objectives import Point, check_directions, to_minimisation

__all__ = ["hypervolume", "reference_point"]


def hypervolume(values: Sequence[Sequence[float | None]], directions: Sequence[str],
                reference: Sequence[float]) -> float:
    """Volume of the region dominated by the points and bounded by ``reference``. Points with a
    non-finite value, or not strictly better than the reference in every objective, add nothing."""
    directions = check_directions(directions)
    (ref,) = to_minimisation([reference], directions, name="reference")
    if ref is None:
        raise ValueError(f"reference must be finite, got {tuple(reference)}")
    points = [p for p in to_minimisation(values, directions)
              if p is not None and all(x < r for x, r in zip(p, ref))]
    return _volume(_front(points), ref)


def reference_point(values: Sequence[Sequence[float | None]], directions: Sequence[str],
                    margin: float = 0.01) -> tuple[float, ...]:
    """Per objective the worst value over the valid points, moved ``margin`` × (its range, or 1e-12
    when all values are equal) further towards worse. Share it between methods' fronts."""
    directions = check_directions(directions)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number ≥ 0, got {margin!r}")
    points = [p for p in to_minimisation(values, directions) if p is not None]
    if not points:
        raise ValueError("values has no point with finite values in every objective")
    reference = []
    for i, direction in enumerate(directions):
        column = [p[i] for p in points]
        worst, spread = max(column), max(column) - min(column)
        minimised = worst + margin * (spread if spread > 0 else 1e-12)
        reference.append(-minimised if direction == "max" else minimised)
    return tuple(reference)


def _volume(points: list[Point], ref: Point) -> float:
    """Hypervolume of minimised, reference-bounded, mutually non-dominated points."""
    if not points:
        return 0.0
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in points)
    if len(ref) == 2:
        return _sweep(points, ref)
    if len(points) == 1:
        return _box(points[0], ref)
    return _hso(points, ref) if len(ref) == 3 else _wfg(points, ref)


def _hso(points: list[Point], ref: Point) -> float:
    """Slices along the last objective; each adds its depth × the volume of the points below it."""
    ordered = sorted(points, key=lambda p: p[-1])
    volume, below = 0.0, []
    for i, point in enumerate(ordered):
        below = _insert(below, point[:-1])
        upper = ordered[i + 1][-1] if i + 1 < len(ordered) else ref[-1]
        if upper > point[-1]:
            volume += (upper - point[-1]) * _volume(below, ref[:-1])
    return volume


def _wfg(points: list[Point], ref: Point) -> float:
    """Sum of exclusive volumes, worst last objective first, so every limit set shares that last
    coordinate and is measured one dimension down."""
    ordered = sorted(points, key=lambda p: p[-1], reverse=True)
    volume = 0.0
    for i, point in enumerate(ordered):
        head = point[:-1]
        limited = _front([tuple(map(max, head, later[:-1])) for later in ordered[i + 1:]])
        volume += (ref[-1] - point[-1]) * (_box(head, ref[:-1]) - _volume(limited, ref[:-1]))
    return volume


def _box(point: Point, ref: Point) -> float:
    return math.prod(r - x for x, r in zip(point, ref))


def _sweep(points: list[Point], ref: Point) -> float:
    """2-D: sorted by the first objective, each point adds the strip its second objective improves."""
    area, level = 0.0, ref[1]
    for x, y in sorted(points):
        if y < level:
            area += (ref[0] - x) * (level - y)
            level = y
    return area


def _front(points: list[Point]) -> list[Point]:
    front: list[Point] = []
    for point in points:
        front = _insert(front, point)
    return front


def _insert(front: list[Point], point: Point) -> list[Point]:
    """``front`` plus ``point`` unless a member weakly dominates it; members it dominates leave."""
    if any(weakly_dominates(member, point) for member in front):
        return front
    return [member for member in front if not weakly_dominates(point, member)] + [point]
