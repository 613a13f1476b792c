"""Simplex solvers of min_norm.py against hand-computed values and brute-force grids."""

from __future__ import annotations

import itertools

import pytest
import torch

from recsys_hmtl.priority.min_norm import min_norm_two, min_norm_weights, solve_simplex

F64 = torch.float64


def simplex_grid(k: int, n: int) -> torch.Tensor:
    """All points of the simplex with coordinates in {0, 1/n, ..., 1}, as rows."""
    rows = [c for c in itertools.product(range(n + 1), repeat=k - 1) if sum(c) <= n]
    grid = torch.tensor(rows, dtype=F64) / n
    return torch.cat([grid, 1.0 - grid.sum(1, keepdim=True)], dim=1)


def test_two_task_golden_jacobian():
    # J = [[-4,1,1],[6,1,1]], Gram [[18,-22],[-22,38]]:
    # γ = (38 + 22) / (18 + 38 + 44) = 0.6, direction 0.6·g1 + 0.4·g2 = [0, 1, 1].
    jac = torch.tensor([[-4.0, 1, 1], [6.0, 1, 1]], dtype=F64)
    w = min_norm_weights(jac @ jac.T)
    assert w.tolist() == pytest.approx([0.6, 0.4], abs=1e-12)
    assert (w @ jac).tolist() == pytest.approx([0.0, 1.0, 1.0], abs=1e-12)


def test_three_task_golden_interior_point():
    # All weights positive, so the KKT conditions are M w = λ 1 with Σ w = 1: w = M⁻¹1 / 1ᵀM⁻¹1.
    # M⁻¹1 ∝ [0.262799, 0.218430, 0.518771] (each row of M w then equals 1.013652).
    gram = torch.tensor([[5.0, 1, -1], [1, 2.25, 0.5], [-1, 0.5, 2.25]], dtype=F64)
    w = min_norm_weights(gram)
    assert w.tolist() == pytest.approx([0.262799, 0.218430, 0.518771], abs=1e-6)
    assert (gram @ w).tolist() == pytest.approx([1.013652] * 3, abs=1e-6)


def test_two_task_clamps_exactly_to_the_simplex():
    # g1 = [1, 0] lies between the origin and g2 = [2, 0]: the min-norm point is g1 itself, so
    # γ = (4 − 2)/(1 + 4 − 4) = 2 clamps to exactly 1 (the copied solver returns 0.999).
    assert min_norm_two(1.0, 2.0, 4.0) == 1.0
    assert min_norm_two(4.0, 2.0, 1.0) == 0.0
    assert min_norm_two(2.0, 2.0, 2.0) == 0.5  # identical gradients
    g = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]], dtype=F64)
    assert min_norm_weights(g @ g.T).tolist() == [1.0, 0.0, 0.0]


def test_single_task_and_origin_in_hull():
    assert min_norm_weights(torch.tensor([[3.0]], dtype=F64)).tolist() == [1.0]
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=F64)
    w = min_norm_weights(g @ g.T)
    assert float((w @ g).norm()) < 1e-6  # the origin is in the hull: Pareto-stationary
    assert float(w.sum()) == pytest.approx(1.0) and bool((w >= 0).all())


@pytest.mark.parametrize("k, dim", [(2, 1), (2, 3), (3, 2), (3, 3), (3, 6)])
def test_min_norm_matches_brute_force_grid(k, dim):
    gen = torch.Generator().manual_seed(100 * k + dim)
    grid = simplex_grid(k, 10_000 if k == 2 else 300)
    for _ in range(20):
        g = torch.randn(k, dim, generator=gen, dtype=F64)
        gram = g @ g.T
        w = min_norm_weights(gram)
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-12) and bool((w >= 0).all())
        best = float(torch.einsum("ni,ij,nj->n", grid, gram, grid).min())
        assert float(w @ gram @ w) <= best + 1e-12


@pytest.mark.parametrize("k, dim", [(2, 2), (3, 1), (3, 2), (3, 5)])
def test_linear_plus_norm_matches_brute_force_grid(k, dim):
    # The CAGrad / GetMTL subproblem min_w bᵀw + c sqrt(wᵀMw), b = G u in the range of G as there.
    gen = torch.Generator().manual_seed(7 * k + dim)
    grid = simplex_grid(k, 10_000 if k == 2 else 300)
    for _ in range(40):
        g = torch.randn(k, dim, generator=gen, dtype=F64)
        gram, b = g @ g.T, g @ torch.randn(dim, generator=gen, dtype=F64)
        c = float(torch.rand(1, generator=gen)) * 2
        w = solve_simplex(gram, b, c)
        value = float(b @ w + c * (w @ gram @ w).clamp_min(0).sqrt())
        quad = torch.einsum("ni,ij,nj->n", grid, gram, grid).clamp_min(0)
        grid_values = grid @ b + c * quad.sqrt()
        assert value <= float(grid_values.min()) + 1e-9


def test_larger_singular_problem_reaches_kkt_point():
    # K = 8 tasks in 3 dimensions (singular Gram): at the optimum every task has (M w)_i ≥ wᵀMw,
    # with equality on the support (the Frank-Wolfe gap is zero).
    g = torch.randn(8, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    gram = g @ g.T
    w = min_norm_weights(gram)
    mw, value = gram @ w, float(w @ gram @ w)
    assert bool((mw >= value - 1e-9).all())
    assert (mw[w > 0] - value).abs().max() < 1e-8
