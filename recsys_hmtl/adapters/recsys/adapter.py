"""The recommendation adapter: behaviour-funnel tasks on interaction logs, TorchRec towers, AUC/GAUC.

``data:`` is :class:`~recsys_hmtl.data.config.DataConfig` (a dataset preset filled in by
:func:`~recsys_hmtl.data.presets.resolve`), ``tasks:`` a list of
:class:`~recsys_hmtl.data.config.TaskConfig` (priority order), ``model:`` a backbone of
``recsys_hmtl.models`` with its hyper-parameters. The primary metric is ``avg_auc``.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any


from ...data.config import DataConfig, TaskConfig
from ...data.pipeline import PreparedData, prepare_resolved
from ...data.presets import resolve
from ...data.sources import fingerprint, input_files
from ...errors import InputError, did_you_mean
from ...evaluation.report import build_report
from ...models import available_models, build_model
from ...priority.registry import STAGES
from ...training.adapter import ADAPTERS, AdapterPlan, TaskAdapter, holdout_rows
from .scoring import score_split
from .sharding import ShardingConfig, shard_model
from .trainable import ShardedTower


def model_hparams(model_name: str, hparams: dict) -> dict:
    """The hyper-parameters of backbone ``model_name``: its own section
    (``model: {name: ple, embedding_dim: 16, ple: {num_levels: 2}, mmoe: {...}}``) overridden by the
    keys outside any section (so ``--set model.expert_dims=[64]`` always applies). Sections of the
    other backbones are ignored, so ``--set model.name=X`` switches backbone."""
    sections = {k: v for k, v in hparams.items() if isinstance(v, dict)}
    unknown = sorted(set(sections) - set(available_models()))
    if unknown:
        raise InputError(f"'{unknown[0]}' is neither a hyper-parameter nor a backbone",
                         key=f"model.{unknown[0]}", hint=did_you_mean(unknown[0], available_models()))
    common = {k: v for k, v in hparams.items() if k not in sections}
    return {**sections.get(model_name, {}), **common}


@ADAPTERS.register("recsys")
class RecsysAdapter(TaskAdapter):
    data_config = DataConfig
    task_config = TaskConfig
    primary_metric = "avg_auc"
    supports_bilevel = True
    CHAINED_HEADS = ("esmm", "aitm")  # task k's head reads task k-1's: not independent lower levels

    def resolve(self, cfg) -> AdapterPlan:
        data, tasks = resolve(cfg.data, cfg.tasks)
        if cfg.model.name not in available_models():
            raise InputError(f"unknown model '{cfg.model.name}'", key="model.name",
                             hint=did_you_mean(cfg.model.name, available_models()))
        ShardingConfig(optimizer=cfg.trainer.sparse_optimizer, lr=cfg.trainer.sparse_lr)  # names the key
        return AdapterPlan(data=data, tasks=tuple(t.name for t in tasks), task_configs=tuple(tasks),
                           model_name=cfg.model.name, model_hparams=MappingProxyType(model_hparams(cfg.model.name, cfg.model.hparams)))

    def input_files(self, plan: AdapterPlan) -> list[Path]:
        return input_files(plan.data)

    def fingerprint(self, plan: AdapterPlan) -> list[dict]:
        """Memoised per stat key under the data cache (:mod:`recsys_hmtl.data.digests`)."""
        return fingerprint(plan.data)

    def prepare(self, plan: AdapterPlan) -> PreparedData:
        return prepare_resolved(plan.data, list(plan.task_configs))  # the plan's resolution, not a second

    def _model(self, plan: AdapterPlan, prepared: PreparedData, **options: Any):
        return build_model(plan.model_name, prepared.features, prepared.tasks, **options, **plan.model_hparams)

    def check_model(self, plan: AdapterPlan, prepared: PreparedData) -> None:
        self._model(plan, prepared, embedding_device="meta")  # tables on meta: no memory

    def build(self, plan, prepared, *, per_rank_batch, device, process_group, cfg) -> ShardedTower:
        """The tower on the meta device, sharded by DMP with the fused sparse optimizer; with task
        views where the loss stage differentiates per task and the tower can give them."""
        model = self._model(plan, prepared, embedding_device="meta")
        model.task_views = (model.supports_task_views and STAGES.get(cfg.stage.name).needs_task_grads
                            and cfg.stage.grad_mode != "params")
        sharding = ShardingConfig(optimizer=cfg.trainer.sparse_optimizer, lr=cfg.trainer.sparse_lr,
                                  plan=dict(cfg.trainer.plan), planner_batch_size=per_rank_batch)
        dmp = shard_model(model, config=sharding, device=device, process_group=process_group)
        return ShardedTower(dmp, model, prepared.tasks)

    def train_stream(self, plan, prepared, batch_size, *, seed, rank, world_size):
        return prepared.stream("train", batch_size, shuffle=True, seed=seed, rank=rank, world_size=world_size)

    def holdout_streams(self, plan, prepared, batch_size, *, fraction, seed, rank, world_size):
        """The training split less a held-out slice of ``fraction`` of its rows (drawn once from a
        fixed seed: the same slice for every run seed) and the slice."""
        kept, held = holdout_rows(len(prepared.sources["train"]), fraction)
        streams = [prepared.stream("train", batch_size, shuffle=True, seed=seed + offset, rank=rank,
                                   world_size=world_size, rows=part)
                   for offset, part in ((0, kept), (1, held))]
        return streams[0], streams[1]

    def check_bilevel(self, plan) -> None:
        """Independent linear heads: ``tower_dims: []`` on a backbone whose heads are not chained."""
        if plan.model_name in self.CHAINED_HEADS:
            raise InputError(f"bilevel mode needs independent task heads; {plan.model_name} chains them "
                             "(task k's head reads task k-1's)", key="model.name",
                             hint="use shared_bottom, omoe, mmoe, ple or stem")
        towers = plan.model_hparams.get("tower_dims")
        if towers != []:
            raise InputError(f"bilevel mode needs linear task heads (the lower level is convex in a linear "
                             f"head), got tower_dims {towers if towers is not None else 'unset (the default)'}",
                             key="model.tower_dims", hint="--set model.tower_dims=[]")

    def evaluate(self, plan, prepared, state, split, batch_size) -> dict:
        """Exact per-task AUC / GAUC of every row of ``split`` (SPEC §7)."""
        model = self._model(plan, prepared)
        model.load_state_dict(state)
        labels, scores, groups = score_split(model, prepared, split, batch_size)
        users = groups if plan.data.user_column is not None else None  # no users: GAUC not applicable
        report = build_report(split, labels, scores, users, prepared.tasks)
        report.update(primary_metric="avg_auc", task_metric="auc", change="relative")
        return report

    def data_summary(self, prepared: PreparedData) -> dict:
        return {"rows": prepared.report["rows"], "cache": prepared.report.get("cache")}

    def describe(self, plan, prepared) -> str:
        from ...data.validate import summary

        return summary(prepared)

