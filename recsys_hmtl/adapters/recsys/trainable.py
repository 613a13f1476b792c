"""A DMP-sharded tower as the training core trains it: BCE task losses, the fused sparse optimizer."""

from __future__ import annotations

import torch
from torch import nn
from torchrec.optim.optimizers import in_backward_optimizer_filter

from ...priority import ExpandedView, MixtureView, TaskViews
from ...training.checkpoint import restore_into
from ...training.outputs import TaskHeads, TaskOutputs
from ...training.adapter import Trainable
from .losses import auxiliary_total, task_losses
from .plan import plan_summary


VIEW_KINDS = {"expand": ExpandedView, "mixture": MixtureView}


def task_views(records) -> TaskViews:
    """The stage's :class:`~recsys_hmtl.priority.TaskViews` of a tower's ``outputs.views``."""
    return TaskViews(tuple(VIEW_KINDS[kind](*tensors) for kind, *tensors in records))


class ShardedTower(Trainable):
    """``dmp``: the DMP-wrapped tower (its state dict holds the table shards of this rank);
    ``model``: the same tower unwrapped (for its auxiliary losses, e.g. AITM's calibrator). A tower
    with task views on hands the stage :class:`~recsys_hmtl.priority.TaskViews` as its shared
    representation (one backward yields every task's gradient), else ``outputs.shared``."""

    def __init__(self, dmp: nn.Module, model: nn.Module, tasks: list[str]) -> None:
        self.module, self._model, self.tasks = dmp, model, list(tasks)

    def forward(self, batch) -> TaskOutputs:
        outputs = self.module(batch)
        losses = task_losses(outputs, batch.labels, self.tasks)
        extra = auxiliary_total(self._model.auxiliary_losses(outputs, batch.labels))
        with torch.no_grad():  # live calibration / NE: per task (Σ p, Σ y) of the batch
            counts = torch.stack([torch.sigmoid(outputs.stacked).sum(dim=1), batch.labels.sum(dim=0)], dim=1)
        shared = task_views(outputs.views) if outputs.views else outputs.shared
        return TaskOutputs(losses, shared, extra, batch.batch_size, task_counts=counts)

    def parameter_groups(self, lr: float) -> list[dict]:
        """Every parameter the fused sparse optimizer does not own (dense layers, data-parallel
        tables), in a fixed order, so the dense optimizer's ``state_dict`` restores on resume."""
        return [{"params": [p for _, p in in_backward_optimizer_filter(self.module.named_parameters())], "lr": lr}]

    def optimizer_state(self) -> dict:
        return self.module.fused_optimizer.state_dict()["state"]

    def load_optimizer_state(self, state: dict) -> None:
        restore_into(self.module.fused_optimizer.state_dict()["state"], state, "fused_optimizer")

    def shared_parameters(self) -> list[nn.Parameter]:
        """The tower's shared dense modules' parameters (``shared_modules``: the bottom, the experts)."""
        return self._model.shared_parameters()

    def task_heads(self) -> TaskHeads | None:
        """The towers when they are linear (one layer): bilevel mode's lower-level variables."""
        towers = getattr(self._model, "towers", None)
        if towers is None or len(towers.weights) != 1:
            return None
        return TaskHeads([towers.weights[0], towers.biases[0]], towers.group_sq_norms, towers.inputs_detached)

    def summary(self) -> dict:
        return {"sharding": {table: {"type": t["sharding_type"], "ranks": t["ranks"]}
                             for table, t in plan_summary(self.module.plan)["tables"].items()}}
