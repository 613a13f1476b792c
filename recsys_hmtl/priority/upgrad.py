"""UPGrad (Quinton & Rey 2024, "Jacobian Descent for Multi-Objective Optimization", Sec. 2.2;
reference code TorchJD ``torchjd.aggregation.UPGrad``, also LibMTL's ``UPGrad.py``).

Every task gradient is projected onto the dual cone of all of them, and the projections averaged:
``π_J(x) = argmin_{y : Jy ≥ 0} ‖y − x‖²`` (Eq. 3) and ``A_UPGrad(J) = (1/K) Σ_i π_J(g_i)``, with J
the K x D matrix of the task gradients g_i (rows). By Proposition 1, ``π_J(Jᵀu) = Jᵀv`` with
``v = argmin_{v ≥ u} vᵀ G v`` (G = J Jᵀ, the Gram matrix), so UPGrad is a combination of the
task gradients, ``d = Σ_i c_i g_i`` with ``c = Σ_i v(e_i / K)``: K small QPs on the Gram matrix.
The result is non-conflicting, ``⟨g_i, d⟩ ≥ 0`` for every i (Sec. 2.1, Def. 1).

As in TorchJD's default ``QuadprogProjector(norm_eps=1e-4, reg_eps=1e-4)`` (and LibMTL's
``--UPGrad_norm_eps``/``--UPGrad_reg_eps``), the QPs are solved on ``G / tr(G) + reg_eps · I``,
and on ``reg_eps · I`` when ``tr(G) < norm_eps`` (then ``c = 1/K``: the mean, diagnostic
``guard = 1``). The ridge keeps the QP strictly convex but relaxes the non-conflict to
``⟨g_j, Jᵀv⟩ ≥ −reg_eps · tr(G) · v_j`` (KKT of the ridged QP), so ``⟨g_j, d⟩ ≥ −reg_eps · tr(G)
· c_j`` (TorchJD's defaults give ⟨g_j, d⟩ < 0 by that much, e.g. DualProj on the tests' 2-task
Jacobian); ``reg_eps = 0`` gives the exact
projection (the QP is then only positive semi-definite, which the solver below accepts, unlike
quadprog). ``norm_eps`` is an absolute threshold on ``Σ_i ‖g_i‖²``: gradients that small (late in
training, or a representation's gradient of a mean loss over a large batch) make UPGrad the mean;
``norm_eps = 0`` switches that off.

The QPs ``min vᵀQv s.t. v ≥ u`` are solved exactly (to round-off) by the primal active-set method of
Lawson & Hanson (1974, NNLS, Ch. 23) on ``x = v − u ≥ 0``, in float64 on the CPU; TorchJD calls
quadprog (Goldfarb-Idnani dual active set). Task-specific parameters get their plain ∂L_i/∂θ_i,
as with TorchJD's ``mtl_backward``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._hparams import positive
from .support import StageProfile
from .registry import register_stage
from .task_grads import GradientStage

_F64 = torch.float64


def regularized_gram(gram: Tensor, norm_eps: float, reg_eps: float) -> tuple[Tensor, bool]:
    """``G / tr(G) + reg_eps · I``, or ``reg_eps · I`` when ``tr(G) < norm_eps`` (TorchJD's
    ``normalize`` then ``regularize``); also whether the threshold applied. A zero trace counts as
    below the threshold even for ``norm_eps = 0`` (TorchJD would divide by zero there)."""
    g = gram.detach().to("cpu", _F64)
    trace = float(g.diagonal().sum())
    small = trace < norm_eps or trace <= 0.0
    q = torch.zeros_like(g) if small else g / trace
    return q + reg_eps * torch.eye(g.shape[0], dtype=_F64), small


def _face_minimiser(q: Tensor, p: Tensor, free: Tensor) -> Tensor:
    """argmin ½xᵀQx + pᵀx over x with x_j = 0 off ``free``: Q_FF x_F = −p_F (least squares, minimum
    norm, when Q_FF is singular; p_F lies in its range for the QPs of this module)."""
    idx = free.nonzero().reshape(-1)
    z = torch.zeros_like(p)
    if idx.numel() == 0:
        return z
    a, b = q[idx][:, idx], -p[idx]
    sol, info = torch.linalg.solve_ex(a, b)
    if int(info) != 0 or not bool(torch.isfinite(sol).all()):
        sol = torch.linalg.lstsq(a, b.unsqueeze(1), driver="gelsd").solution.reshape(-1)
    z[idx] = sol
    return z


def nonnegative_qp(q: Tensor, p: Tensor, *, max_iter: int | None = None) -> Tensor:
    """argmin_{x ≥ 0} ½xᵀQx + pᵀx for a positive semi-definite Q (bounded below), by the primal
    active-set method of Lawson & Hanson's NNLS: free the coordinate with the most negative gradient
    entry, move to the minimiser on the free face, stepping back to the boundary (and fixing the
    coordinates that reach 0) while it leaves x ≥ 0. Stops when every fixed coordinate has gradient
    entry ≥ 0 (KKT, to round-off) or after ``max_iter`` face solves (default 10 K + 50; counted).
    """
    q = q.detach().to("cpu", _F64)
    p = p.detach().to("cpu", _F64)
    k = p.numel()
    x = torch.zeros(k, dtype=_F64)
    free = torch.zeros(k, dtype=torch.bool)
    tol = 1e-14 * (float(q.diagonal().abs().max()) + float(p.abs().max())) + 1e-300
    solves, limit = 0, (10 * k + 50 if max_iter is None else max_iter)
    while solves < limit:
        grad = q @ x + p
        candidates = torch.where(free, torch.full_like(grad, torch.inf), grad)
        j = int(candidates.argmin())
        if float(candidates[j]) >= -tol:
            break
        free[j] = True
        start = x
        while solves < limit:  # ends: every step back fixes at least one coordinate
            solves += 1
            z = _face_minimiser(q, p, free)
            if bool((z[free] > 0).all()):
                x = z
                break
            blocking = free & (z <= 0)
            gap = x[blocking] - z[blocking]  # ≥ 0; 0 only where x_j = z_j = 0
            ratios = torch.where(gap > 0, x[blocking] / gap.clamp_min(1e-300), 0.0)
            x = x + float(ratios.min()) * (z - x)
            x[blocking.nonzero().reshape(-1)[int(ratios.argmin())]] = 0.0
            free = free & (x > 0)
            x = torch.where(free, x, torch.zeros_like(x))
        if not bool(free[j]) and torch.equal(x, start):
            break  # j cannot enter: its gradient entry is negative by round-off only
    return x


def dual_cone_weights(q: Tensor, u: Tensor) -> Tensor:
    """``v = argmin_{v ≥ u} vᵀQv`` (JD paper, Proposition 1): with Q the (regularised) Gram matrix
    of J, ``Jᵀv`` is the projection of ``Jᵀu`` onto the dual cone ``{y : Jy ≥ 0}`` (Eq. 3).
    Solved as ``v = u + x``, ``x = argmin_{x ≥ 0} ½xᵀQx + (Qu)ᵀx`` (:func:`nonnegative_qp`)."""
    q = q.detach().to("cpu", _F64)
    u = u.detach().to("cpu", _F64)
    return u + nonnegative_qp(q, q @ u)


@register_stage("upgrad")
class UPGradStage(GradientStage):
    """c = Σ_i v(e_i / K), v(u) = argmin_{v ≥ u} vᵀ(G/tr G + reg_eps I)v; heads get ∂L_i/∂θ_i."""
    profile = StageProfile("gradients", "O(K²D) Gram + K active-set QPs, O(n·K³) each", "O(K·D)")

    def __init__(self, tasks: Sequence[str], norm_eps: float = 1e-4, reg_eps: float = 1e-4) -> None:
        super().__init__(tasks)
        self.norm_eps = positive(self.name, "norm_eps", norm_eps, allow_zero=True)
        self.reg_eps = positive(self.name, "reg_eps", reg_eps, allow_zero=True)

    def targets(self) -> Tensor:
        """The rows u whose dual-cone weights are summed (TorchJD: U = diag(mean weights))."""
        return torch.eye(self.num_tasks, dtype=_F64) / self.num_tasks

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:
        q, small = regularized_gram(gram, self.norm_eps, self.reg_eps)
        self._diagnostics["guard"] = float(small)
        return torch.stack([dual_cone_weights(q, u) for u in self.targets()]).sum(0)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, norm_eps={self.norm_eps}, reg_eps={self.reg_eps}"
