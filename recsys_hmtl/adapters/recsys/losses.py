"""Per-task losses of a training step (SPEC §6): BCE on the logits every tower returns.

ESMM's outputs are the logits of the chained products (σ(output_k) = p_k), so the same BCE is its
loss on the products; AITM's calibrator arrives separately as an auxiliary loss.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def task_losses(outputs, labels: Tensor, tasks: Sequence[str]) -> dict[str, Tensor]:
    """``{task: mean BCE-with-logits}`` in priority order, computed as one ``[T, B]`` op."""
    per_task = F.binary_cross_entropy_with_logits(outputs.stacked, labels.T, reduction="none").mean(dim=1)
    return {task: per_task[t] for t, task in enumerate(tasks)}


def auxiliary_total(auxiliary: Mapping[str, Tensor]) -> Tensor | None:
    """The sum of a model's auxiliary losses (already weighted), or None when it has none."""
    return torch.stack([v.reshape(()) for v in auxiliary.values()]).sum() if auxiliary else None
