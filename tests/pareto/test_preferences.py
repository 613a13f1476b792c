"""Preference vectors for `recsys-hmtl pareto`: the K=2 grid, the K=3 lattice, Halton points for K≥4."""

from __future__ import annotations

import math
import re

import pytest

from recsys_hmtl.pareto import format_preference, lattice_order, parse_preference, preference_points


def _on_simplex(vectors, k):
    for v in vectors:
        assert len(v) == k
        assert all(x >= 0 for x in v)
        assert math.isclose(sum(v), 1.0, abs_tol=1e-12)
        assert all(x == round(x, 12) for x in v)


def test_two_tasks_even_grid_with_endpoints():
    assert preference_points(2, 5) == [(0.0, 1.0), (0.25, 0.75), (0.5, 0.5), (0.75, 0.25), (1.0, 0.0)]
    assert preference_points(2, 2) == [(0.0, 1.0), (1.0, 0.0)]
    grid = preference_points(2, 7)
    assert len(grid) == 7
    assert grid[2] == (0.333333333333, 0.666666666667)
    _on_simplex(grid, 2)


@pytest.mark.parametrize("points, expected", [(3, 3), (5, 3), (6, 6), (9, 6), (10, 10), (12, 10), (15, 15), (21, 21)])
def test_three_tasks_lattice_count_never_exceeds_points(points, expected):
    vectors = preference_points(3, points)
    assert len(vectors) == expected
    assert len(set(vectors)) == expected
    _on_simplex(vectors, 3)


def test_three_tasks_lattice_h3_holds_vertices_centroid_and_thirds():
    assert lattice_order(10) == 3 and lattice_order(12) == 3 and lattice_order(3) == 1
    vectors = preference_points(3, 10)
    for vertex in [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]:
        assert vertex in vectors
    assert (0.333333333333, 0.333333333333, 0.333333333334) in vectors
    for v in vectors:
        assert all(abs(3 * x - round(3 * x)) < 1e-9 for x in v)


def test_halton_points_for_four_or_more_tasks():
    vectors = preference_points(4, 7)
    assert len(vectors) == 7
    # Halton index 1 in bases 2, 3, 5 is (1/2, 1/3, 1/5): sorted spacings of (0, .2, .333, .5, 1).
    assert vectors[0] == (0.2, 0.133333333333, 0.166666666667, 0.5)
    _on_simplex(vectors, 4)
    assert len(set(vectors)) == 7
    assert preference_points(4, 7) == vectors  # deterministic
    assert preference_points(4, 3) == vectors[:3]  # a prefix of the same sequence
    for k in (5, 6, 8):
        many = preference_points(k, 40)
        assert len(many) == len(set(many)) == 40
        _on_simplex(many, k)


def test_halton_points_cover_the_simplex_evenly():
    vectors = preference_points(4, 400)
    for i in range(4):
        assert abs(sum(v[i] for v in vectors) / len(vectors) - 0.25) < 0.02


@pytest.mark.parametrize("num_tasks, points, name", [
    (1, 5, "num_tasks"), (0, 5, "num_tasks"), (2.0, 5, "num_tasks"), (True, 5, "num_tasks"),
    (2, 1, "points"), (3, 2, "points"), (4, 0, "points"), (2, 3.5, "points"),
])
def test_bad_arguments_name_the_argument(num_tasks, points, name):
    with pytest.raises(ValueError, match=name):
        preference_points(num_tasks, points)


def test_format_preference_is_stable_and_filesystem_safe():
    assert format_preference((0.25, 0.75)) == "0.25-0.75"
    assert format_preference((1.0, 0.0)) == "1-0"
    assert format_preference((1 / 3, 1 / 3, 1 / 3)) == "0.333333-0.333333-0.333333"
    for k, n in [(2, 11), (3, 21), (5, 30)]:
        names = [format_preference(p) for p in preference_points(k, n)]
        assert len(set(names)) == len(names)
        assert all(re.fullmatch(r"[0-9.\-]+", name) for name in names)


def test_parse_preference_inverts_format_at_twelve_digits():
    for p in preference_points(3, 10) + preference_points(5, 10):
        assert parse_preference(format_preference(p, digits=12)) == p
    assert parse_preference("0.25-0.75") == (0.25, 0.75)


@pytest.mark.parametrize("bad", [(), (0.5, -0.5), (math.nan, 1.0), ("a", 1.0)])
def test_format_preference_rejects_bad_vectors(bad):
    with pytest.raises(ValueError, match="preference"):
        format_preference(bad)


def test_parse_preference_rejects_garbage():
    with pytest.raises(ValueError, match="preference"):
        parse_preference("0.5_0.5")
