"""Lightning callbacks of the main job: periodic atomic checkpoints, graceful stops, the heap kept
between steps, and Prometheus metrics."""

from __future__ import annotations

import logging
import signal
import threading
import time

import pytorch_lightning as pl

from .checkpoint import CheckpointStore
from .heap import release_freed_memory, retain_freed_memory
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
        if (due or module.stop_agreed) and module.counters.consecutive_skipped == 0:
            self.save(module)

    def on_train_end(self, trainer, module) -> None:
        if not module.stop_agreed:  # a stopped run was checkpointed at its last step already
            self.save(module)


class GracefulStop(pl.Callback):
    """SIGTERM (a scheduler stopping the job) or Ctrl-C (SIGINT) → finish the step every rank agrees
    on, checkpoint it (:class:`PeriodicCheckpoint`), stop. The handler only raises
    ``module.stop_requested``; the training step all-reduces it with the non-finite flag, so all
    ranks stop after the same step (Lightning's own SIGTERM handling, replaced here while training
    runs, stops each rank at the step it happened to be in). A second Ctrl-C interrupts at once
    (the default handler is back after the first). The previous handlers return when fit ends."""

    def __init__(self) -> None:
        self._previous: dict[int, object] = {}

    def on_train_start(self, trainer, module) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def request(signum, frame) -> None:
            module.stop_requested = True
            module.stop_signal = signal.Signals(signum).name
            if signum == signal.SIGINT:
                log.warning("Ctrl-C: checkpointing after this step, then stopping (Ctrl-C again to abort)")
                signal.signal(signal.SIGINT, signal.default_int_handler)

        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, request)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if module.stop_agreed:
            log.info("%s: stopping after batch %d", module.stop_signal, module.position.consumed)
            trainer.should_stop = True

    def teardown(self, trainer, module, stage: str) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


class RetainFreedMemory(pl.Callback):
    """While the fit runs, the steps' freed temporaries stay in the heap for the next step instead of
    going back to the system and page-faulting again (:mod:`~recsys_hmtl.training.heap`); at its end
    the heap's free memory goes back to the system."""

    def on_train_start(self, trainer, module) -> None:
        retain_freed_memory()

    def teardown(self, trainer, module, stage: str) -> None:
        release_freed_memory()


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
        if record.task_counts is not None:
            self.metrics.observe_quality(record.samples, record.task_counts, record.losses)
        if module.counters.steps % module.log_every == 0:
            self.metrics.set_acting(module.acting.summary())
