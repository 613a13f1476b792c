"""Aligned-MTL (Senushkin et al., CVPR 2023, "Independent Component Alignment for Multi-Task
Learning", Algorithm 1; reference code LibMTL ``weighting/Aligned_MTL.py``, after the authors'
SamsungLabs/MTL, and TorchJD ``AlignedMTL``).

The task gradients (rows of J) are replaced by aligned ones, ``J' = Bᵀ J`` with the balance
transformation built from the eigendecomposition of the Gram matrix ``M = J Jᵀ = V Λ Vᵀ``:
``B = √λ_R · V Λ^{-1/2} Vᵀ`` (Algorithm 1: eigendecomposition, Σ⁻¹ = Λ^{-1/2}, scaling by the
smallest singular value σ_R = √λ_R). Then ``J' J'ᵀ = Bᵀ M B = λ_R · V Vᵀ``: every non-zero singular
value of the aligned gradients is σ_R, their condition number is 1 (the paper's stability
criterion). The update is ``d = J'ᵀ w`` with task weights w; as LibMTL, ``w = 1``
(``alpha = B.sum(0)``), so ``d = Σ_i c_i g_i`` with ``c = B·1`` (B symmetric). TorchJD's
``AlignedMTL`` uses ``w = 1/K`` (its mean preference vector): its weights are these divided by K.

Only the rank-R part is kept (LibMTL): eigenvalues ``λ ≤ λ_max · K · ε`` are dropped, with ε the
float32 machine epsilon (LibMTL's ``torch.finfo()`` under its default float32; the Gram matrix of
float32 gradients is no more precise than that, TorchJD takes the Gram matrix's own dtype). With
no eigenvalue above it (all gradients zero) B = I, as in TorchJD (LibMTL fails there).

``scale`` (TorchJD's ``scale_mode``, from the authors' code): ``min`` (λ_R, the paper and LibMTL),
``median`` (``torch.median`` of the kept eigenvalues: the lower middle one for an even count) or
``rmse`` (their mean). Diagnostics: ``rank`` (R) and ``condition_number`` (``√(λ_1/λ_R)`` of the
task gradients before alignment). Task-specific parameters get their plain ∂L_i/∂θ_i, as in
LibMTL. In rep-grad mode the Gram matrix is that of the whole representation gradient (LibMTL's
rep-grad mode first sums each task's representation gradient over the batch).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import choose
from .support import StageProfile
from .registry import register_stage
from .task_grads import GradientStage

_F64 = torch.float64
_RANK_EPS = torch.finfo(torch.float32).eps

SCALES = {
    "min": lambda lam: lam[-1],
    "median": lambda lam: torch.median(lam),
    "rmse": lambda lam: lam.mean(),
}


def balance_transformation(gram: Tensor, scale: str = "min") -> tuple[Tensor, int, float]:
    """``B = √s · V_R Λ_R^{-1/2} V_Rᵀ`` (Algorithm 1) from the eigendecomposition of the Gram matrix
    over its R eigenvalues above ``λ_max · K · ε_float32``, with ``s`` the ``scale`` of them
    (:data:`SCALES`); returns B, R and ``√(λ_1/λ_R)`` (B = I, R = 0, 1.0 when none is kept)."""
    m = gram.detach().to("cpu", _F64)
    k = m.shape[0]
    lam, vec = torch.linalg.eigh(m, UPLO="U")  # ascending
    keep = lam > float(lam.max()) * k * _RANK_EPS
    rank = int(keep.sum())
    if rank == 0:
        return torch.eye(k, dtype=_F64), 0, 1.0
    order = torch.argsort(lam, descending=True)[:rank]
    lam, vec = lam[order], vec[:, order]
    s = SCALES[scale](lam)
    b = s.sqrt() * (vec / lam.sqrt()) @ vec.T
    return b, rank, float((lam[0] / lam[-1]).sqrt())


@register_stage("aligned_mtl")
class AlignedMTLStage(GradientStage):
    """c = B·1 with B the balance transformation of the Gram matrix; heads get ∂L_i/∂θ_i."""
    profile = StageProfile("gradients", "O(K²D) Gram + O(K³) eigendecomposition", "O(K·D)")

    def __init__(self, tasks: Sequence[str], scale: str = "min") -> None:
        super().__init__(tasks)
        choose(self.name, "scale", scale, SCALES)
        self.scale = scale

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        b, rank, cond = balance_transformation(gram, self.scale)
        self._diagnostics["rank"] = float(rank)
        self._diagnostics["condition_number"] = cond
        return b.sum(0)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale!r}"
