"""Loss-stage diagnostics (``"<quantity>/<task>"`` or ``"<quantity>"`` keys) mapped onto gauges.

The well-known per-task quantities have their own gauges (``recsys_hmtl_stage_weight{task}``, ...),
``feasibility_gap`` (seed 001 App. B.3) has one gauge per run, and every other quantity goes to
``recsys_hmtl_stage_diagnostic{quantity, task}``. Quantity names come from a small fixed set per
stage, so the ``quantity`` label stays low-cardinality. NaN and infinite values are skipped.
"""

from __future__ import annotations

import math
from typing import Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Gauge

#: quantity -> (metric name, help) for the per-task quantities with a gauge of their own.
KNOWN_QUANTITIES: dict[str, tuple[str, str]] = {
    "weight": ("recsys_hmtl_stage_weight", "Weight the loss stage gave each task's loss at the last step."),
    "gate": ("recsys_hmtl_stage_gate", "Priority gate of each task at the last step (SCD-VIO: 0 closed, 1 open)."),
    "threshold": ("recsys_hmtl_stage_threshold", "Loss threshold (epsilon) of each task at the last step."),
    "residual": ("recsys_hmtl_stage_residual", "Loss minus threshold of each task at the last step."),
}
FEASIBILITY_GAP = ("recsys_hmtl_stage_feasibility_gap", "Mean positive residual of the lower-priority tasks.")
OTHER = ("recsys_hmtl_stage_diagnostic", "Any other loss-stage diagnostic; task is empty for run-wide ones.")


def split_key(key: str) -> tuple[str, str]:
    """``"gate/is_click"`` -> ``("gate", "is_click")``; ``"feasibility_gap"`` -> ``("feasibility_gap", "")``."""
    quantity, _, task = key.partition("/")
    return quantity, task


def finite_items(values: Mapping[str, float] | None) -> Iterator[tuple[str, float]]:
    """The ``(key, float)`` pairs whose value is a finite number."""
    for key, value in (values or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            yield key, number


class StageGauges:
    """The gauges for stage diagnostics, all carrying ``labelnames`` plus their own labels."""

    def __init__(self, registry: CollectorRegistry, labelnames: Sequence[str]) -> None:
        base = list(labelnames)
        self.known = {
            quantity: Gauge(name, doc, base + ["task"], registry=registry)
            for quantity, (name, doc) in KNOWN_QUANTITIES.items()
        }
        self.feasibility_gap = Gauge(*FEASIBILITY_GAP, base, registry=registry)
        self.other = Gauge(*OTHER, base + ["quantity", "task"], registry=registry)

    def set(self, diagnostics: Mapping[str, float] | None, labels: Mapping[str, str]) -> None:
        """Set every finite diagnostic; ``labels`` are the values for ``labelnames``."""
        for key, value in finite_items(diagnostics):
            quantity, task = split_key(key)
            if quantity in self.known:
                self.known[quantity].labels(**labels, task=task).set(value)
            elif quantity == "feasibility_gap" and not task:
                self.feasibility_gap.labels(**labels).set(value)
            else:
                self.other.labels(**labels, quantity=quantity, task=task).set(value)
