"""The task-adapter contract (SPEC §9): what a domain gives the training core.

The core (the loop, checkpoints, stopping, the non-finite guard, ``/metrics``, Pushgateway,
``evaluate``, ``compare``, ``reproduce``) trains any :class:`TaskAdapter`. An adapter supplies:

* its config sections: :attr:`TaskAdapter.data_config` (the ``data:`` dataclass; it has ``dataset``
  and ``root``) and :attr:`TaskAdapter.task_config` (one entry of ``tasks:``, or None when the
  adapter's tasks are fixed), checked without reading data by :meth:`TaskAdapter.resolve`;
* its data: :meth:`~TaskAdapter.input_files` (fingerprinted: a resumed or evaluated run refuses
  changed inputs), :meth:`~TaskAdapter.prepare` (rank 0 first: it may write a cache) and
  :meth:`~TaskAdapter.train_stream` (the batches of one rank; ``len``, ``set_epoch(e)``,
  ``batches(start)``; every batch has ``batch_size`` and ``to(device)``);
* its model, as a :class:`Trainable`: ``forward(batch)`` → :class:`~.outputs.TaskOutputs`
  (per-task losses in priority order and the shared representation the heads read), its parameter
  groups for the dense optimizer, its state for checkpoints;
* its metrics: :meth:`~TaskAdapter.evaluate` → a report ``{"split", "rows", "tasks": {task: {...}},
  "primary_metric": NAME, NAME: value, "task_metric": KEY, "change": "relative" | "points"}``:
  ``compare`` and ``reproduce`` rank by ``NAME`` (``avg_auc`` for recommendation, ``triple_f1`` for
  ERE), show ``tasks[t][KEY]`` per task, and state changes as relative % (seed 001 §4.2) or as
  points (seed 000 Table 2).

Adapters live in ``recsys_hmtl.adapters.<name>`` and register with ``@ADAPTERS.register(name)``;
the core finds them by name (``adapter:`` in a config, default ``recsys``) and never imports one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Mapping, Protocol

import numpy as np
import torch
from torch import nn

from ..errors import InputError, did_you_mean
from ..registry import Registry
from .outputs import TaskHeads, TaskOutputs

if TYPE_CHECKING:
    from ..config import RunConfig

ADAPTERS: Registry = Registry("adapter", "recsys_hmtl.adapters", infrastructure=set())
DEFAULT_ADAPTER = "recsys"


def given_task_names(entries: list) -> list[str]:
    """The names of a config's ``tasks:`` entries (a name, or a mapping with ``name``)."""
    return [str(t.get("name") if isinstance(t, dict) else t) for t in entries]


def get_adapter(name: str) -> "TaskAdapter":
    """The adapter registered as ``name`` (a fresh instance); unknown → InputError on ``adapter``."""
    cls = ADAPTERS.get(name)
    if cls is None:
        raise InputError(f"unknown adapter '{name}'", key="adapter", hint=did_you_mean(name, ADAPTERS.names()))
    return cls()


@dataclass(frozen=True)
class AdapterPlan:
    """The adapter's part of a resolved run: its resolved ``data:`` section, the task names in
    priority order, the task entries as resolved (adapter-specific), the model and its checked
    hyper-parameters."""

    data: Any
    tasks: tuple[str, ...]
    task_configs: tuple[Any, ...]
    model_name: str = ""
    model_hparams: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


HOLDOUT_SEED = 4004  # bilevel mode's held-out slice of a training split: one fixed draw for every run seed


