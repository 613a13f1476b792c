"""MoCo (Fernando, Shen, Liu, Chaudhury, Murugesan & Chen, "Mitigating Gradient Bias in
Multi-objective Learning: A Provably Convergent Approach", ICLR 2023), as LibMTL's
``weighting/MoCo.py`` (LibMTL's port of the authors' code).

MGDA's weights computed from one mini-batch's gradients are biased; MoCo (the paper's Algorithm 1)
tracks each task's gradient with a running average Y (its tracking variable), takes one gradient
step on MGDA's subproblem min_λ ½‖Yᵀλ‖² (+ ρ/2 ‖λ‖²) for the weights λ with that tracked matrix, and
steps along Yᵀλ. As LibMTL (t = 1, 2, ... the step):

    h_i = g_i / (‖g_i‖ + 1e-8) · L_i                      (LibMTL: normalised gradient x loss)
    Y ← Y − β_t (Y − H),            β_t = β / t^σ_β          (y tracking, Y starts at 0)
    λ ← softmax(λ − γ_t (Y Yᵀ + ρ I) λ),  γ_t = γ / t^σ_γ   (λ starts at 1/K; LibMTL's softmax
                                                            in place of the projection onto Δ)
    d = Yᵀ λ

where g_i is task i's gradient with respect to the shared parameters. Task-specific parameters get
their plain ∂L_i/∂θ_i (LibMTL back-propagates every loss with weight 1 and only replaces the shared
parameters' gradient).

**Parameter mode only** (``grad_modes = ("params",)``, ``stage.grad_mode: params``; LibMTL refuses
rep_grad too): Y is an average over steps, so its coordinates must mean the same thing at every
step; a representation's rows are the batch's samples, which change every batch. Under ``--nproc``
the gradient matrix is averaged over the ranks first (DDP), so every rank keeps the same Y and λ.

State (buffers, exact ``state_dict`` round trips): ``tracked`` (Y, K x D float64, D = the shared
parameters' entries, sized at the first step; a checkpoint's shape is adopted on load),
``lambd`` (λ) and ``steps`` (t).

Hyper-parameters (LibMTL's ``--MoCo_*`` defaults): ``beta`` (0.5, in (0, 1]), ``beta_sigma`` (0.5),
``gamma`` (0.1), ``gamma_sigma`` (0.5), ``rho`` (0). Diagnostics: ``weight`` λ_i, ``grad_norm``
‖g_i‖, ``tracked_norm`` ‖y_i‖, ``direction_norm`` ‖d‖.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

from ._hparams import positive
from .registry import register_stage
from .support import StageProfile
from .task_grads import GradientStage, backward_direction, parameter_gradient_matrix

_F64 = torch.float64
NORM_EPS = 1e-8  # LibMTL's constant in the gradient normalisation


def check_state_shape(stage: GradientStage, state: Tensor, matrix: Tensor, what: str) -> None:
    if state.numel() and tuple(state.shape) != tuple(matrix.shape):
        raise ValueError(
            f"stage '{stage.name}': the task gradients have {tuple(matrix.shape)} coordinates but the "
            f"{what} {tuple(state.shape)}; the shared parameters changed size"
        )


@register_stage("moco")
class MoCoStage(GradientStage):
    """MoCo (Fernando et al. 2023), shared parameters only (module docstring)."""
    profile = StageProfile("gradients", "O(K·D) normalisation and tracking + O(K²D) Gram of Y",
                           "O(K·D) + K·D tracked gradients (state, float64); D = shared parameters")
    grad_modes = ("params",)

    def __init__(self, tasks: Sequence[str], beta: float = 0.5, beta_sigma: float = 0.5,
                 gamma: float = 0.1, gamma_sigma: float = 0.5, rho: float = 0.0) -> None:
        super().__init__(tasks)
        self.beta = positive(self.name, "beta", beta)
        if self.beta > 1.0:
            raise ValueError(f"stage '{self.name}': beta must lie in (0, 1], got {beta!r}")
        self.beta_sigma = positive(self.name, "beta_sigma", beta_sigma, allow_zero=True)
        self.gamma = positive(self.name, "gamma", gamma, allow_zero=True)
        self.gamma_sigma = positive(self.name, "gamma_sigma", gamma_sigma, allow_zero=True)
        self.rho = positive(self.name, "rho", rho, allow_zero=True)
        k = self.num_tasks
        self.register_buffer("tracked", torch.zeros(0, dtype=_F64))
        self.register_buffer("lambd", torch.full((k,), 1.0 / k, dtype=_F64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    # ------------------------------------------------------------------------------ the method
    def update(self, matrix: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """One MoCo step from the K x D gradient matrix and the detached losses [K]; returns the
        direction d (float64, [D]) and λ (module docstring)."""
        g = matrix.detach().to(_F64)
        check_state_shape(self, self.tracked, g, "tracked gradients")
        y = self.tracked.to(g.device) if self.tracked.numel() else torch.zeros_like(g)
        loss = losses.detach().to(g.device, _F64)
        norms = g.norm(dim=1)
        h = g / (norms + NORM_EPS).unsqueeze(1) * loss.unsqueeze(1)
        t = int(self.steps) + 1
        y = y - (self.beta / t ** self.beta_sigma) * (y - h)
        lambd = self.lambd.detach().to(g.device, _F64)
        eye = torch.eye(self.num_tasks, dtype=_F64, device=g.device)
        lambd = torch.softmax(lambd - (self.gamma / t ** self.gamma_sigma) * (y @ y.t() + self.rho * eye) @ lambd, -1)
        direction = y.t() @ lambd
        self.tracked = y
        self.lambd.copy_(lambd)
        self.steps += 1
        self.record("grad_norm", norms.cpu())
        self.record("tracked_norm", y.norm(dim=1).cpu())
        return direction, lambd.cpu()

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:  # pragma: no cover - not used
        raise TypeError(f"stage '{self.name}' steps along tracked gradients: use backward()")

    # -------------------------------------------------------------------------- the single pass
    def backward(
        self, losses: Mapping[str, Tensor], shared=None, extra: Tensor | None = None
    ) -> Tensor:
        """The shared parameters get d = Yᵀλ, the heads Σ_i ∂L_i/∂θ_i, in one backward; returns the
        detached Σ_i λ_i L_i."""
        stacked = self.stack(losses)
        per_task = [losses[t].reshape(()) for t in self.tasks]
        tensors, matrix = parameter_gradient_matrix(self, per_task, shared)
        direction, lambd = self.update(matrix, stacked)
        parts = direction.split([t.numel() for t in tensors])
        ones = torch.ones(self.num_tasks, dtype=_F64)
        backward_direction(stacked, tensors, False, None, parts, ones, extra)
        self.record("weight", lambd)
        self._diagnostics["direction_norm"] = float(direction.norm())
        detached = stacked.detach()
        return (lambd.to(detached) * detached).sum()

    # ---------------------------------------------------------------------------------- state
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        """Adopt the checkpoint's Y shape (sized lazily at the first step)."""
        incoming = state_dict.get(prefix + "tracked")
        if torch.is_tensor(incoming) and tuple(incoming.shape) != tuple(self.tracked.shape):
            self.tracked = torch.zeros(incoming.shape, dtype=_F64, device=self.tracked.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, beta={self.beta}, beta_sigma={self.beta_sigma}, "
                f"gamma={self.gamma}, gamma_sigma={self.gamma_sigma}, rho={self.rho}")
