"""Mergeable, exact per-shard evaluation state for multi-process and streaming evaluation (SPEC §7).

:class:`ScoreCounts` keeps, per task, every distinct score with its positive and negative counts
(int64). That is enough for the exact AUC: merging shards adds counts, and 2U is recomputed as an
integer, so a merged object gives bit-for-bit the :func:`~recsys_hmtl.evaluation.auc` of the
concatenated data. Memory: O(distinct scores) per task (≤ rows; ~24 bytes each).

GAUC needs each user's rows, so with ``with_groups=True`` (the default) the object also keeps the raw
(group, label, score) rows and computes GAUC at the end: memory O(rows) — about
``rows × (8 + T × (1 + score itemsize))`` bytes, i.e. ~45 MB per million rows for 8 float32 tasks.
Pass ``with_groups=False`` for AUC-only streaming at O(distinct scores).

:meth:`ScoreCounts.to_state` gives plain NumPy arrays (or torch tensors) that can be sent with
``torch.distributed.all_gather_object`` or saved; :meth:`ScoreCounts.from_state` rebuilds the object.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from recsys_hmtl.evaluation.auc import ArrayLike, as_numpy, check_labels_scores, gauc
from recsys_hmtl.evaluation.calibration import score_quality

__all__ = ["ScoreCounts"]

_COMPACT_MIN_ROWS = 1 << 20  # buffer raw rows until there are this many (or as many as distinct scores)


class ScoreCounts:
    """Exact, mergeable per-task score counts (plus per-user rows for GAUC)."""

    def __init__(self, tasks: Sequence[str], *, with_groups: bool = True) -> None:
        self.tasks = list(tasks)
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks must be a non-empty list of distinct names, got {self.tasks}")
        self.with_groups = with_groups
        self.rows = 0
        self._values = [np.empty(0, dtype=np.float32) for _ in self.tasks]  # distinct scores, sorted
        self._pos = [np.empty(0, dtype=np.int64) for _ in self.tasks]
        self._neg = [np.empty(0, dtype=np.int64) for _ in self.tasks]
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # (positive mask [n,T], scores [n,T])
        self._pending_rows = 0
        self._rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (groups, labels, scores)

    # -- accumulation -------------------------------------------------------------------------
    def update(self, labels: ArrayLike, scores: ArrayLike, groups: ArrayLike | None = None) -> None:
        """Add a batch: labels and scores ``[N, T]`` (``[N]`` if there is one task), groups ``[N]``."""
        y, s = (self._as_2d(as_numpy(x, name, ndim=None), name) for x, name in ((labels, "labels"), (scores, "scores")))
        positive, s = check_labels_scores(y, s)
        positive, s = positive.copy(), s.copy()  # the caller may reuse its buffers (tensor.numpy() shares)
        if self.with_groups:
            if groups is None:
                raise ValueError("this ScoreCounts keeps groups for GAUC (with_groups=True): pass groups")
            g = as_numpy(groups, "groups")
            if len(g) != len(s):
                raise ValueError(f"groups and scores must have the same length: got {len(g)} and {len(s)}")
            self._rows.append((g.copy(), positive.astype(np.int8), s))
        elif groups is not None:
            raise ValueError("groups given to a ScoreCounts built with with_groups=False")
        self._pending.append((positive, s))
        self._pending_rows += len(s)
        self.rows += len(s)
        if self._pending_rows >= max(_COMPACT_MIN_ROWS, max(len(v) for v in self._values)):
            self._compact()

    def _as_2d(self, x: np.ndarray, name: str) -> np.ndarray:
        if x.ndim == 1 and len(self.tasks) == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != len(self.tasks):
            raise ValueError(f"{name} must have shape [N, {len(self.tasks)}] (tasks {self.tasks}), got {tuple(x.shape)}")
        return x

    def _compact(self) -> None:
        """Fold the buffered raw rows into the distinct-score counts."""
        if not self._pending:
            return
        for j in range(len(self.tasks)):
            values = np.concatenate([self._values[j]] + [s[:, j] for _, s in self._pending])
            pos = np.concatenate([self._pos[j]] + [p[:, j].astype(np.int64) for p, _ in self._pending])
            neg = np.concatenate([self._neg[j]] + [(~p[:, j]).astype(np.int64) for p, _ in self._pending])
            self._values[j], self._pos[j], self._neg[j] = _fold(values, pos, neg)
        self._pending, self._pending_rows = [], 0

    # -- merging and state --------------------------------------------------------------------
    def merge(self, other: ScoreCounts) -> ScoreCounts:
        """A new object holding both shards' data (neither input is modified)."""
        if other.tasks != self.tasks or other.with_groups != self.with_groups:
            raise ValueError(
                f"cannot merge ScoreCounts for tasks {other.tasks} (with_groups={other.with_groups})"
                f" into tasks {self.tasks} (with_groups={self.with_groups})"
            )
        self._compact()
        other._compact()
        out = ScoreCounts(self.tasks, with_groups=self.with_groups)
        out.rows = self.rows + other.rows
        for j in range(len(self.tasks)):
            out._values[j], out._pos[j], out._neg[j] = _fold(
                np.concatenate([self._values[j], other._values[j]]),
                np.concatenate([self._pos[j], other._pos[j]]),
                np.concatenate([self._neg[j], other._neg[j]]),
            )
        out._rows = self._rows + other._rows
        return out

    __add__ = merge

    @classmethod
    def merge_all(cls, parts: Iterable[ScoreCounts]) -> ScoreCounts:
        """Merge any number of shards (e.g. the result of ``all_gather_object``)."""
        parts = list(parts)
        if not parts:
            raise ValueError("merge_all needs at least one ScoreCounts")
        out = parts[0]
        for p in parts[1:]:
            out = out.merge(p)
        return out

    def to_state(self, as_tensors: bool = False) -> dict[str, Any]:
        """Plain arrays: ``tasks``, ``rows``, ``with_groups``, per-task ``values``/``positives``/
        ``negatives`` lists, and (with groups) ``groups [n]``, ``labels [n,T]`` int8, ``scores [n,T]``.

        ``as_tensors=True`` gives torch tensors (loadable with ``torch.load(weights_only=True)``);
        string group ids stay NumPy arrays."""
        self._compact()
        state: dict[str, Any] = {
            "tasks": list(self.tasks), "rows": int(self.rows), "with_groups": self.with_groups,
            "values": list(self._values), "positives": list(self._pos), "negatives": list(self._neg),
        }
        if self.with_groups:
            g, y, s = self._raw_rows()
            state.update(groups=g, labels=y, scores=s)
        if as_tensors:
            import torch  # only on request

            for k in ("values", "positives", "negatives"):
                state[k] = [torch.from_numpy(np.ascontiguousarray(a)) for a in state[k]]
            for k in ("groups", "labels", "scores"):
                if k in state and state[k].dtype.kind in "biuf":
                    state[k] = torch.from_numpy(np.ascontiguousarray(state[k]))
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ScoreCounts:
        """Inverse of :meth:`to_state` (accepts NumPy arrays or torch tensors)."""
        missing = {"tasks", "rows", "with_groups", "values", "positives", "negatives"} - set(state)
        if missing:
            raise ValueError(f"not a ScoreCounts state: missing keys {sorted(missing)}")
        out = cls(state["tasks"], with_groups=bool(state["with_groups"]))
        out.rows = int(state["rows"])
        T = len(out.tasks)
        if not len(state["values"]) == len(state["positives"]) == len(state["negatives"]) == T:
            raise ValueError(f"ScoreCounts state: values/positives/negatives must have one entry per task ({T})")
        out._values = [as_numpy(a, "values") for a in state["values"]]
        out._pos = [as_numpy(a, "positives").astype(np.int64) for a in state["positives"]]
        out._neg = [as_numpy(a, "negatives").astype(np.int64) for a in state["negatives"]]
        if out.with_groups:
            g = as_numpy(state["groups"], "groups")
            y = as_numpy(state["labels"], "labels", ndim=2).astype(np.int8)
            s = as_numpy(state["scores"], "scores", ndim=2)
            if len(g):
                out._rows = [(g, y, s)]
        return out

    def _raw_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._rows:
            T = len(self.tasks)
            return np.empty(0, np.int64), np.empty((0, T), np.int8), np.empty((0, T), np.float32)
        if len(self._rows) > 1:
            self._rows = [tuple(np.concatenate(parts) for parts in zip(*self._rows))]  # type: ignore[misc]
        return self._rows[0]

    # -- metrics ------------------------------------------------------------------------------
    def _index(self, task: str) -> int:
        if task not in self.tasks:
            raise ValueError(f"unknown task '{task}'; tasks: {self.tasks}")
        return self.tasks.index(task)

    def positives(self, task: str) -> int:
        self._compact()
        return int(self._pos[self._index(task)].sum())

    def auc(self, task: str) -> float:
        """Exact AUC of everything added so far; NaN if one class only."""
        self._compact()
        j = self._index(task)
        pos, neg = self._pos[j], self._neg[j]
        n_pos, n_neg = int(pos.sum()), int(neg.sum())
        if n_pos == 0 or n_neg == 0:
            return math.nan
        neg_below = np.cumsum(neg) - neg  # negatives with a strictly smaller score
        u2 = 2 * int(np.dot(pos, neg_below)) + int(np.dot(pos, neg))
        return u2 / (2 * n_pos * n_neg)

    def quality(self, task: str) -> dict[str, float]:
        """Log loss, NE, calibration, positive rate, mean score of everything added (exact, from the
        folded counts: :mod:`~recsys_hmtl.evaluation.calibration`)."""
        self._compact()
        j = self._index(task)
        return score_quality(self._values[j], self._pos[j], self._neg[j])

    def gauc(self, task: str) -> tuple[float, int, int]:
        """``(gauc, users_counted, users_skipped)`` over every row added (needs ``with_groups``)."""
        j = self._index(task)
        if not self.with_groups:
            raise ValueError("GAUC needs per-user rows: build ScoreCounts with with_groups=True")
        g, y, s = self._raw_rows()
        return gauc(y[:, j], s[:, j], g)


def _fold(values: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum the counts of equal scores: (sorted distinct values, positives, negatives)."""
    if values.size == 0:
        return values, pos, neg
    uniq, inverse = np.unique(values, return_inverse=True)
    out_pos = np.bincount(inverse, weights=pos, minlength=len(uniq))
    out_neg = np.bincount(inverse, weights=neg, minlength=len(uniq))
    return uniq, out_pos.astype(np.int64), out_neg.astype(np.int64)
