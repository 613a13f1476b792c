"""Exact AUC on 10M scores: ``recsys_hmtl.evaluation.auc`` beside ``sklearn.metrics.roc_auc_score``.

Data: 10M float32 scores (``--quick``: 200k) on a 2^-12 grid, so most scores are tied, ~5 %
positives whose scores are shifted up a little (AUC ≈ 0.6). Both implementations run on the same
arrays in the same process, alternating, each repetition in a fresh random order; the median wall
time is reported. Targets (SPEC §10): sklearn/ours ≥ 5x; |ours − sklearn| ≤ 1e-9.
"""

from __future__ import annotations

import random
import statistics
import time

import numpy as np

from recsys_hmtl.evaluation import auc

FULL_N, QUICK_N = 10_000_000, 200_000
POS_RATE, GRID = 0.05, 2**12
SPEED_TARGET, DIFF_TARGET = 5.0, 1e-9


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < POS_RATE).astype(np.int8)
    scores = (np.floor((rng.random(n, dtype=np.float32) + 0.15 * labels) * GRID) / GRID).astype(np.float32)
    return labels, scores


def main(quick: bool = False) -> None:
    from sklearn.metrics import roc_auc_score

    n, reps = (QUICK_N, 5) if quick else (FULL_N, 3)
    labels, scores = make_data(n)
    print(f"{n:,} float32 scores, {int(labels.sum()):,} positives, {len(np.unique(scores)):,} distinct "
          f"scores; median of {reps} repetitions", flush=True)
    fns = {"ours": auc, "sklearn": roc_auc_score}
    times: dict[str, list[float]] = {k: [] for k in fns}
    values: dict[str, float] = {}
    order = list(fns)
    rng = random.Random(0)
    for _ in range(reps):
        rng.shuffle(order)
        for name in order:
            started = time.perf_counter()
            values[name] = float(fns[name](labels, scores))
            times[name].append(time.perf_counter() - started)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in fns:
        print(f"{name:8} {med[name]:8.3f} s   AUC = {values[name]:.12f}")
    ratio, diff = med["sklearn"] / med["ours"], abs(values["ours"] - values["sklearn"])
    print(f"sklearn/ours time: {ratio:.1f}x (target >= {SPEED_TARGET:g}x: "
          f"{'met' if ratio >= SPEED_TARGET else 'NOT met'}); |ours - sklearn| = {diff:.2e} "
          f"(target <= {DIFF_TARGET:g}: {'met' if diff <= DIFF_TARGET else 'NOT met'})"
          f"{'  [quick: size too small for the speed target]' if quick else ''}")


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
