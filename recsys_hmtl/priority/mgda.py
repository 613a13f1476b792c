"""MGDA (Sener & Koltun, NeurIPS 2018; Désidéri 2012): the min-norm point of the convex hull of
the task gradients, d = Σ_i w_i g_i with w = argmin_{w ∈ simplex} ‖Σ_i w_i g_i‖ (Eq. 5 of seed 002).

As in Sener & Koltun's code, the weights may be found on normalised gradients g_i / n_i
(``normalize``: ``none`` n_i = 1, ``l2`` n_i = ‖g_i‖, ``loss`` n_i = L_i, ``loss+`` n_i = L_i ‖g_i‖)
and are then applied to the raw losses: the whole model is trained on Σ_i w_i L_i.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import choose
from .min_norm import min_norm_weights
from .support import StageProfile
from .registry import register_stage
from .task_grads import GradientStage


def _no_normalizer(gram: Tensor, losses: Tensor) -> Tensor:
    return torch.ones_like(losses)


def _l2(gram: Tensor, losses: Tensor) -> Tensor:
    return gram.diagonal().clamp_min(0).sqrt()


def _loss(gram: Tensor, losses: Tensor) -> Tensor:
    return losses


def _loss_l2(gram: Tensor, losses: Tensor) -> Tensor:
    return losses * _l2(gram, losses)


NORMALIZERS = {"none": _no_normalizer, "l2": _l2, "loss": _loss, "loss+": _loss_l2}


@register_stage("mgda")
class MGDAStage(GradientStage):
    """Min-norm weights (:func:`~.min_norm.min_norm_weights`); the losses are scaled by them
    everywhere (``heads_follow_coeffs``), as in Sener & Koltun's training loop."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(n·K²) Frank-Wolfe", "O(K·D)")

    heads_follow_coeffs = True

    def __init__(self, tasks: Sequence[str], normalize: str = "none") -> None:
        super().__init__(tasks)
        self.normalize = normalize
        self._normalizer = choose(self.name, "normalize", normalize, NORMALIZERS)

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        n = self._normalizer(gram, losses)
        if not bool((n > 0).all()):
            task = self.tasks[int((n <= 0).nonzero()[0])]
            raise ValueError(
                f"stage '{self.name}': normalize={self.normalize!r} needs a positive normaliser, "
                f"task '{task}' has {float(n[self.tasks.index(task)])}"
            )
        return min_norm_weights(gram / torch.outer(n, n))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, normalize={self.normalize!r}"
