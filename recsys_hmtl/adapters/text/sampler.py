"""Task-specific inputs (LibMTL's multi-input setting): every training batch holds the same number
of reviews of EACH task, and task i's loss is computed on its own reviews only.

:class:`PerTaskStream` is the training stream the core asks for (``len``, ``set_epoch``,
``batches(start)``). Batch ``b`` holds, task after task in priority order, ``per_task`` reviews of
each task: positions ``[b·per_task, (b+1)·per_task)`` of that task's sequence for the epoch, which
is a chain of permutations of the task's training reviews, a fresh permutation each time the task
is exhausted (NumPy's generator seeded with ``(seed, epoch, task, cycle)``).

**One epoch = the largest task's training set covered once**: ``ceil(max_i N_i / per_task)``
batches (as LibMTL's multi-input loop, whose epoch is its longest loader). Smaller tasks cycle
within the epoch, reshuffled at every wrap; the largest task's last batch, when ``per_task`` does
not divide its size, is completed from its next permutation. Every batch is a pure function of
(seed, epoch, batch index), so ``batches(start)`` after ``set_epoch(e)`` yields exactly the tail
of an uninterrupted pass over epoch ``e`` (a resumed run sees the batches it would have seen).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data import Encoded
from .vocab import PAD_ID


@dataclass
class TextBatch:
    """``tokens`` [B, L] (PAD-padded to the batch's longest review), ``lengths`` [B], ``labels``
    [B]; the rows are grouped by task: ``counts[i]`` rows of ``tasks[i]``, in that order."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    tasks: tuple[str, ...]
    counts: tuple[int, ...]

    @property
    def batch_size(self) -> int:
        return int(self.labels.numel())

    def to(self, device) -> "TextBatch":
        return TextBatch(self.tokens.to(device), self.lengths.to(device), self.labels.to(device),
                         self.tasks, self.counts)

    def slices(self) -> Iterator[tuple[str, slice]]:
        """``(task, rows)`` for every task of the batch."""
        start = 0
        for task, n in zip(self.tasks, self.counts):
            yield task, slice(start, start + n)
            start += n


def collate(parts: Sequence[tuple[str, Encoded, torch.Tensor]]) -> TextBatch:
    """One batch of ``(task, encoded split, row indices)`` parts, trimmed (or PAD-padded: each
    domain's split is padded to its own longest review) to the batch's longest review."""
    width = max(int(enc.lengths[idx].max()) for _, enc, idx in parts if len(idx))

    def rows(enc: Encoded, idx: torch.Tensor) -> torch.Tensor:
        block = enc.tokens[idx, :width]
        return F.pad(block, (0, width - block.shape[1]), value=PAD_ID)

    return TextBatch(
        tokens=torch.cat([rows(enc, idx) for _, enc, idx in parts]),
        lengths=torch.cat([enc.lengths[idx] for _, enc, idx in parts]),
        labels=torch.cat([enc.labels[idx] for _, enc, idx in parts]),
        tasks=tuple(t for t, _, _ in parts), counts=tuple(len(idx) for _, _, idx in parts))


class PerTaskStream:
    """``per_task`` training reviews of every task per batch (module docstring)."""

    def __init__(self, tasks: Sequence[str], train: dict[str, Encoded], per_task: int, *, seed: int) -> None:
        if per_task < 1:
            raise ValueError(f"per_task must be at least 1, got {per_task}")
        self.tasks, self.per_task, self.seed, self.epoch = tuple(tasks), per_task, seed, 0
        self.splits = [train[t] for t in self.tasks]
        self.sizes = [len(s) for s in self.splits]
        if min(self.sizes) < 1:
            empty = self.tasks[self.sizes.index(0)]
            raise ValueError(f"task '{empty}' has no training reviews")
        self._cache: dict[tuple[int, int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return -(-max(self.sizes) // self.per_task)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def positions(self, task: int, batch: int) -> np.ndarray:
        """Row indices of ``task``'s reviews in batch ``batch`` of the current epoch."""
        n, first = self.sizes[task], batch * self.per_task
        out, pos = [], first
        while pos < first + self.per_task:
            cycle, offset = divmod(pos, n)
            take = min(n - offset, first + self.per_task - pos)
            out.append(self._permutation(task, cycle)[offset: offset + take])
            pos += take
        return np.concatenate(out)

    def _permutation(self, task: int, cycle: int) -> np.ndarray:
        cache = self._cache
        key = (self.epoch, task, cycle)
        if key not in cache:
            if len(cache) > 4 * len(self.tasks):
                cache.clear()
            rng = np.random.default_rng([self.seed % (1 << 64), self.epoch, task, cycle])
            cache[key] = rng.permutation(self.sizes[task])
        return cache[key]

    def batches(self, start: int = 0) -> Iterator[TextBatch]:
        for b in range(start, len(self)):
            yield collate([(t, s, torch.from_numpy(self.positions(i, b)))
                           for i, (t, s) in enumerate(zip(self.tasks, self.splits))])

    def __iter__(self) -> Iterator[TextBatch]:
        return self.batches()


def eval_batches(task: str, split: Encoded, batch_size: int) -> Iterator[TextBatch]:
    """One task's reviews of an evaluation split in file order, ``batch_size`` at a time."""
    for first in range(0, len(split), batch_size):
        idx = torch.arange(first, min(first + batch_size, len(split)))
        yield collate([(task, split, idx)])
