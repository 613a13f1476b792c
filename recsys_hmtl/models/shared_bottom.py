"""Shared-Bottom (Caruana, 1997): one bottom MLP shared by all tasks, one tower per task.

Defaults from the STEM code's SharedBottom config for the seeds' data sets: bottom [512, 512, 512],
towers [128, 128], embedding 16. ``outputs.shared`` is the bottom output ``[B, bottom_dims[-1]]``, also the source of the task views.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..data.batch import Batch
from ..data.spec import FeatureSpec
from .base import ModelParams, MultiTaskModel, MultiTaskOutput
from .layers import MLP
from .registry import register_model


@dataclass(frozen=True)
class SharedBottomParams(ModelParams):
    NON_EMPTY = ("bottom_dims",)

    bottom_dims: tuple[int, ...] = (512, 512, 512)
    tower_dims: tuple[int, ...] = (128, 128)


@register_model("shared_bottom")
class SharedBottom(MultiTaskModel):
    Params = SharedBottomParams

    def __init__(
        self,
        features: FeatureSpec,
        tasks: Sequence[str],
        params: SharedBottomParams,
        *,
        embedding_device: torch.device | str | None = None,
    ) -> None:
        super().__init__(features, tasks, params, embedding_device=embedding_device)
        self.embedding = self.feature_embedding()
        self.bottom = MLP(self.embedding.out_dim, params.bottom_dims, params.dropout)
        # All task towers read the same bottom output: their first layers are one GEMM.
        self.towers = self.task_towers(self.bottom.out_dim, shared_input=True)

    def shared_modules(self) -> list[nn.Module]:
        return [self.bottom]

    @property
    def supports_task_views(self) -> bool:
        return True

    def forward(self, batch: Batch) -> MultiTaskOutput:
        views = self.view_recorder()
        shared = self.bottom(self.embedding(batch))
        if views is None:
            return self.output(self.towers(shared).squeeze(-1), shared)
        return self.output(self.towers(views(shared), per_group=True).squeeze(-1), shared, views)
