"""Seed 004's multi-task bilevel mode (``bilevel:`` in a run config): our reading of its summary.

Seed 004 reviews multi-task bilevel learning with a generally convex lower level, rewritten as an
equality-constrained multi-objective problem (ECMO) and solved by a weighted-Chebyshev penalty
method; it gives no algorithm, so the formulation here is ours (README, "Bilevel mode"):

* lower level: each task's head y_i fitted on training batches, f_i(x, y_i) = the task's training
  loss; convex in y_i for a fixed representation because bilevel mode requires linear heads;
* upper level: F_i(x, y_i) = the task's loss on a held-out slice of the training split
  (``bilevel.holdout``, 10 %; never the validation split, which model selection uses);
* equality constraints h_i = ∇_{y_i} f_i(x, y_i) = 0 (stationarity = optimality of a convex
  lower level), handed to the stage: ``wc_penalty`` minimises μ·logsumexp_i(p_i (F_i − z_i)/μ)
  + ρ_t Σ_i ‖h_i‖² over x and y together, ρ_t = ρ₀ √(1 + t). The gradient of ‖h_i‖² through x
  is a double backward, cheap for a linear head (``create_graph`` on the head's gradient only).
  ``penalty_grad: heads`` (our variant) lets the penalty move the heads only (the heads read the
  training batch's representation detached): measured on demo data, the full penalty drives the
  trunk to a representation on which every head is trivially stationary (predictions at the base
  rate, AUC ≈ 0.5), see the README.

Measured every step: the constraint residual Σ_i ‖h_i‖ (``bilevel/residual``); every
``kkt_every`` steps a Pareto-stationarity measure (``bilevel/kkt``): min over λ in the simplex of
‖Σ_i λ_i ∇F_i + ρ_t ∇Σ_i ‖h_i‖²‖ over the dense parameters (the model's and the heads'; embedding
rows, which a fused optimizer updates inside the backward, are left out), plus the residual.

Single process only: the per-step ``autograd.grad`` calls are outside DDP's reducer.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import Tensor

from ..errors import InputError
from ..priority import NonFiniteLossError
from ..priority.min_norm import min_norm_weights
from .adapter import BatchStream
from .outputs import TaskOutputs
from .steps import PlainStep


PENALTY_GRADS = ("full", "heads")


def bilevel_on(cfg) -> bool:
    """The config's ``bilevel:`` section is present and enabled."""
    return cfg.bilevel is not None and cfg.bilevel.enabled


def check_bilevel(cfg, adapter, resolved, stage) -> None:
    """Bilevel mode's configuration checks (InputError naming the key); nothing when it is off."""
    b = cfg.bilevel
    if not bilevel_on(cfg):
        if stage.needs_meta_batch:
            raise InputError(f"stage '{stage.name}' learns from a held-out batch each step: it trains in "
                             "bilevel mode", key="bilevel", hint="--set bilevel.holdout=0.1")
        return
    if not adapter.supports_bilevel:
        raise InputError(f"the {adapter.name} adapter has no bilevel mode (the recommendation adapter has)",
                         key="bilevel")
    if not 0.0 < b.holdout < 1.0:
        raise InputError(f"must lie in (0, 1): the fraction of the training split held out for the upper "
                         f"level, got {b.holdout}", key="bilevel.holdout")
    if b.penalty_grad not in PENALTY_GRADS:
        raise InputError(f"unknown value '{b.penalty_grad}'", key="bilevel.penalty_grad",
                         hint="full (the penalty moves trunk and heads) or heads (the heads only)")
    if b.kkt_every < 0:
        raise InputError(f"must be at least 0 (0: every trainer.log_every steps), got {b.kkt_every}",
                         key="bilevel.kkt_every")
    if stage.needs_meta_batch:
        return  # the meta step needs held-out batches only, no particular heads
    if not stage.accepts_constraints:
        raise InputError(f"stage '{stage.name}' takes no equality constraints; bilevel mode passes the "
                         "heads' stationarity residuals to the stage", key="stage.name",
                         hint="use stage.name=wc_penalty (seed 004's weighted-Chebyshev penalty) or "
                              "auto_lambda (a meta-gradient on the held-out batches)")
    adapter.check_bilevel(resolved)


@dataclass
class PairedBatch:
    """One bilevel step's data: a training batch (lower level) and a held-out one (upper level)."""

    lower: Any
    upper: Any

    @property
    def batch_size(self) -> int:
        return self.lower.batch_size

    def to(self, device) -> "PairedBatch":
        return PairedBatch(self.lower.to(device), self.upper.to(device))


