"""Registry of towers: one file per tower registers itself with :func:`register_model`.

Every module of this package is imported on first use, so adding a tower is adding a file.
Hyper-parameters come from config (``model.<name>`` keys, YAML values) and are checked against the
tower's typed ``Params`` dataclass: unknown names, wrong types and bad values raise
:class:`~recsys_hmtl.errors.InputError` naming the key and the valid ones.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Sequence

import torch

from ..data.spec import FeatureSpec
from ..errors import InputError, did_you_mean
from ..registry import Registry
from .base import ModelParams, MultiTaskModel

MODELS: Registry[type[MultiTaskModel]] = Registry(
    "model", __package__, {"base", "registry", "layers", "embeddings"}
)
register_model = MODELS.register


def available_models() -> list[str]:
    """Names accepted by :func:`build_model`, sorted."""
    return MODELS.names()


def model_class(name: str) -> type[MultiTaskModel]:
    cls = MODELS.get(name)
    if cls is None:
        raise InputError(
            f"unknown model '{name}'", key="model.name", hint=did_you_mean(name, MODELS.names())
        )
    return cls


def build_model(
    name: str,
    features: FeatureSpec,
    tasks: Sequence[str],
    *,
    embedding_device: torch.device | str | None = None,
    **hparams: Any,
) -> MultiTaskModel:
    """Build tower ``name`` for ``tasks`` (priority order) on ``features``.

    ``embedding_device="meta"`` builds the embedding tables without memory (for
    ``DistributedModelParallel``); dense parts are always built on the CPU.
    """
    cls = model_class(name)
    params = make_params(cls.Params, hparams, model=name)
    return cls(features, tasks, params, embedding_device=embedding_device)


def make_params(params_cls: type[ModelParams], hparams: dict[str, Any], model: str) -> ModelParams:
    """Check ``hparams`` against the dataclass fields and types; lists become tuples."""
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    for key in hparams:
        if key not in fields:
            near = did_you_mean(key, fields)
            hint = near if near.startswith("did") else ""
            raise InputError(
                f"model '{model}' has no hyper-parameter '{key}'",
                key=f"model.{key}",
                hint=f"{hint} valid: {', '.join(sorted(fields))}".strip(),
            )
    hints = typing.get_type_hints(params_cls)
    values = {key: _coerce(hints[key], value, key) for key, value in hparams.items()}
    return params_cls(**values)


def _coerce(kind: Any, value: Any, key: str) -> Any:
    where = f"model.{key}"
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"expected a positive integer, got {value!r}", key=where)
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InputError(f"expected a non-negative number, got {value!r}", key=where)
        return float(value)
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
        ):
            raise InputError(
                f"expected a list of positive integers (layer sizes), got {value!r}", key=where
            )
        return tuple(value)
    return value
