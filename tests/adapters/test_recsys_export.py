"""``export`` and ``predict`` (issue 16) through the CLI on demo runs: the exported program, loaded in
a fresh process that never imports recsys_hmtl, scores the test split as ``evaluate`` does (1e-5)
for every backbone; ``predict`` from the run and from the export give those scores on raw log rows
(CSV and Parquet, side tables joined), keep the id columns, and refuse bad input without leaving
output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))  # the main-job test helpers
from mainjob import read_json, run_cli, train_args  # noqa: E402
from test_end_to_end import SMALL_MODELS  # noqa: E402

from recsys_hmtl.adapters.recsys import adapter as recsys_adapter  # noqa: E402
from recsys_hmtl.data.demo import write_demo_data  # noqa: E402

TOLERANCE = 1e-5
TASKS = ["is_click", "long_view", "is_like", "is_follow", "is_comment", "is_forward", "is_profile_enter", "is_hate"]
LOGS = ["log_standard_4_08_to_4_21_1k.csv", "log_standard_4_22_to_5_08_1k.csv"]

# Runs in a fresh interpreter with torch and json only: what a serving stack has.
LOADER = r"""
import json, sys
import torch
folder, inputs, out = sys.argv[1:4]
meta = json.load(open(f"{folder}/metadata.json"))
program = torch.jit.load(f"{folder}/{meta['program']['file']}")
feed = torch.load(inputs, weights_only=True)
assert len(feed["indices"]) == len(feed["offsets"]) == len(meta["sparse"])
assert feed["dense"].shape[1] == len(meta["dense"])
with torch.no_grad():
    p = program(feed["indices"], feed["offsets"], feed["dense"])
assert p.dtype == torch.float32 and p.shape == (feed["dense"].shape[0], len(meta["tasks"])), p.shape
torch.save({"p": p, "tasks": meta["tasks"]}, out)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("recsys_hmtl", "torchrec", "fbgemm_gpu", "polars"))
assert not leaked, leaked
"""


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_demo_data(root, rows=8000, seed=3)
    return root


@pytest.fixture(scope="module")
def trained(demo_root, tmp_path_factory):
    """``trained(model)``: a small run of that backbone (trained once per module) and the
    ``[N, T]`` test-split probabilities that ``recsys-hmtl evaluate`` scored it with."""
    runs: dict[str, tuple[Path, np.ndarray]] = {}
    folder = tmp_path_factory.mktemp("runs")

    def get(model: str) -> tuple[Path, np.ndarray]:
        if model not in runs:
            run = folder / model
            assert run_cli(*train_args(demo_root, run, f"model={SMALL_MODELS[model]}")) == 0
            runs[model] = run, evaluate_scores(run)
        return runs[model]

    return get


def evaluate_scores(run: Path) -> np.ndarray:
    """The scores ``recsys-hmtl evaluate --run`` computes (captured from its scoring call)."""
    seen = []
    original = recsys_adapter.score_split

    def capture(*args, **kwargs):
        labels, scores, groups = original(*args, **kwargs)
        seen.append(scores)
        return labels, scores, groups

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recsys_adapter, "score_split", capture)
        assert run_cli("evaluate", "--run", run, "--split", "test") == 0
    assert len(seen) == 1 and seen[0].shape[1] == len(TASKS)
    return seen[0]


def program_inputs(encoded: pl.DataFrame, meta: dict) -> dict:
    """The program's inputs as metadata.json documents them, built from the encoded rows."""
    indices, offsets = [], []
    for feature in meta["sparse"]:
        column = encoded.get_column(feature["name"])
        if feature["multi_valued"]:
            lengths = column.list.len().fill_null(0).to_numpy()
            values = column.explode(empty_as_null=False, keep_nulls=False).to_numpy()
        else:
            lengths, values = np.ones(encoded.height, dtype=np.int64), column.to_numpy()
        indices.append(torch.from_numpy(values.astype(np.int64)))
        offsets.append(torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)))
    dense = torch.from_numpy(encoded.select([d["name"] for d in meta["dense"]]).to_numpy().astype(np.float32))
    return {"indices": indices, "offsets": offsets, "dense": dense}


def cache_dir(run: Path) -> Path:
    """The data cache entry the run trained on ("hit <dir>" / "miss, wrote <dir>")."""
    return Path(read_json(run / "run_summary.json")["data"]["cache"].split()[-1])