def holdout_rows(rows: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(the rows kept for training, the held-out ``fraction`` of them, at least one), each sorted:
    the slice :meth:`TaskAdapter.holdout_streams` reads, the same for every run seed."""
    held = max(1, int(round(fraction * rows)))
    order = np.random.default_rng(HOLDOUT_SEED).permutation(rows)
    return np.sort(order[held:]), np.sort(order[:held])


class BatchStream(Protocol):
    """One rank's training batches; ``batches(start)`` begins at batch ``start`` of the epoch."""

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...

    def batches(self, start: int = 0) -> Iterator[Any]: ...


class Trainable(ABC):
    """A built model as the core trains and checkpoints it. ``module`` holds every trained tensor
    (its ``state_dict`` is the checkpoint's ``model``; ShardedTensors allowed)."""

    module: nn.Module

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def forward(self, batch: Any) -> TaskOutputs:
        """Per-task losses and the shared representation of one batch (default: the module's own
        forward returns them)."""
        return self.module(batch)

    def parameter_groups(self, lr: float) -> list[dict]:
        """Dense optimizer groups (default: every trainable parameter at ``lr``)."""
        return [{"params": [p for p in self.module.parameters() if p.requires_grad], "lr": lr}]

    def optimizer_state(self) -> dict:
        """State of optimizers the model owns (TorchRec's fused one); {} when none."""
        return {}

    def load_optimizer_state(self, state: dict) -> None:
        """Restore :meth:`optimizer_state`."""

    def summary(self) -> dict:
        """Extra facts for ``run_summary.json`` (e.g. the sharding plan)."""
        return {}

    def dense_parameters(self) -> list[torch.Tensor]:
        """The parameters of :meth:`parameter_groups` (what an inner loop may step; never rows a
        fused optimizer owns)."""
        return [p for g in self.parameter_groups(1.0) for p in g["params"]]

    def shared_parameters(self) -> list[torch.Tensor] | None:
        """The dense parameters every task depends on (``stage.grad_mode: params`` combines the
        tasks' gradients there): the module's own ``shared_parameters()`` where it has one; None:
        the model does not name them."""
        named = getattr(self.module, "shared_parameters", None)
        return [p for p in named() if p.requires_grad] if callable(named) else None

    def task_heads(self) -> TaskHeads | None:
        """The independent linear task heads (bilevel mode's lower level); None: the model has none."""
        return None


class TaskAdapter(ABC):
    """One domain. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str] = ""
    data_config: ClassVar[type]
    task_config: ClassVar[type | None] = None
    primary_metric: ClassVar[str]
    max_world_size: ClassVar[int | None] = None  # None: any number of processes
    supports_bilevel: ClassVar[bool] = False    # seed 004's bilevel mode (holdout_streams, task_heads)

    @abstractmethod
    def resolve(self, cfg: "RunConfig") -> AdapterPlan:
        """Every check of ``data``, ``tasks`` and ``model`` that needs no data (InputError naming the key)."""

    @abstractmethod
    def input_files(self, plan: AdapterPlan) -> list[Path]:
        """The files the run reads (InputError naming a missing one)."""

    def fingerprint(self, plan: AdapterPlan) -> list[dict]:
        """``{path, size, mtime_ns, sha256}`` of every input file: a resumed or evaluated run
        refuses inputs whose content changed."""
        from .checkpoint import file_digest

        out = []
        for path in self.input_files(plan):
            stat = Path(path).stat()
            out.append({"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                        "sha256": file_digest(Path(path))})
        return out

    @abstractmethod
    def prepare(self, plan: AdapterPlan) -> Any:
        """The data of every split (rank 0 runs it first; the others after, e.g. from its cache)."""

    @abstractmethod
    def build(self, plan: AdapterPlan, prepared: Any, *, per_rank_batch: int, device: torch.device,
              process_group: Any, cfg: "RunConfig") -> Trainable:
        """The model to train, on ``device``; with several processes, wrapped for them."""

    @abstractmethod
    def train_stream(self, plan: AdapterPlan, prepared: Any, batch_size: int, *, seed: int, rank: int,
                     world_size: int) -> BatchStream:
        """This rank's training batches (shuffled per epoch from ``seed``)."""

    def holdout_streams(self, plan: AdapterPlan, prepared: Any, batch_size: int, *, fraction: float, seed: int,
                        rank: int, world_size: int) -> tuple[BatchStream, BatchStream]:
        """Bilevel mode: (the training split less a held-out slice of ``fraction`` of its rows, the
        slice), both shuffled per epoch from ``seed``; the slice is the same for every seed."""
        raise InputError(f"the {self.name} adapter has no bilevel mode", key="bilevel")

    def reference_front(self, plan: AdapterPlan) -> list[tuple[float, ...]] | None:
        """A dense reference Pareto front in the tasks' metric space (a toy problem's, computed
        numerically), for ``pareto``; None when unknown (real data)."""
        return None

    def check_bilevel(self, plan: AdapterPlan) -> None:
        """Bilevel mode's demands on the model (InputError naming the key); called when it is on."""

    @abstractmethod
    def evaluate(self, plan: AdapterPlan, prepared: Any, state: dict[str, torch.Tensor], split: str,
                 batch_size: int) -> dict:
        """The report of ``split`` for the full (unsharded) model ``state`` (see the module doc)."""

    def check_model(self, plan: AdapterPlan, prepared: Any) -> None:
        """Build the model cheaply (meta device) so a bad ``model.*`` key fails before training."""

    def describe(self, plan: AdapterPlan, prepared: Any) -> str:
        """``validate``'s printable summary of the prepared data."""
        return f"adapter {self.name}: data prepared"

    def data_summary(self, prepared: Any) -> dict:
        """What ``run_summary.json`` says about the data (rows per split, cache)."""
        return {}
