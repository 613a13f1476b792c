"""The vision adapter (seed 003's image benchmarks): MultiMNIST with LeNet, CelebA with its 9-layer CNN.

``data:`` is :class:`~.config.VisionDataConfig`. The tasks follow from the data: ``left``, ``right``
(MultiMNIST) or the CelebA attributes (``data.attributes``, default all 40 in file order); a
``tasks:`` list may only reorder them (the priority order the stages see). ``model:``::

    model:
      name: lenet              # multimnist: lenet | celeba: celeba_cnn
      representation: 50       # lenet: width of the shared representation
      head_hidden: 50          # lenet: hidden width of each head
      dropout: 0.5             # lenet: Dropout2d in the trunk and Dropout in the heads
      width: 64                # celeba_cnn: base channels w (7 conv units w..8w, representation 8w)
      logits: 1                # celeba_cnn: 1 = sigmoid + BCE (FAMO/FairGrad) | 2 = softmax CE
      single_task: null        # a task name: train that task alone (the STL baseline of Δm%)

Single-task mode: the model is the trunk and that task's head, trained on its loss alone with the
same budget as the multi-task run; its report holds that task only (heads never trained would only
add chance-level figures), so ``avg_accuracy`` is that task's accuracy. Δm% pairs such reports
with a multi-task run's (:mod:`.delta_m`). The report: per task ``accuracy`` (CelebA also ``f1``,
``precision``, ``recall``, ``positives``), ``avg_accuracy`` (primary; changes in points) and, for
CelebA, ``avg_f1``. Single process only (``max_world_size = 1``).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch

from ...errors import InputError, did_you_mean
from ...training.adapter import ADAPTERS, AdapterPlan, TaskAdapter, Trainable, given_task_names, holdout_rows
from .config import VisionDataConfig, resolve_data
from .data import ImageStream, VisionData, input_files, prepare
from .metrics import task_report
from .model import HPARAMS, MODELS, VisionModel, build_model
from .multimnist import TASKS as MULTIMNIST_TASKS



@ADAPTERS.register("vision")
class VisionAdapter(TaskAdapter):
    data_config = VisionDataConfig
    task_config = None
    supports_bilevel = True  # held-out slices for auto_lambda
    primary_metric = "avg_accuracy"
    max_world_size = 1

    def resolve(self, cfg) -> AdapterPlan:
        data = resolve_data(cfg.data)
        known = MULTIMNIST_TASKS if data.dataset == "multimnist" else tuple(data.attributes)
        given = given_task_names(cfg.tasks)
        if given and sorted(given) != sorted(known):
            hint = ("leave tasks out, or list every task once in priority order" if data.dataset == "multimnist"
                    else "CelebA's tasks are data.attributes (in priority order); leave tasks out")
            raise InputError(f"tasks may only reorder the data set's tasks {list(known)[:6]}"
                             f"{' ...' if len(known) > 6 else ''}; got {given}", key="tasks", hint=hint)
        tasks = tuple(given) or known
        expected = MODELS[data.dataset]
        if cfg.model.name != expected:
            raise InputError(f"the {data.dataset} model is '{expected}', got '{cfg.model.name}'", key="model.name",
                             hint=did_you_mean(cfg.model.name, MODELS.values()))
        hparams = _model_hparams(expected, cfg.model.hparams)
        single = hparams["single_task"]
        if single is not None:
            if single not in tasks:
                raise InputError(f"'{single}' is not a task of this run {list(tasks)}", key="model.single_task",
                                 hint=did_you_mean(str(single), tasks))
            tasks = (single,)
        return AdapterPlan(data=data, tasks=tasks, task_configs=tasks, model_name=expected,
                           model_hparams=MappingProxyType(hparams))

    def input_files(self, plan: AdapterPlan) -> list[Path]:
        return input_files(plan.data)

    def prepare(self, plan: AdapterPlan) -> VisionData:
        return prepare(plan.data)

    def _model(self, plan: AdapterPlan, prepared: VisionData) -> VisionModel:
        columns = {t: prepared.tasks.index(t) for t in plan.tasks}
        return build_model(plan.data.dataset, plan.tasks, columns, prepared.classes, plan.data.image_size,
                           plan.model_hparams)

    def check_model(self, plan: AdapterPlan, prepared: VisionData) -> None:
        with torch.device("meta"):
            self._model(plan, prepared)

    def build(self, plan, prepared, *, per_rank_batch, device, process_group, cfg) -> Trainable:
        return Trainable(self._model(plan, prepared).to(device))

    def train_stream(self, plan, prepared: VisionData, batch_size, *, seed, rank, world_size) -> ImageStream:
        return ImageStream(prepared, "train", batch_size, shuffle=True, seed=seed)

    def holdout_streams(self, plan, prepared: VisionData, batch_size, *, fraction, seed, rank, world_size):
        """The training images less a held-out slice of ``fraction`` of them (one fixed draw) and the
        slice: the meta batches of ``auto_lambda`` (bilevel mode)."""
        kept, held = holdout_rows(len(prepared.splits["train"]), fraction)
        return (ImageStream(prepared, "train", batch_size, shuffle=True, seed=seed, rows=kept),
                ImageStream(prepared, "train", batch_size, shuffle=True, seed=seed + 1, rows=held))

    def check_bilevel(self, plan) -> None:
        raise InputError("bilevel mode's stationarity constraints need independent linear task heads (the "
                         "recommendation towers'); the vision adapter runs auto_lambda in bilevel mode",
                         key="stage.name")

    @torch.no_grad()
    def evaluate(self, plan, prepared: VisionData, state, split, batch_size) -> dict:
        """Accuracy (and CelebA's F1) per task over every image of ``split``."""
        model = self._model(plan, prepared)
        model.load_state_dict(state)
        model.eval()
        predicted: dict[str, list[np.ndarray]] = {t: [] for t in model.tasks}
        target: dict[str, list[np.ndarray]] = {t: [] for t in model.tasks}
        for batch in ImageStream(prepared, split, batch_size, shuffle=False).batches():
            for task, pred in model.predict(batch.images).items():
                predicted[task].append(pred.numpy())
                target[task].append(batch.labels[:, model.columns[task]].numpy())
        scores = task_report({t: np.concatenate(v) for t, v in predicted.items()},
                             {t: np.concatenate(v) for t, v in target.items()}, binary=prepared.classes == 2)
        return {"split": split, "rows": len(prepared.splits[split]), **scores,
                "primary_metric": "avg_accuracy", "task_metric": "accuracy", "change": "points",
                "single_task": plan.model_hparams["single_task"], "data": prepared.report.get(split, {})}

    def data_summary(self, prepared: VisionData) -> dict:
        return {"dataset": prepared.dataset, "splits": prepared.report, "tasks": list(prepared.tasks)}

    def describe(self, plan, prepared: VisionData) -> str:
        tasks = plan.tasks
        lines = [f"dataset: {prepared.dataset}, {len(tasks)} task(s): {', '.join(tasks[:6])}"
                 + (" ..." if len(tasks) > 6 else "")]
        for split, r in prepared.report.items():
            extra = f" from {r['source_images']:,} source images" if "source_images" in r else ""
            lines.append(f"  {split}: {r['images']:,} images{extra} ({r['source']})")
        return "\n".join(lines)


def _model_hparams(model: str, hparams: dict) -> dict:
    """The model's keys with their defaults (and ``single_task``); a wrong key or type names ``model.<key>``."""
    defaults = {**HPARAMS[model], "single_task": None}
    out = dict(defaults)
    for key, value in hparams.items():
        if key not in defaults:
            raise InputError(f"unknown key of model '{model}'", key=f"model.{key}", hint=did_you_mean(key, defaults))
        if key == "single_task":
            if value is not None and not isinstance(value, str):
                raise InputError(f"expected a task name, got {value!r}", key="model.single_task")
        elif isinstance(defaults[key], float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"expected a number, got {value!r}", key=f"model.{key}")
            value = float(value)
        elif isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"expected an integer, got {value!r}", key=f"model.{key}")
        out[key] = value
    for key in ("representation", "head_hidden", "width"):
        if key in out and out[key] < 1:
            raise InputError(f"must be at least 1, got {out[key]}", key=f"model.{key}")
    if "dropout" in out and not 0 <= out["dropout"] < 1:
        raise InputError(f"must be in [0, 1), got {out['dropout']}", key="model.dropout")
    if "logits" in out and out["logits"] not in (1, 2):
        raise InputError(f"must be 1 (sigmoid + BCE) or 2 (softmax CE), got {out['logits']}", key="model.logits")
    return out
