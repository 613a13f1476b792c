"""The pieces a run is built from, from its config: rank, sharding, loss stage, dense optimizer."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchrec.optim.optimizers import in_backward_optimizer_filter

from ..config import RunConfig
from ..data.sources import fingerprint, resolve
from ..errors import InputError, did_you_mean
from ..priority import LossStage, available_stages, build_stage
from .sharding import ShardingConfig


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size (torchrun's environment; 0 of 1 without it)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def model_hparams(cfg: RunConfig) -> dict:
    """The hyper-parameters of backbone ``model.name``: its own section
    (``model: {name: ple, embedding_dim: 16, ple: {num_levels: 2}, mmoe: {...}}``) overridden by the
    keys outside any section (so ``--set model.expert_dims=[64]`` always applies). Sections of the
    other backbones are ignored, so ``--set model.name=X`` switches backbone."""
    from ..models import available_models

    hparams = cfg.model.hparams
    sections = {k: v for k, v in hparams.items() if isinstance(v, dict)}
    unknown = sorted(set(sections) - set(available_models()))
    if unknown:
        raise InputError(f"'{unknown[0]}' is neither a hyper-parameter nor a backbone",
                         key=f"model.{unknown[0]}", hint=did_you_mean(unknown[0], available_models()))
    common = {k: v for k, v in hparams.items() if k not in sections}
    return {**sections.get(cfg.model.name, {}), **common}


def check_buildable(cfg: RunConfig, prepared) -> None:
    """Build the tower on the prepared features (tables on the meta device: no memory), so that a
    bad ``model.*`` key fails with exit code 2 before any rank is started (the stage's keys are
    :func:`~recsys_hmtl.training.run_plan.resolve_run`'s: it needs no data)."""
    from ..models import build_model

    build_model(cfg.model.name, prepared.features, prepared.tasks, embedding_device="meta",
                **model_hparams(cfg))


def sharding_config(cfg: RunConfig, per_rank_batch: int) -> ShardingConfig:
    return ShardingConfig(optimizer=cfg.trainer.sparse_optimizer, lr=cfg.trainer.sparse_lr,
                          plan=dict(cfg.trainer.plan), planner_batch_size=per_rank_batch)


def build_loss_stage(cfg: RunConfig, tasks: list[str]) -> LossStage:
    """``build_stage(stage.name, tasks, **stage.<hparams>)``; mistakes become config errors."""
    if cfg.stage.name not in available_stages():
        raise InputError(f"unknown loss stage '{cfg.stage.name}'", key="stage.name",
                         hint=did_you_mean(cfg.stage.name, available_stages()))
    try:
        return build_stage(cfg.stage.name, tasks=tasks, **cfg.stage.hparams)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc), key=f"stage ({cfg.stage.name})") from None


def dense_optimizer_for(dmp: nn.Module, stage: LossStage, lr: float) -> torch.optim.Optimizer:
    """Adam over every parameter the fused sparse optimizer does not own (dense layers,
    data-parallel tables) and the stage's own parameters (routers, log-variances), in a fixed
    order, so its ``state_dict`` restores on resume."""
    params = [p for _, p in in_backward_optimizer_filter(dmp.named_parameters())]
    params += [p for p in stage.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=lr)


def run_labels(cfg: RunConfig, run_dir: Path, rank: int = 0):
    """Prometheus labels of this run (``run_id`` = the run folder's name)."""
    from ..monitoring import RunLabels

    return RunLabels(run_id=Path(run_dir).resolve().name, stage=cfg.stage.name, model=cfg.model.name,
                     dataset=cfg.data.dataset, rank=rank, group=cfg.metrics.group)


def input_fingerprint(cfg: RunConfig) -> list[dict]:
    """Path, stat key and content digest of every input file the config reads
    (:func:`~recsys_hmtl.data.sources.fingerprint`)."""
    return fingerprint(resolve(cfg.data, cfg.tasks)[0])


def check_inputs_unchanged(inputs: list[dict], latest: dict, why: str) -> None:
    """The input files ``inputs`` (:func:`input_fingerprint`) are those the checkpoint ``latest`` was
    trained on. Ids are encoded with vocabularies fitted on those files: other files would give
    every row the wrong embedding rows, silently, so they are refused (exit 2).

    Files are compared by content (their SHA-256 digests); a fingerprint recorded by a run made
    before content digests (path, size and modification time only) is compared by size and
    modification time, so such runs still resume and evaluate."""
    def same(before: dict | None, after: dict | None) -> bool:
        if before is None or after is None:
            return False
        if before.get("sha256") and after.get("sha256"):
            return before["sha256"] == after["sha256"]
        return (before.get("size"), before.get("mtime_ns")) == (after.get("size"), after.get("mtime_ns"))

    trained_on = {f["path"]: f for f in latest.get("inputs", [])}
    now = {f["path"]: f for f in inputs}
    changed = sorted(path for path in set(trained_on) | set(now) if not same(trained_on.get(path), now.get(path)))
    if trained_on and changed:
        path = changed[0]
        what = ("is new" if path not in trained_on else "is gone" if path not in now
                else "content differs" if trained_on[path].get("sha256") else "size or modification time differs")
        raise InputError(f"changed since the run was trained ({what}); {why}",
                         file=path, hint="start a new run folder for new data")
