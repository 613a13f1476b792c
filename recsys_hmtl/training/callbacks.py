"""Lightning callbacks of the main job: periodic atomic checkpoints and Prometheus metrics."""

from __future__ import annotations

import logging
import time

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

from .checkpoint import CheckpointStore
from .module import MultiTaskTraining

log = logging.getLogger(__name__)


class PeriodicCheckpoint(pl.Callback):
    """Every ``every`` consumed batches and at the end of training (SPEC §6). ``seconds`` is the
    time spent writing, which the throughput figure leaves out."""

    def __init__(self, store: CheckpointStore, every: int, config_digest: dict, inputs: list[dict]) -> None:
        self.store, self.every, self.digest, self.inputs = store, every, config_digest, inputs
        self.last_saved: int | None = None
        self.seconds = 0.0

    def save(self, module: MultiTaskTraining) -> None:
        consumed = module.position.consumed
        if consumed == self.last_saved:
            return
        started = time.perf_counter()
        path = self.store.save(consumed, module.checkpoint_payload(self.digest),
                               meta={"steps": module.counters.steps, "inputs": self.inputs})
        self.seconds += time.perf_counter() - started
        self.last_saved = consumed
        log.info("checkpoint: %s (batch %d)", path, consumed)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        # Not during a run of non-finite steps: the last checkpoint stays the last good step's.
        due = self.every > 0 and module.position.consumed % self.every == 0
        if due and module.counters.consecutive_skipped == 0:
            self.save(module)

    def on_train_end(self, trainer, module) -> None:
        self.save(module)

    def on_exception(self, trainer, module, exception: BaseException) -> None:
        """SIGTERM (a scheduler stopping the job): Lightning finishes the current step, then raises
        ``SIGTERMException``; one process checkpoints that step. Several ranks receive the signal
        at different steps, so there the run stops at the last periodic checkpoint."""
        if (isinstance(exception, SIGTERMException) and self.store.world_size == 1
                and module.counters.consecutive_skipped == 0):
            self.save(module)


class PrometheusMetrics(pl.Callback):
    """Feeds every step into :class:`~recsys_hmtl.monitoring.TrainingMetrics` (served on /metrics)."""

    def __init__(self, metrics) -> None:
        self.metrics = metrics

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        record = module.last
        if record.nonfinite_task is not None:
            self.metrics.observe_nonfinite(task=record.nonfinite_task)
            return
        self.metrics.observe_step(seconds=record.seconds, samples=record.samples,
                                  losses=record.losses, diagnostics=record.diagnostics)
