"""SDMGrad (Xiao, Ban & Ji, "Direction-oriented Multi-objective Learning: Simple and Provable
Stochastic Algorithms", NeurIPS 2023), as LibMTL's ``weighting/SDMGrad.py`` (after the authors'
OptMN-Lab/sdmgrad).

The direction-oriented problem (Sec. 3) keeps the common descent direction near the average
gradient g_0 = (1/K) Σ_i g_i; with the regulariser λ its solution is

    d = (G w + λ g_0) / (1 + λ),     w = argmin_{w ∈ simplex} ½ ‖G w + λ g_0‖²

(G w = Σ_i w_i g_i), and SDMGrad (Algorithm 1) takes projected stochastic gradient steps on w,
``w ← Π_simplex(w − β (Gᵀ G w + λ Gᵀ g_0))``, warm-started from the previous step's w.

Variant implemented: **deterministic, from the Gram matrix.** The reference draws three batches per
step (ζ for the direction, ξ and ξ' for an unbiased estimate of Gᵀ G in the w update); here the
three are the one batch the stage is given, so every quantity is a function of the Gram matrix
M = G Gᵀ. (The authors' own code allocates the three gradient matrices as one list ``[T] * 3`` and
so also uses the last batch three times.) As LibMTL, the step is

* M̂ = M / (σ² + 1e-8), σ = mean_i √max(M_ii, 0), and b = M̂ 1/K (= Gᵀ g_0, normalised);
* ``niter`` steps of heavy-ball SGD (torch.optim.SGD: lr β, momentum μ, the momentum restarted every
  step) on w with gradient M̂ w + λ b, each followed by the Euclidean projection onto the simplex
  (Duchi et al. 2008, sort-based, as the reference's ``euclidean_proj_simplex``);
* d = (Σ_i w_i g_i + λ g_0) / (1 + λ): coefficients c = (w + λ/K) / (1 + λ), Σ c_i = 1.

w (float64, ``simplex_weights``, initially 1/K) is state: the reference keeps it across steps, so a
``state_dict`` round trip resumes exactly. Task-specific parameters get their plain ∂L_i/∂θ_i (in
LibMTL they accumulate one such gradient per sampled batch, i.e. three). LibMTL refuses
representation gradients; here the Gram matrix of the representation (or the task views) is used
like that of the shared parameters, as for every gradient stage.

Hyper-parameters (LibMTL's defaults): ``lamda`` λ (``SDMGrad_lamda``, 0.3), ``niter``
(``SDMGrad_niter``, 20), and the SGD step size ``lr`` (5.0) and ``momentum`` (0.5), which LibMTL
fixes in the code. The authors' code differs in its constants (lr 10, λ 0.6 by default,
σ = mean_i √(M_ii + 1e-4) without the 1e-8) and multiplies the direction by K "to match the sum
loss"; LibMTL, followed here, does not.

Diagnostics: ``weight`` c_i, ``simplex_weight`` w_i.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import positive, unit_interval
from .registry import register_stage
from .support import StageProfile
from .task_grads import GradientStage

_F64 = torch.float64


def project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of ``v`` onto the probability simplex (Duchi et al. 2008): with u the
    entries sorted in decreasing order and ρ the last index with u_ρ·(ρ+1) > Σ_{j≤ρ} u_j − 1,
    θ = (Σ_{j≤ρ} u_j − 1)/(ρ+1) and the projection is max(v − θ, 0). A point of the simplex (sum
    exactly 1, no negative entry) is returned as is, as the reference does."""
    if float(v.sum()) == 1.0 and bool((v >= 0).all()):
        return v
    u = torch.sort(v, descending=True).values
    cssv = torch.cumsum(u, 0)
    ks = torch.arange(1, v.numel() + 1, dtype=v.dtype)
    rho = int((u * ks > cssv - 1.0).nonzero()[-1])
    theta = (cssv[rho] - 1.0) / (rho + 1)
    return (v - theta).clamp_min(0.0)


@register_stage("sdmgrad")
class SDMGradStage(GradientStage):
    """Deterministic SDMGrad: w by ``niter`` projected heavy-ball steps on the normalised Gram
    matrix, warm-started; d = (G w + λ g_0)/(1 + λ); heads get ∂L_i/∂θ_i."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(n·K log K) projected SGD", "O(K·D)")

    def __init__(
        self,
        tasks: Sequence[str],
        lamda: float = 0.3,
        niter: int = 20,
        lr: float = 5.0,
        momentum: float = 0.5,
    ) -> None:
        super().__init__(tasks)
        self.lamda = positive(self.name, "lamda", lamda, allow_zero=True)
        if isinstance(niter, bool) or not isinstance(niter, int) or niter < 1:
            raise ValueError(f"stage '{self.name}': niter must be an integer >= 1, got {niter!r}")
        self.niter = niter
        self.lr = positive(self.name, "lr", lr)
        self.momentum = unit_interval(self.name, "momentum", momentum)
        k = self.num_tasks
        self.register_buffer("simplex_weights", torch.full((k,), 1.0 / k, dtype=_F64))

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        k = self.num_tasks
        m = gram.to("cpu", _F64)
        sigma = m.diagonal().clamp_min(0).sqrt().mean()
        m_hat = m / (sigma * sigma + 1e-8)
        b = m_hat.mean(dim=1)
        w = self.simplex_weights.detach().to("cpu", _F64).clone()
        buf = None
        for _ in range(self.niter):
            grad = m_hat @ w + self.lamda * b
            buf = grad.clone() if buf is None else self.momentum * buf + grad
            w = project_simplex(w - self.lr * buf)
        self.simplex_weights.copy_(w)
        self.record("simplex_weight", w)
        return (w + self.lamda / k) / (1.0 + self.lamda)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, lamda={self.lamda}, niter={self.niter}, lr={self.lr}, "
                f"momentum={self.momentum}")
