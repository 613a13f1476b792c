"""The text adapter through the product path: train / evaluate / compare / resume from the CLI on
three genuine FDU-MTL domains (a few training reviews each, a tiny TextCNN), STL modes, and
configuration mistakes that name their key."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from recsys_hmtl.cli import main
from recsys_hmtl.priority import available_stages
from recsys_hmtl.training.checkpoint import CheckpointStore
from stage_modes import cli_settings, needs_bilevel

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "text_amazon.yaml"
AMAZON = ROOT.parent / "shared" / "data" / "text" / "amazon_mtl"
os.environ["RECSYS_HMTL_PROGRESS"] = "0"
TINY = [f"data.root={AMAZON}", "data.domains=[books, dvd, music]", "data.per_task_batch=4", "data.max_length=48",
        "data.max_train_per_task=16", "model.embedding_dim=16", "model.filters=8", "trainer.batch_size=12",
        "trainer.eval_batch_size=200", "trainer.lr=0.003", "trainer.ckpt_every=3", "trainer.log_every=2",
        "trainer.max_epochs=1"]

pytestmark = pytest.mark.skipif(not AMAZON.is_dir(), reason=f"FDU-MTL not found at {AMAZON}")


def cli(*args) -> int:
    return main([str(a) for a in args])


def train(run: Path, *extra: str, resume: bool = False) -> int:
    sets = [x for item in [*TINY, *extra] for x in ("--set", item)]
    return cli("train", "--config", CONFIG, "--out", run, *(["--resume"] if resume else []), *sets)


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_train_evaluate_compare(tmp_path, capsys):
    for stage in ("sum", "getmtl"):
        assert train(tmp_path / stage, f"stage.name={stage}") == 0
        assert cli("evaluate", "--run", tmp_path / stage) == 0
    summary, report = read(tmp_path / "sum" / "run_summary.json"), read(tmp_path / "sum" / "eval_report.json")
    assert summary["primary_metric"] == "avg_accuracy" and 0 <= summary["val_avg_accuracy"] <= 1
    assert summary["steps"] == 4 and summary["skipped_nonfinite_steps"] == 0  # 16 reviews / 4 a task and step
    assert report["split"] == "test" and report["rows"] == 1200 and list(report["tasks"]) == ["books", "dvd", "music"]
    tasks = report["tasks"]
    assert all(e["reviews"] == 400 and e["accuracy"] == e["correct"] / 400 for e in tasks.values())
    assert report["avg_accuracy"] == pytest.approx(sum(e["accuracy"] for e in tasks.values()) / 3)
    assert (report["task_metric"], report["change"]) == ("accuracy", "points")
    capsys.readouterr()
    assert cli("compare", tmp_path / "sum", tmp_path / "getmtl") == 0
    table = capsys.readouterr().out
    assert "Avg. acc." in table and "pt |" in table and "getmtl" in table


@pytest.mark.parametrize("stage", available_stages())
def test_every_stage_trains_and_evaluates_from_the_cli(tmp_path, stage, capsys):
    if needs_bilevel(stage):  # held-out batches: the recommendation and vision adapters have them
        assert train(tmp_path / "run", *cli_settings(stage), "trainer.max_steps=2") == 2
        assert "key 'bilevel'" in capsys.readouterr().err
        return
    assert train(tmp_path / "run", *cli_settings(stage), "trainer.max_steps=2") == 0
    summary = read(tmp_path / "run" / "run_summary.json")
    assert summary["steps"] == 2 and summary["skipped_nonfinite_steps"] == 0
    assert cli("evaluate", "--run", tmp_path / "run") == 0
    assert read(tmp_path / "run" / "eval_report.json")["avg_accuracy"] is not None


def test_resume_reaches_the_uninterrupted_state(tmp_path):
    """Stopped after 3 batches and resumed = never stopped (sampler position, dropout RNG, Adam)."""
    assert train(tmp_path / "whole", "stage.name=mgda", "trainer.max_epochs=2") == 0
    assert train(tmp_path / "split", "stage.name=mgda", "trainer.max_epochs=2", "trainer.max_steps=3") == 0
    assert train(tmp_path / "split", "stage.name=mgda", "trainer.max_epochs=2", resume=True) == 0

    def final(run: Path) -> dict:
        return torch.load(Path(CheckpointStore(run).latest()["path"]) / "rank0.pt", weights_only=True)

    whole, split = final(tmp_path / "whole"), final(tmp_path / "split")
    assert whole["position"] == split["position"] and whole["counters"]["steps"] == 8
    for name, value in whole["model"].items():
        assert torch.equal(value, split["model"][name]), name


def test_single_task_and_no_sharing(tmp_path):
    assert train(tmp_path / "dvd", "model.single_task=dvd", "trainer.batch_size=4") == 0
    summary = read(tmp_path / "dvd" / "run_summary.json")
    assert list(summary["val"]) == ["dvd"] and summary["steps"] == 4
    assert train(tmp_path / "stl", "model.sharing=none") == 0
    assert list(read(tmp_path / "stl" / "run_summary.json")["val"]) == ["books", "dvd", "music"]


@pytest.mark.parametrize("setting, key", [
    ("trainer.batch_size=16", "trainer.batch_size"),
    ("data.per_task_batch=-1", "data.per_task_batch"),
    ("data.domains=[books, bookz, music]", "data.domains"),
    ("data.domains=[books, books]", "data.domains"),
    ("data.val_fraction=1.0", "data.val_fraction"),
    ("tasks=[dvd, books, music]", "tasks"),
    ("model.filter=8", "model.filter"),
    ("model.kernel_sizes=[3, 0]", "model.kernel_sizes"),
    ("model.shared=representation", "model.shared"),
    ("model.sharing=soft", "model.sharing"),
    ("model.single_task=video", "model.single_task"),
    ("model.name=bilstm", "model.name"),
])
def test_config_mistakes_name_the_key(tmp_path, capsys, setting, key):
    assert train(tmp_path / "run", setting) == 2
    err = capsys.readouterr().err
    assert f"'{key}'" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_one_process_only(tmp_path, capsys):
    sets = [x for item in TINY for x in ("--set", item)]
    assert cli("train", "--config", CONFIG, "--out", tmp_path / "run", "--nproc", "2", *sets) == 2
    assert "'--nproc'" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_seed002_suite_and_a_tiny_reproduction(tmp_path):
    """The seed002 suite resolves (7 variants × 2 seeds, accuracy in points, the paper's Δ Avg);
    a tiny copy of it runs and writes Table 3's shape: STL as one row over every domain."""
    import yaml

    from recsys_hmtl.reproduce import reproduce
    from recsys_hmtl.reproduce.suite import load_suite

    suite = load_suite("seed002")
    assert len(suite.cells()) == 14 and suite.metric.change == "points" and suite.backbones == ("textcnn",)
    assert suite.tables[0].published["textcnn"]["getmtl"] == pytest.approx(89.80 - 88.47)
    raw = yaml.safe_load(suite.path.read_text())
    raw.update(config=str(CONFIG), seeds=1, plots=[],
               set={k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in [*TINY, "trainer.max_steps=2"])},
               variants={v: raw["variants"][v] for v in ("sum", "stl", "getmtl")})
    raw["tables"][0]["rows"] = [{"variant": "stl", "label": "STL"}, {"variant": "getmtl", "label": "GetMTL"}]
    path = tmp_path / "seed002_tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    reproduce(str(path), tmp_path / "out")
    rows = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert any(",test,,avg_accuracy," in r for r in rows) and any(",test,dvd,accuracy," in r for r in rows)
    tables = (tmp_path / "out" / "tables.md").read_text()
    assert "| model | lr | books | dvd | music | Avg. acc. | acting | published Δ Avg. |" in tables
    stl = next(line for line in tables.splitlines() if line.startswith("| textcnn – STL"))
    assert stl.count(" pt") == 5 and stl.endswith("| -1.95 pt |")  # 3 domains, the average, the paper's Δ: points
