"""ESMM (Ma et al., 2018b) generalised to a chain over consecutive tasks in priority order.

Tower k gives a conditional logit z_k; the model predicts the chained products
p_1 = σ(z_1), p_k = p_{k-1}·σ(z_k) (ESMM: pCTCVR = pCTR × pCVR), so p_k ≤ p_{k-1}, and the
losses are taken on the products. ``forward`` returns logit(p_k), computed in log space (no
product of probabilities, no log(0)), so the ordinary per-task BCE-with-logits IS the ESMM loss and
σ(output_k) = p_k (``chained_probabilities = True``). Towers read the embedding concat; defaults
from the STEM code's ESMM config: towers [512, 512, 512]. ``outputs.shared`` is the embedding
concat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.batch import Batch
from ..data.spec import FeatureSpec
from .base import ModelParams, MultiTaskModel, MultiTaskOutput
from .registry import register_model


@dataclass(frozen=True)
class ESMMParams(ModelParams):
    tower_dims: tuple[int, ...] = (512, 512, 512)


_LN2 = math.log(2.0)


def chained_logits(conditional: Tensor) -> Tensor:
    """``[T, B]`` conditional logits z → ``[T, B]`` logits of p_k = Π_{j≤k} σ(z_j).

    log p_k = Σ_{j≤k} log σ(z_j) (a cumsum of ``logsigmoid``); logit(p) = log p − log(1 − p), with
    log(1 − p) = log1mexp(log p) evaluated as log(−expm1(l)) for l > −ln 2, else log1p(−exp(l))
    (Mächler 2012), so both ends stay accurate. Computed in float32 at least (also under
    autocast). Every row goes through the same monotone formula, so the outputs are non-increasing
    along the chain in floating point too (row 0 equals z_1 up to rounding).
    """
    conditional = conditional.to(torch.promote_types(conditional.dtype, torch.float32))
    log_p = torch.cumsum(F.logsigmoid(conditional), dim=0)
    # p_k = 1 exactly would be logit +inf; the smallest normal gap keeps the loss finite.
    log_p = log_p.clamp(max=-torch.finfo(log_p.dtype).tiny)
    # Both branches are clamped to their own range so the unused one has finite gradients.
    log_one_minus = torch.where(
        log_p > -_LN2,
        torch.log(-torch.expm1(log_p.clamp(min=-_LN2))),
        torch.log1p(-torch.exp(log_p.clamp(max=-_LN2))),
    )
    return log_p - log_one_minus


class ChainedLogits(nn.Module):
    """:func:`chained_logits` as a module (a leaf for the FX tracing of TorchRec's pipelines)."""

    def forward(self, conditional: Tensor) -> Tensor:
        return chained_logits(conditional)


@register_model("esmm")
class ESMM(MultiTaskModel):
    Params = ESMMParams
    chained_probabilities = True

    def __init__(
        self,
        features: FeatureSpec,
        tasks: Sequence[str],
        params: ESMMParams,
        *,
        embedding_device: torch.device | str | None = None,
    ) -> None:
        super().__init__(features, tasks, params, embedding_device=embedding_device)
        self.embedding = self.feature_embedding()
        self.towers = self.task_towers(self.embedding.out_dim, shared_input=True)
        self.chain = ChainedLogits()

    def forward(self, batch: Batch) -> MultiTaskOutput:
        x = self.embedding(batch)
        conditional = self.towers(x).squeeze(-1)  # [T, B] logits of σ(z_k) = p(k | k-1)
        return self.output(self.chain(conditional), x)
