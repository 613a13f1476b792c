"""LDC-MTL: bilevel loss-discrepancy control (seed 003, Eq. 1-4, Algorithms 1-2, App. A.1).

With router weights σ(W) (softmax, on the simplex) and normalised losses l̃_i:

    f = Σ_{i=1}^{K−1} |τ_i l̃_i − τ_{i+1} l̃_{i+1}|        upper level, Eq. 1 (tasks in priority order)
    g = Σ_i σ_i(W) l̃_i                                    lower level, Eq. 1
    objective = f + λ·g                                    penalised problem, Eq. 2 (λ = ``penalty``)

One backward of the objective updates model and router together (Algorithm 1, single loop).
τ = σ(W) (``tau="sigma"``) or 1 (``tau="one"``). |x| is sqrt(x² + γ) when ``smooth_abs`` γ > 0.
l̃ = l (``none``), l / l_0 (``rescale``) or log(l / l_0) (``log``), App. A.1; l_0 is the first
detached loss the stage sees (a buffer), re-captured after every epoch with ``reset_every_epoch``.
The official code weighs λ on f instead (``lamb*|l1-l2| + weighted``); we follow Eq. 2 and SPEC §5.

Router (``stage.parameters()``, to be handed to the optimizer): ``vector`` is a free vector W
initialised to zeros (σ starts uniform; A.1 for CelebA/QM9); ``mlp`` is a 3-layer MLP over the
*detached* shared representation (A.1 for Cityscapes/NYU-v2), softmax per row, averaged over the
batch. Give the representation as ``stage(losses, representation=rep)`` or
``stage.backward(losses, shared=rep)``; ``stage.needs_representation`` tells a trainer it must.

Double loop (``loop="double"``, Algorithm 2). Per outer step the caller (the training job does it
for the dense parameters, never the fused-optimizer embedding rows; ``stage.inner_steps`` = N,
``stage.inner_lr`` = β)
  1. copies the model to z (warm start z_0 = x^t) and runs N inner steps z ← z − β∇_z
     ``stage.lower_level_objective(losses_z)`` = λ·Σ σ_i(W^t) l̃_i(z), with σ detached (Eq. 4);
  2. calls ``stage.set_lower_level_losses(losses at z_N)``;
  3. calls ``stage.backward(losses at x^t)``, whose objective is f + λ g(W, x) − λ g(W, z_N) with
     l(z_N) detached: the model gets ∇_x f + λ∇_x g, the router additionally −λ∇_W g(W, z_N) (Eq. 3).
A double-loop call without fresh lower-level losses raises; each set of them is used once.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ._hparams import choose, positive, unused
from .base import LossStage, with_extra
from .support import StageProfile
from .registry import register_stage


class VectorRouter(nn.Module):
    """σ(W) = softmax(W), W a free ``[K]`` vector initialised to zeros (uniform weights)."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_tasks))

    def forward(self, representation: Tensor | None) -> Tensor:
        return torch.softmax(self.logits, dim=0)


class MlpRouter(nn.Module):
    """σ(W; h) = mean over the batch of softmax(MLP(h.detach())), a 3-layer MLP (App. A.1)."""

    def __init__(self, num_tasks: int, input_dim: int, hidden: int) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.mlp = nn.Sequential(
            nn.Linear(input_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_tasks),
        )

    def forward(self, representation: Tensor | None) -> Tensor:
        if representation is None:
            raise ValueError(
                "stage 'ldc_mtl' with router='mlp' needs the shared representation: call "
                "stage(losses, representation=rep) or stage.backward(losses, shared=rep)"
            )
        rep = representation.detach()
        rep = rep.unsqueeze(0) if rep.dim() == 1 else rep.reshape(rep.shape[0], -1)
        if rep.shape[1] != self.input_dim:
            raise ValueError(
                f"stage 'ldc_mtl': the representation has {rep.shape[1]} features per row, "
                f"the router was built with input_dim={self.input_dim}"
            )
        weight = next(self.parameters())
        return torch.softmax(self.mlp(rep.to(weight)), dim=-1).mean(dim=0)


def _identity(losses: Tensor, initial: Tensor) -> Tensor:
    return losses


