"""Windowed per-task log loss, normalised entropy and calibration of the training batches (issue 16
part 1, the live half): our own counts over the last ``window`` steps, not ``torchrec.metrics``.

Why our own: the offline figures (:mod:`~recsys_hmtl.evaluation.calibration`) are exact and the live
ones must be the same definitions; a window of (rows, Σ p, Σ y, Σ log loss) per step is all they
need, costs one small copy per step, and works for every adapter whose tasks are binary, while
TorchRec's ``RecMetricModule`` wants its own model-output contract and a second forward bookkeeping.

Per task over the window: ``logloss`` = Σ (loss · rows) / Σ rows (the step's BCE is the batch's mean
log loss), ``ne`` = logloss / H(positive rate), ``calibration`` = Σ p / Σ y.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Mapping, Sequence


class QualityWindow:
    """The last ``window`` steps' per-task (rows, Σ predicted probability, Σ positives, Σ log loss)."""

    def __init__(self, tasks: Sequence[str], window: int = 100) -> None:
        self.tasks = tuple(tasks)
        self._steps: deque[tuple[int, tuple[tuple[float, float], ...], tuple[float, ...]]] = deque(
            maxlen=max(1, int(window)))

    def observe(self, rows: int, counts: Sequence[Sequence[float]], losses: Mapping[str, float]) -> None:
        """One step: its rows, per task (Σ p, Σ y) in task order, and its per-task mean losses."""
        self._steps.append((int(rows), tuple((float(p), float(y)) for p, y in counts),
                            tuple(float(losses[t]) for t in self.tasks)))

    def summary(self) -> dict[str, dict[str, float]]:
        """``{task: {logloss, ne, calibration, positive_rate}}`` over the window (NaN where undefined)."""
        rows = sum(n for n, _, _ in self._steps)
        out = {}
        for j, task in enumerate(self.tasks):
            predicted = sum(c[j][0] for _, c, _ in self._steps)
            observed = sum(c[j][1] for _, c, _ in self._steps)
            logloss = sum(n * loss[j] for n, _, loss in self._steps) / rows if rows else math.nan
            rate = observed / rows if rows else math.nan
            entropy = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate)) if 0 < rate < 1 else math.nan
            out[task] = {"logloss": logloss, "ne": logloss / entropy if entropy == entropy else math.nan,
                         "calibration": predicted / observed if observed else math.nan, "positive_rate": rate}
        return out
