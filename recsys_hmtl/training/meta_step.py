"""The meta step of stages that learn from a held-out batch through a virtual step (Auto-Lambda, MOML:
``needs_meta_batch``; the stages' docstrings have the equations). Runs in bilevel mode, whose stream
pairs every training batch with a held-out one (:class:`~.bilevel.PairedBatch`).

Per step, over the dense parameters θ only (never the embedding rows a fused optimizer owns: the
gradients are taken with ``torch.autograd.grad`` with respect to θ, so no backward reaches them):

1. g = ∇_θ Σ λ_i L_i(θ; train), θ' = θ − α g (the virtual step);
2. for each of the stage's meta objectives M_j (Auto-Lambda: one, Σ_primary L_i; MOML: every L_j):
   d_j = ∇_θ' M_j(θ'; held-out);
3. H[j, i] = ∂M_j/∂λ_i = −α ⟨d_j, ∇_θ L_i(θ; train)⟩: by Auto-Lambda's central difference, ε =
   0.01/‖d_j‖, −α (L_i(θ + εd_j; train) − L_i(θ − εd_j; train)) / 2ε, or exactly from the K task
   gradients at θ where the stage asks (``exact_hypergradient``, MOML); ``stage.meta_update(H)``;
4. θ is put back, and the ordinary step follows: forward of the training batch, the stage's backward.

It is computed before the ordinary forward because it changes θ in place. Costs 2 + 2J more
forwards and 1 + J dense backwards a step (exact: 2 forwards and 1 + J + K backwards).
"""

from __future__ import annotations

import torch

from ..priority import NonFiniteLossError
from .bilevel import PairedBatch
from .outputs import TaskOutputs
from .steps import PlainStep


class MetaStep(PlainStep):
    """The meta-update of the stage's weights (module docstring), then the plain step on the training batch."""

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
            losses = self.trainable.forward(batch.lower).losses
            train = stage.train_objective(losses)
            per_task = None
            if stage.exact_hypergradient:  # g_i = ∇_θ L_i(θ; train), for H[j, i] = −α ⟨d_j, g_i⟩
                stacked = stage.stack(losses)
                per_task = [torch.autograd.grad(stacked[i], self.dense, allow_unused=True, retain_graph=True)
                            for i in range(stage.num_tasks)]
            g = torch.autograd.grad(train, self.dense, allow_unused=True)
            self._move(g, -alpha)                                                   # θ' = θ − α g
            metas = stage.meta_objectives(self.trainable.forward(batch.upper).losses)
            ds = [torch.autograd.grad(m, self.dense, allow_unused=True, retain_graph=j < len(metas) - 1)
                  for j, m in enumerate(metas)]
            self._restore(theta)
            if per_task is not None:
                stage.meta_update(-alpha * torch.stack([torch.stack([_dot(d, gi) for gi in per_task]) for d in ds]))
                return
            rows = []
            for d in ds:
                norm = torch.sqrt(sum((x.double() ** 2).sum() for x in d if x is not None))
                if not bool(torch.isfinite(norm)) or float(norm) == 0.0:
                    raise FloatingPointError(f"stage '{stage.name}': the meta gradient has norm {float(norm)}")
                eps = 0.01 / float(norm)
                with torch.no_grad():
                    self._move(d, eps)                                              # θ + εd
                    plus = stage.stack(self.trainable.forward(batch.lower).losses)
                    self._move(d, -2 * eps)                                         # θ − εd
                    minus = stage.stack(self.trainable.forward(batch.lower).losses)
                self._restore(theta)
                rows.append(-alpha * (plus - minus) / (2 * eps))
            stage.meta_update(torch.stack(rows))
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


def _dot(a, b) -> torch.Tensor:
    """⟨a, b⟩ over the parameters (float64; a parameter neither reaches counts 0)."""
    terms = [(x.double() * y.double()).sum() for x, y in zip(a, b) if x is not None and y is not None]
    return torch.stack(terms).sum() if terms else torch.zeros((), dtype=torch.float64)
