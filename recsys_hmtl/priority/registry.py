"""Registry of loss stages: one file per method registers itself with :func:`register_stage`.

Every module of this package is imported on first use, so adding a method is adding a file.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Sequence

from ..registry import Registry
from .base import LossStage

STAGES: Registry[type[LossStage]] = Registry("loss stage", __package__, {"base", "registry"})
register_stage = STAGES.register


def available_stages() -> list[str]:
    """Names accepted by :func:`build_stage`, sorted."""
    return STAGES.names()


def build_stage(name: str, tasks: Sequence[str], **hparams) -> LossStage:
    """Build the loss stage ``name`` for ``tasks`` (priority order) with its hyper-parameters."""
    cls = STAGES.get(name)
    if cls is None:
        names = STAGES.names()
        near = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean '{near[0]}'?" if near else "available: " + ", ".join(names)
        raise ValueError(f"unknown loss stage '{name}'; {hint}")
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = [p for p in params if p not in ("self", "tasks")]
        unknown = [k for k in hparams if k not in valid]
        if unknown:
            raise TypeError(
                f"loss stage '{name}' has no hyper-parameter(s) {unknown}; valid: {valid}"
            )
    return cls(tasks, **hparams)
