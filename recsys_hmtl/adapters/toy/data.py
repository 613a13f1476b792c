"""The toy's "data": no rows, only a step count. A batch is an empty marker (``batch_size`` 1,
``to(device)`` itself); an epoch is ``data.steps_per_epoch`` of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .config import ToyDataConfig


class ToyBatch:
    """One training step's (empty) batch."""

    batch_size = 1

    def to(self, device) -> "ToyBatch":
        return self


@dataclass(frozen=True)
class ToyData:
    """What ``prepare`` gives: the resolved data section (nothing is read)."""

    config: ToyDataConfig


class ToyStream:
    """``steps`` marker batches per epoch, the same every epoch (nothing to shuffle)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        pass

    def batches(self, start: int = 0) -> Iterator[ToyBatch]:
        for _ in range(start, self.steps):
            yield ToyBatch()
