"""Log loss, normalised entropy and calibration of a task's scores (issue 16 part 1), exact.

From score values with their positive and negative counts (the folded form
:class:`~recsys_hmtl.evaluation.counts.ScoreCounts` merges across shards, or one row each):

* ``logloss`` = −(1/N) Σ [y log p + (1 − y) log(1 − p)], with p clamped to [1e-12, 1 − 1e-12] as
  TorchRec's NE does;
* ``ne`` (normalised entropy, TorchRec's definition) = logloss / H(r), H(r) = −r log r − (1 − r) log(1 − r)
  the entropy of always predicting the positive rate r: below 1 the model beats the base rate; NaN
  when r is 0 or 1;
* ``calibration`` = Σ p / Σ y, predicted over observed positives (1 = calibrated; NaN without positives);
* ``positive_rate`` = r and ``mean_score`` = Σ p / N.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-12
KEYS = ("logloss", "ne", "calibration", "positive_rate", "mean_score")


def score_quality(values: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> dict[str, float]:
    """The figures of the module doc from scores ``values`` with per-value positive / negative counts
    (float64 accumulation)."""
    p = np.clip(np.asarray(values, dtype=np.float64), EPS, 1 - EPS)
    pos, neg = np.asarray(positives, dtype=np.float64), np.asarray(negatives, dtype=np.float64)
    n, n_pos = float(pos.sum() + neg.sum()), float(pos.sum())
    if n == 0:
        return {k: math.nan for k in KEYS}
    logloss = -(float(np.dot(pos, np.log(p))) + float(np.dot(neg, np.log1p(-p)))) / n
    rate = n_pos / n
    entropy = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate)) if 0 < rate < 1 else math.nan
    predicted = float(np.dot(pos + neg, np.asarray(values, dtype=np.float64)))
    return {"logloss": logloss, "ne": logloss / entropy if entropy == entropy else math.nan,
            "calibration": predicted / n_pos if n_pos else math.nan, "positive_rate": rate,
            "mean_score": predicted / n}


def row_quality(positive: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """:func:`score_quality` of rows (``positive``: bool labels), folded to distinct scores first as
    :class:`~recsys_hmtl.evaluation.counts.ScoreCounts` folds them, so the in-memory and the merged
    streaming reports agree to the last bit."""
    positive = np.asarray(positive, dtype=bool)
    values, inverse = np.unique(np.asarray(scores), return_inverse=True)
    pos = np.bincount(inverse, weights=positive, minlength=len(values))
    return score_quality(values, pos, np.bincount(inverse, minlength=len(values)) - pos)
