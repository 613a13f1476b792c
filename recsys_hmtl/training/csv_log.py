"""The per-rank ``logs/rank<r>/metrics.csv`` of a run, kept across ``--resume``.

Lightning's CSV writer deletes an existing ``metrics.csv`` when it starts, so a resumed run lost the
history logged before the stop. :class:`ResumableCSVLogger` keeps the rows of the steps the resumed
checkpoint covers (``train_step`` ≤ the checkpoint's steps) and drops the ones logged after it,
which the resumed run logs again: the file reads as one uninterrupted run.
"""

from __future__ import annotations

import csv
import os
import warnings

from pytorch_lightning.loggers import CSVLogger

STEP_COLUMN = "train_step"  # the optimizer steps taken when the row was logged (MultiTaskTraining)


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` that keeps an earlier ``metrics.csv`` up to step ``keep_until`` (None: a new run)."""

    def __init__(self, *args, keep_until: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.keep_until = keep_until

    @property
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        path = os.path.join(self.log_dir, "metrics.csv")
        kept, header = [], []
        if self.keep_until is not None and os.path.isfile(path):
            with open(path, newline="") as file:
                reader = csv.DictReader(file)
                header = list(reader.fieldnames or [])
                kept = [row for row in reader if _step(row) is not None and _step(row) <= self.keep_until]
        with warnings.catch_warnings():  # its "will be deleted" is untrue here: the rows are kept
            warnings.filterwarnings("ignore", message="Experiment logs directory")
            writer = super().experiment  # deletes metrics.csv
        if header:
            with open(path, "w", newline="") as file:
                out = csv.DictWriter(file, fieldnames=header)
                out.writeheader()
                out.writerows(kept)
            writer.metrics_keys = list(header)  # later rows append under the same header
        return writer


def _step(row: dict) -> int | None:
    try:
        return int(float(row.get(STEP_COLUMN) or ""))
    except ValueError:
        return None
