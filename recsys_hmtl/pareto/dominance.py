"""Pareto dominance between points of K metric values with per-objective directions."""

from __future__ import annotations

from typing import Sequence

from .objectives import Point, check_directions, to_minimisation

__all__ = ["non_dominated", "weakly_dominates"]


def non_dominated(values: Sequence[Sequence[float | None]], directions: Sequence[str]) -> list[bool]:
    """Per point, True when no other point is at least as good in every objective and strictly
    better in one. A point with a non-finite value (NaN, ±inf, None) is dominated (False) and
    dominates nothing; equal points are both non-dominated."""
    points = to_minimisation(values, check_directions(directions))
    valid = [p for p in points if p is not None]
    return [p is not None and not any(_dominates(q, p) for q in valid) for p in points]


def weakly_dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` in every objective (both already minimised)."""
    return all(x <= y for x, y in zip(a, b))


def _dominates(a: Point, b: Point) -> bool:
    return weakly_dominates(a, b) and any(x < y for x, y in zip(a, b))
