"""The ERE adapter (seed 000): entity → relation on CasRel / TPLinker / DocRED / PubTator data.

``data:`` is :class:`~.config.EreDataConfig`; the tasks are fixed, ``entity`` then ``relation``
(Eq. 34, 35; a ``tasks:`` list may only restate them); ``model:`` is the Appendix E.1 model::

    model:
      name: e1                 # the one ERE model
      encoder: minilm          # all-MiniLM-L6-v2 from its PyPI wheel (the `ere` extra) | scratch
      hidden: 384              # width of the k Transformer layers and the heads
      layers: 3                # k (E.2)
      heads: 8
      dropout: 0.1
      encoder_lr: 5.0e-5       # the pretrained encoder's learning rate (default: trainer.lr)
      freeze_encoder_layers: 0 # embeddings + the first N encoder layers stay fixed
      encoder_options: {}      # scratch: hidden, num_layers, heads, min_count, ...

The primary metric is the triple F1 of the validation / test split (micro, exact match of the
entity text, as PRGC and seed 000 Table 2); per task the entity-pair F1 and the relation-type F1.
Single process only (``max_world_size = 1``).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from ...errors import InputError, did_you_mean
from ...training.adapter import ADAPTERS, AdapterPlan, TaskAdapter, Trainable, given_task_names
from .config import EreDataConfig
from .data import EreData, ExampleStream, prepare, split_paths
from .encoders import ENCODERS, build_encoder
from .metrics import ExtractionCounts
from .model import TASKS, EreModel

MODELS = ("e1",)
MODEL_KEYS = {"encoder": str, "hidden": int, "layers": int, "heads": int, "dropout": float,
              "encoder_lr": float, "freeze_encoder_layers": int, "encoder_options": dict}
DEFAULTS = {"encoder": "minilm", "hidden": 384, "layers": 3, "heads": 8, "dropout": 0.1, "encoder_lr": None,
            "freeze_encoder_layers": 0, "encoder_options": {}}


class EreTrainable(Trainable):
    def __init__(self, model: EreModel, encoder_lr: float | None) -> None:
        self.module, self.encoder_lr = model, encoder_lr


    def parameter_groups(self, lr: float) -> list[dict]:
        return self.module.parameter_groups(lr, self.encoder_lr)


@ADAPTERS.register("ere")
class EreAdapter(TaskAdapter):
    data_config = EreDataConfig
    task_config = None
    primary_metric = "triple_f1"
    max_world_size = 1

    def resolve(self, cfg) -> AdapterPlan:
        data: EreDataConfig = cfg.data
        given = given_task_names(cfg.tasks)
        if given and tuple(given) != TASKS:
            raise InputError(f"the ERE tasks are fixed, {list(TASKS)} in this priority order; got {given}",
                             key="tasks", hint="leave tasks out of an ERE config")
        if data.max_length < 8:
            raise InputError(f"must be at least 8 tokens, got {data.max_length}", key="data.max_length")
        if not 0 < data.val_fraction < 1:
            raise InputError(f"must be between 0 and 1, got {data.val_fraction}", key="data.val_fraction")
        if cfg.model.name not in MODELS:
            raise InputError(f"unknown ERE model '{cfg.model.name}'", key="model.name", hint=did_you_mean(cfg.model.name, MODELS))
        return AdapterPlan(data=data, tasks=TASKS, task_configs=TASKS, model_name=cfg.model.name,
                           model_hparams=MappingProxyType(_model_hparams(cfg.model.hparams)))

    def input_files(self, plan: AdapterPlan) -> list[Path]:
        return sorted(set(split_paths(plan.data).values()))

    def prepare(self, plan: AdapterPlan) -> EreData:
        h = plan.model_hparams
        return prepare(plan.data, h["encoder"], _tokenizer_options(h))

    def _model(self, plan: AdapterPlan, prepared: EreData) -> EreModel:
        h = plan.model_hparams
        options = dict(h["encoder_options"])
        encoder, _ = build_encoder(h["encoder"], tokenizer_state=prepared.tokenizer_state, **options)
        try:
            model = EreModel(encoder, h["hidden"], len(prepared.relations), num_layers=h["layers"],
                             heads=h["heads"], dropout=h["dropout"], relations=prepared.relations)
        except ValueError as exc:
            raise InputError(str(exc), key="model") from None
        if h["freeze_encoder_layers"]:
            model.freeze_encoder_layers(h["freeze_encoder_layers"])
        return model

    def check_model(self, plan: AdapterPlan, prepared: EreData) -> None:
        self._model(plan, prepared)

    def build(self, plan, prepared, *, per_rank_batch, device, process_group, cfg) -> EreTrainable:
        return EreTrainable(self._model(plan, prepared).to(device), plan.model_hparams["encoder_lr"])

    def train_stream(self, plan, prepared: EreData, batch_size, *, seed, rank, world_size) -> ExampleStream:
        return ExampleStream(prepared.examples["train"], batch_size, shuffle=True, seed=seed,
                             pad_id=prepared.pad_id)

    @torch.no_grad()
    def evaluate(self, plan, prepared: EreData, state, split, batch_size) -> dict:
        """Micro P/R/F1 of triples, entity pairs and relation types over every document of ``split``."""
        model = self._model(plan, prepared)
        model.load_state_dict(state)
        model.eval()
        counts = ExtractionCounts()
        examples = prepared.examples[split]
        for batch in ExampleStream(examples, min(batch_size, 64), shuffle=False, pad_id=prepared.pad_id).batches():
            for example, predicted in zip(batch.examples, model.predict(batch)):
                counts.add(example.triples, predicted)
        scores = counts.report()
        return {"split": split, "rows": len(examples),
                "tasks": {"entity": scores["entity"], "relation": scores["relation"]},
                "triple": scores["triple"], "triple_f1": scores["triple"]["f1"],
                "primary_metric": "triple_f1", "task_metric": "f1", "change": "points",
                "data": prepared.report.get(split, {})}

    def data_summary(self, prepared: EreData) -> dict:
        return {"splits": prepared.report, "relations": len(prepared.relations)}

    def describe(self, plan, prepared: EreData) -> str:
        lines = [f"dataset: {plan.data.dataset} ({plan.data.format}, {len(prepared.relations)} relations)"]
        for split, r in prepared.report.items():
            lines.append(f"  {split}: {r['documents']:,} documents, {r['triples']:,} triples "
                         f"({r['dropped_triples']} dropped: entity not in its text; {r['truncated_triples']} "
                         f"beyond data.max_length) from {r['source']}")
        return "\n".join(lines)


def _model_hparams(hparams: dict) -> dict:
    """The E.1 model's keys with their defaults; an unknown key or a wrong type names ``model.<key>``."""
    out = dict(DEFAULTS)
    for key, value in hparams.items():
        if key not in MODEL_KEYS:
            raise InputError("unknown key", key=f"model.{key}", hint=did_you_mean(key, MODEL_KEYS))
        kind = MODEL_KEYS[key]
        if value is not None and kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        if value is not None and not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InputError(f"expected {kind.__name__}, got {value!r}", key=f"model.{key}")
        out[key] = value
    if out["encoder"] not in ENCODERS:
        raise InputError(f"unknown encoder '{out['encoder']}'", key="model.encoder",
                         hint=did_you_mean(out["encoder"], ENCODERS))
    for key in ("hidden", "layers", "heads"):
        if out[key] < 1:
            raise InputError(f"must be at least 1, got {out[key]}", key=f"model.{key}")
    if out["encoder_lr"] is not None and not out["encoder_lr"] > 0:
        raise InputError(f"must be positive, got {out['encoder_lr']}", key="model.encoder_lr")
    return out


def _tokenizer_options(h: Any) -> dict:
    """The encoder options that shape the tokenizer (the scratch vocabulary), not the network."""
    return {k: v for k, v in h["encoder_options"].items() if k in ("min_count", "max_vocab", "lowercase")}
