"""MOML: multi-objective meta learning of the loss weights (Ye, Lin, Yue, Guo, Xiao & Zhang, "Multi-
Objective Meta Learning", NeurIPS 2021), as the official code (Baijiong-Lin/MOML@049437a,
``MTL/moml_office.py``) computes it for multi-task learning.

A bilevel problem whose upper level has one objective per task:

    lower:  θ*(a) = argmin_θ Σ_i w_i L_i(θ; train),   w = softmax(a)          (the code's ``Model_h``)
    upper:  min_a (L_1(θ*(a); held-out), ..., L_K(θ*(a); held-out))

with θ*(a) replaced by one virtual SGD step θ' = θ − α ∇_θ Σ_i w_i L_i(θ; train). The hypergradient of
each upper objective, ∂L_j(θ')/∂w_i = −α ⟨∇_θ' L_j(θ'), ∇_θ L_i(θ)⟩, comes exactly from the training
job's meta step (training/meta_step.py, from the K task gradients at θ: the quantity the official
code gets by differentiating through the virtual step), and through the softmax
G[j, m] = w_m (H[j, m] − Σ_i w_i H[j, i]). The upper level is solved by MGDA: the rows of G, each
divided by its l2 norm (the code's ``gradient_normalizers(..., 'l2')``), get min-norm weights s on the
simplex, and a takes one Adam step along Σ_j s_j G[j] (the gradient of Σ_j s_j L_j, as the code's
``loss_sum.backward()``); ``mgda: false`` is the code's plain sum (s = 1). The model then trains on
Σ_i w_i L_i. The paper's equation numbers were not checked offline; the computation is the code's.

Hyper-parameters: ``meta_lr`` (the Adam learning rate of a, 1e-3 as the code's ``h_optimizer``),
``alpha`` (the virtual step's learning rate; the code uses the model's, 1e-4), ``mgda`` (true). a
starts at 1/K (uniform weights). Diagnostics: ``weight/<task>``, ``mgda/<task>`` (s).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

from ._hparams import positive
from .base import LossStage
from .meta_adam import adam_step
from .min_norm import min_norm_weights
from .registry import register_stage
from .support import StageProfile


@register_stage("moml")
class MOMLStage(LossStage):
    """MOML (Ye et al. 2021). Hyper-parameters: ``meta_lr`` (1e-3), ``alpha`` (1e-4), ``mgda`` (true)."""
    profile = StageProfile("learned", "2 extra forwards and 1 + 2K dense backwards a step",
                           "O(K²) + a copy of the dense parameters")
    needs_meta_batch = True
    exact_hypergradient = True  # the official code differentiates through the virtual step: exact

    def __init__(self, tasks: Sequence[str], meta_lr: float = 1e-3, alpha: float = 1e-4, mgda: bool = True) -> None:
        super().__init__(tasks)
        self.meta_lr = positive(self.name, "meta_lr", meta_lr)
        self.alpha = positive(self.name, "alpha", alpha)
        if not isinstance(mgda, bool):
            raise ValueError(f"stage '{self.name}': mgda must be true or false, got {mgda!r}")
        self.mgda = mgda
        self.register_buffer("logits", torch.full((self.num_tasks,), 1.0 / self.num_tasks))   # a
        self.register_buffer("exp_avg", torch.zeros(self.num_tasks))
        self.register_buffer("exp_avg_sq", torch.zeros(self.num_tasks))
        self.register_buffer("meta_steps", torch.zeros((), dtype=torch.long))

    def weights(self) -> Tensor:
        return torch.softmax(self.logits, dim=0)

    def objective(self, losses: Tensor) -> Tensor:
        weights = self.weights().to(losses)
        self.record("weight", weights)
        return (weights * losses).sum()                                      # Σ w_i L_i, the lower level

    def train_objective(self, losses: Mapping[str, Tensor]) -> Tensor:
        stacked = self.stack(losses)
        return (self.weights().to(stacked) * stacked).sum()

    def meta_objectives(self, losses: Mapping[str, Tensor]) -> list[Tensor]:
        """Every task's loss on the held-out batch: the upper level's K objectives."""
        stacked = self.stack(losses)
        return [stacked[j] for j in range(self.num_tasks)]

    @torch.no_grad()
    def meta_update(self, hypergradients: Tensor) -> None:
        """``hypergradients[j, i]`` = ∂L_j/∂w_i; MGDA over the tasks' gradients in a, one Adam step."""
        h = hypergradients.detach().to("cpu", torch.float64)
        if not bool(torch.isfinite(h).all()):
            raise FloatingPointError(f"stage '{self.name}': non-finite hypergradients {h.tolist()}")
        w = self.weights().to(h)
        g = w * (h - (h * w).sum(1, keepdim=True))                          # through the softmax, [K, K]
        if self.mgda:
            norms = g.norm(dim=1, keepdim=True)
            unit = g / torch.where(norms > 0, norms, torch.ones_like(norms))
            s = min_norm_weights(unit @ unit.T)
        else:
            s = torch.ones(self.num_tasks, dtype=torch.float64)
        self.record("mgda", s)
        adam_step(self.logits, (s @ g).to(self.logits), self.exp_avg, self.exp_avg_sq, self.meta_steps, self.meta_lr)

    def extra_repr(self) -> str:
        return f"tasks={list(self.tasks)}, meta_lr={self.meta_lr}, alpha={self.alpha}, mgda={self.mgda}"
