"""Objective directions ("max" / "min") and the conversion of metric values to minimisation.

A value that is not a finite number (NaN, ±inf, None) makes its whole point invalid: such points
count as dominated and are left out of the hypervolume and the reference point.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

__all__ = ["DIRECTIONS", "check_directions", "directions_for", "to_minimisation"]

DIRECTIONS = ("max", "min")

Point = tuple[float, ...]


def check_directions(directions: Sequence[str], name: str = "directions") -> tuple[str, ...]:
    """The directions as a tuple, each "max" or "min" (ValueError naming ``name`` otherwise)."""
    if isinstance(directions, str) or not isinstance(directions, Sequence):
        raise ValueError(f"{name} must be a sequence of 'max'/'min', one per objective, got {directions!r}")
    if not directions:
        raise ValueError(f"{name} must name at least one objective")
    for i, direction in enumerate(directions):
        if direction not in DIRECTIONS:
            raise ValueError(f"{name}[{i}] must be 'max' or 'min', got {direction!r}")
    return tuple(directions)


def directions_for(tasks: Sequence[str], directions: Sequence[str] | Mapping[str, str],
                   name: str = "directions") -> tuple[str, ...]:
    """Per-task directions from a sequence aligned with ``tasks`` or a task → direction mapping."""
    if isinstance(directions, Mapping):
        missing = [t for t in tasks if t not in directions]
        if missing:
            raise ValueError(f"{name} has no direction for task(s) {missing}")
        directions = [directions[t] for t in tasks]
    found = check_directions(directions, name)
    if len(found) != len(tasks):
        raise ValueError(f"{name} has {len(found)} entries but there are {len(tasks)} tasks {list(tasks)}")
    return found


def to_minimisation(values: Sequence[Sequence[float | None]], directions: Sequence[str],
                    name: str = "values") -> list[Point | None]:
    """Each point with its "max" objectives negated, or None when it has a non-finite entry."""
    directions = check_directions(directions)
    if not _is_vector(values):
        raise ValueError(f"{name} must be a sequence of points (tuples of {len(directions)} numbers)")
    out: list[Point | None] = []
    for i, point in enumerate(values):
        if not _is_vector(point):
            raise ValueError(f"{name}[{i}] must be a tuple of {len(directions)} numbers, got {point!r}")
        if len(point) != len(directions):
            raise ValueError(f"{name}[{i}] has {len(point)} values but there are {len(directions)} directions")
        converted = []
        for value, direction in zip(point, directions):
            number = _number(value, f"{name}[{i}]")
            converted.append(-number if direction == "max" else number)
        out.append(tuple(converted) if all(math.isfinite(v) for v in converted) else None)
    return out


def _is_vector(obj: object) -> bool:
    """A sized iterable that is not a string (lists, tuples, NumPy rows, 1-D tensors)."""
    return not isinstance(obj, (str, bytes)) and hasattr(obj, "__len__") and hasattr(obj, "__iter__")


def _number(value: object, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise ValueError(f"{where} must hold numbers, got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where} must hold numbers, got {value!r}") from None
