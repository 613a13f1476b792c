"""The multi-task vision model: one trunk, one head per task, per-task losses (SPEC §9 contract).

``forward(batch)`` returns :class:`~recsys_hmtl.training.outputs.TaskOutputs` with ``losses`` =
``{task: mean loss over the batch}`` in the plan's priority order (softmax cross-entropy over the
task's classes; for ``logits: 1`` heads, binary cross-entropy of the sigmoid) and ``shared`` = the
trunk's output, the representation every head reads (what rep-grad stages differentiate).

In single-task mode (``model.single_task``) the model is the trunk and that one head: an
independent single-task network, the STL baseline of Δm% (seed 003 §5, Maninis et al. 2019).
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...training.outputs import TaskOutputs
from .networks import CelebaTrunk, LeNetHead, LeNetTrunk

MODELS = {"multimnist": "lenet", "celeba": "celeba_cnn"}
HPARAMS = {
    "lenet": {"representation": 50, "head_hidden": 50, "dropout": 0.5},
    "celeba_cnn": {"width": 64, "logits": 1},
}


class VisionModel(nn.Module):
    """``trunk`` → shared representation → ``heads[task]``; ``columns[task]``: the task's column in
    a batch's labels; ``binary``: heads with one logit (sigmoid + BCE) instead of softmax CE."""

    def __init__(self, trunk: nn.Module, heads: Mapping[str, nn.Module], columns: Mapping[str, int],
                 binary: bool = False) -> None:
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleDict(dict(heads))
        self.tasks = tuple(heads)
        self.columns = dict(columns)
        self.binary = binary

    def shared_parameters(self) -> list[nn.Parameter]:
        """The trunk's parameters (``stage.grad_mode: params``)."""
        return list(self.trunk.parameters())

    def logits(self, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        shared = self.trunk(images)
        return shared, {task: self.heads[task](shared) for task in self.tasks}

    def task_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.binary:
            return F.binary_cross_entropy_with_logits(logits.squeeze(1), target.float())
        return F.cross_entropy(logits, target)

    def forward(self, batch) -> TaskOutputs:
        shared, logits = self.logits(batch.images)
        losses = {t: self.task_loss(logits[t], batch.labels[:, self.columns[t]]) for t in self.tasks}
        return TaskOutputs(losses=losses, shared=shared, extra=None, batch_size=batch.batch_size)

    @torch.no_grad()
    def predict(self, images: Tensor) -> dict[str, Tensor]:
        """The predicted class of every image per task (binary heads: p(1) > 0.5, as FAMO's metric)."""
        _, logits = self.logits(images)
        if self.binary:
            return {t: (torch.sigmoid(v.squeeze(1)) > 0.5).long() for t, v in logits.items()}
        return {t: v.argmax(dim=1) for t, v in logits.items()}


def build_model(dataset: str, tasks: tuple[str, ...], columns: Mapping[str, int], classes: int,
                image_size: int, hparams: Mapping) -> VisionModel:
    """The data set's model for ``tasks`` (all of them, or the single task)."""
    if dataset == "multimnist":
        trunk = LeNetTrunk(image_size, hparams["representation"], hparams["dropout"], in_channels=1)
        heads = {t: LeNetHead(trunk.out_features, hparams["head_hidden"], classes, hparams["dropout"]) for t in tasks}
        return VisionModel(trunk, heads, columns)
    trunk = CelebaTrunk(hparams["width"], in_channels=3)
    heads = {t: nn.Linear(trunk.out_features, hparams["logits"]) for t in tasks}
    return VisionModel(trunk, heads, columns, binary=hparams["logits"] == 1)
