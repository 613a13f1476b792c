"""One training batch: the contract between the data layer, the models and the training step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor
from torchrec.streamable import Pipelineable


@dataclass
class Batch(Pipelineable):
    """``sparse``: KJT whose keys are ``FeatureSpec.sparse_names`` (key-major values);
    ``dense``: float32 ``[B, D]``; ``labels``: float32 ``[B, T]`` with columns in task priority order;
    ``groups``: int64 ``[B]`` user index (for GAUC and per-user metrics)."""

    sparse: KeyedJaggedTensor
    dense: torch.Tensor
    labels: torch.Tensor
    groups: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device, non_blocking: bool = False) -> "Batch":
        return Batch(
            sparse=self.sparse.to(device=device, non_blocking=non_blocking),
            dense=self.dense.to(device=device, non_blocking=non_blocking),
            labels=self.labels.to(device=device, non_blocking=non_blocking),
            groups=self.groups.to(device=device, non_blocking=non_blocking),
        )

    def record_stream(self, stream: torch.Stream) -> None:  # type: ignore[override]
        self.sparse.record_stream(stream)
        for t in (self.dense, self.labels, self.groups):
            t.record_stream(stream)

    def pin_memory(self) -> "Batch":
        return Batch(
            sparse=self.sparse.pin_memory(),
            dense=self.dense.pin_memory(),
            labels=self.labels.pin_memory(),
            groups=self.groups.pin_memory(),
        )