def _rescale(losses: Tensor, initial: Tensor) -> Tensor:
    """l̃ = l / l_0 (App. A.1, Cityscapes / NYU-v2 with τ = σ)."""
    return losses / initial


def _log(losses: Tensor, initial: Tensor) -> Tensor:
    """l̃ = log(l / l_0) (App. A.1, QM9)."""
    return torch.log(losses / initial)


NORMALIZATIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "none": _identity, "rescale": _rescale, "log": _log,
}
TAUS = {"sigma": "sigma", "one": "one"}
LOOPS = {"single": "single", "double": "double"}
ROUTERS = {"vector": "vector", "mlp": "mlp"}


@register_stage("ldc_mtl")
class LdcMtlStage(LossStage):
    """LDC-MTL (seed 003). Hyper-parameters: ``penalty`` (λ, 0.1), ``tau`` (sigma | one), ``router``
    (vector | mlp), ``normalize`` (none | rescale | log), ``smooth_abs`` (γ, 0 = plain |x|),
    ``loop`` (single | double), ``input_dim`` and ``router_hidden`` (64) for the MLP router,
    ``reset_every_epoch`` (False: re-capture l_0 after each epoch); with ``loop: double``,
    ``inner_steps`` (N, 1) and ``inner_lr`` (β, 0.01) of Eq. 4's plain gradient steps."""
    profile = StageProfile("learned", "O(K) (vector router); O(K·D) with the MLP router", "O(K)")

    def __init__(
        self,
        tasks: Sequence[str],
        penalty: float = 0.1,
        tau: str = "sigma",
        router: str = "vector",
        normalize: str = "none",
        smooth_abs: float = 0.0,
        loop: str = "single",
        input_dim: int | None = None,
        router_hidden: int | None = None,
        reset_every_epoch: bool = False,
        inner_steps: int | None = None,
        inner_lr: float | None = None,
    ) -> None:
        super().__init__(tasks)
        self.penalty = positive(self.name, "penalty", penalty)
        self.tau = choose(self.name, "tau", tau, TAUS)
        self.normalize = normalize
        self._normalize = choose(self.name, "normalize", normalize, NORMALIZATIONS)
        self.smooth_abs = positive(self.name, "smooth_abs", smooth_abs, allow_zero=True)
        self.loop = choose(self.name, "loop", loop, LOOPS)
        self.reset_every_epoch = bool(reset_every_epoch)
        if self.loop == "single":
            unused(self.name, "inner_steps", inner_steps, "with loop='single'")
            unused(self.name, "inner_lr", inner_lr, "with loop='single'")
        steps = 1 if inner_steps is None else inner_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"stage '{self.name}': inner_steps must be an integer >= 1, got {steps!r}")
        self.inner_steps = steps
        self.inner_lr = positive(self.name, "inner_lr", 0.01 if inner_lr is None else inner_lr)
        kind = choose(self.name, "router", router, ROUTERS)
        if kind == "vector":
            unused(self.name, "input_dim", input_dim, "with router='vector'")
            unused(self.name, "router_hidden", router_hidden, "with router='vector'")
            self.router: nn.Module = VectorRouter(self.num_tasks)
        else:
            if input_dim is None:
                raise ValueError(
                    f"stage '{self.name}': router='mlp' needs input_dim, the width of the shared "
                    "representation"
                )
            width = int(positive(self.name, "input_dim", input_dim))
            hidden = 64 if router_hidden is None else router_hidden
            hidden = int(positive(self.name, "router_hidden", hidden))
            self.router = MlpRouter(self.num_tasks, width, hidden)
        self.register_buffer("initial_losses", torch.ones(self.num_tasks))
        self.register_buffer("has_initial", torch.zeros((), dtype=torch.bool))
        self.register_buffer("lower_losses", torch.zeros(self.num_tasks))
        self.register_buffer("has_lower", torch.zeros((), dtype=torch.bool))

    @property
    def needs_lower_level(self) -> bool:
        """True with ``loop='double'``: the trainer runs Eq. 4's inner loop before every step."""
        return self.loop == "double"

    @property
    def needs_representation(self) -> bool:
        """True when the router reads the shared representation (``router='mlp'``)."""
        return isinstance(self.router, MlpRouter)

    # ------------------------------------------------------------------------------ public API
    def forward(self, losses: Mapping[str, Tensor], representation: Tensor | None = None) -> Tensor:
        return self.objective(self.stack(losses), representation)

    def backward(
        self,
        losses: Mapping[str, Tensor],
        shared=None,
        extra: Tensor | None = None,
        representation: Tensor | None = None,
    ) -> Tensor:
        """One backward into model and router; a tensor ``shared`` is taken as the representation."""
        if representation is None and torch.is_tensor(shared):
            representation = shared
        objective = self(losses, representation=representation)
        with_extra(objective, extra).backward()
        return objective.detach()

    def objective(self, losses: Tensor, representation: Tensor | None = None) -> Tensor:
        if self.loop == "double" and not bool(self.has_lower):
            raise RuntimeError(
                f"stage '{self.name}' with loop='double' needs stage.set_lower_level_losses(...) "
                "(the losses after the inner loop of Algorithm 2) before each call"
            )
        sigma = self.router(representation).to(losses)              # may raise: before any state moves
        normalized = self._normalized(losses)
        tau = sigma if self.tau == "sigma" else torch.ones_like(sigma)
        gaps = tau[:-1] * normalized[:-1] - tau[1:] * normalized[1:]
        upper = self._abs(gaps).sum()                                      # f, Eq. 1
        lower = (sigma * normalized).sum()                                 # g, Eq. 1
        objective = upper + self.penalty * lower                           # Eq. 2
        if self.loop == "double":
            at_optimum = self._normalize(
                self.lower_losses.clone().to(losses), self.initial_losses.clone().to(losses)
            )
            objective = objective - self.penalty * (sigma * at_optimum).sum()  # −λ g(W, z_N), Eq. 3
            self.has_lower.fill_(False)
        self.record("weight", sigma)
        self.record("tau", tau)
        self.record("normalized_loss", normalized)
        self._diagnostics["discrepancy"] = float(upper.detach())
        self._diagnostics["lower_level"] = float(lower.detach())
        return objective

    def lower_level_objective(
        self, losses: Mapping[str, Tensor], representation: Tensor | None = None
    ) -> Tensor:
        """λ·Σ σ_i(W) l̃_i with σ detached: what the inner loop of Algorithm 2 descends (Eq. 4)."""
        stacked = self.stack(losses)
        sigma = self.router(representation).detach().to(stacked)
        return self.penalty * (sigma * self._normalized(stacked)).sum()

    def set_lower_level_losses(self, losses: Mapping[str, Tensor]) -> None:
        """Store l(z_N), the losses after the inner loop, for the next double-loop call."""
        stacked = self.stack(losses).detach()
        self._check_positive(stacked)
        self.lower_losses.copy_(stacked.to(self.lower_losses))
        self.has_lower.fill_(True)

    def end_epoch(self) -> None:
        """With ``reset_every_epoch``, the next loss becomes the new l_0 (App. A.1, QM9)."""
        if self.reset_every_epoch:
            self.has_initial.fill_(False)

    # -------------------------------------------------------------------------------- helpers
    def _normalized(self, losses: Tensor) -> Tensor:
        if self.normalize == "none":
            return losses
        self._check_positive(losses.detach())
        if not bool(self.has_initial):
            self.initial_losses.copy_(losses.detach().to(self.initial_losses))
            self.has_initial.fill_(True)
        return self._normalize(losses, self.initial_losses.clone().to(losses))  # buffer may re-capture

    def _check_positive(self, losses: Tensor) -> None:
        if self.normalize != "none" and bool((losses <= 0).any()):
            i = int((losses <= 0).nonzero()[0])
            raise ValueError(
                f"stage '{self.name}': normalize='{self.normalize}' needs positive losses; "
                f"task '{self.tasks[i]}' has {float(losses[i])}"
            )

    def _abs(self, x: Tensor) -> Tensor:
        return torch.sqrt(x * x + self.smooth_abs) if self.smooth_abs > 0 else x.abs()

    def extra_repr(self) -> str:
        return (
            f"tasks={list(self.tasks)}, penalty={self.penalty}, tau={self.tau!r}, "
            f"normalize={self.normalize!r}, smooth_abs={self.smooth_abs}, loop={self.loop!r}"
        )
