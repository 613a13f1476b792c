"""Batches of an encoded split read block by block from disk: memory bounded by a window, not by rows.

The ``blocks`` reader (``data.reader: blocks``) for splits larger than memory (KuaiRand-27K). The
split is cut into blocks of ``block_rows`` consecutive rows (``data.block_rows``; the cache writes
Parquet row groups of 65,536 rows, the default, so that a block is one row group to decode). An
epoch's order is the blocks in a permutation drawn from ``(seed, epoch)`` (in file order without
shuffling), each block's rows in file order; the ranks split that sequence as :class:`~recsys_hmtl.data.batches.BatchStream` splits its row order
(rank ``r`` of ``n`` reads the ``r``-th of ``n`` equal contiguous parts, ``remainder`` drop or pad), so
a rank decodes only the blocks of its part. Within its part a rank reads windows of
``window_blocks`` blocks (one block without shuffling: nothing to mix); each window's rows are
shuffled with ``(seed, epoch, rank, window)`` and cut into batches (a batch may span two windows).
At most one window (plus one batch) is in memory.

Compared with the ``memory`` reader's row permutation this is a block-local shuffle (rows of one
batch come from at most ``window_blocks`` blocks of the file), the usual trade of streaming data
loaders; the order is deterministic, so a run resumes mid-epoch at the same batch.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import polars as pl

from .batch import Batch
from .batches import EncodedArrays, RankBatches
from .spec import FeatureSpec
from .split_source import EncodedSplit

WINDOW_BLOCKS = 4  # blocks shuffled together (``data.window_blocks``)


class BlockStream(RankBatches):
    """One rank's batches of ``source`` read a window of blocks at a time (see the module docstring);
    the interface of :class:`~recsys_hmtl.data.batches.BatchStream`."""

    def __init__(self, source: EncodedSplit, features: FeatureSpec, tasks: Sequence[str], batch_size: int, *,
                 shuffle: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False, remainder: str = "drop", block_rows: int = 65_536,
                 window_blocks: int = WINDOW_BLOCKS) -> None:
        super().__init__(batch_size, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size,
                         drop_last=drop_last, remainder=remainder)
        if block_rows < 1 or window_blocks < 1:
            raise ValueError(f"block_rows and window_blocks must be at least 1, got {block_rows}, {window_blocks}")
        self.source, self.features, self.tasks = source, features, list(tasks)
        self.block_rows, self.window_rows = block_rows, block_rows * (window_blocks if shuffle else 1)

    def total_rows(self) -> int:
        return len(self.source)

    def block_order(self, epoch: int | None = None) -> np.ndarray:
        """The blocks in the order of ``epoch`` (a permutation when shuffling)."""
        epoch = self.epoch if epoch is None else epoch
        blocks = -(-len(self.source) // self.block_rows)
        if not self.shuffle:
            return np.arange(blocks, dtype=np.int64)
        return np.random.default_rng([self.seed % 2**63, epoch]).permutation(blocks)

    def batches(self, start: int = 0) -> Iterator[Batch]:
        """The batches of the current epoch from batch ``start`` on (resuming mid-epoch)."""
        part = self.part_rows()
        stop = min(part, len(self) * self.batch_size)
        first = part * self.rank  # this rank's part of the epoch's sequence
        order = self.block_order()
        carry: pl.DataFrame | None = None
        position = start * self.batch_size
        window = position // self.window_rows
        skip = position - window * self.window_rows
        while window * self.window_rows < stop:
            lo, hi = window * self.window_rows, min(stop, (window + 1) * self.window_rows)
            frame = self._sequence(order, first + lo, first + min(part, (window + 1) * self.window_rows))
            if self.shuffle:
                rng = np.random.default_rng([self.seed % 2**63, self.epoch, self.rank, window])
                frame = frame[rng.permutation(frame.height)]
            frame = frame.slice(skip, hi - lo - skip)
            skip = 0
            if carry is not None:
                frame = pl.concat([carry, frame])
            full = frame.height // self.batch_size * self.batch_size
            arrays = EncodedArrays(frame, self.features, self.tasks)
            for k in range(0, full, self.batch_size):
                yield arrays.batch(np.arange(k, k + self.batch_size))
            carry = frame.slice(full) if full < frame.height else None
            window += 1
        if carry is not None:  # the last, short batch (drop_last False)
            yield EncodedArrays(carry, self.features, self.tasks).batch(np.arange(carry.height))

    def _sequence(self, order: np.ndarray, lo: int, hi: int) -> pl.DataFrame:
        """Rows ``[lo, hi)`` of the epoch's sequence (block order; positions past the split's end wrap
        to its beginning: the ``pad`` remainder)."""
        n, pieces = len(self.source), []
        sizes = np.minimum(self.block_rows, n - order * self.block_rows)  # the last block may be short
        starts = np.concatenate([[0], np.cumsum(sizes)])
        while lo < hi:
            at = lo % n
            i = int(np.searchsorted(starts, at, side="right")) - 1
            offset = at - int(starts[i])
            length = min(int(sizes[i]) - offset, hi - lo)
            pieces.append(self.source.read(int(order[i]) * self.block_rows + offset, length))
            lo += length
        return pl.concat(pieces) if len(pieces) > 1 else pieces[0]
