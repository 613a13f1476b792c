"""The front plot: a valid PNG, written atomically, and its axis labels."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from recsys_hmtl.pareto import FrontRow, plot_front
from recsys_hmtl.pareto.plot import _axis_label

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _rows() -> list[FrontRow]:
    return [
        FrontRow("wc_penalty", (0.0, 1.0), {"click": 0.70, "like": 0.80}),
        FrontRow("wc_penalty", (0.5, 0.5), {"click": 0.75, "like": 0.76}),
        FrontRow("wc_penalty", (1.0, 0.0), {"click": 0.80, "like": 0.70}),
        FrontRow("wc_penalty", (0.25, 0.75), {"click": 0.69, "like": 0.69}),  # dominated
        FrontRow("weighted", (0.5, 0.5), {"click": 0.72, "like": 0.74}),
        FrontRow("broken", (0.5, 0.5), {"click": math.nan, "like": 0.5}),  # nothing to draw
    ]


def test_plot_writes_a_png_and_no_temp_file(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib not installed")
    path = tmp_path / "plots" / "front.png"
    out = plot_front(path, _rows(), "click", "like", {"click": "max", "like": "max"},
                     reference_front=[(0.7, 0.81), (0.81, 0.7), (0.76, 0.77)],
                     hypervolumes={"wc_penalty": 0.0123, "weighted": 0.004})
    assert out == path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert [p.name for p in path.parent.iterdir()] == ["front.png"]
    # overwriting an existing plot works and still leaves no temp file behind
    plot_front(path, _rows()[:1], "click", "like", ("max", "min"))
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert [p.name for p in path.parent.iterdir()] == ["front.png"]


def test_axis_labels_say_which_way_is_better():
    assert _axis_label("AUC", "is_click", "max") == "AUC is_click (higher is better)"
    assert _axis_label("LogLoss", "is_like", "min") == "LogLoss is_like (lower is better)"


def test_plot_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="x_task and y_task"):
        plot_front(tmp_path / "f.png", _rows(), "click", "click", ("max", "max"))
    with pytest.raises(ValueError, match="directions"):
        plot_front(tmp_path / "f.png", _rows(), "click", "like", {"click": "max"})
    with pytest.raises(ValueError, match=r"reference_front\[0\]"):
        plot_front(tmp_path / "f.png", _rows(), "click", "like", ("max", "max"), reference_front=[(1, 2, 3)])
    assert not list(tmp_path.iterdir())


def test_importing_the_package_loads_neither_matplotlib_nor_torch():
    code = "import sys, recsys_hmtl.pareto; print('matplotlib' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
