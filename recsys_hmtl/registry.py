"""A registry of named plugins (towers, loss stages): one file per plugin registers its class.

Pure standard library, so every layer may use it (``priority/`` keeps importing nothing but torch
besides it). The package's modules are imported on first lookup, so adding a plugin is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, TypeVar

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """``kind``: what the plugins are ("model", "loss stage"); ``package``: where their files live;
    ``infrastructure``: that package's modules that are not plugins."""

    def __init__(self, kind: str, package: str, infrastructure: set[str]) -> None:
        self.kind, self.package, self.infrastructure = kind, package, infrastructure
        self._classes: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(cls: T) -> T:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            cls.name = name
            self._classes[name] = cls
            return cls

        return deco

    def _discover(self) -> None:
        for info in pkgutil.iter_modules(importlib.import_module(self.package).__path__):
            if info.name not in self.infrastructure and not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._discover()
        return sorted(self._classes)

    def get(self, name: str) -> T | None:
        """The class registered as ``name``, or None (the caller words the error)."""
        self._discover()
        return self._classes.get(name)
