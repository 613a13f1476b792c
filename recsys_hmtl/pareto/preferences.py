"""Preference vectors on the probability simplex for a Pareto sweep (one training run per vector).

- K = 2: ``points`` evenly spaced vectors ``(i/(points−1), 1 − i/(points−1))``, endpoints included.
- K = 3: the simplex lattice ``{(a, b, c)/h : a + b + c = h}`` with the largest ``h`` whose count
  ``(h+1)(h+2)/2`` does not exceed ``points``, so possibly FEWER vectors than asked (12 → 10).
- K ≥ 4: exactly ``points`` vectors, the Halton points 1..``points`` (index 0, the origin, is skipped;
  no scrambling) in K−1 dimensions (bases 2, 3, 5, …), each mapped onto the simplex by sorting its
  coordinates and taking the spacings of ``(0, sorted…, 1)``, a map that is uniform on the simplex.
  The K vertices are not added.

Every vector is a tuple of floats rounded to 12 decimals whose last entry is ``1 − sum(others)``.
"""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["preference_points", "lattice_order", "format_preference", "parse_preference", "as_preference"]

_DECIMALS = 12


def preference_points(num_tasks: int, points: int) -> list[tuple[float, ...]]:
    """The deterministic sweep for ``num_tasks`` objectives (see the module docstring for the rule)."""
    k = _positive_int(num_tasks, "num_tasks")
    n = _positive_int(points, "points")
    if k < 2:
        raise ValueError(f"num_tasks must be at least 2 for a Pareto sweep, got {k}")
    if k == 2:
        if n < 2:
            raise ValueError(f"points must be at least 2 with 2 tasks (both endpoints), got {n}")
        return [_finish((i / (n - 1),)) for i in range(n)]
    if k == 3:
        if n < 3:
            raise ValueError(f"points must be at least 3 with 3 tasks (the vertices), got {n}")
        h = lattice_order(n)
        return [_finish((a / h, b / h)) for a in range(h + 1) for b in range(h + 1 - a)]
    bases = _primes(k - 1)
    return [_finish(_spacings([_radical_inverse(i, b) for b in bases])[:-1]) for i in range(1, n + 1)]


def lattice_order(points: int) -> int:
    """The largest h with (h+1)(h+2)/2 ≤ ``points`` (the 3-task lattice's resolution)."""
    h = 1
    while (h + 2) * (h + 3) // 2 <= points:
        h += 1
    return h


def format_preference(preference: Sequence[float], digits: int = 6) -> str:
    """``(0.25, 0.75)`` → ``"0.25-0.75"``: fixed-point, trailing zeros dropped, safe in folder names."""
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 15:
        raise ValueError(f"digits must be an integer in [0, 15], got {digits!r}")
    values = as_preference(preference)
    return "-".join(_fixed(v, digits) for v in values)


def parse_preference(text: str) -> tuple[float, ...]:
    """The inverse of :func:`format_preference` (``"0.25-0.75"`` → ``(0.25, 0.75)``)."""
    try:
        values = tuple(float(part) for part in str(text).strip().split("-"))
    except ValueError:
        raise ValueError(f"preference must look like '0.25-0.75', got {text!r}") from None
    return as_preference(values)


def _finish(head: Sequence[float]) -> tuple[float, ...]:
    """Round to 12 decimals and append the entry that makes the vector sum to 1."""
    rounded = [round(v, _DECIMALS) + 0.0 for v in head]
    return (*rounded, round(1.0 - math.fsum(rounded), _DECIMALS) + 0.0)


def _spacings(coordinates: list[float]) -> list[float]:
    edges = [0.0, *sorted(coordinates), 1.0]
    return [b - a for a, b in zip(edges, edges[1:])]


def _radical_inverse(index: int, base: int) -> float:
    """The index's base-``base`` digits mirrored about the radix point (exact integer arithmetic)."""
    numerator, denominator = 0, 1
    while index:
        index, digit = divmod(index, base)
        numerator, denominator = numerator * base + digit, denominator * base
    return numerator / denominator


def _primes(count: int) -> list[int]:
    primes: list[int] = []
    candidate = 2
    while len(primes) < count:
        if all(candidate % p for p in primes if p * p <= candidate):
            primes.append(candidate)
        candidate += 1
    return primes


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def as_preference(preference: Sequence[float]) -> tuple[float, ...]:
    """``preference`` as a tuple of floats (ValueError unless non-empty, finite and ≥ 0)."""
    try:
        values = tuple(float(v) for v in preference)
    except (TypeError, ValueError):
        raise ValueError(f"preference must be a sequence of numbers, got {preference!r}") from None
    if not values:
        raise ValueError("preference must not be empty")
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"preference entries must be finite and non-negative, got {values}")
    return values


def _fixed(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
