"""The LightningModule of the main job (SPEC §6): the adapter's model, the loss stage, one step.

Lightning owns the loop; this module owns one training step and the state a checkpoint needs.
Manual optimisation: the adapter's :class:`~recsys_hmtl.training.adapter.Trainable` gives the
per-task losses and the shared representation (:class:`~recsys_hmtl.training.outputs.TaskOutputs`),
the loss stage runs the (single) backward (TorchRec's fused optimizer, where the model has one,
updates embedding rows inside it), then the dense optimizer (model + stage parameters) steps.
Steps are counted here (``position``), not by ``trainer.global_step``.

A non-finite loss skips the step on every rank (the finite flag is all-reduced first, so no rank
waits in a collective the others skipped); after ``max_nonfinite`` in a row the run stops with
:class:`TrainingDiverged` and no checkpoint is written for the bad steps. A stop request (SIGTERM,
see :class:`~recsys_hmtl.training.callbacks.GracefulStop`) travels in the same all-reduce, so every
rank stops after the same step.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch import nn

from ..priority import LossStage, NonFiniteLossError
from ..priority.acting import DEFAULT_WINDOW, WeightWindow
from .adapter import Trainable
from .checkpoint import plain_state, restore_into
from .csv_log import STEP_COLUMN
from .position import DataPosition
from .steps import PlainStep
from .step_values import detached_values, first_nonfinite


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite steps; the last good checkpoint is left as it was."""


class TrainingInterrupted(RuntimeError):
    """The run was stopped by SIGTERM or Ctrl-C (SIGINT) after a checkpoint; ``--resume`` continues
    it. Exit code 128 + the signal number, as a shell reports a process the signal ended: 143 for
    SIGTERM, 130 for SIGINT."""

    EXIT_CODES = {"SIGTERM": 143, "SIGINT": 130}

    def __init__(self, message: str, signal_name: str = "SIGTERM") -> None:
        super().__init__(message)
        self.signal_name = signal_name
        self.exit_code = self.EXIT_CODES[signal_name]


@dataclass
class StepRecord:
    """What the last step did, for callbacks (metrics, logs)."""

    seconds: float = 0.0
    samples: int = 0  # this rank's rows (Prometheus sums the ranks)
    losses: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, float] = field(default_factory=dict)
    nonfinite_task: str | None = None
    task_counts: list[list[float]] | None = None  # per task (Σ p, Σ y) of this rank's batch


@dataclass
class Counters:
    steps: int = 0                 # optimizer steps taken
    skipped: int = 0               # non-finite steps skipped, in total
    consecutive_skipped: int = 0
    samples: int = 0               # global samples of the steps taken
    step_seconds: float = 0.0      # time inside training steps