def test_split_rows(run: Path) -> pl.DataFrame:
    """The encoded test split evaluate reads."""
    return pl.read_parquet(cache_dir(run) / "test.parquet")


test_split_rows.__test__ = False  # a helper, not a test


def raw_test_rows(demo_root: Path, run: Path) -> pl.DataFrame:
    """The raw log rows of the test split in file order (log columns only: predict joins the side tables)."""
    start = read_json(cache_dir(run) / "report.json")["split"]["test_start"]
    logs = pl.concat([pl.read_csv(demo_root / "data" / name) for name in LOGS])
    return logs.filter(pl.col("date") >= start)


@pytest.mark.parametrize("model", sorted(SMALL_MODELS))
def test_exported_program_scores_like_evaluate_in_a_process_without_recsys_hmtl(trained, tmp_path, model):
    run, expected = trained(model)
    export = tmp_path / "export"
    assert run_cli("export", "--run", run, "--out", export) == 0
    meta = read_json(export / "metadata.json")
    assert meta["tasks"] == TASKS and meta["model"] == model and meta["program"]["format"] == "torchscript"
    assert meta["check"]["max_abs_difference"] <= TOLERANCE
    assert (export / "model.pt").is_file() and all((export / f["vocabulary"]).is_file()
                                                   for f in meta["sparse"] if f["encoding"] == "vocabulary")

    inputs, out = tmp_path / "inputs.pt", tmp_path / "scores.pt"
    torch.save(program_inputs(test_split_rows(run), meta), inputs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", LOADER, str(export), str(inputs), str(out)], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = torch.load(out, weights_only=True)
    assert got["tasks"] == TASKS
    np.testing.assert_allclose(got["p"].numpy(), expected, rtol=0, atol=TOLERANCE)


def test_predict_from_the_run_and_from_the_export_equals_evaluate(trained, demo_root, tmp_path):
    run, expected = trained("mmoe")
    export = tmp_path / "export"
    assert run_cli("export", "--run", run, "--out", export) == 0
    rows = raw_test_rows(demo_root, run)
    assert rows.height == expected.shape[0]
    csv, parquet = tmp_path / "rows.csv", tmp_path / "rows.parquet"
    rows.write_csv(csv)
    rows.write_parquet(parquet)

    outputs = {}
    for name, source, path in [("run", ["--run", run], csv), ("model", ["--model", export], csv),
                               ("parquet", ["--model", export], parquet)]:
        outputs[name] = tmp_path / f"scores_{name}.parquet"
        assert run_cli("predict", *source, "--input", path, "--out", outputs[name], "--batch-size", 64,
                       "--keep", "time_ms") == 0
    scores = {name: pl.read_parquet(path) for name, path in outputs.items()}
    for name, frame in scores.items():
        assert frame.columns == ["user_id", "video_id", "time_ms", *(f"p_{t}" for t in TASKS)], name
        assert frame.select("user_id", "video_id", "time_ms").equals(rows.select("user_id", "video_id", "time_ms"))
        assert frame.schema["p_is_click"] == pl.Float32
        np.testing.assert_allclose(frame.select(f"p_{t}" for t in TASKS).to_numpy(), expected, rtol=0,
                                   atol=TOLERANCE, err_msg=name)

    # Unseen ids are index 0 (their side features missing too): two unknown users score alike.
    unseen = pl.concat([rows.head(1), rows.head(1)]).with_columns(pl.Series("user_id", [10**9, 10**9 + 1]))
    unseen.write_csv(tmp_path / "unseen.csv")
    assert run_cli("predict", "--model", export, "--input", tmp_path / "unseen.csv",
                   "--out", tmp_path / "u.parquet") == 0
    p = pl.read_parquet(tmp_path / "u.parquet").select(f"p_{t}" for t in TASKS).to_numpy()
    np.testing.assert_allclose(p[0], p[1], rtol=0, atol=1e-7)


def test_export_and_predict_refuse_bad_input_without_leaving_output(trained, demo_root, tmp_path, capsys):
    run, _ = trained("mmoe")
    export = tmp_path / "export"

    def fails(*args) -> str:
        capsys.readouterr()
        assert run_cli(*args) == 2
        return capsys.readouterr().err

    # A run without a checkpoint, a folder that is no run, a user's folder as --out.
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.yaml").write_text((run / "config.yaml").read_text())
    assert "no checkpoint" in fails("export", "--run", bare, "--out", export)
    assert "run folder not found" in fails("export", "--run", tmp_path / "nothing", "--out", export)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert "not a run folder" in fails("export", "--run", mine, "--out", export)
    err = fails("export", "--run", run, "--out", mine)
    assert str(mine) in err and "--out" in err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert not export.exists()
    # A previous export is replaced whole.
    assert run_cli("export", "--run", run, "--out", export) == 0
    (export / "stale.txt").write_text("from before")
    assert run_cli("export", "--run", run, "--out", export) == 0
    assert not (export / "stale.txt").exists() and (export / "model.pt").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left

    rows = raw_test_rows(demo_root, run).head(50)
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"previous scores")

    def predict_fails(frame: pl.DataFrame | None, *extra, source=("--model", export)) -> str:
        path = tmp_path / ("in.csv" if frame is not None else "absent.csv")
        if frame is not None:
            frame.write_csv(path)
        err = fails("predict", *source, "--input", path, "--out", out, *extra)
        assert out.read_bytes() == b"previous scores"  # never partial output
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".scores")]
        return err

    err = predict_fails(rows.drop("hourmin"))
    assert "in.csv" in err and "column 'hourmin'" in err and "sparse feature 'hour'" in err
    bad = rows.with_columns(pl.col("tab").cast(pl.String)).with_columns(
        pl.when(pl.int_range(pl.len()) == 6).then(pl.lit("x7")).otherwise(pl.col("tab")).alias("tab"))
    err = predict_fails(bad)
    assert "column 'tab'" in err and "row 7 (line 8 of the file)" in err
    err = predict_fails(bad, "--batch-size", 4)  # the row number counts the batches before it
    assert "row 7 (line 8 of the file)" in err
    err = predict_fails(rows.with_columns(pl.lit(None, pl.Int64).alias("user_id")))
    assert "column 'user_id'" in err and "row 1" in err and "missing id" in err
    assert "no data rows" in predict_fails(rows.head(0))
    assert "column 'request_id'" in predict_fails(rows, "--keep", "request_id")
    assert "absent.csv" in predict_fails(None) and "input file not found" in predict_fails(None)
    assert "not an export folder" in predict_fails(rows, source=("--model", tmp_path / "mine"))
    assert "no checkpoint" in predict_fails(rows, source=("--run", bare))
    assert "--batch-size" in predict_fails(rows, "--batch-size", 0)
    rows.with_columns(pl.lit(None, pl.Int64).alias("user_id")).write_csv(tmp_path / "in.csv")
    nested = tmp_path / "new" / "deeper" / "scores.parquet"  # folders a failed predict made are removed
    assert "missing id" in fails("predict", "--model", export, "--input", tmp_path / "in.csv", "--out", nested)
    assert not (tmp_path / "new").exists()


