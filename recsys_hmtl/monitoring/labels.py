"""The labels that identify one training or evaluation run in every metric (SPEC §8)."""

from __future__ import annotations

import operator
from dataclasses import dataclass

#: Labels every per-process metric carries, in this order.
RUN_LABELNAMES: tuple[str, ...] = ("run_id", "stage", "model", "dataset", "rank")
#: Labels a pushed metric carries itself; ``job`` and :data:`GROUPING_LABELNAMES` come from the
#: grouping key.
PUSH_LABELNAMES: tuple[str, ...] = ("run_id",)
#: The Pushgateway grouping key below ``job``: one group per configuration, not per run, so that a
#: scheduled rerun replaces its group (the gateway never forgets a group on its own).
GROUPING_LABELNAMES: tuple[str, ...] = ("dataset", "model", "stage", "group")


@dataclass(frozen=True)
class RunLabels:
    """Who produced a metric: run id, loss stage, model, dataset and the process rank.

    All are low-cardinality: one ``run_id`` per run (not per step), a stage/model/dataset from the
    config's fixed vocabularies, and ``rank`` below the world size.
    """

    run_id: str
    stage: str
    model: str
    dataset: str
    rank: int = 0
    group: str = "default"  # metrics.group: keeps the pushes of several runs of one config apart

    def __post_init__(self) -> None:
        for name in ("run_id", "stage", "model", "dataset", "group"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"RunLabels.{name} must be a non-empty string, got {value!r}")
        try:
            rank = operator.index(self.rank)  # accepts NumPy / torch integer scalars too
        except TypeError:
            rank = -1
        if isinstance(self.rank, bool) or rank < 0:
            raise ValueError(f"RunLabels.rank must be a non-negative integer, got {self.rank!r}")
        object.__setattr__(self, "rank", rank)

    def as_dict(self) -> dict[str, str]:
        """Every run label as strings (for per-process metrics)."""
        return {name: str(getattr(self, name)) for name in RUN_LABELNAMES}

    def push_labels(self) -> dict[str, str]:
        """The labels a pushed metric carries (the others travel in the grouping key)."""
        return {name: str(getattr(self, name)) for name in PUSH_LABELNAMES}

    def grouping_key(self) -> dict[str, str]:
        """The Pushgateway grouping key below ``job``."""
        return {name: str(getattr(self, name)) for name in GROUPING_LABELNAMES}
