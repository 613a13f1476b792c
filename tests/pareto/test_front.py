"""The front's math (dominance, hypervolume, reference point, distance) and its CSV, on hand-computed cases."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import pytest

from recsys_hmtl.errors import InputError
from recsys_hmtl.pareto import (
    FrontRow, distance_to_front, hypervolume, non_dominated, read_front_csv, read_front_tasks,
    reference_point, write_front_csv,
)

STAIRS = [(1, 3), (2, 2), (3, 1)]


def _grid_volume(points, ref):
    """Brute force for integer points: count the unit cells some point weakly dominates."""
    return sum(1 for cell in itertools.product(*(range(r) for r in ref))
               if any(all(p_i <= c_i for p_i, c_i in zip(p, cell)) for p in points))


def _integer_points(k, n, seed, top=5):
    rnd = random.Random(seed)
    return [tuple(rnd.randint(0, top - 1) for _ in range(k)) for _ in range(n)]


# --- dominance ---------------------------------------------------------------------------------

def test_non_dominated_with_mixed_directions_and_nan():
    # (AUC: max, logloss: min)
    values = [(0.8, 0.3), (0.7, 0.2), (0.9, 0.5), (0.6, 0.6), (math.nan, 0.0), (1.0, None)]
    assert non_dominated(values, ["max", "min"]) == [True, True, True, False, False, False]
    # flipping both directions turns the front around
    assert non_dominated(values[:4], ["min", "max"]) == [False, False, False, True]


def test_equal_points_are_both_non_dominated():
    assert non_dominated([(1, 1), (1, 1), (2, 2)], ["min", "min"]) == [True, True, False]
    assert non_dominated([(1, 2), (1, 3)], ["min", "min"]) == [True, False]  # weakly better suffices
    assert non_dominated([], ["max"]) == []


# --- hypervolume -------------------------------------------------------------------------------

def test_hypervolume_2d_staircase():
    assert hypervolume(STAIRS, ["min", "min"], (4, 4)) == pytest.approx(6.0)
    assert hypervolume([(1, 1)], ["min", "min"], (4, 4)) == pytest.approx(9.0)
    assert hypervolume([], ["min", "min"], (4, 4)) == 0.0


def test_hypervolume_ignores_dominated_outside_and_nan_points():
    extra = [(3, 3), (2, 2), (5, 0), (4, 0.5), (0.5, 4), (math.nan, 0)]
    assert hypervolume(STAIRS + extra, ["min", "min"], (4, 4)) == pytest.approx(6.0)


def test_hypervolume_in_max_and_mixed_directions():
    maximised = [(-x, -y) for x, y in STAIRS]
    assert hypervolume(maximised, ["max", "max"], (-4, -4)) == pytest.approx(6.0)
    mixed = [(-x, y) for x, y in STAIRS]
    assert hypervolume(mixed, ["max", "min"], (-4, 4)) == pytest.approx(6.0)
    # AUC-like: higher is better, reference below every point
    assert hypervolume([(0.8, 0.7), (0.7, 0.8)], ["max", "max"], (0.5, 0.5)) == pytest.approx(0.3 * 0.2 * 2 - 0.2 * 0.2)


def test_hypervolume_3d_by_hand():
    # three 3×2×1 boxes, pairwise overlaps 2, triple overlap 1: 18 − 6 + 1 = 13
    points = [(1, 2, 3), (2, 3, 1), (3, 1, 2)]
    assert hypervolume(points, ["min"] * 3, (4, 4, 4)) == pytest.approx(13.0)
    assert _grid_volume(points, (4, 4, 4)) == 13


@pytest.mark.parametrize("k, n, seed", [(3, 12, 0), (3, 30, 1), (4, 15, 2), (4, 40, 3), (5, 25, 4), (6, 12, 5)])
def test_hypervolume_matches_brute_force_count(k, n, seed):
    points = _integer_points(k, n, seed)
    ref = (5,) * k
    assert hypervolume(points, ["min"] * k, ref) == pytest.approx(_grid_volume(points, ref))
    # adding a point that another one dominates changes nothing
    worse = tuple(min(v + 1, 4) for v in points[0])
    assert hypervolume(points + [worse], ["min"] * k, ref) == pytest.approx(_grid_volume(points, ref))


def test_hypervolume_is_invariant_to_order():
    points = _integer_points(4, 20, 7)
    ref = (5, 5, 5, 5)
    assert hypervolume(points[::-1], ["min"] * 4, ref) == pytest.approx(hypervolume(points, ["min"] * 4, ref))


# --- reference point ---------------------------------------------------------------------------

def test_reference_point_moves_the_worst_value_by_margin_times_range():
    values = [(0.8, 0.3), (0.7, 0.2), (0.9, 0.5), (math.nan, 9.0)]
    ref = reference_point(values, ["max", "min"], margin=0.1)
    assert ref == pytest.approx((0.7 - 0.02, 0.5 + 0.03))
    assert reference_point(values, ["max", "min"]) == pytest.approx((0.7 - 0.002, 0.5 + 0.003))


def test_reference_point_with_zero_range_is_still_strictly_worse():
    ref = reference_point([(1.0, 2.0), (1.0, 2.0)], ["max", "min"])
    assert ref[0] < 1.0 and ref[1] > 2.0
    assert hypervolume([(1.0, 2.0)], ["max", "min"], ref) > 0


def test_common_reference_lets_every_point_count():
    values = [(0.8, 0.3), (0.7, 0.2), (0.9, 0.5)]
    ref = reference_point(values, ["max", "min"])
    full = hypervolume(values, ["max", "min"], ref)
    for i in range(3):
        assert hypervolume(values[:i] + values[i + 1:], ["max", "min"], ref) < full


# --- distance to a dense front -----------------------------------------------------------------

def test_distance_to_front():
    front = [(0.0, 0.0), (1.0, 0.0)]
    distances = distance_to_front([(0.0, 1.0), (2.0, 0.0), (1.0, 0.0), (0.5, 0.0), (3.0, 4.0)], front)
    # the front is its points (dense, not interpolated): (0.5, 0) is 0.5 from either
    assert distances == pytest.approx([1.0, 1.0, 0.0, 0.5, math.hypot(2.0, 4.0)])
    assert math.isnan(distance_to_front([(math.nan, 0.0)], front)[0])
    assert distance_to_front([], front) == []


# --- CSV ---------------------------------------------------------------------------------------

def _rows(tmp_path: Path) -> list[FrontRow]:
    return [
        FrontRow("wc_penalty", (1 / 3, 2 / 3), {"click": 0.8, "logloss": 0.3}, 0.01, str(tmp_path / "a")),
        FrontRow("wc_penalty", (2 / 3, 1 / 3), {"click": 0.7, "logloss": 0.4}, None, tmp_path / "b"),
        FrontRow("wc_penalty", (0.5, 0.5), {"click": 0.9}, None, "c"),  # missing metric: dominated
        FrontRow("weighted", (0.5, 0.5), {"click": 0.6, "logloss": 0.5, "extra": 1.0}, 0.2, "d"),
        FrontRow("weighted", (0.25, 0.75), {"click": 0.6, "logloss": 0.5}, None, "e"),
    ]


def test_csv_round_trip_with_dominance_per_method(tmp_path):
    rows = _rows(tmp_path)
    path = tmp_path / "out" / "front.csv"
    marked = write_front_csv(path, rows, ["click", "logloss"], ["max", "min"])
    # 'weighted' rows are dominated by wc_penalty's first row, but dominance is per method
    assert [r.dominated for r in marked] == [False, True, True, False, False]
    assert not any(r.dominated for r in rows)  # the input rows are left as they were
    assert sorted(p.name for p in path.parent.iterdir()) == ["front.csv"]  # no temp file left
    assert path.read_text().splitlines()[0] == "method,preference,click (max),logloss (min),residual,dominated,run_dir"

    back = read_front_csv(path)
    assert read_front_tasks(path) == (["click", "logloss"], ["max", "min"])
    assert len(back) == len(rows)
    for got, want in zip(back, marked):
        assert (got.method, got.residual, got.run_dir, got.dominated) == (want.method, want.residual, want.run_dir, want.dominated)
        assert got.preference == pytest.approx(want.preference, abs=1e-12)
        assert got.metrics["click"] == want.metrics["click"]
    assert back[0].preference == (0.333333333333, 0.666666666667)
    assert back[0].metrics == {"click": 0.8, "logloss": 0.3}
    assert math.isnan(back[2].metrics["logloss"])
    assert "extra" not in back[3].metrics


def test_csv_accepts_directions_by_task(tmp_path):
    path = tmp_path / "front.csv"
    write_front_csv(path, _rows(tmp_path), ["logloss", "click"], {"click": "max", "logloss": "min"})
    assert read_front_tasks(path) == (["logloss", "click"], ["min", "max"])


def test_csv_reader_names_file_column_and_row(tmp_path):
    path = tmp_path / "front.csv"
    path.write_text("method,preference,click (max),residual,dominated,run_dir\nm,0.5-0.5,high,,false,r\n")
    with pytest.raises(InputError, match=r"column 'click'.*row 2"):
        read_front_csv(path)
    path.write_text("method,preference,click,residual,dominated,run_dir\n")
    with pytest.raises(InputError, match="click"):
        read_front_csv(path)
    with pytest.raises(InputError, match="cannot read"):
        read_front_csv(tmp_path / "missing.csv")


# --- errors ------------------------------------------------------------------------------------

def test_bad_input_raises_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"values\[1\] has 3 values"):
        non_dominated([(1, 2), (1, 2, 3)], ["min", "min"])
    with pytest.raises(ValueError, match=r"directions\[0\] must be 'max' or 'min'.*maximise"):
        non_dominated([(1, 2)], ["maximise", "min"])
    with pytest.raises(ValueError, match="directions"):
        hypervolume([(1, 2)], "min", (3, 3))
    with pytest.raises(ValueError, match="reference"):
        hypervolume([(1, 2)], ["min", "min"], (3, 3, 3))
    with pytest.raises(ValueError, match="reference must be finite"):
        hypervolume([(1, 2)], ["min", "min"], (3, math.inf))
    with pytest.raises(ValueError, match="margin"):
        reference_point([(1, 2)], ["min", "min"], margin=-0.1)
    with pytest.raises(ValueError, match="no point with finite values"):
        reference_point([(math.nan, 2)], ["min", "min"])
    with pytest.raises(ValueError, match="front has 2"):
        distance_to_front([(1, 2, 3)], [(0, 0)])
    with pytest.raises(ValueError, match="front must hold at least one point"):
        distance_to_front([(1, 2)], [])
    with pytest.raises(ValueError, match="directions has 1 entries but there are 2 tasks"):
        write_front_csv(tmp_path / "f.csv", [], ["a", "b"], ["max"])
    with pytest.raises(ValueError, match="no direction for task"):
        write_front_csv(tmp_path / "f.csv", [], ["a", "b"], {"a": "max"})
    with pytest.raises(ValueError, match="method"):
        FrontRow("", (0.5, 0.5))
    with pytest.raises(ValueError, match="preference"):
        FrontRow("m", (0.5, -0.5))
    assert not list(tmp_path.iterdir())
