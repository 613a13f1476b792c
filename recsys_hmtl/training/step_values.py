"""A step's losses as numbers: read once from the device, checked for NaN/inf (the non-finite guard)."""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import Tensor


def detached_values(losses: Mapping[str, Tensor], extra: Tensor | None) -> tuple[dict[str, float], float | None]:
    """The losses as floats, read from the device once per step (one transfer, not one per task)."""
    values = torch.stack([v.detach().reshape(()) for v in losses.values()]).tolist()
    return dict(zip(losses, values)), None if extra is None else float(extra.detach())


def first_nonfinite(values: Mapping[str, float], extra: float | None) -> str | None:
    """The name of the first task (or ``"auxiliary"``) whose loss is NaN/inf, else None."""
    for task, value in values.items():
        if not math.isfinite(value):
            return task
    if extra is not None and not math.isfinite(extra):
        return "auxiliary"
    return None
