"""The text adapter (seed 002, GetMTL's benchmark): multi-task sentiment classification, one
binary task per review domain, task-specific inputs.

``data:`` is :class:`~.config.TextDataConfig` (the domains are the tasks, in priority order; a
``tasks:`` list may only restate them). ``model:`` is seed 002 §5.2's model (:mod:`.model`)::

    model:
      name: textcnn
      embedding_dim: 128      # word embeddings, trained from scratch
      filters: 100            # feature maps per kernel size
      kernel_sizes: [3, 5, 7]
      dropout: 0.5            # on the pooled features
      shared: filters         # what gradient stages differentiate: filters | encoder | features
      sharing: hard           # hard (one shared TextCNN) | none (one per task: STL in one run)
      single_task: null       # a domain: train that domain alone (its data and head only)
      embeddings: scratch     # scratch (word vocabulary of the training split) | minilm
      freeze_embeddings: false

``embeddings: minilm`` (:mod:`.minilm`, needs the ``ere`` extra): reviews are cut into
all-MiniLM-L6-v2's WordPiece pieces and the table starts as MiniLM's token embeddings (width 384:
``embedding_dim`` may be left out or set to 384); ``freeze_embeddings: true`` keeps it fixed
(minilm only). ``data.min_count``/``max_vocab`` then do not apply.

Batches (:mod:`.sampler`): ``data.per_task_batch`` reviews of every task per step, and
``trainer.batch_size`` = per_task_batch × tasks (``per_task_batch: 0`` derives it from
``trainer.batch_size``, which tasks must divide); an epoch covers the largest task's training set
once. Metrics: accuracy per task on its own reviews and ``avg_accuracy``, the unweighted mean over
the tasks (seed 002 Tables 2-3), changes in points. Single process (``max_world_size = 1``).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import torch

from ...errors import InputError, did_you_mean
from ...training.adapter import ADAPTERS, AdapterPlan, TaskAdapter, Trainable, given_task_names
from .config import TextDataConfig
from .data import TextData, input_paths, prepare
from .metrics import AccuracyCounts
from .minilm import EMBEDDINGS, MINILM_DIM, check_installed
from .model import SHARED, SHARING, TextMTLModel
from .sampler import PerTaskStream, eval_batches

MODELS = ("textcnn",)
MODEL_KEYS = {"embedding_dim": int, "filters": int, "kernel_sizes": list, "dropout": float, "shared": str,
              "sharing": str, "single_task": str, "embeddings": str, "freeze_embeddings": bool}
DEFAULTS = {"embedding_dim": 128, "filters": 100, "kernel_sizes": [3, 5, 7], "dropout": 0.5, "shared": "filters",
            "sharing": "hard", "single_task": None, "embeddings": "scratch", "freeze_embeddings": False}
MAX_EVAL_BATCH = 512  # reviews per scoring batch (activations: batch × filters × 256 per kernel)


class TextTrainable(Trainable):
    """The text model with its parameter counts (and ``extra`` facts) in the run summary."""

    def __init__(self, module: TextMTLModel, extra: dict | None = None) -> None:
        super().__init__(module)
        self.extra = extra or {}

    def summary(self) -> dict:
        m = self.module
        return {"text_model": {"parameters": sum(p.numel() for p in m.parameters()), "sharing": m.sharing,
                               "shared": m.shared, "shared_parameters": sum(p.numel() for p in m.shared_parameters()),
                               **self.extra}}


@ADAPTERS.register("text")
class TextAdapter(TaskAdapter):
    data_config = TextDataConfig
    task_config = None
    primary_metric = "avg_accuracy"
    max_world_size = 1

    def resolve(self, cfg) -> AdapterPlan:
        data: TextDataConfig = cfg.data
        _check_data(data)
        if cfg.model.name not in MODELS:
            raise InputError(f"unknown text model '{cfg.model.name}'", key="model.name",
                             hint=did_you_mean(cfg.model.name, MODELS))
        h = _model_hparams(cfg.model.hparams, data)
        tasks = (h["single_task"],) if h["single_task"] else tuple(data.domains)
        given = given_task_names(cfg.tasks)
        if given and tuple(given) != tasks:
            raise InputError(f"the text tasks are the domains, {list(tasks)} in this priority order; got {given}",
                             key="tasks", hint="leave tasks out and list data.domains (or set model.single_task)")
        _check_batch(data, cfg.trainer.batch_size, len(tasks))
        return AdapterPlan(data=data, tasks=tasks, task_configs=tasks, model_name=cfg.model.name,
                           model_hparams=MappingProxyType(h))

    def input_files(self, plan: AdapterPlan) -> list[Path]:
        return input_paths(plan.data, plan.tasks)

    def prepare(self, plan: AdapterPlan) -> TextData:
        return prepare(plan.data, plan.tasks, plan.model_hparams["embeddings"])

    def _model(self, plan: AdapterPlan, prepared: TextData) -> TextMTLModel:
        h = plan.model_hparams
        if prepared.embeddings != h["embeddings"]:  # ids of one tokenisation never meet the other's table
            raise InputError(f"the data was tokenised for embeddings '{prepared.embeddings}', not "
                             f"'{h['embeddings']}'", key="model.embeddings")
        own = None
        if h["sharing"] == "none" and h["embeddings"] == "scratch":  # STL: each domain embeds its own vocabulary
            own = {t: (len(prepared.domain_vocabs[t]), prepared.remap(t)) for t in plan.tasks}
        return TextMTLModel(plan.tasks, len(prepared.vocab), embedding_dim=h["embedding_dim"], filters=h["filters"],
                            kernel_sizes=h["kernel_sizes"], dropout=h["dropout"], sharing=h["sharing"],
                            shared=h["shared"], own_vocabularies=own, pretrained=prepared.pretrained,
                            freeze_embeddings=h["freeze_embeddings"])

    def check_model(self, plan: AdapterPlan, prepared: TextData) -> None:
        self._model(plan, prepared)

    def build(self, plan, prepared, *, per_rank_batch, device, process_group, cfg) -> TextTrainable:
        h = plan.model_hparams
        extra = {} if h["embeddings"] == "scratch" else {"embeddings": h["embeddings"],
                                                          "freeze_embeddings": h["freeze_embeddings"]}
        return TextTrainable(self._model(plan, prepared).to(device), extra)

    def train_stream(self, plan, prepared: TextData, batch_size, *, seed, rank, world_size) -> PerTaskStream:
        per_task = batch_size // len(plan.tasks)  # resolve checked that the tasks divide it
        return PerTaskStream(plan.tasks, prepared.splits["train"], per_task, seed=seed)

    @torch.no_grad()
    def evaluate(self, plan, prepared: TextData, state, split, batch_size) -> dict:
        """Accuracy of every task on its own reviews of ``split`` and their unweighted mean."""
        model = self._model(plan, prepared)
        model.load_state_dict(state)
        model.eval()
        counts = AccuracyCounts(plan.tasks)
        for task in plan.tasks:
            for batch in eval_batches(task, prepared.splits[split][task], min(batch_size, MAX_EVAL_BATCH)):
                counts.add(task, model.predict(batch), batch.labels)
        scores = counts.report()
        return {"split": split, "rows": sum(e["reviews"] for e in scores["tasks"].values()),
                "tasks": scores["tasks"], "avg_accuracy": scores["avg_accuracy"],
                "primary_metric": "avg_accuracy", "task_metric": "accuracy", "change": "points",
                "data": {t: prepared.report["domains"][t][split] for t in plan.tasks}}

    def data_summary(self, prepared: TextData) -> dict:
        return prepared.report

    def describe(self, plan, prepared: TextData) -> str:
        r = prepared.report
        words = "MiniLM WordPiece pieces" if r.get("embeddings") == "minilm" else "words"
        lines = [f"dataset: {plan.data.dataset} ({len(plan.tasks)} domain task(s), vocabulary {r['vocabulary']:,} "
                 f"{words}, {r['non_utf8_lines']} line(s) read as Windows-1252) from {plan.data.root}"]
        for task in plan.tasks:
            d = r["domains"][task]
            lines.append(f"  {task}: " + ", ".join(
                f"{s} {d[s]['reviews']:,} ({d[s]['positives']:,} positive, {d[s]['truncated']} truncated)"
                for s in ("train", "val", "test")))
        return "\n".join(lines)


def _check_data(data: TextDataConfig) -> None:
    if not data.domains:
        raise InputError("must list at least one domain", key="data.domains")
    for i, d in enumerate(data.domains):
        if not isinstance(d, str) or not d or "/" in d:
            raise InputError(f"expected a domain name, got {d!r}", key=f"data.domains[{i}]")
    if len(set(data.domains)) != len(data.domains):
        twice = sorted({d for d in data.domains if data.domains.count(d) > 1})
        raise InputError(f"lists {twice} more than once", key="data.domains")
    if not 0 < data.val_fraction < 1:
        raise InputError(f"must be between 0 and 1, got {data.val_fraction}", key="data.val_fraction")
    for key, low in (("per_task_batch", 0), ("min_count", 1), ("max_vocab", 3), ("max_train_per_task", 0),
                     ("max_length", 1)):
        if getattr(data, key) < low:
            raise InputError(f"must be at least {low}, got {getattr(data, key)}", key=f"data.{key}")


def _check_batch(data: TextDataConfig, batch_size: int, tasks: int) -> None:
    """``trainer.batch_size`` = ``data.per_task_batch`` × tasks (or divisible by tasks when 0)."""
    if data.per_task_batch:
        if batch_size != data.per_task_batch * tasks:
            raise InputError(
                f"must equal data.per_task_batch × tasks = {data.per_task_batch} × {tasks} = "
                f"{data.per_task_batch * tasks}, got {batch_size}", key="trainer.batch_size",
                hint=f"set trainer.batch_size={data.per_task_batch * tasks}, or data.per_task_batch=0 to derive "
                     "it from trainer.batch_size")
    elif batch_size % tasks:
        raise InputError(f"must be a multiple of the {tasks} task(s) when data.per_task_batch is 0 "
                         f"(each batch holds batch_size / tasks reviews of every task), got {batch_size}",
                         key="trainer.batch_size")


def _model_hparams(hparams: dict, data: TextDataConfig) -> dict:
    """The TextCNN's keys with their defaults; an unknown key or a wrong type names ``model.<key>``."""
    out = dict(DEFAULTS)
    for key, value in hparams.items():
        if key not in MODEL_KEYS:
            raise InputError("unknown key", key=f"model.{key}", hint=did_you_mean(key, MODEL_KEYS))
        kind = MODEL_KEYS[key]
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        if value is None and key == "single_task":
            out[key] = None
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InputError(f"expected {kind.__name__}, got {value!r}", key=f"model.{key}")
        out[key] = value
    for key in ("embedding_dim", "filters"):
        if out[key] < 1:
            raise InputError(f"must be at least 1, got {out[key]}", key=f"model.{key}")
    ks = out["kernel_sizes"]
    if not ks or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks):
        raise InputError(f"expected a non-empty list of positive integers, got {ks!r}", key="model.kernel_sizes")
    if not 0 <= out["dropout"] < 1:
        raise InputError(f"must be in [0, 1), got {out['dropout']}", key="model.dropout")
    for key, allowed in (("shared", SHARED), ("sharing", SHARING)):
        if out[key] not in allowed:
            raise InputError(f"unknown value {out[key]!r}; one of {list(allowed)}", key=f"model.{key}",
                             hint=did_you_mean(out[key], allowed))
    if out["single_task"] is not None and out["single_task"] not in data.domains:
        raise InputError(f"'{out['single_task']}' is not one of data.domains", key="model.single_task",
                         hint=did_you_mean(out["single_task"], data.domains))
    out["kernel_sizes"] = list(ks)
    _check_embeddings(out, hparams)
    return out


def _check_embeddings(out: dict, given: dict) -> None:
    """``model.embeddings`` and what goes with it (minilm: width 384, the package installed)."""
    if out["embeddings"] not in EMBEDDINGS:
        raise InputError(f"unknown value {out['embeddings']!r}; one of {list(EMBEDDINGS)}", key="model.embeddings",
                         hint=did_you_mean(out["embeddings"], EMBEDDINGS))
    if out["embeddings"] == "scratch":
        if out["freeze_embeddings"]:
            raise InputError("only pretrained embeddings can be frozen (scratch embeddings would stay random)",
                             key="model.freeze_embeddings", hint="set model.embeddings=minilm, or leave it false")
        return
    if "embedding_dim" in given and out["embedding_dim"] != MINILM_DIM:
        raise InputError(f"the MiniLM token embeddings are {MINILM_DIM} wide, got {out['embedding_dim']}",
                         key="model.embedding_dim", hint=f"leave it out or set it to {MINILM_DIM}")
    out["embedding_dim"] = MINILM_DIM
    check_installed()
