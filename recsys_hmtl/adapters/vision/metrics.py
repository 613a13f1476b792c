"""Vision metrics: per-task accuracy, per-attribute F1 at threshold 0.5, and Δm% against STL.

**Accuracy**: correct predictions / images, per task; ``avg_accuracy`` is their mean over tasks
(the report's primary metric; changes in points).

**F1** (binary tasks, CelebA): per attribute over every image of the split,
``F1 = 2·TP / (2·TP + FP + FN)`` with ``ŷ = 1`` when p(1) > 0.5, then ``avg_f1`` = the mean over
attributes, as FAMO's and FairGrad's CelebA code reports it (their ``2PR / (P + R)`` with 1e-8
guards equals this; an attribute with no positive and no predicted positive scores 0 there, and
here too).

**Δm%** (seed 003 §5 "Baselines and evaluation", after Maninis et al., 2019)::

    Δm% = (1/K) Σ_k (−1)^{δ_k} (M_m,k − M_b,k) / M_b,k · 100,   δ_k = 1 if higher is better, else 0

``M_m,k``: the multi-task model's metric on task k; ``M_b,k``: the single-task (STL) model's.
With seed 003's δ_k an accuracy above STL gives a *negative* term: Δm% is a drop, lower is better
(seed 003 Table 1 "Δm% ↓", LDC-MTL −1.31 on CelebA). Maninis et al. write the same sum with the
opposite sign convention (l_k = 1 for lower-is-better: a gain is positive); this module follows
the seed. K counts the tasks that have an STL reference (CelebA: a configurable subset).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def accuracy(predicted: np.ndarray, target: np.ndarray) -> float:
    """Share of equal entries (NaN for no rows)."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    return float((predicted == target).mean()) if target.size else float("nan")


def f1_score(tp: int, fp: int, fn: int) -> float:
    """``2TP / (2TP + FP + FN)``; 0 when there is neither a positive nor a predicted positive."""
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def binary_scores(predicted: np.ndarray, target: np.ndarray) -> dict:
    """Accuracy, precision, recall, F1 and counts of 0/1 predictions of one binary task."""
    predicted, target = np.asarray(predicted).astype(bool), np.asarray(target).astype(bool)
    tp = int((predicted & target).sum())
    fp = int((predicted & ~target).sum())
    fn = int((~predicted & target).sum())
    return {"accuracy": accuracy(predicted, target), "f1": f1_score(tp, fp, fn),
            "precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
            "positives": int(target.sum()), "predicted_positives": int(predicted.sum())}


def task_report(predicted: Mapping[str, np.ndarray], target: Mapping[str, np.ndarray], binary: bool) -> dict:
    """``{"tasks": {task: {...}}, "avg_accuracy", ("avg_f1")}`` of one split's predictions."""
    tasks = {}
    for task, pred in predicted.items():
        tasks[task] = binary_scores(pred, target[task]) if binary else {"accuracy": accuracy(pred, target[task])}
    out = {"tasks": tasks, "avg_accuracy": float(np.mean([v["accuracy"] for v in tasks.values()]))}
    if binary:
        out["avg_f1"] = float(np.mean([v["f1"] for v in tasks.values()]))
    return out


def delta_m(multi: Mapping[str, float], single: Mapping[str, float],
            higher_is_better: bool | Mapping[str, bool] = True) -> float:
    """Δm% of ``multi`` (task → metric) against the single-task references ``single`` (task →
    metric), over the tasks of ``single``; seed 003's sign: negative = better than STL."""
    if not single:
        raise ValueError("Δm% needs at least one single-task reference")
    terms = []
    for task, base in single.items():
        if task not in multi:
            raise ValueError(f"the multi-task figures have no task '{task}' (they have {sorted(multi)})")
        if not base:
            raise ValueError(f"the single-task figure of '{task}' is 0: Δm% divides by it")
        higher = higher_is_better if isinstance(higher_is_better, bool) else higher_is_better[task]
        sign = -1.0 if higher else 1.0  # (−1)^{δ_k}, δ_k = 1 for higher-is-better
        terms.append(sign * (float(multi[task]) - float(base)) / float(base))
    return float(np.mean(terms) * 100.0)
