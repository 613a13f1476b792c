"""The ``data:`` section of a toy run config (``adapter: toy``) and the ``model:`` keys' checks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ...errors import InputError, did_you_mean
from .problem import PUBLISHED_SIGN, PUBLISHED_STARTS, SEED_SIGN

TASKS = ("f1", "f2")  # L1, L2 of App. A.3, in this priority order
MODEL = "toy"
SIGNS = {"published": PUBLISHED_SIGN, "seed": SEED_SIGN}
DEFAULT_START = PUBLISHED_STARTS[0]  # (-8.5, 7.5): the first published start point
MODEL_KEYS = ("start",)


@dataclass
class ToyDataConfig:
    """``dataset``: toy (the only one); ``steps_per_epoch``: training steps per "epoch" (the batches
    are empty markers; epoch-granular stages such as DWA and HB-AHO update once per epoch);
    ``f2_sign``: ``published`` (Nash-MTL/FAMO toy code, ``+ tanh(−x2)``) or ``seed`` (seed 003
    A.3 as printed, ``− tanh(−x2)``)."""

    dataset: str = "toy"
    steps_per_epoch: int = 100
    f2_sign: str = "published"


def resolve_data(cfg: ToyDataConfig) -> ToyDataConfig:
    """``cfg`` checked; every mistake names its ``data.<key>``."""
    if cfg.dataset != "toy":
        raise InputError(f"the toy adapter has one dataset, 'toy'; got '{cfg.dataset}'", key="data.dataset")
    if cfg.steps_per_epoch < 1:
        raise InputError(f"must be at least 1, got {cfg.steps_per_epoch}", key="data.steps_per_epoch")
    if cfg.f2_sign not in SIGNS:
        raise InputError(f"unknown sign '{cfg.f2_sign}': published (+ tanh(-x2), the toy code) or seed "
                         "(- tanh(-x2), seed 003 A.3 as printed)", key="data.f2_sign",
                         hint=did_you_mean(cfg.f2_sign, SIGNS))
    return cfg


def resolve_tasks(given: list[str]) -> tuple[str, ...]:
    """The tasks: ``tasks:`` absent (or empty) or exactly ``[f1, f2]``."""
    if given and tuple(given) != TASKS:
        raise InputError(f"the toy's tasks are fixed, {list(TASKS)} in this order; got {given}", key="tasks",
                         hint="leave tasks out (or list exactly [f1, f2])")
    return TASKS


def model_hparams(name: str, hparams: Mapping[str, Any]) -> dict:
    """``{"start": (x1, x2)}``: ``model.name`` must be ``toy``; ``model.start`` two finite numbers
    (default the first published start point); any other key is an error naming ``model.<key>``."""
    if name != MODEL:
        raise InputError(f"the toy's model is '{MODEL}', got '{name}'", key="model.name",
                         hint="set model.name: toy")
    for key in hparams:
        if key not in MODEL_KEYS:
            raise InputError(f"unknown key of model '{MODEL}' (its only key is start: [x1, x2])",
                             key=f"model.{key}", hint=did_you_mean(key, MODEL_KEYS))
    start = hparams.get("start", list(DEFAULT_START))
    if (not isinstance(start, (list, tuple)) or len(start) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in start)):
        raise InputError(f"expected the start point [x1, x2] (two finite numbers), got {start!r}", key="model.start")
    return {"start": (float(start[0]), float(start[1]))}
