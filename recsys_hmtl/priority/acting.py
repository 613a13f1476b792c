"""Did a loss stage act? One rule for every stage, over a window of its effective per-task weights.

A stage *acts* when the weighting it applies moves with the losses; a stage whose weights stay at a
fixed vector (uniform or not: SCD-VIO with α = 1 on BCE-sized residuals is a fixed ≈ 0.5^k
weighting) behaves like ``weighted`` with fixed weights, whatever its equations say.

Each step, the effective weights are read from the stage's diagnostics ``weight/<task>`` (the
coefficient of L_i in a scalarising stage's objective, or of g_i in a gradient stage's direction)
and normalised to sum 1. Over the last ``size`` steps, per task, the spread is the interquartile
range (p75 − p25) of its normalised weight: robust to a few odd steps, and zero for any fixed
weighting. **Rule:** the stage acts when some task's spread exceeds 10 % of 1/K
(:data:`ACTING_FRACTION`). A stage without ``weight/<task>`` diagnostics reads as unknown.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

ACTING_FRACTION = 0.1  # of 1/K: the spread a task's normalised weight must exceed
DEFAULT_WINDOW = 200  # steps
RULE = ("acting when some task's normalised weight (weights / their sum, per step) has an "
        "interquartile range over the last {window} steps above {fraction:g} x 1/K")


class WeightWindow:
    """The last ``size`` normalised weight vectors of a stage (a ring buffer, checkpointable)."""

    def __init__(self, tasks: Sequence[str], size: int = DEFAULT_WINDOW) -> None:
        if size < 4:
            raise ValueError(f"the acting window needs at least 4 steps, got {size}")
        self.tasks = tuple(tasks)
        self.size = size
        self.values = torch.zeros(size, len(self.tasks), dtype=torch.float64)
        self.count = 0  # weight vectors seen in all (the next row to write is count % size)

    def observe(self, diagnostics: Mapping[str, float]) -> Tensor | None:
        """Add this step's weights (from ``weight/<task>``); returns the normalised vector, or None
        when the stage reports no weights (or they do not sum to a positive finite number)."""
        try:
            raw = torch.tensor([float(diagnostics[f"weight/{t}"]) for t in self.tasks], dtype=torch.float64)
        except KeyError:
            return None
        total = float(raw.sum())
        if not (total > 0 and torch.isfinite(raw).all()):
            return None
        normalised = raw / total
        self.values[self.count % self.size] = normalised
        self.count += 1
        return normalised

    def summary(self) -> dict[str, Any]:
        """``{"acting": True | False | None, "rule", "window_steps", "threshold", "max_spread",
        "tasks": {task: {"mean", "spread", "min", "max"}}}`` (``acting`` None: no weights seen)."""
        k = len(self.tasks)
        threshold = ACTING_FRACTION / k
        out: dict[str, Any] = {"rule": RULE.format(window=self.size, fraction=ACTING_FRACTION),
                               "window_steps": min(self.count, self.size), "threshold": threshold}
        if self.count == 0:
            return {**out, "acting": None, "max_spread": None, "tasks": {}}
        seen = self.values[: min(self.count, self.size)]
        q = torch.quantile(seen, torch.tensor([0.25, 0.75], dtype=torch.float64), dim=0)
        spread = q[1] - q[0]
        out["tasks"] = {t: {"mean": float(seen[:, i].mean()), "spread": float(spread[i]),
                            "min": float(seen[:, i].min()), "max": float(seen[:, i].max())}
                        for i, t in enumerate(self.tasks)}
        out["max_spread"] = float(spread.max())
        out["acting"] = bool(out["max_spread"] > threshold)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"values": self.values.clone(), "count": self.count, "size": self.size}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state["size"]) != self.size or tuple(state["values"].shape) != tuple(self.values.shape):
            return  # another window size on resume: start the window afresh
        self.values.copy_(state["values"])
        self.count = int(state["count"])
