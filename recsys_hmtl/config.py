"""Run configuration: typed dataclasses loaded from YAML (safe loader) with ``--set k=v`` overrides.

Unknown keys, wrong types and bad values raise :class:`~recsys_hmtl.errors.InputError` naming the
file and the key (with the closest valid key), which the CLI reports with exit code 2.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, did_you_mean


@dataclass
class ModelConfig:
    name: str = "mmoe"
    hparams: dict[str, Any] = field(default_factory=dict)  # SPEC §4 names (embedding_dim, ...)


@dataclass
class StageConfig:
    name: str = "sum"
    grad_mode: str | None = None  # gradient stages: rep (None: the shared representation) | params
    hparams: dict[str, Any] = field(default_factory=dict)  # SPEC §5 names (alpha, eps0, ...)


@dataclass
class TrainerConfig:
    max_epochs: int = 1
    max_steps: int = -1  # -1: no limit
    batch_size: int = 4096
    eval_batch_size: int = 16384
    lr: float = 1e-3
    sparse_lr: float = 0.05
    sparse_optimizer: str = "adagrad"  # row-wise adagrad | adam (fused, applied in backward)
    ckpt_every: int = 200
    log_every: int = 20
    max_nonfinite: int = 5  # consecutive non-finite steps before the run stops
    acting_window: int = 200  # steps over which stage_acting judges the stage's weights
    device: str = "cpu"  # cpu | cuda (GPU stack: see the README)
    plan: dict[str, str] = field(default_factory=dict)  # {table: table_wise | column_wise | ...}


@dataclass
class MetricsConfig:
    port: int = 0  # 0 = no /metrics endpoint
    addr: str = "127.0.0.1"
    pushgateway: str | None = None
    group: str = "default"  # Pushgateway grouping key part: runs of one config with another group stay apart
    window: int = 100  # training steps the live per-task log loss / NE / calibration cover


@dataclass
class BilevelConfig:
    """Seed 004's multi-task bilevel mode (``bilevel:`` in a config; absent = off). The upper level
    reads a held-out slice of the training split (``holdout``, never the validation split), the
    lower level (each task's linear head) the rest; ``kkt_every`` (steps, 0 = ``trainer.log_every``)
    is how often the Pareto-stationarity measure is computed (K + 1 extra gradients);
    ``penalty_grad``: ``full`` (the penalty ρΣ‖h_i‖² moves the trunk x and the heads y) or ``heads``
    (it moves the heads only: the trunk learns from the upper level alone)."""

    enabled: bool = True
    holdout: float = 0.1
    kkt_every: int = 0
    penalty_grad: str = "full"


@dataclass
class RunConfig:
    """``adapter`` names the domain (SPEC §9; default ``recsys``); the adapter's own dataclasses type
    the ``data:`` section and the ``tasks:`` entries (:func:`from_dict` builds them)."""

    data: Any = None
    tasks: list[Any] = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    bilevel: BilevelConfig | None = None  # None: ordinary training
    seed: int = 2024
    adapter: str = "recsys"

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Stable hash of the whole configuration (checkpoints refuse a different one)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# Sections whose free-form keys are hyper-parameters: `model: {name: mmoe, expert_dims: [..]}`.
_FLAT_HPARAMS = {ModelConfig, StageConfig}


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read ``path`` (YAML, safe loader), apply ``--set key=value`` overrides, build a RunConfig."""
    source = str(path) if path is not None else "<defaults>"
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if p.is_dir():
            raise InputError("is a folder, not a config file", file=source, key="--config",
                             hint="give the YAML file, e.g. configs/kuairand_mmoe.yaml")
        if not p.is_file():
            raise InputError("config file not found", file=source, key="--config")
        data = p.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"not a text (UTF-8) file: byte {exc.start + 1} cannot be decoded; "
                             "a config is a YAML text file", file=source, key="--config") from None
        if "\x00" in text:
            raise InputError("not a text file (it holds NUL bytes); a config is a YAML text file",
                             file=source, key="--config")
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"not valid YAML ({exc})", file=source) from None
        if not isinstance(raw, dict):
            raise InputError("the top level must be a mapping of sections", file=source)
    for item in overrides:
        apply_override(raw, item)
    return from_dict(RunConfig, raw, source)


def _adapter_sections(data: dict, source: str) -> tuple[type, type | None]:
    """The dataclasses of ``data:`` and of the ``tasks:`` entries for the config's ``adapter``."""
    from .training.adapter import DEFAULT_ADAPTER, get_adapter  # the core's registry, found lazily

    name = data.get("adapter", DEFAULT_ADAPTER)
    if not isinstance(name, str):
        raise InputError(f"expected an adapter name, got {name!r}", file=source, key="adapter")
    try:
        adapter = get_adapter(name)
    except InputError as exc:
        raise InputError(str(exc), file=source) from None
    return adapter.data_config, adapter.task_config


def apply_override(raw: dict, item: str) -> None:
    """``a.b.c=value``; the value is parsed as YAML (``[128,64]``, ``true``, ``0.5``)."""
    if "=" not in item:
        raise InputError(f"--set expects key=value, got '{item}'")
    key, _, text = item.partition("=")
    try:
        value = yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError as exc:
        raise InputError(f"--set {key}: value is not valid YAML ({exc})") from None
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def from_dict(cls: type, data: Any, source: str, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data`` with type checks; errors name ``source`` and the key."""
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping, got {type(data).__name__}", file=source, key=prefix or None)
    hints = typing.get_type_hints(cls)
    if cls is RunConfig:
        data_cls, task_cls = _adapter_sections(data, source)
        hints.update(data=data_cls, tasks=list[task_cls] if task_cls else list[Any])
        data = {"data": {}, **data}  # the adapter's defaults when the section is left out
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in fields:
            if cls in _FLAT_HPARAMS:
                extra[key] = value
                continue
            raise InputError(f"unknown key; {did_you_mean(key, fields)}", file=source, key=where)
        kwargs[key] = _convert(hints[key], value, source, where)
    if extra:
        kwargs["hparams"] = {**kwargs.get("hparams", {}), **extra}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(str(exc), file=source, key=prefix.rstrip(".") or None) from None


def _convert(tp: Any, value: Any, source: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, source, where)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, str) and getattr(tp, "name_shorthand", False):
            value = {"name": value}  # `tasks: [is_click, ...]`: a task given by its name
        return from_dict(tp, value, source, where + ".")
    if origin is list:
        if not isinstance(value, list):
            raise InputError(f"expected a list, got {value!r}", file=source, key=where)
        return [_convert(args[0], v, source, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is Any:
        if origin is dict and not isinstance(value, dict):
            raise InputError(f"expected a mapping, got {value!r}", file=source, key=where)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"expected true or false, got {value!r}", file=source, key=where)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"expected an integer, got {value!r}", file=source, key=where)
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"expected a number, got {value!r}", file=source, key=where)
        return float(value)
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # dates such as 20220506 written without quotes
        if isinstance(value, datetime.date):
            return value.isoformat()  # 2022-05-06 without quotes: YAML reads a date
        if not isinstance(value, str):
            raise InputError(f"expected a string, got {value!r}", file=source, key=where)
        return value
    return value
