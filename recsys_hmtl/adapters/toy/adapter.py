"""The toy adapter (seed 003 App. A.3): the two-task toy problem trained by the training job.

Trains the point x ∈ R² on (L1, L2) of :mod:`.problem` with any loss stage, through the same
``train`` / ``evaluate`` / ``compare`` / ``reproduce`` path as the real adapters::

    adapter: toy
    data:
      steps_per_epoch: 100     # marker batches per epoch (epoch-granular stages update once per epoch)
      f2_sign: published       # published (+ tanh(-x2), Nash-MTL/FAMO code) | seed (- tanh(-x2), A.3 as printed)
    tasks: []                  # fixed: f1, f2 (absent, empty, or exactly [f1, f2])
    model:
      name: toy
      start: [-8.5, 7.5]       # x at step 0 (default: the first published start point)

Nothing is read (no input files; the fingerprint is empty). Each "batch" is an empty marker of
``batch_size`` 1, so a run's samples are its steps. ``shared`` is a non-leaf view of x (:mod:`.model`)
so gradient stages work. Single process only (``max_world_size = 1``).

The report of any split is the same (there is no data): ``tasks: {f1: {"loss": L1}, f2: {"loss": L2}}``,
``task_metric`` ``loss``, ``primary_metric`` ``avg_loss`` = (L1 + L2) / 2, ``change`` ``relative``,
``rows`` 1 (one point), ``x1``, ``x2``, and ``front_distance``: the Euclidean distance in the loss
plane from (L1, L2) to the numerical Pareto front (:func:`~.problem.numerical_front`, a 1001² grid of
x, computed once per ``f2_sign``). It also sets the optional report key ``direction``: ``"min"``
(lower is better, for ``task_metric`` and ``primary_metric`` alike); a report without it means
``"max"``, as AUC, F1 and accuracy are.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import torch

from ...training.adapter import ADAPTERS, AdapterPlan, TaskAdapter, Trainable, given_task_names
from .config import MODEL, SIGNS, TASKS, ToyDataConfig, model_hparams, resolve_data, resolve_tasks
from .data import ToyData, ToyStream
from .model import ToyModel
from .problem import FRONT_GRID, distance_to_front, numerical_front


@ADAPTERS.register("toy")
class ToyAdapter(TaskAdapter):
    data_config = ToyDataConfig
    task_config = None
    primary_metric = "avg_loss"
    max_world_size = 1

    def resolve(self, cfg) -> AdapterPlan:
        data = resolve_data(cfg.data)
        tasks = resolve_tasks(given_task_names(cfg.tasks))
        hparams = model_hparams(cfg.model.name, cfg.model.hparams)
        return AdapterPlan(data=data, tasks=tasks, task_configs=tasks, model_name=MODEL,
                           model_hparams=MappingProxyType(hparams))

    def input_files(self, plan: AdapterPlan) -> list[Path]:
        return []

    def prepare(self, plan: AdapterPlan) -> ToyData:
        return ToyData(plan.data)

    def _model(self, plan: AdapterPlan) -> ToyModel:
        return ToyModel(plan.model_hparams["start"], SIGNS[plan.data.f2_sign])

    def check_model(self, plan: AdapterPlan, prepared: ToyData) -> None:
        self._model(plan)

    def build(self, plan, prepared, *, per_rank_batch, device, process_group, cfg) -> Trainable:
        return Trainable(self._model(plan).to(device))

    def train_stream(self, plan, prepared: ToyData, batch_size, *, seed, rank, world_size) -> ToyStream:
        return ToyStream(plan.data.steps_per_epoch)

    @torch.no_grad()
    def evaluate(self, plan, prepared: ToyData, state, split, batch_size) -> dict:
        """(L1, L2) at the checkpoint's x, their mean, and the distance to the Pareto front."""
        model = self._model(plan)
        model.load_state_dict(state)
        losses = model.losses()
        l1, l2 = (float(v) for v in losses)
        front = numerical_front(FRONT_GRID, SIGNS[plan.data.f2_sign])
        x1, x2 = (float(v) for v in model.x)
        return {"split": split, "rows": 1, "tasks": {"f1": {"loss": l1}, "f2": {"loss": l2}},
                "primary_metric": "avg_loss", "avg_loss": (l1 + l2) / 2, "task_metric": "loss",
                "direction": "min", "change": "relative", "x1": x1, "x2": x2,
                "front_distance": float(distance_to_front(losses[None], front)[0]),
                "f2_sign": plan.data.f2_sign}

    def reference_front(self, plan: AdapterPlan) -> list[tuple[float, ...]]:
        """The numerical Pareto front in the (L1, L2) plane (``pareto`` measures its points to it)."""
        front = numerical_front(FRONT_GRID, SIGNS[plan.data.f2_sign])
        return [tuple(float(v) for v in row) for row in front]

    def data_summary(self, prepared: ToyData) -> dict:
        cfg = prepared.config
        return {"dataset": cfg.dataset, "f2_sign": cfg.f2_sign, "steps_per_epoch": cfg.steps_per_epoch}

    def describe(self, plan, prepared: ToyData) -> str:
        x1, x2 = plan.model_hparams["start"]
        return (f"toy problem (seed 003 A.3): tasks {', '.join(TASKS)}; f2 sign {plan.data.f2_sign}; "
                f"start x = ({x1:g}, {x2:g}); {plan.data.steps_per_epoch} steps per epoch; no input files")
