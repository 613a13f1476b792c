"""Score every row of a split with an unsharded tower (exact, for the offline report)."""

from __future__ import annotations

import numpy as np
import torch

from ...data.pipeline import PreparedData
from ...errors import InputError


@torch.no_grad()
def score_split(model: torch.nn.Module, prepared: PreparedData, split: str, batch_size: int):
    """``(labels [N, T] int8, scores [N, T] float32, groups [N])`` of every row of ``split``.

    The three arrays are allocated once for the split's N rows and filled batch by batch: small
    per-batch arrays kept between the batches' large temporaries would pin the allocator's heap (RSS
    grew by ~7 MB a batch on 1M rows), the whole output is N × (5T + 8) bytes."""
    model.eval()
    rows, tasks = len(prepared.sources[split]), len(prepared.tasks)
    if rows == 0:
        raise InputError(f"the {split} split is empty", key="data.split")
    labels = np.empty((rows, tasks), dtype=np.int8)
    scores = np.empty((rows, tasks), dtype=np.float32)
    groups = np.empty(rows, dtype=np.int64)
    done = 0
    for batch in prepared.stream(split, batch_size):
        size = batch.batch_size
        scores[done:done + size] = torch.sigmoid(model(batch).stacked.T).numpy()
        labels[done:done + size] = batch.labels.numpy()
        groups[done:done + size] = batch.groups.numpy()
        done += size
    if done != rows:
        raise RuntimeError(f"scored {done} rows of the {split} split, which has {rows}")
    return labels, scores, groups
