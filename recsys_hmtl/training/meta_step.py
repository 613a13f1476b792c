"""The meta step of stages that learn from a held-out batch through a virtual step (Auto-Lambda,
``needs_meta_batch``; the stage's docstring has the equations). Runs in bilevel mode, whose stream
pairs every training batch with a held-out one (:class:`~.bilevel.PairedBatch`).

Per step, over the dense parameters θ only (never the embedding rows a fused optimizer owns: the
gradients are taken with ``torch.autograd.grad`` with respect to θ, so no backward reaches them):

1. g = ∇_θ Σ λ_i L_i(θ; train), θ' = θ − α g (the virtual step);
2. d = ∇_θ' Σ_primary L_i(θ'; held-out);
3. ε = 0.01/‖d‖, h_i = (L_i(θ + εd; train) − L_i(θ − εd; train)) / 2ε, ``stage.meta_update(−α h)``;
4. θ is put back, and the ordinary step follows: forward of the training batch, the stage's backward.

It is computed before the ordinary forward because it changes θ in place. Costs four more forwards
and two dense backwards a step.
"""

from __future__ import annotations

from typing import Any

import torch

from ..priority import NonFiniteLossError
from .bilevel import PairedBatch
from .outputs import TaskOutputs
from .steps import PlainStep


class MetaStep(PlainStep):
    """Auto-Lambda's meta-update of the stage's weights, then the plain step on the training batch."""

    def __init__(self, trainable, stage) -> None:
        super().__init__(trainable, stage)
        self.dense = [p for p in trainable.dense_parameters() if p.requires_grad]
        self._failed: Exception | None = None

    def forward(self, batch: PairedBatch) -> TaskOutputs:
        self._failed = None
        try:
            self._meta_update(batch)
        except (NonFiniteLossError, FloatingPointError) as exc:  # skipped in backward, as a non-finite loss
            self._failed = exc
        return self.trainable.forward(batch.lower)

    def backward(self, out, losses, extra, *, step: int = 0) -> None:
        if self._failed is not None:
            raise self._failed
        super().backward(out, losses, extra, step=step)

    def _meta_update(self, batch: PairedBatch) -> None:
        stage, alpha = self.stage, self.stage.alpha
        theta = [p.detach().clone() for p in self.dense]
        try:
            train = stage.train_objective(self.trainable.forward(batch.lower).losses)
            g = torch.autograd.grad(train, self.dense, allow_unused=True)
            self._move(g, -alpha)                                                   # θ' = θ − α g
            meta = stage.meta_objective(self.trainable.forward(batch.upper).losses)
            d = torch.autograd.grad(meta, self.dense, allow_unused=True)
            self._restore(theta)
            norm = torch.sqrt(sum((x.double() ** 2).sum() for x in d if x is not None))
            if not bool(torch.isfinite(norm)) or float(norm) == 0.0:
                raise FloatingPointError(f"stage '{stage.name}': the meta gradient has norm {float(norm)}")
            eps = 0.01 / float(norm)
            with torch.no_grad():
                self._move(d, eps)                                                  # θ + εd
                plus = stage.stack(self.trainable.forward(batch.lower).losses)
                self._move(d, -2 * eps)                                             # θ − εd
                minus = stage.stack(self.trainable.forward(batch.lower).losses)
            stage.meta_update(-alpha * (plus - minus) / (2 * eps))
        finally:
            self._restore(theta)

    @torch.no_grad()
    def _move(self, direction, scale: float) -> None:
        for p, x in zip(self.dense, direction):
            if x is not None:
                p.add_(x, alpha=scale)

    @torch.no_grad()
    def _restore(self, theta) -> None:
        for p, x in zip(self.dense, theta):
            p.copy_(x)
