"""Exact AUC and GAUC (SPEC §7).

AUC is the Mann-Whitney statistic with average ranks for ties: U counts, over all (positive,
negative) pairs, 1 when the positive scores higher and 1/2 when they tie; AUC = U / (P·N). We keep
2U as an exact integer (no floating-point accumulation at all) and divide once, so the result is the
correctly rounded float64 of the exact rational AUC, identical however the data were split or merged.

Inputs are 1-D NumPy arrays or torch tensors (any device; copied to host). Labels are 0/1 (bool, int
or float); scores are any real dtype and must be finite. Scores are never cast: float32 scores are
compared as float32, exactly as the model produced them.

A single-class input (all labels equal, or empty) has no defined AUC: :func:`auc` returns NaN rather
than raising, so an evaluation job always finishes; reports turn NaN into JSON ``null``.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:  # torch is only accepted, never required
    import torch

    ArrayLike = Union[np.ndarray, torch.Tensor]
else:
    ArrayLike = Any

__all__ = ["ArrayLike", "auc", "gauc", "as_numpy", "check_labels_scores", "twice_u"]


def as_numpy(x: ArrayLike, name: str, ndim: int | None = 1) -> np.ndarray:
    """``x`` as a NumPy array (torch tensors detached and copied to host); checks ``ndim``."""
    torch_mod = sys.modules.get("torch")  # a tensor can only exist if torch was imported
    if torch_mod is not None and isinstance(x, torch_mod.Tensor):
        x = x.detach()
        if x.dtype == torch_mod.bfloat16:  # NumPy has no bfloat16; float32 holds it exactly
            x = x.float()
        x = x.cpu().numpy()
    arr = np.asarray(x)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(arr.shape)}")
    return arr


def check_labels_scores(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate arrays of equal shape; returns (boolean positives mask, scores).

    Raises ValueError on a shape mismatch, labels outside {0, 1} or non-finite / non-numeric scores,
    naming the first bad element.
    """
    if labels.shape != scores.shape:
        raise ValueError(
            f"labels and scores must have the same length: got {labels.shape[0] if labels.ndim else 0}"
            f" labels (shape {tuple(labels.shape)}) and {scores.shape[0] if scores.ndim else 0}"
            f" scores (shape {tuple(scores.shape)})"
        )
    if scores.dtype.kind == "b":
        scores = scores.view(np.uint8)
    elif scores.dtype.kind not in "iuf":
        raise ValueError(f"scores must be real numbers, got dtype {scores.dtype}")
    if scores.dtype.kind == "f":
        finite = np.isfinite(scores)
        if not finite.all():
            i = np.unravel_index(int(np.argmin(finite)), scores.shape)
            raise ValueError(
                f"scores must be finite: found {int(finite.size - finite.sum())} non-finite value(s),"
                f" the first is scores[{_idx(i)}] = {scores[i].item()}"
            )
    if labels.dtype.kind == "b":
        return labels, scores
    if labels.dtype.kind not in "iuf":
        raise ValueError(f"labels must be 0/1 (bool, int or float), got dtype {labels.dtype}")
    positive = labels == 1
    ok = positive | (labels == 0)
    if not ok.all():
        i = np.unravel_index(int(np.argmin(ok)), labels.shape)
        raise ValueError(
            f"labels must be 0 or 1: found {int(ok.size - ok.sum())} other value(s),"
            f" the first is labels[{_idx(i)}] = {labels[i].item()!r}"
        )
    return positive, scores


def _idx(i: tuple[Any, ...]) -> str:
    return ", ".join(str(int(k)) for k in i)


def twice_u(pos_scores: np.ndarray, neg_scores: np.ndarray) -> int:
    """2U (exact integer) for positive and negative score arrays.

    Sorts both, then binary-searches the smaller sorted set in the larger: for a positive s,
    2·(#neg < s) + (#neg == s) = left(s) + right(s).
    """
    n_pos, n_neg = len(pos_scores), len(neg_scores)
    if n_pos == 0 or n_neg == 0:
        return 0
    small, large = (pos_scores, neg_scores) if n_pos <= n_neg else (neg_scores, pos_scores)
    ref, keys = np.sort(large), np.sort(small)  # sorted keys make searchsorted cache-friendly
    total = int(np.searchsorted(ref, keys, "left").sum()) + int(np.searchsorted(ref, keys, "right").sum())
    if n_pos <= n_neg:
        return total
    # keys are negatives: 2·(#pos > s) + (#pos == s) = 2·P − left(s) − right(s)
    return 2 * n_pos * n_neg - total


def auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Exact ROC AUC (average ranks for ties); NaN when only one class is present (or empty)."""
    positive, s = check_labels_scores(as_numpy(labels, "labels"), as_numpy(scores, "scores"))
    pos, neg = s[positive], s[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    return twice_u(pos, neg) / (2 * len(pos) * len(neg))  # Python int division: correctly rounded


def gauc(labels: ArrayLike, scores: ArrayLike, groups: ArrayLike) -> tuple[float, int, int]:
    """Group (user) AUC: Σ_u n_u·AUC_u / Σ_u n_u over users with both classes.

    ``n_u`` is the user's number of impressions (rows). Users whose labels are all equal have no
    AUC: they are skipped and counted. Returns ``(gauc, users_counted, users_skipped)``; gauc is NaN
    when no user is counted. One lexsort by (group, score); no Python loop over users.
    """
    positive, s = check_labels_scores(as_numpy(labels, "labels"), as_numpy(scores, "scores"))
    g = as_numpy(groups, "groups")
    if len(g) != len(s):
        raise ValueError(f"groups and scores must have the same length: got {len(g)} groups and {len(s)} scores")
    n = len(s)
    if n == 0:
        return math.nan, 0, 0
    order = np.lexsort((s, g))
    g, s, positive = g[order], s[order], positive[order]
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    np.not_equal(g[1:], g[:-1], out=new_group[1:])
    new_block = new_group.copy()  # a block = one distinct score inside one group
    new_block[1:] |= s[1:] != s[:-1]

    cum_pos = np.zeros(n + 1, dtype=np.int64)  # cum_pos[i] = positives in rows [0, i)
    np.cumsum(positive, out=cum_pos[1:])
    b_start = np.flatnonzero(new_block)
    b_end = np.append(b_start[1:], n)
    b_pos = cum_pos[b_end] - cum_pos[b_start]
    b_neg = (b_end - b_start) - b_pos
    neg_before = b_start - cum_pos[b_start]  # negatives in rows [0, block start)
    g_first_block = np.flatnonzero(new_group[b_start])
    block_group = np.cumsum(new_group[b_start]) - 1
    neg_before -= neg_before[g_first_block][block_group]  # ... counted from the group's start
    g_u2 = np.add.reduceat(b_pos * (2 * neg_before + b_neg), g_first_block)

    g_start = b_start[g_first_block]
    g_size = np.append(g_start[1:], n) - g_start
    g_pos = cum_pos[g_start + g_size] - cum_pos[g_start]
    g_neg = g_size - g_pos
    counted = (g_pos > 0) & (g_neg > 0)
    users_counted = int(counted.sum())
    users_skipped = len(g_start) - users_counted
    if users_counted == 0:
        return math.nan, 0, users_skipped
    per_user = g_u2[counted] / (2.0 * g_pos[counted] * g_neg[counted])
    weights = g_size[counted].astype(np.float64)
    return float(np.dot(weights, per_user) / weights.sum()), users_counted, users_skipped
