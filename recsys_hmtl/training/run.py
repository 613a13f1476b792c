"""``recsys-hmtl train``: one rank of the main job, from a config to a checkpointed, evaluated run.

Every rank runs :func:`train` (torchrun sets RANK/WORLD_SIZE; one process per rank, our own
process group, no Lightning DDP on top of DMP's). The steps:

1. The configuration checks (:func:`~recsys_hmtl.training.run_plan.resolve_run`), the run folder
   (a user's non-empty folder is refused), ``RUN_DIR/config.yaml`` (the resolved config) and the
   checkpoint store; ``--resume`` continues from the newest intact checkpoint (a run with nothing
   to resume starts fresh, so a scheduled ``--resume`` works on the first day too); an existing
   run without ``--resume`` is refused.
2. The adapter's data (rank 0 prepares and caches first; the others read the cache) and model
   (the recommendation adapter: the tower sharded by DMP with the fused sparse optimizer), the loss
   stage, the dense optimizer.
3. Lightning fits the remaining batches; checkpoints every ``trainer.ckpt_every`` and at the end.
4. Rank 0 scores the validation split from the final checkpoint and writes ``run_summary.json``.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path

import pytorch_lightning as pl
import torch

from ..config import RunConfig
from ..errors import InputError
from .callbacks import GracefulStop, PeriodicCheckpoint, PrometheusMetrics, RetainFreedMemory
from .checkpoint import CheckpointStore
from .csv_log import ResumableCSVLogger
from .distributed import ensure_process_group, rank_and_world
from .evaluate import evaluate_checkpoint
from .files import exclusive_run_folder, write_json, write_run_config
from .bilevel import BilevelStream, bilevel_on
from .module import MultiTaskTraining, TrainingInterrupted
from .position import RemainingBatches
from .run_plan import RunPlan, resolve_run
from .setup import build_loss_stage, check_inputs_unchanged, dense_optimizer_for, run_labels
from .steps import step_rule_for

log = logging.getLogger(__name__)
# Keys that may change between a run and its resumption (schedule and monitoring only).
RESUMABLE_CHANGES = {"trainer.max_epochs", "trainer.max_steps", "trainer.ckpt_every", "trainer.log_every",
                     "trainer.eval_batch_size", "trainer.acting_window",
                     "metrics.port", "metrics.addr", "metrics.pushgateway", "metrics.group", "metrics.window"}


def resume_digest(cfg: RunConfig) -> dict:
    """``{section.key: value}`` of the config without the keys a resumed run may change."""
    flat: dict = {}
    for section, value in cfg.to_dict().items():
        if isinstance(value, dict):
            flat.update({f"{section}.{key}": v for key, v in value.items()})
        else:
            flat[section] = value
    return {k: v for k, v in flat.items() if k not in RESUMABLE_CHANGES}


def train(cfg: RunConfig, run_dir: str | Path, resume: bool = False) -> dict:
    """Train one rank; returns the run summary (rank 0) or ``{}`` (other ranks). Rank 0 writes
    ``run_summary.json`` and, with ``metrics.pushgateway`` set, pushes the outcome: a failed run
    pushes ``run_success 0`` and leaves the last-success timestamp alone."""
    run_dir = Path(run_dir)
    rank, world = rank_and_world()
    plan = resolve_run(cfg)  # every configuration error before the run folder is touched
    plan.check_world_size(world)
    try:
        with exclusive_run_folder(run_dir) if rank == 0 else nullcontext():
            summary = _train(plan, run_dir, resume, rank, world)
            if rank == 0:
                summary["pushed"] = _push_outcome(plan, run_dir, success=True, summary=summary)
                write_json(run_dir / "run_summary.json", summary)
    except BaseException:
        if rank == 0:
            _push_outcome(plan, run_dir, success=False)
        raise
    if world > 1:  # free the sharded model and its DDP/gloo state, then the group, before exit
        gc.collect()  # (no barrier: rank 0 may still be scoring the validation split)
        torch.distributed.destroy_process_group()
    return summary


def _push_outcome(plan: RunPlan, run_dir: Path, success: bool, summary: dict | None = None) -> str | None:
    """Push to the Pushgateway when configured; a push failure is logged, not fatal (the run's files
    are the product; a missing push shows up as an overdue run in the alerts)."""
    cfg = plan.config
    if not cfg.metrics.pushgateway:
        return None
    from ..monitoring import PushError, push_run

    try:
        push_run(cfg.metrics.pushgateway, run_labels(cfg, run_dir), success=success, summary=summary,
                 tasks=list(plan.task_names))
        return cfg.metrics.pushgateway
    except PushError as exc:
        log.error("%s", exc)
        return f"failed: {exc}"


def _train(plan: RunPlan, run_dir: Path, resume: bool, rank: int, world: int) -> dict:
    cfg = plan.config
    started = time.perf_counter()
    store = CheckpointStore(run_dir, rank, world)
    latest = store.resume_point() if resume else store.latest()  # resume: newest intact checkpoint
    if latest is not None and not resume:
        raise InputError("the run folder already holds a checkpointed run", file=str(run_dir),
                         hint="pass --resume to continue it, or choose another --out")
    inputs = plan.fingerprint()
    if latest is not None:
        check_inputs_unchanged(inputs, latest, "a resumed run continues on the data it started on")
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    random.seed(cfg.seed)
    group = ensure_process_group(torch.device(cfg.trainer.device))
    prepared = _prepare_in_rank_order(plan, rank, world)
    module, epoch_batches = _build_module(plan, prepared, rank, world, group)
    digest = resume_digest(cfg)
    if latest is not None:
        payload = store.load(latest)
        _check_same_run(payload, digest, latest)
        module.restore(payload)
        log.info("resumed from %s at batch %d (%d steps)", latest["path"], module.position.consumed,
                 module.counters.steps)
    if rank == 0:
        write_run_config(cfg, run_dir)  # only once the inputs, model and stage are known to be good
    samples_before = module.counters.samples

    metrics = _training_metrics(cfg, tasks=list(plan.task_names), run_dir=run_dir, rank=rank)
    checkpoints = PeriodicCheckpoint(store, cfg.trainer.ckpt_every, digest, inputs)
    checkpoints.last_saved = None if latest is None else latest["step"]
    batches = RemainingBatches(epoch_batches, module.position, cfg.trainer.max_epochs, cfg.trainer.max_steps)
    fit_seconds = 0.0
    try:
        if len(batches):
            fit_started = time.perf_counter()
            callbacks = [checkpoints, GracefulStop(), RetainFreedMemory()]
            callbacks += [PrometheusMetrics(metrics)] if metrics else []
            kept = None if latest is None else module.counters.steps  # the log's rows up to the checkpoint
            _trainer(cfg, run_dir, rank, callbacks, kept).fit(module, train_dataloaders=batches)
            fit_seconds = time.perf_counter() - fit_started - checkpoints.seconds
            if module.stop_agreed and len(batches):  # a stop at the very last step is a finished run
                saved = checkpoints.last_saved
                where = "no checkpoint yet" if saved is None else f"the last checkpoint is at batch {saved}"
                raise TrainingInterrupted(f"stopped by {module.stop_signal} after batch "
                                          f"{module.position.consumed}; {where}; rerun with --resume "
                                          "to continue", module.stop_signal)
        else:
            checkpoints.save(module)  # nothing left to train: make sure the final state is on disk
        if rank != 0:
            return {}
        report = evaluate_checkpoint(run_dir, "val", plan=plan, prepared=prepared)
        if metrics and all("auc" in v for v in report["tasks"].values()):
            metrics.set_auc(split="val", aucs={t: v["auc"] for t, v in report["tasks"].items()},
                            gaucs={t: v.get("gauc") for t, v in report["tasks"].items()})
        trained = module.counters.samples - samples_before
        primary = report["primary_metric"]
        return {
            "config": cfg.to_dict(),
            "inputs": inputs,
            "steps": module.counters.steps,
            "batches": module.position.consumed,
            "skipped_nonfinite_steps": module.counters.skipped,
            "world_size": world,
            "wall_seconds": time.perf_counter() - started,
            "samples_per_second": trained / fit_seconds if fit_seconds > 0 else None,
            "val": report["tasks"],
            "primary_metric": primary,
            f"val_{primary}": report[primary],
            "stage_diagnostics": module.stage.diagnostics(),
            "stage_acting": module.acting.summary(),
            **module.rule.summary(),
            "checkpoint": str(store.latest()["path"]),
            **module.trainable.summary(),
            "data": plan.adapter.data_summary(prepared),
        }
    finally:
        if metrics:
            metrics.close()


def _build_module(plan: RunPlan, prepared, rank: int, world: int, group):
    """(the LightningModule: the adapter's model, the loss stage, the dense optimizer; this rank's batches)."""
    cfg = plan.config
    device = torch.device(cfg.trainer.device)
    per_rank = cfg.trainer.batch_size // world
    trainable = plan.adapter.build(plan.resolved, prepared, per_rank_batch=per_rank, device=device,
                                   process_group=group, cfg=cfg)
    stage = build_loss_stage(cfg, list(plan.task_names))
    if bilevel_on(cfg):
        stream = BilevelStream(*plan.adapter.holdout_streams(
            plan.resolved, prepared, per_rank, fraction=cfg.bilevel.holdout, seed=cfg.seed, rank=rank,
            world_size=world))
    else:
        stream = plan.adapter.train_stream(plan.resolved, prepared, per_rank, seed=cfg.seed, rank=rank,
                                           world_size=world)
    if len(stream) == 0:
        raise InputError("the training split has fewer rows than processes", key="data.split")
    module = MultiTaskTraining(trainable, stage, dense_optimizer_for(trainable, stage, cfg.trainer.lr),
                               epoch_length=len(stream), max_nonfinite=cfg.trainer.max_nonfinite,
                               log_every=cfg.trainer.log_every, world_size=world,
                               acting_window=cfg.trainer.acting_window,
                               rule=step_rule_for(trainable, stage, cfg.bilevel, cfg.trainer.log_every,
                                                  cfg.stage.grad_mode))
    return module, stream


def _prepare_in_rank_order(plan: RunPlan, rank: int, world: int):
    """Rank 0 prepares (and caches) the data first; the other ranks wait, then read it."""
    barrier = torch.distributed.barrier if world > 1 else (lambda: None)
    if rank != 0:
        barrier()
    prepared = plan.adapter.prepare(plan.resolved)
    if rank == 0:
        barrier()
    return prepared


def _without_nones(value):
    """``value`` with every mapping entry whose value is None left out (recursively): a key added
    to a config dataclass later, at its None default, leaves an older run resumable."""
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nones(v) for v in value]
    return value


def _check_same_run(payload: dict, digest: dict, latest: dict) -> None:
    saved = _without_nones({"adapter": "recsys", **payload.get("config_digest", {})})  # runs from before adapters
    digest = _without_nones(digest)
    changed = sorted(k for k in set(saved) | set(digest) if saved.get(k) != digest.get(k))
    if changed:
        raise InputError(
            f"the configuration differs from the checkpointed run's in {changed[:8]}",
            file=str(latest["path"]),
            hint="only the schedule (trainer.max_epochs/max_steps/ckpt_every/log_every) and metrics.* "
                 "may change on --resume; start a new run folder otherwise")


def _training_metrics(cfg: RunConfig, tasks: list[str], run_dir: Path, rank: int):
    """``/metrics`` on ``metrics.addr:metrics.port + rank`` while training runs (port 0 = off)."""
    if not cfg.metrics.port:
        return None
    from ..monitoring import TrainingMetrics

    metrics = TrainingMetrics(run_labels(cfg, run_dir, rank), tasks=tasks, quality_window=cfg.metrics.window)
    port = metrics.serve(addr=cfg.metrics.addr, port=cfg.metrics.port + rank)
    log.info("metrics: http://%s:%d/metrics", cfg.metrics.addr, port)
    return metrics


def _trainer(cfg: RunConfig, run_dir: Path, rank: int, callbacks: list, keep_log_until: int | None) -> pl.Trainer:
    return pl.Trainer(
        accelerator="gpu" if cfg.trainer.device.startswith("cuda") else "cpu",
        devices=1,
        max_epochs=1,  # one pass over RemainingBatches, which spans the run's epochs
        logger=ResumableCSVLogger(str(run_dir), name="logs", version=f"rank{rank}", keep_until=keep_log_until),
        log_every_n_steps=cfg.trainer.log_every,
        enable_checkpointing=False,  # PeriodicCheckpoint writes sharded, atomic checkpoints
        enable_progress_bar=rank == 0 and os.environ.get("RECSYS_HMTL_PROGRESS", "1") != "0",
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        callbacks=callbacks,
    )
