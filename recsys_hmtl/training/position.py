"""Where a run is in its data: epoch, batch within the epoch, batches consumed (SPEC §6 resume).

The position is advanced by the training step after a batch is done (never by the iterator, which
Lightning reads one batch ahead), is saved in every checkpoint, and :class:`RemainingBatches`
starts reading from it: a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterator

from .adapter import BatchStream


@dataclass
class DataPosition:
    epoch: int = 0       # current epoch (0-based)
    batch: int = 0       # batches of this epoch already trained on
    consumed: int = 0    # batches consumed by the run (steps, skipped non-finite ones included)

    def advance(self, epoch_length: int) -> bool:
        """One batch done; True when it was the last of its epoch (the epoch has ended)."""
        self.batch += 1
        self.consumed += 1
        if self.batch >= epoch_length:
            self.epoch, self.batch = self.epoch + 1, 0
            return True
        return False

    def to_dict(self) -> dict:
        return asdict(self)


class RemainingBatches:
    """The batches still to train on, from ``position`` to ``max_epochs`` / ``max_steps``, as one
    iterable with a length (Lightning runs it as one pass)."""

    def __init__(self, stream: BatchStream, position: DataPosition, max_epochs: int, max_steps: int) -> None:
        self.stream, self.position = stream, position
        self.max_epochs, self.max_steps = max_epochs, max_steps

    def __len__(self) -> int:
        per_epoch = len(self.stream)
        left = max(0, (self.max_epochs - self.position.epoch) * per_epoch - self.position.batch)
        if self.max_steps >= 0:
            left = min(left, max(0, self.max_steps - self.position.consumed))
        return left

    def __iter__(self) -> Iterator[Any]:
        total = len(self)
        epoch, start = self.position.epoch, self.position.batch
        while total > 0:
            self.stream.set_epoch(epoch)
            for batch in self.stream.batches(start):
                if total == 0:
                    return
                total -= 1
                yield batch
            epoch, start = epoch + 1, 0
