"""Validation of loss-stage hyper-parameters: one clear message naming the stage and the key.

Private helper (leading underscore: the registry does not import it as a stage module).
"""

from __future__ import annotations

import difflib
import math
from typing import Mapping, Sequence, TypeVar

import torch
from torch import Tensor

T = TypeVar("T")


def choose(stage: str, key: str, value: str, options: Mapping[str, T]) -> T:
    """``options[value]`` or a ValueError with a did-you-mean hint (a registry, never if-chains)."""
    if isinstance(value, str) and value in options:
        return options[value]
    near = difflib.get_close_matches(str(value), list(options), n=1)
    hint = f"did you mean '{near[0]}'?" if near else "choose one of: " + ", ".join(options)
    raise ValueError(f"stage '{stage}': {key}={value!r} is not valid; {hint}")


def positive(stage: str, key: str, value: float, *, allow_zero: bool = False) -> float:
    """A finite float > 0 (>= 0 with ``allow_zero``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"stage '{stage}': {key} must be a number, got {value!r}") from None
    ok = math.isfinite(number) and (number >= 0 if allow_zero else number > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"stage '{stage}': {key} must be a finite number {bound}, got {value!r}")
    return number


def unit_interval(stage: str, key: str, value: float) -> float:
    """A float in [0, 1) (decay factors)."""
    number = positive(stage, key, value, allow_zero=True)
    if number >= 1.0:
        raise ValueError(f"stage '{stage}': {key} must lie in [0, 1), got {value!r}")
    return number


def per_task(stage: str, key: str, value, tasks: Sequence[str]) -> Tensor:
    """A ``[K]`` float tensor from a list in priority order or a ``{task: value}`` mapping."""
    if isinstance(value, Mapping):
        missing = [t for t in tasks if t not in value]
        extra = [t for t in value if t not in tasks]
        if missing or extra:
            raise ValueError(
                f"stage '{stage}': {key} must give one value per task {list(tasks)}; "
                f"missing {missing}, unexpected {extra}"
            )
        value = [value[t] for t in tasks]
    if torch.is_tensor(value):
        value = value.detach().reshape(-1).tolist()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(
            f"stage '{stage}': {key} must be a list in task order or a mapping task -> value, "
            f"got {value!r}"
        )
    if len(value) != len(tasks):
        raise ValueError(
            f"stage '{stage}': {key} has {len(value)} values for {len(tasks)} tasks {list(tasks)}"
        )
    numbers = []
    for task, v in zip(tasks, value):
        try:
            number = float(v)
        except (TypeError, ValueError):
            raise ValueError(
                f"stage '{stage}': {key} for task '{task}' is not a number: {v!r}"
            ) from None
        if not math.isfinite(number):
            raise ValueError(f"stage '{stage}': {key} for task '{task}' is not finite: {v!r}")
        numbers.append(number)
    return torch.tensor(numbers, dtype=torch.float32)


def unused(stage: str, key: str, value, reason: str) -> None:
    """Reject an option that would silently have no effect."""
    if value is not None:
        raise ValueError(f"stage '{stage}': {key}={value!r} has no effect {reason}")
