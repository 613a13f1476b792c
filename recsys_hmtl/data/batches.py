"""Batches of an encoded split (SPEC §3): TorchRec ``KeyedJaggedTensor`` + dense + ``[B, T]`` labels.

:class:`EncodedArrays` converts an encoded split to contiguous numpy arrays once (single-valued
features: one index array each; multi-valued: offsets + flat values); a batch is then index slicing,
with no Polars work and no Python loop over rows.

KJT layout (key-major, keys in ``FeatureSpec`` order): for each feature, the lengths of the B rows,
then the values of the B rows. A single-valued feature always has length 1 (a missing or unseen id
is the index 0, which has its own embedding row); a multi-valued feature has the length of its list,
0 when the row has no value (its pooled embedding is then zero).

:class:`BatchStream` shuffles per epoch with ``(seed, epoch)`` and splits the rows by rank. Every rank
computes the same epoch order; rank ``r`` of ``n`` reads block ``r`` of it, so the shards are disjoint
and cover the split, and every rank gets the same number of rows and so the same number of batches
(DDP collectives never wait on a rank that ran out). ``remainder`` says what happens to the
``N mod n`` rows that do not divide evenly: ``"drop"`` (training default) skips them, a different few
each epoch when shuffling; ``"pad"`` repeats the first rows of the order so that every row is read at
least once (evaluation: at most ``n - 1`` rows counted twice).
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import polars as pl
import torch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from .batch import Batch
from .encode import GROUP_COLUMN, label_column
from .spec import FeatureSpec


class EncodedArrays:
    """One encoded split as numpy arrays, built once; :meth:`batch` gathers any rows into a Batch."""

    def __init__(self, frame: pl.DataFrame, features: FeatureSpec, tasks: Sequence[str]) -> None:
        self.keys = features.sparse_names
        self.rows = frame.height
        self.sparse: list[tuple[np.ndarray, np.ndarray | None]] = []  # (values, offsets or None)
        for feature in features.sparse:
            column = frame.get_column(feature.name)
            if feature.multi_valued != isinstance(column.dtype, pl.List):
                raise ValueError(f"column '{feature.name}' is {column.dtype}, but the feature spec says "
                                 f"multi_valued={feature.multi_valued}")
            if feature.multi_valued:
                offsets = np.zeros(self.rows + 1, dtype=np.int64)
                np.cumsum(column.list.len().fill_null(0).to_numpy(), out=offsets[1:])
                values = column.explode(empty_as_null=False, keep_nulls=False).to_numpy()
                self.sparse.append((values, offsets))
            else:
                self.sparse.append((column.to_numpy(), None))
        self.dense = _matrix(frame, list(features.dense), np.float32)  # [N, D]
        self.labels = _matrix(frame, [label_column(t) for t in tasks], np.int8)  # [N, T], float32 per batch
        self.groups = frame.get_column(GROUP_COLUMN).to_numpy()

    def __len__(self) -> int:
        return self.rows

    def batch(self, rows: np.ndarray) -> Batch:
        """The Batch of ``rows`` (positions in the split), in that order."""
        size = len(rows)
        lengths = np.empty(len(self.keys) * size, dtype=np.int32)
        pieces = []
        for k, (values, offsets) in enumerate(self.sparse):
            if offsets is None:
                lengths[k * size:(k + 1) * size] = 1
                pieces.append(values[rows])
            else:
                starts, lens = offsets[rows], offsets[rows + 1] - offsets[rows]
                lengths[k * size:(k + 1) * size] = lens
                pieces.append(values[segment_positions(starts, lens)])
        flat = np.concatenate(pieces, dtype=np.int64) if pieces else np.empty(0, dtype=np.int64)
        sparse = KeyedJaggedTensor(keys=list(self.keys), values=torch.from_numpy(flat),
                                   lengths=torch.from_numpy(lengths), stride=size)
        return Batch(
            sparse=sparse,
            dense=torch.from_numpy(self.dense[rows]),
            labels=torch.from_numpy(self.labels[rows].astype(np.float32)),
            groups=torch.from_numpy(self.groups[rows].astype(np.int64)),
        )


def segment_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for every (s, l), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    return np.repeat(starts - (ends - lengths), lengths) + np.arange(total, dtype=np.int64)


def _matrix(frame: pl.DataFrame, columns: list[str], dtype: type) -> np.ndarray:
    if not columns:
        return np.zeros((frame.height, 0), dtype=dtype)
    return np.ascontiguousarray(frame.select(columns).to_numpy(), dtype=dtype)


# --- epochs and ranks -----------------------------------------------------------------------------
Remainder = Callable[[np.ndarray, int], np.ndarray]
REMAINDER_POLICIES: dict[str, Remainder] = {
    "drop": lambda order, world: order[: len(order) // world * world],
    "pad": lambda order, world: np.resize(order, -(-len(order) // world) * world) if len(order) else order,
}


class RankBatches:
    """What every reader's stream shares: the checks of its arguments, the epoch (``set_epoch``, as
    with ``DistributedSampler``), and the number of batches of one rank (``len``: equal on every rank;
    ``drop_last`` drops a final batch smaller than ``batch_size`` on every rank alike). Subclasses give
    :meth:`total_rows` and :meth:`batches`."""

    def __init__(self, batch_size: int, *, shuffle: bool, seed: int, rank: int, world_size: int,
                 drop_last: bool, remainder: str) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} of world_size {world_size} is not a valid rank")
        if remainder not in REMAINDER_POLICIES:
            raise ValueError(f"remainder must be one of {sorted(REMAINDER_POLICIES)}, got {remainder!r}")
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last, self.remainder = rank, world_size, drop_last, remainder
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def total_rows(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def batches(self, start: int = 0) -> Iterator[Batch]:  # pragma: no cover - abstract
        raise NotImplementedError

    def part_rows(self) -> int:
        """The rows one rank reads in an epoch (``remainder``: drop or pad the rows left over)."""
        n, world = self.total_rows(), self.world_size
        return n // world if self.remainder == "drop" else -(-n // world)

    def __len__(self) -> int:
        rows = self.part_rows()
        return rows // self.batch_size if self.drop_last else -(-rows // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        return self.batches()


class BatchStream(RankBatches):
    """Iterable of :class:`Batch` for one rank: ``for batch in stream`` reads the current epoch.
    ``rows``: read only these rows of ``arrays`` (a held-out slice; no copy), else all of them."""

    def __init__(self, arrays: EncodedArrays, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 rank: int = 0, world_size: int = 1, drop_last: bool = False, remainder: str = "drop",
                 rows: np.ndarray | None = None) -> None:
        super().__init__(batch_size, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size,
                         drop_last=drop_last, remainder=remainder)
        self.arrays = arrays
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)

    def total_rows(self) -> int:
        return len(self.arrays) if self.rows is None else len(self.rows)

    def order(self, epoch: int | None = None) -> np.ndarray:
        """The rows of the whole split in the order of ``epoch`` (a permutation when shuffling)."""
        epoch = self.epoch if epoch is None else epoch
        rows = np.arange(len(self.arrays), dtype=np.int64) if self.rows is None else self.rows
        if not self.shuffle:
            return rows
        return rows[np.random.default_rng([self.seed % 2**63, epoch]).permutation(len(rows))]

    def shard(self, epoch: int | None = None) -> np.ndarray:
        """The rows this rank reads in ``epoch``, in reading order."""
        order = REMAINDER_POLICIES[self.remainder](self.order(epoch), self.world_size)
        per_rank = len(order) // self.world_size
        return order[self.rank * per_rank:(self.rank + 1) * per_rank]

    def batches(self, start: int = 0) -> Iterator[Batch]:
        """The batches of the current epoch from batch ``start`` on (resuming mid-epoch)."""
        rows = self.shard()
        for k in range(start, len(self)):
            yield self.arrays.batch(rows[k * self.batch_size:(k + 1) * self.batch_size])
