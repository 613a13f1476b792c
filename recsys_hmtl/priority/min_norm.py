"""Solvers over the probability simplex that work on the K x K Gram matrix of task gradients.

Two problems, both convex in the weights ``w`` (``g_w = Σ_i w_i g_i``, ``M = G Gᵀ``):

* the min-norm point of the convex hull, ``min_w ‖g_w‖`` (MGDA, Sener & Koltun 2018; Eq. 5 of
  seed 002), used by ``mgda`` and by GetMTL's β: :func:`min_norm_weights`;
* ``min_w bᵀw + c ‖g_w‖`` (CAGrad's dual, Liu et al. 2021 Sec. 3.2; GetMTL's J(w), Eq. 14 of
  seed 002): :func:`solve_simplex`.

Both reduce to the simplex QP ``min ½wᵀMw + pᵀw`` solved exactly by Wolfe's (1976) min-norm-point
algorithm: a Frank-Wolfe step picks the vertex with the smallest gradient entry (major cycle), then
the affine minimiser over the active vertices is taken, stepping back to the simplex and dropping
vertices when it leaves it (minor cycle). It is finite and exact; plain Frank-Wolfe, as in the
widely copied ``min_norm_solvers.py``, zigzags on ill-conditioned Gram matrices (10 % off after 500
iterations on a 3-task case of the tests). That file also never increments its iteration counter
(it stops on its tolerance only) and clamps the two-task weight to [0.001, 0.999]; here the cycles
are counted and the two-task weight is clamped exactly to [0, 1].
All work is on float64 copies on the CPU (K is small).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_F64 = torch.float64


def min_norm_two(m11: float, m12: float, m22: float) -> float:
    """Weight γ on ``g_1`` of the min-norm point of the segment [g_1, g_2] (Sener & Koltun, Alg. 1).

    γ = (m22 − m12) / (m11 + m22 − 2 m12) clamped exactly to [0, 1]; equal gradients give 1/2.
    """
    denom = m11 + m22 - 2.0 * m12
    if denom <= 1e-300 or denom <= 1e-15 * (abs(m11) + abs(m22)):
        return 0.5
    return min(1.0, max(0.0, (m22 - m12) / denom))


def _affine_minimiser(q: Tensor, p: Tensor, active: Tensor, total: float = 1.0) -> Tensor:
    """argmin ½vᵀQv + pᵀv over v with support ``active`` and Σ v = ``total`` (v may be negative):
    the KKT system [[Q_SS, 1], [1ᵀ, 0]] [v; −ν] = [−p_S; total]; least squares when singular."""
    idx = active.nonzero().reshape(-1)
    n = idx.numel()
    kkt = torch.zeros(n + 1, n + 1, dtype=_F64)
    kkt[:n, :n] = q[idx][:, idx]
    kkt[:n, n] = 1.0
    kkt[n, :n] = 1.0
    rhs = torch.cat([-p[idx], torch.full((1,), total, dtype=_F64)])
    sol, info = torch.linalg.solve_ex(kkt, rhs)
    if int(info) != 0 or not bool(torch.isfinite(sol).all()):
        sol = torch.linalg.lstsq(kkt, rhs.unsqueeze(1), driver="gelsd").solution.reshape(-1)
    v = torch.zeros_like(p)
    v[idx] = sol[:n]
    return v


def simplex_qp(q: Tensor, p: Tensor | None = None, *, max_cycles: int | None = None) -> Tensor:
    """argmin over the simplex of ½wᵀQw + pᵀw for a positive semi-definite ``q`` (Wolfe 1976).

    Stops when every inactive vertex has gradient entry ≥ the active ones' (the KKT conditions,
    to round-off) or after ``max_cycles`` minor cycles (default 10 K + 50; counted).
    """
    q = q.detach().to("cpu", _F64)
    k = q.shape[0]
    p = torch.zeros(k, dtype=_F64) if p is None else p.detach().to("cpu", _F64)
    scale = float(q.diagonal().abs().max()) + float(p.abs().max()) + 1e-300
    tol = 1e-12 * scale
    start = int((0.5 * q.diagonal() + p).argmin())
    w = torch.zeros(k, dtype=_F64)
    w[start] = 1.0
    active = w > 0
    cycles, limit = 0, (10 * k + 50 if max_cycles is None else max_cycles)
    while cycles < limit:
        grad = q @ w + p
        level = float(grad @ w)  # ν: the common gradient entry of the active vertices
        candidates = torch.where(active, torch.full_like(grad, math.inf), grad)
        j = int(candidates.argmin())
        if float(candidates[j]) >= level - tol:
            break
        active[j] = True
        while cycles < limit:  # minor cycle: move to the affine minimiser, back inside the simplex
            cycles += 1
            v = _affine_minimiser(q, p, active)
            if bool((v[active] > 0).all()):
                w = v
                break
            shrinking = active & (v <= 0)
            ratios = w[shrinking] / (w[shrinking] - v[shrinking])
            theta = float(ratios.min())
            w = (w + theta * (v - w)).clamp_min(0.0)
            w[shrinking.nonzero().reshape(-1)[int(ratios.argmin())]] = 0.0
            active = active & (w > 0)
            w = w / w.sum()
    return w


def min_norm_weights(gram: Tensor) -> Tensor:
    """MGDA weights: argmin over the simplex of ‖Σ_i w_i g_i‖ from the Gram matrix (Eq. 5 of seed
    002; Sener & Koltun 2018). Two tasks are solved analytically (:func:`min_norm_two`)."""
    m = gram.detach().to("cpu", _F64)
    if m.shape[0] == 2:
        gamma = min_norm_two(float(m[0, 0]), float(m[0, 1]), float(m[1, 1]))
        return torch.tensor([gamma, 1.0 - gamma], dtype=_F64)
    return simplex_qp(m)


def _segment_minimiser(m: Tensor, b: Tensor, c: float, w0: Tensor, w1: Tensor) -> Tensor:
    """argmin over w = w0 + γ (w1 − w0), γ ∈ [0, 1], of bᵀw + c sqrt(wᵀMw) (convex in γ).

    With p = bᵀΔ, q(γ) = q0 + 2 q1 γ + q2 γ², t = q1 + γ q2 and r = q0 − q1²/q2 ≥ 0, the derivative
    p + c t / sqrt(r + t²/q2) vanishes at t = −sign(p) |p| sqrt(r / (c² − p²/q2)) when c² q2 > p²;
    otherwise f is monotone in γ.
    """
    step = w1 - w0
    p, q0 = float(b @ step), float(w0 @ m @ w0)
    q1, q2 = float(w0 @ m @ step), float(step @ m @ step)
    if q2 <= 1e-300:
        gamma = 1.0 if p < 0 else 0.0
    elif c * c * q2 <= p * p:
        gamma = 1.0 if p < 0 else 0.0
    else:
        r = max(q0 - q1 * q1 / q2, 0.0)
        t = -math.copysign(abs(p) * math.sqrt(r / (c * c - p * p / q2)), p) if p else 0.0
        gamma = min(1.0, max(0.0, (t - q1) / q2))
    return w0 + gamma * step


def _piece_root(m: Tensor, b: Tensor, c: float, w: Tensor) -> Tensor | None:
    """The optimum if it lies on the active set of ``w``, else None.

    On a fixed active set S the QP solution is affine in t, w(t) = a + t e (a: Σ a = 1 and no
    linear term; e: Σ e = 0 and linear term b), so ‖g_w(t)‖² = q_a + 2 t q_ae + t² q_e and
    c t = ‖g_w(t)‖ is the positive root of (c² − q_e) t² − 2 q_ae t − q_a = 0. The root is the
    optimum when w(t) ≥ 0 and the inactive gradient entries are ≥ the active ones (KKT).
    """
    active = w > 0
    a = _affine_minimiser(m, torch.zeros_like(b), active)
    e = _affine_minimiser(m, b, active, total=0.0)
    qa, qae, qe = float(a @ m @ a), float(a @ m @ e), float(e @ m @ e)
    lead = c * c - qe
    disc = qae * qae + lead * qa
    if lead <= 0 or disc < 0:
        return None
    t = (qae + math.sqrt(disc)) / lead
    w_t = a + t * e
    grad = m @ w_t + t * b
    level = float(grad @ w_t)
    scale = float(m.diagonal().abs().max()) + t * float(b.abs().max()) + 1e-300
    if bool((w_t < -1e-12).any()) or bool((grad[~active] < level - 1e-10 * scale).any()):
        return None
    w_t = w_t.clamp_min(0.0)
    return w_t / w_t.sum()


def solve_simplex(gram: Tensor, linear: Tensor, norm_coef: float, *, tol: float = 1e-13) -> Tensor:
    """argmin over the simplex of ``f(w) = linearᵀw + norm_coef · sqrt(wᵀ gram w)``.

    ``linear`` must lie in the range of ``gram`` (b = G u, as CAGrad's G g_0 and GetMTL's G_β g_0),
    so the QPs below are bounded on every affine subset even when ``gram`` is singular.

    With ‖x‖ = min_{λ>0} ‖x‖²/(2λ) + λ/2, f is the partial minimum of a jointly convex function;
    for fixed t = λ/c the minimiser is the simplex QP w(t) = argmin ½wᵀMw + t bᵀw, and the optimal
    t is where h(t) = c t − ‖g_{w(t)}‖ changes sign (h(t)/t increases: it is ∂/∂λ of a convex
    function; h(0) ≤ 0 ≤ h(max_i ‖g_i‖ / c)). The sign change is bracketed by the Illinois variant
    of regula falsi; at each QP solution the exact root on its active set is tried first
    (:func:`_piece_root`), which usually ends the search after one or two QPs. Otherwise f is
    minimised exactly on the segment between the QP solutions at the two ends of the final bracket,
    which also covers a jump of w(t) (a singular Gram matrix).
    """
    m = gram.detach().to("cpu", _F64)
    b = linear.detach().to("cpu", _F64)
    c = float(norm_coef)
    if c <= 0:
        w = torch.zeros_like(b)
        w[int(b.argmin())] = 1.0
        return w

    def residual(t: float) -> tuple[float, Tensor]:
        w = simplex_qp(m, t * b)
        return c * t - math.sqrt(max(float(w @ m @ w), 0.0)), w

    lo, hi = 0.0, math.sqrt(max(float(m.diagonal().max()), 0.0)) / c
    if hi <= 0:
        return residual(0.0)[1]  # every gradient is zero
    uniform = torch.full_like(b, 1.0 / b.numel())
    guess = math.sqrt(max(float(uniform @ m @ uniform), 0.0)) / c  # t if w* were uniform
    exact = _piece_root(m, b, c, simplex_qp(m, guess * b))
    if exact is not None:
        return exact
    h_hi, w_hi = residual(hi)
    h_lo, w_lo = residual(lo)
    if h_lo >= 0:  # 0 is in the hull: find t > 0 with h(t) < 0 (h's sign changes once on t > 0)
        for _ in range(60):
            t = (hi if lo == 0.0 else lo) / 4
            h_lo, w_lo = residual(t)
            lo = t
            if h_lo < 0:
                break
        else:
            return w_lo  # t* = 0 to round-off: g_w = 0 and f = bᵀw
    side, f_lo, f_hi = 0, h_lo, h_hi  # f_*: Illinois-scaled values of h at the ends
    for _ in range(200):
        if min(-h_lo, h_hi) <= tol * c * hi or hi - lo <= tol * hi:
            break
        t = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        h_t, w_t = residual(t)
        exact = _piece_root(m, b, c, w_t)
        if exact is not None:
            return exact
        if h_t < 0:
            lo, h_lo, f_lo, w_lo = t, h_t, h_t, w_t
            f_hi = f_hi / 2 if side == -1 else f_hi
            side = -1
        else:
            hi, h_hi, f_hi, w_hi = t, h_t, h_t, w_t
            f_lo = f_lo / 2 if side == 1 else f_lo
            side = 1
    return _segment_minimiser(m, b, c, w_lo, w_hi)
