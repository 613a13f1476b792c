"""Score every row of a split with an unsharded tower (exact, for the offline report)."""

from __future__ import annotations

import numpy as np
import torch

from ...data.pipeline import PreparedData
from ...errors import InputError


@torch.no_grad()
def score_split(model: torch.nn.Module, prepared: PreparedData, split: str, batch_size: int):
    """``(labels [N, T] int8, scores [N, T] float32, groups [N])`` of every row of ``split``."""
    model.eval()
    labels, scores, groups = [], [], []
    for batch in prepared.stream(split, batch_size):
        outputs = model(batch)
        scores.append(torch.sigmoid(outputs.stacked.T).numpy())
        labels.append(batch.labels.numpy().astype(np.int8))
        groups.append(batch.groups.numpy())
    if not scores:
        raise InputError(f"the {split} split is empty", key="data.split")
    return np.concatenate(labels), np.concatenate(scores), np.concatenate(groups)
