"""LDC-MTL's double loop in training (seed 003, Algorithm 2, Eq. 3-4).

Before each outer step: warm start z_0 = x^t (the dense parameters), N plain steps
z_{n+1} = z_n − β ∇_z λ Σ σ_i(W^t) l̃_i(z_n) on the step's batch (Eq. 4, σ detached: the stage's
``lower_level_objective``), the losses l(z_N) handed to the stage, x^t put back; then the ordinary
forward at x^t and the stage's backward, whose router gradient gets −λ∇_W g(W, z_N) (Eq. 3).

Only the dense parameters move in the inner loop: the gradients are taken with
``torch.autograd.grad`` with respect to them alone, so the backward never reaches the embedding
lookup, whose fused optimizer would otherwise update rows there. The inner loop is computed before
the outer forward because it changes the parameters in place (a graph built before would be stale).
"""

from __future__ import annotations

from typing import Any

import torch

from ..priority import NonFiniteLossError
from .outputs import TaskOutputs
from .steps import PlainStep


class DoubleLoopStep(PlainStep):
    """N inner steps of Eq. 4 (``stage.inner_steps``, ``stage.inner_lr`` = β), then the plain step."""

    def __init__(self, trainable, stage) -> None:
        super().__init__(trainable, stage)
        self.dense = [p for p in trainable.dense_parameters() if p.requires_grad]
        self._last: dict[str, float] = {}
        self._failed: NonFiniteLossError | None = None

    def forward(self, batch: Any) -> TaskOutputs:
        self._failed = None
        try:
            self._inner_loop(batch)
        except NonFiniteLossError as exc:  # the step is skipped in backward, like a non-finite loss
            self._failed = exc
        return self.trainable.forward(batch)

    def backward(self, out, losses, extra, *, step: int = 0) -> None:
        if self._failed is not None:
            raise self._failed
        super().backward(out, losses, extra, step=step)

    def _inner_loop(self, batch: Any) -> None:
        start = [p.detach().clone() for p in self.dense]                   # z_0 = x^t (warm start)
        try:
            first = None
            for _ in range(self.stage.inner_steps):
                out = self.trainable.forward(batch)
                objective = self.stage.lower_level_objective(out.losses, representation=_rep(out))
                first = float(objective.detach()) if first is None else first
                grads = torch.autograd.grad(objective, self.dense, allow_unused=True)
                with torch.no_grad():
                    for p, g in zip(self.dense, grads):
                        if g is not None:
                            p.sub_(g, alpha=self.stage.inner_lr)             # Eq. 4
            with torch.no_grad():
                at_z = self.trainable.forward(batch)                            # l(z_N)
                self.stage.set_lower_level_losses(at_z.losses)
                last = float(self.stage.lower_level_objective(at_z.losses, representation=_rep(at_z)))
        finally:
            with torch.no_grad():
                for p, x in zip(self.dense, start):                            # back to x^t
                    p.copy_(x)
        self._last = {"inner/lower_level_start": first, "inner/lower_level_end": last}

    def diagnostics(self) -> dict[str, float]:
        return dict(self._last)


def _rep(out: TaskOutputs):
    """The representation an MLP router reads (a tensor ``shared``), else None."""
    return out.shared if torch.is_tensor(out.shared) else None
