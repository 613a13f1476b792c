"""Running per-task threshold estimators (SCD-VIO's self-calibrated ε_i and its Table 5 ablations).

Each estimator takes the detached ``[K]`` loss vector of the current step and returns the threshold
*including* that step (Algorithm 1 of seed 001 updates the mean before taking the residual). All
state lives in buffers, so ``state_dict`` round trips resume exactly.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ._hparams import choose, per_task, positive, unit_interval, unused

MIN_SPREAD = 1e-8  # floor of RunningSpread: a task whose loss never moves gets α = 1e-8, not 0


class ThresholdEstimator(nn.Module):
    """``update(values)`` adds one step's detached ``[K]`` values, returns the ``[K]`` thresholds."""

    def update(self, values: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class RunningMean(ThresholdEstimator):
    """Cumulative mean, Eq. 2 of seed 001, by Welford's update (Algorithm 1, lines 4-6)."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("mean", torch.zeros(num_tasks))

    def update(self, values: Tensor) -> Tensor:
        self.count += 1
        self.mean += (values.to(self.mean) - self.mean) / self.count.to(self.mean)
        return self.mean.clone()


class RunningSpread(nn.Module):
    """Running sample standard deviation of each task's detached loss (Welford's online variance),
    for SCD-VIO's ``alpha='auto'``: ``update(values)`` adds one step and returns the ``[K]`` spread
    *including* that step, 1.0 until two steps have been seen (a single value has no spread),
    floored at :data:`MIN_SPREAD`. Float64 buffers (the sum of squares grows with the step count);
    ``state_dict`` round trips resume exactly."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("mean", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(num_tasks, dtype=torch.float64))

    def update(self, values: Tensor) -> Tensor:
        values = values.detach().to(self.mean)
        self.count += 1
        delta = values - self.mean
        self.mean += delta / self.count.to(self.mean)
        self.m2 += delta * (values - self.mean)
        return self.spread()

    def spread(self) -> Tensor:
        """The current ``[K]`` spread (1.0 before two steps), without adding a step."""
        n = int(self.count)
        if n < 2:
            return torch.ones_like(self.mean)
        return (self.m2.clamp_min(0) / (n - 1)).sqrt().clamp_min(MIN_SPREAD)


class RunningEMA(ThresholdEstimator):
    """Exponential moving average ``e <- d·e + (1-d)·x``, started at the first value (Table 5, EMA)."""

    def __init__(self, num_tasks: int, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))
        self.register_buffer("value", torch.zeros(num_tasks))

    def update(self, values: Tensor) -> Tensor:
        values = values.to(self.value)
        if bool(self.started):
            self.value.mul_(self.decay).add_(values, alpha=1.0 - self.decay)
        else:
            self.value.copy_(values)
            self.started.fill_(True)
        return self.value.clone()


class WindowedMedian(ThresholdEstimator):
    """Median of the last ``window`` values (Table 5, historical median over a bounded window)."""

    def __init__(self, num_tasks: int, window: int) -> None:
        super().__init__()
        self.window = window
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("history", torch.zeros(window, num_tasks))

    def update(self, values: Tensor) -> Tensor:
        slot = int(self.count) % self.window
        self.history[slot] = values.to(self.history)
        self.count += 1
        filled = self.history[: min(int(self.count), self.window)]
        return torch.quantile(filled, 0.5, dim=0)


class FixedThreshold(ThresholdEstimator):
    """A manual threshold per task (Table 5, "fixed manual threshold")."""

    def __init__(self, thresholds: Tensor) -> None:
        super().__init__()
        self.register_buffer("value", thresholds.clone())

    def update(self, values: Tensor) -> Tensor:
        return self.value.clone()


def _mean(stage, tasks, ema_decay, window, fixed):
    unused(stage, "ema_decay", ema_decay, "with threshold='mean'")
    unused(stage, "window", window, "with threshold='mean'")
    unused(stage, "fixed_thresholds", fixed, "with threshold='mean'")
    return RunningMean(len(tasks))


def _ema(stage, tasks, ema_decay, window, fixed):
    unused(stage, "window", window, "with threshold='ema'")
    unused(stage, "fixed_thresholds", fixed, "with threshold='ema'")
    decay = 0.9 if ema_decay is None else unit_interval(stage, "ema_decay", ema_decay)
    return RunningEMA(len(tasks), decay)


def _median(stage, tasks, ema_decay, window, fixed):
    unused(stage, "ema_decay", ema_decay, "with threshold='median'")
    unused(stage, "fixed_thresholds", fixed, "with threshold='median'")
    size = 1000 if window is None else positive(stage, "window", window)
    if size != int(size):
        raise ValueError(f"stage '{stage}': window must be a whole number of steps, got {window!r}")
    return WindowedMedian(len(tasks), int(size))


def _fixed(stage, tasks, ema_decay, window, fixed):
    unused(stage, "ema_decay", ema_decay, "with threshold='fixed'")
    unused(stage, "window", window, "with threshold='fixed'")
    if fixed is None:
        raise ValueError(
            f"stage '{stage}': threshold='fixed' needs fixed_thresholds "
            f"(one value per task {list(tasks)})"
        )
    return FixedThreshold(per_task(stage, "fixed_thresholds", fixed, tasks))


THRESHOLDS: dict[str, Callable[..., ThresholdEstimator]] = {
    "mean": _mean,
    "ema": _ema,
    "median": _median,
    "fixed": _fixed,
}


def build_threshold(
    stage: str, kind: str, tasks, *, ema_decay=None, window=None, fixed_thresholds=None
) -> ThresholdEstimator:
    """The estimator ``kind`` (mean | ema | median | fixed); options of another kind are rejected."""
    factory = choose(stage, "threshold", kind, THRESHOLDS)
    return factory(stage, tuple(tasks), ema_decay, window, fixed_thresholds)