class MultiTaskTraining(pl.LightningModule):
    """``trainable``: the adapter's model (``trainable.module`` is this module's child ``model``)."""

    def __init__(self, trainable: Trainable, stage: LossStage, dense_optimizer: torch.optim.Optimizer,
                 *, epoch_length: int, max_nonfinite: int, log_every: int, world_size: int = 1,
                 acting_window: int = DEFAULT_WINDOW, rule: PlainStep | None = None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.trainable, self.stage = trainable, stage
        self.model: nn.Module = trainable.module
        self.dense_optimizer = dense_optimizer
        self.rule = rule or PlainStep(trainable, stage)  # what the step computes (steps.py)
        self.tasks = list(stage.tasks)
        self.epoch_length, self.max_nonfinite, self.log_every = epoch_length, max_nonfinite, log_every
        self.world_size = world_size
        self.position = DataPosition()
        self.counters = Counters()
        self.last = StepRecord()
        self.epoch_ended = False
        self.stop_requested = False  # set by the SIGTERM / SIGINT handler (GracefulStop)
        self.stop_signal = "SIGTERM"  # which signal asked for the stop
        self.acting = WeightWindow(stage.tasks, acting_window)  # did the stage act? (run summary, /metrics)
        self.stop_agreed = False     # every rank stops after this step

    # ------------------------------------------------------------------------------ Lightning
    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.dense_optimizer

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch.to(device)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        started = time.perf_counter()
        out = self.rule.forward(batch)
        losses, extra = self._global_losses(out.losses), out.extra
        values, extra_value = detached_values(losses, extra)
        bad, self.stop_agreed = self._agree(first_nonfinite(values, extra_value), self.stop_requested)
        optimizer = self.optimizers()
        if bad is None:
            optimizer.zero_grad(set_to_none=True)
            try:
                self.rule.backward(out, losses, extra, step=self.counters.steps + 1)
            except (NonFiniteLossError, FloatingPointError) as exc:  # non-finite task gradients
                bad = getattr(exc, "task", None) or "gradient"
            else:
                self._average_stage_gradients()
                optimizer.step()
        seconds = time.perf_counter() - started
        self._account(out.batch_size, values, bad, seconds)
        if out.task_counts is not None:
            self.last.task_counts = out.task_counts.detach().double().tolist()
        self.epoch_ended = self.position.advance(self.epoch_length)
        if self.epoch_ended:
            self.stage.end_epoch()

    # ------------------------------------------------------------------------------- helpers
    def _global_losses(self, losses):
        """Under ``--nproc``: each task's loss with the VALUE of the global batch (the mean over the
        ranks) and the GRADIENT of this rank's, ``l + (mean − l).detach()``. Stages then weigh and
        keep statistics of the same losses on every rank (their weights and buffers stay equal), and
        a stage's nonlinear use of a loss (log L, L / L(0)) gets the global batch's derivative, which
        DDP's average of the ranks' gradients then is."""
        if self.world_size == 1:
            return losses
        values = torch.stack([losses[t].detach().reshape(()).double() for t in self.tasks])
        dist.all_reduce(values)
        values /= self.world_size
        return {t: losses[t] + (values[i].to(losses[t]) - losses[t].detach()) for i, t in enumerate(self.tasks)}

    def _average_stage_gradients(self) -> None:
        """The stage's own parameters (UW's log-variances, LDC-MTL's router) are outside DMP's DDP:
        average their gradients over the ranks, so every rank steps them alike and they stay equal."""
        if self.world_size == 1:
            return
        for p in self.stage.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world_size

    def _agree(self, bad: str | None, stop: bool) -> tuple[str | None, bool]:
        """The same decisions on every rank: skip this step when any rank saw a non-finite loss;
        stop after it when any rank was asked to stop (SIGTERM)."""
        if self.world_size == 1:
            return bad, stop
        flags = torch.tensor([0 if bad is None else 1, int(stop)], dtype=torch.int32)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return bad or ("another rank" if int(flags[0]) else None), bool(flags[1])

    def _account(self, batch_size: int, values: dict[str, float], bad: str | None, seconds: float) -> None:
        c = self.counters
        self.last = StepRecord(seconds, batch_size, values,
                               {**self.stage.diagnostics(), **self.rule.diagnostics()}, bad)
        c.step_seconds += seconds
        if bad is not None:
            c.skipped += 1
            c.consecutive_skipped += 1
            if c.consecutive_skipped >= self.max_nonfinite:
                raise TrainingDiverged(
                    f"{c.consecutive_skipped} consecutive steps had a non-finite loss (last: task "
                    f"'{bad}', at batch {self.position.consumed}); the run stopped and the last good "
                    "checkpoint is unchanged. Lower trainer.lr or check the input features")
            return
        c.steps += 1
        c.consecutive_skipped = 0
        self.acting.observe(self.last.diagnostics)
        c.samples += batch_size * self.world_size
        if c.steps % self.log_every == 0:
            self._log_losses(values)

    def _log_losses(self, values: dict[str, float]) -> None:
        """Per-task losses (mean over ranks) and the stage's diagnostics to Lightning's logger."""
        vector = torch.tensor([values[t] for t in self.tasks], dtype=torch.float64)
        if self.world_size > 1:
            dist.all_reduce(vector)
            vector /= self.world_size
        logged = {f"loss/{t}": float(v) for t, v in zip(self.tasks, vector)}
        logged["loss/sum"] = float(vector.sum())
        logged[STEP_COLUMN] = float(self.counters.steps)  # the run's own step: kept across --resume
        logged.update({f"stage/{k}": v for k, v in self.last.diagnostics.items()})
        self.log_dict(logged, on_step=True, on_epoch=False, batch_size=self.last.samples * self.world_size)
        self.log("loss", logged["loss/sum"], prog_bar=True, on_step=True, logger=False)

    # ---------------------------------------------------------------------------- checkpoints
    def checkpoint_payload(self, config_digest: str) -> dict[str, Any]:
        """This rank's whole state (its shards only), as plain tensors (``weights_only`` loads)."""
        return {
            "model": plain_state(self.model.state_dict()),
            "dense_optimizer": plain_state(self.dense_optimizer.state_dict()),
            "fused_optimizer": plain_state(self.trainable.optimizer_state()),
            "stage": plain_state(self.stage.state_dict()),
            "acting": self.acting.state_dict(),
            "position": self.position.to_dict(),
            "counters": vars(self.counters).copy(),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
            "config_digest": config_digest,
        }

    @torch.no_grad()
    def restore(self, payload: dict[str, Any]) -> None:
        """Put this rank back exactly where :meth:`checkpoint_payload` was taken."""
        restore_into(self.model.state_dict(), payload["model"], "model")
        self.trainable.load_optimizer_state(payload["fused_optimizer"])
        self.dense_optimizer.load_state_dict(payload["dense_optimizer"])
        self.stage.load_state_dict(payload["stage"])
        if "acting" in payload:  # checkpoints from before stage_acting: the window restarts
            self.acting.load_state_dict(payload["acting"])
        self.position = DataPosition(**payload["position"])
        self.counters = Counters(**payload["counters"])
        torch.set_rng_state(payload["rng"]["torch"])
        random.setstate(payload["rng"]["python"])
