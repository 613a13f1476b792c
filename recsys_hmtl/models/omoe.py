"""One-gate Mixture-of-Experts, OMoE (Ma et al., 2018a): experts mixed by ONE gate, whose output
feeds every task tower.

MMoE with a single gate (:class:`~recsys_hmtl.models.mmoe.MMoE` builds both). Defaults from the STEM
code's OMoE config: 8 experts [512, 512, 512], gate [128, 64], towers [128, 64].
``outputs.shared`` is the mixture ``[B, expert_dims[-1]]`` (experts and gate are shared), also the
source of the task views: the tasks separate after it, later than at the experts' outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..data.batch import Batch
from .base import MultiTaskOutput
from .layers import mix_experts
from .mmoe import MMoE, MMoEParams
from .registry import register_model


@dataclass(frozen=True)
class OMoEParams(MMoEParams):
    """The same names and defaults as MMoE's (``gate_dims`` sizes the one gate)."""


@register_model("omoe")
class OMoE(MMoE):
    Params = OMoEParams
    gate_per_task = False

    def shared_modules(self) -> list[nn.Module]:
        return [self.experts, self.gates]

    def forward(self, batch: Batch) -> MultiTaskOutput:
        views = self.view_recorder()
        x = self.embedding(batch)
        shared = mix_experts(self.gates(x), self.experts(x))[0]  # [B, H]
        if views is None:
            return self.output(self.towers(shared).squeeze(-1), shared)
        return self.output(self.towers(views(shared), per_group=True).squeeze(-1), shared, views)
