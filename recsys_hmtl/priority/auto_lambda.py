"""Auto-Lambda: task weights learned by a meta-gradient (Liu, Johns & Davison, TMLR 2022, Eq. 3-5).

    model:  θ ← θ − ∇_θ Σ_i λ_i L_i(θ; train batch)                                 (Eq. 3, the loss)
    meta:   λ ← λ − β ∇_λ Σ_{i ∈ primary} L_i(θ − α ∇_θ Σ_j λ_j L_j(θ; train); meta batch)   (Eq. 4)

with the hypergradient by the finite difference of the official code (``compute_hessian``, Eq. 5):
d = ∇_θ' Σ_primary L_i(θ'; meta batch), ε = 0.01 / ‖d‖, ∇_λ_i = −α (L_i(θ + εd) − L_i(θ − εd)) / 2ε on
the train batch. λ steps with its own Adam (``meta_lr`` β, 1e-4; the official code's ``autol_lr``);
λ starts at ``init`` (0.1, ``autol_init``); ``alpha`` is the virtual step's learning rate (the
official code uses the model's SGD learning rate, 0.1 in its dense-prediction trainer; here plain
SGD without momentum or weight decay). ``primary``: the tasks the meta batch judges (default all:
the "all tasks" setting of the paper).

The stage computes the objective Σ λ_i L_i (λ detached) and holds λ and its Adam state as buffers;
the training job's meta step (``bilevel:`` in the config: the meta batch is a held-out batch of the
training split) runs the virtual step over the dense parameters, calls :meth:`meta_update` with the
hypergradient, then the ordinary step. The official code draws its meta batch from the training
set in another order; a held-out slice is the paper's validation setting.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

from ._hparams import positive
from .base import LossStage
from .meta_adam import adam_step
from .registry import register_stage
from .support import StageProfile


@register_stage("auto_lambda")
class AutoLambdaStage(LossStage):
    """Auto-Lambda. Hyper-parameters: ``init`` (λ₀, 0.1), ``meta_lr`` (β, 1e-4), ``alpha`` (the virtual
    step's learning rate, 0.1), ``primary`` (tasks of the meta loss; all)."""
    profile = StageProfile("learned", "4 extra forwards and 2 dense backwards a step", "O(K) + a copy of "
                           "the dense parameters")
    needs_meta_batch = True

    def __init__(self, tasks: Sequence[str], init: float = 0.1, meta_lr: float = 1e-4, alpha: float = 0.1,
                 primary: Sequence[str] | None = None) -> None:
        super().__init__(tasks)
        self.init = positive(self.name, "init", init, allow_zero=True)
        self.meta_lr = positive(self.name, "meta_lr", meta_lr)
        self.alpha = positive(self.name, "alpha", alpha)
        chosen = list(self.tasks) if primary is None else list(primary)
        unknown = [t for t in chosen if t not in self.tasks]
        if unknown or not chosen:
            raise ValueError(f"stage '{self.name}': primary must name some of {list(self.tasks)}, got {chosen}")
        self.register_buffer("primary", torch.tensor([float(t in chosen) for t in self.tasks]))
        self.register_buffer("weights", torch.full((self.num_tasks,), self.init))          # λ
        self.register_buffer("exp_avg", torch.zeros(self.num_tasks))
        self.register_buffer("exp_avg_sq", torch.zeros(self.num_tasks))
        self.register_buffer("meta_steps", torch.zeros((), dtype=torch.long))

    def objective(self, losses: Tensor) -> Tensor:
        weights = self.weights.to(losses)
        self.record("weight", weights)
        return (weights * losses).sum()                                      # Σ λ_i L_i, Eq. 3

    def meta_objectives(self, losses: Mapping[str, Tensor]) -> list[Tensor]:
        """One: Σ_{i ∈ primary} L_i on the meta batch (Eq. 4's outer loss)."""
        stacked = self.stack(losses)
        return [(self.primary.to(stacked) * stacked).sum()]

    def train_objective(self, losses: Mapping[str, Tensor]) -> Tensor:
        """Σ λ_i L_i without diagnostics (the virtual step and the finite differences)."""
        stacked = self.stack(losses)
        return (self.weights.to(stacked) * stacked).sum()

    @torch.no_grad()
    def meta_update(self, hypergradients: Tensor) -> None:
        """One Adam step of λ along the hypergradient (``[1, K]``: of the one meta objective, Eq. 5)."""
        grad = hypergradients.detach().to(self.weights).reshape(-1)
        if not bool(torch.isfinite(grad).all()):
            raise FloatingPointError(f"stage '{self.name}': non-finite hypergradient {grad.tolist()}")
        adam_step(self.weights, grad, self.exp_avg, self.exp_avg_sq, self.meta_steps, self.meta_lr)
        self.record("hypergradient", grad)

    def extra_repr(self) -> str:
        return (f"tasks={list(self.tasks)}, init={self.init}, meta_lr={self.meta_lr}, alpha={self.alpha}, "
                f"primary={[t for t, p in zip(self.tasks, self.primary.tolist()) if p]}")
