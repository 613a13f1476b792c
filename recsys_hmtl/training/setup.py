"""The pieces the core builds a run from: the loss stage, the dense optimizer, metric labels, the
input check of a resumed or evaluated run."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import RunConfig
from ..errors import InputError, did_you_mean
from ..priority import LossStage, available_stages, build_stage
from .adapter import Trainable


def build_loss_stage(cfg: RunConfig, tasks: list[str]) -> LossStage:
    """``build_stage(stage.name, tasks, **stage.<hparams>)``; mistakes become config errors."""
    if cfg.stage.name not in available_stages():
        raise InputError(f"unknown loss stage '{cfg.stage.name}'", key="stage.name",
                         hint=did_you_mean(cfg.stage.name, available_stages()))
    try:
        stage = build_stage(cfg.stage.name, tasks=tasks, **cfg.stage.hparams)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc), key=f"stage ({cfg.stage.name})") from None
    return stage


def dense_optimizer_for(trainable: Trainable, stage: LossStage, lr: float) -> torch.optim.Optimizer:
    """Adam over the model's parameter groups (:meth:`Trainable.parameter_groups`) and the stage's
    own parameters (routers, log-variances; in the first group at ``lr``), in a fixed order, so its
    ``state_dict`` restores on resume."""
    groups = [dict(g, params=list(g["params"])) for g in trainable.parameter_groups(lr)]
    stage_params = [p for p in stage.parameters() if p.requires_grad]
    base = next((g for g in groups if g.get("lr", lr) == lr), None)
    if base is None:
        groups.append(base := {"params": [], "lr": lr})
    base["params"] += stage_params
    return torch.optim.Adam([g for g in groups if g["params"]], lr=lr)


def run_labels(cfg: RunConfig, run_dir: Path, rank: int = 0):
    """Prometheus labels of this run (``run_id`` = the run folder's name)."""
    from ..monitoring import RunLabels

    return RunLabels(run_id=Path(run_dir).resolve().name, stage=cfg.stage.name, model=cfg.model.name,
                     dataset=str(cfg.data.dataset), rank=rank, group=cfg.metrics.group)


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