class BilevelStream:
    """The lower level's batches (they define the epoch), each paired with the next held-out batch;
    the held-out stream cycles through its own epochs. Held-out batch number u of the run is read
    for training batch u, so a resumed run pairs exactly as an uninterrupted one."""

    def __init__(self, lower: BatchStream, upper: BatchStream) -> None:
        if len(upper) == 0:
            raise InputError("the held-out slice has no batch; raise bilevel.holdout or lower trainer.batch_size",
                             key="bilevel.holdout")
        self.lower, self.upper = lower, upper
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.lower)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.lower.set_epoch(epoch)

    def batches(self, start: int = 0) -> Iterator[PairedBatch]:
        held_out = self._held_out(self.epoch * len(self.lower) + start)
        for batch in self.lower.batches(start):
            yield PairedBatch(batch, next(held_out))

    def _held_out(self, first: int) -> Iterator[Any]:
        per_epoch = len(self.upper)
        epoch, index = divmod(first, per_epoch)
        while True:
            self.upper.set_epoch(epoch)
            yield from self.upper.batches(index)
            epoch, index = epoch + 1, 0


class BilevelStep(PlainStep):
    """F on the held-out batch (the losses the stage weighs and the logs show), f on the training
    batch, h = ∇_y Σ_i f_i (slice i = h_i), then the stage's backward with the constraints."""

    def __init__(self, trainable, stage, *, kkt_every: int, penalty_grad: str = "full") -> None:
        super().__init__(trainable, stage)
        heads = trainable.task_heads()
        if heads is None:
            raise InputError("the model has no independent linear task heads", key="bilevel")
        self.heads = heads
        self.dense = [p for p in trainable.dense_parameters() if p.requires_grad]
        self.kkt_every = kkt_every
        self.lower_context = heads.detached_inputs if penalty_grad == "heads" else nullcontext
        self._lower: TaskOutputs | None = None
        self._last: dict[str, float] = {}
        self._kkt: float | None = None

    def forward(self, batch: PairedBatch) -> TaskOutputs:
        upper = self.trainable.forward(batch.upper)
        with self.lower_context():
            self._lower = self.trainable.forward(batch.lower)
        return TaskOutputs(upper.losses, upper.shared, upper.extra, batch.batch_size,
                           task_counts=self._lower.task_counts)

    def backward(self, out, losses, extra, *, step: int = 0) -> None:
        lower = self._lower.losses
        self._lower = None
        for task in self.stage.tasks:
            value = float(lower[task].detach())
            if value != value or value in (float("inf"), float("-inf")):
                raise NonFiniteLossError(task, value)
        total = torch.stack([lower[t].reshape(()) for t in self.stage.tasks]).sum()
        h = torch.autograd.grad(total, list(self.heads.parameters), create_graph=True)   # h_i = ∇_{y_i} f_i
        norms = self.heads.per_task_sq_norms([g.detach() for g in h]).double().sqrt()
        self._last = {"bilevel/residual": float(norms.sum()),
                      **{f"bilevel/residual/{t}": float(v) for t, v in zip(self.stage.tasks, norms)}}
        if step % self.kkt_every == 0:
            self._kkt = self._pareto_stationarity(losses, h) + self._last["bilevel/residual"]
        if self._kkt is not None:
            self._last["bilevel/kkt"] = self._kkt
        self.stage.backward(losses, shared=out.shared, extra=extra,
                            constraints={f"h{i}": g for i, g in enumerate(h)})

    def _pareto_stationarity(self, losses, h) -> float:
        """min_{λ ∈ Δ} ‖Σ_i λ_i ∇F_i + ρ_t ∇Σ_i ‖h_i‖²‖ over the dense parameters."""
        penalty = self.stage.current_rho() * sum((g * g).sum() for g in h)
        c = _flat(torch.autograd.grad(penalty, self.dense, retain_graph=True, allow_unused=True), self.dense)
        rows = [_flat(torch.autograd.grad(losses[t], self.dense, retain_graph=True, allow_unused=True), self.dense) + c
                for t in self.stage.tasks]
        v = torch.stack(rows).double()
        weights = min_norm_weights(v @ v.T)
        return float((weights.to(v) @ v).norm())

    def diagnostics(self) -> dict[str, float]:
        return dict(self._last)

    def summary(self) -> dict:
        """The last step's residual (and the last measured KKT value) for ``run_summary.json``."""
        return {"bilevel": {k.split("/", 1)[1]: v for k, v in self._last.items()}}


def _flat(grads, params) -> Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])
