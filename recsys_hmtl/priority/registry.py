"""Registry of loss stages: one file per method registers itself with :func:`register_stage`.

Every module of this package is imported on first use, so adding a method is adding a file.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Callable, Sequence, TypeVar

from .base import LossStage

_STAGES: dict[str, type[LossStage]] = {}
_INFRASTRUCTURE = {"base", "registry"}
S = TypeVar("S", bound=type[LossStage])


def register_stage(name: str) -> Callable[[S], S]:
    def deco(cls: S) -> S:
        if name in _STAGES and _STAGES[name] is not cls:
            raise ValueError(f"loss stage '{name}' registered twice")
        cls.name = name
        _STAGES[name] = cls
        return cls

    return deco


def _discover() -> None:
    package = __name__.rsplit(".", 1)[0]
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if info.name not in _INFRASTRUCTURE and not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


def available_stages() -> list[str]:
    """Names accepted by :func:`build_stage`, sorted."""
    _discover()
    return sorted(_STAGES)


def build_stage(name: str, tasks: Sequence[str], **hparams) -> LossStage:
    """Build the loss stage ``name`` for ``tasks`` (priority order) with its hyper-parameters."""
    _discover()
    if name not in _STAGES:
        import difflib

        near = difflib.get_close_matches(name, _STAGES, n=1)
        hint = f"did you mean '{near[0]}'?" if near else "available: " + ", ".join(sorted(_STAGES))
        raise ValueError(f"unknown loss stage '{name}'; {hint}")
    cls = _STAGES[name]
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = [p for p in params if p not in ("self", "tasks")]
        unknown = [k for k in hparams if k not in valid]
        if unknown:
            raise TypeError(
                f"loss stage '{name}' has no hyper-parameter(s) {unknown}; valid: {valid}"
            )
    return cls(tasks, **hparams)
