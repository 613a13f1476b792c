"""PNG of a sweep's fronts in two chosen tasks (matplotlib, Agg backend).

Every method's runs in its own colour and marker; the runs that are non-dominated in this 2-D
projection joined by a line along x (the others drawn fainter); an optional dense reference front
as a thin grey line; the legend gives each method's hypervolume when one is passed.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

from .dominance import non_dominated
from .front import FrontRow
from .objectives import directions_for

__all__ = ["plot_front"]

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_front(path: str | os.PathLike[str], rows: Sequence[FrontRow], x_task: str, y_task: str,
               directions: Sequence[str] | Mapping[str, str],
               reference_front: Sequence[Sequence[float]] | None = None,
               hypervolumes: Mapping[str, float] | None = None, *, metric: str = "AUC",
               title: str | None = None) -> Path:
    """Write the plot to ``path`` (atomically) and return it. ``directions`` is a task → direction
    mapping or the pair (x direction, y direction); ``reference_front`` holds (x, y) pairs."""
    if x_task == y_task:
        raise ValueError(f"x_task and y_task must differ, both are {x_task!r}")
    found = directions_for([x_task, y_task], directions)
    reference = _pairs(reference_front) if reference_front is not None else []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    try:
        if reference:
            xs, ys = zip(*sorted(reference))
            ax.plot(xs, ys, color="grey", linewidth=0.8, label="reference front", zorder=1)
        colours = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
        methods = list(dict.fromkeys(row.method for row in rows))
        for i, method in enumerate(methods):
            points = [row.values([x_task, y_task]) for row in rows if row.method == method]
            points = [p for p in points if all(math.isfinite(v) for v in p)]
            colour, marker = colours[i % len(colours)], _MARKERS[i % len(_MARKERS)]
            label = method
            if hypervolumes is not None and method in hypervolumes:
                label += f" (HV {hypervolumes[method]:.4g})"
            keep = non_dominated(points, found)
            front = sorted(p for p, k in zip(points, keep) if k)
            others = [p for p, k in zip(points, keep) if not k]
            if front:
                ax.plot(*zip(*front), color=colour, marker=marker, linewidth=1.2, label=label, zorder=3)
            else:
                ax.plot([], [], color=colour, marker=marker, linewidth=1.2, label=label)
            if others:
                ax.scatter(*zip(*others), color=colour, marker=marker, alpha=0.35, zorder=2)
        ax.set_xlabel(_axis_label(metric, x_task, found[0]))
        ax.set_ylabel(_axis_label(metric, y_task, found[1]))
        ax.set_title(title or f"Pareto fronts: {y_task} against {x_task}", fontsize=9)
        if methods or reference:
            ax.legend(fontsize=7)
        ax.grid(True, linewidth=0.3, alpha=0.5)
        fig.tight_layout()
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def _axis_label(metric: str, task: str, direction: str) -> str:
    better = "higher" if direction == "max" else "lower"
    return f"{metric} {task} ({better} is better)".strip()


def _pairs(front: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    pairs = []
    for i, point in enumerate(front):
        try:
            x, y = (float(v) for v in point)
        except (TypeError, ValueError):
            raise ValueError(f"reference_front[{i}] must be an (x, y) pair of numbers, got {point!r}") from None
        if math.isfinite(x) and math.isfinite(y):
            pairs.append((x, y))
    return pairs


def _save(fig, path: Path) -> Path:
    """The PNG written to a temporary name in the same folder, then renamed over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