def test_onnx_export_scores_like_evaluate(trained, tmp_path):
    """``--onnx`` (optional packages; PyTorch's dynamo exporter): ESMM, whose expm1 the TorchScript-based
    exporter cannot take, scored with onnxruntime on the test split."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    onnxruntime = pytest.importorskip("onnxruntime")
    run, expected = trained("esmm")
    export = tmp_path / "export"
    assert run_cli("export", "--run", run, "--out", export, "--onnx") == 0
    meta = read_json(export / "metadata.json")
    entry = meta["program"]["onnx"]
    assert entry["file"] == "model.onnx" and entry["max_abs_difference"] <= TOLERANCE
    feed = program_inputs(test_split_rows(run), meta)
    arrays = [t.numpy() for t in (*feed["indices"], *feed["offsets"], feed["dense"])]
    session = onnxruntime.InferenceSession(str(export / "model.onnx"), providers=["CPUExecutionProvider"])
    p = session.run(None, dict(zip(entry["inputs"], arrays)))[0]
    np.testing.assert_allclose(p, expected, rtol=0, atol=TOLERANCE)


def test_onnx_without_its_packages_is_refused_before_any_work(trained, tmp_path, capsys, monkeypatch):
    run, _ = trained("mmoe")
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    assert run_cli("export", "--run", run, "--out", tmp_path / "export", "--onnx") == 2
    assert "onnxscript" in capsys.readouterr().err
    assert not (tmp_path / "export").exists()
