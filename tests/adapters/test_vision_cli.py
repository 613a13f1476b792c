"""The vision adapter through the product path: train / evaluate / compare / reproduce from the CLI
on a tiny MultiMNIST built from the genuine MNIST test set, and CelebA on generated JPEGs in the
official layout; single-task runs and Δm%; config mistakes name the key."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from recsys_hmtl.adapters.vision import delta_m as dm
from recsys_hmtl.adapters.vision.sample import write_celeba_sample
from recsys_hmtl.cli import main
from recsys_hmtl.config import load_config
from recsys_hmtl.priority import available_stages
from recsys_hmtl.reproduce.suite import load_suite
from recsys_hmtl.training.run_plan import resolve_run
from stage_modes import cli_settings

ROOT = Path(__file__).resolve().parents[2]
MULTIMNIST = ROOT / "configs" / "vision_multimnist.yaml"
CELEBA = ROOT / "configs" / "vision_celeba.yaml"
MNIST = ROOT.parent / "shared" / "data" / "vision" / "mnist"
os.environ["RECSYS_HMTL_PROGRESS"] = "0"
TINY = [f"data.root={MNIST}", "data.split_sizes=[256, 64, 64]", "trainer.batch_size=64",
        "trainer.eval_batch_size=64", "trainer.max_epochs=1", "trainer.ckpt_every=2", "trainer.log_every=2"]


@pytest.fixture(autouse=True)
def _needs_mnist():
    if not MNIST.is_dir():
        pytest.skip(f"genuine MNIST test set not found at {MNIST}")


def cli(*args) -> int:
    return main([str(a) for a in args])


def train(config: Path, run: Path, *extra: str) -> int:
    sets = [x for item in extra for x in ("--set", item)]
    return cli("train", "--config", config, "--out", run, *sets)


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_multimnist_train_evaluate_compare_and_delta_m(tmp_path, capsys):
    for name, extra in {"sum": ["stage.name=sum"], "mgda": ["stage.name=mgda"],
                        "stl_left": ["model.single_task=left"], "stl_right": ["model.single_task=right"]}.items():
        assert train(MULTIMNIST, tmp_path / name, *TINY, *extra) == 0, name
        assert cli("evaluate", "--run", tmp_path / name) == 0
    summary, report = read(tmp_path / "sum" / "run_summary.json"), read(tmp_path / "sum" / "eval_report.json")
    assert summary["steps"] == 4 and summary["primary_metric"] == "avg_accuracy"  # 256 pairs / 64
    assert report["split"] == "test" and report["rows"] == 64 and list(report["tasks"]) == ["left", "right"]
    assert report["avg_accuracy"] == pytest.approx((report["tasks"]["left"]["accuracy"]
                                                    + report["tasks"]["right"]["accuracy"]) / 2)
    assert report["task_metric"] == "accuracy" and report["change"] == "points"
    stl = read(tmp_path / "stl_left" / "eval_report.json")
    assert list(stl["tasks"]) == ["left"] and stl["single_task"] == "left"
    assert stl["avg_accuracy"] == stl["tasks"]["left"]["accuracy"]
    capsys.readouterr()
    assert cli("compare", tmp_path / "sum", tmp_path / "mgda") == 0
    table = capsys.readouterr().out
    assert "mgda" in table and " pt" in table and "left" in table
    result = dm.delta_m_of_runs(tmp_path / "mgda", [tmp_path / "stl_left", tmp_path / "stl_right"])
    mgda = read(tmp_path / "mgda" / "eval_report.json")["tasks"]
    singles = {t: read(tmp_path / f"stl_{t}" / "eval_report.json")["tasks"][t]["accuracy"] for t in ("left", "right")}
    expected = -50 * sum((mgda[t]["accuracy"] - singles[t]) / singles[t] for t in ("left", "right"))
    assert result["delta_m"] == pytest.approx(expected)
    assert dm.main(["--mtl", str(tmp_path / "mgda"), "--stl", str(tmp_path / "stl_left"),
                    str(tmp_path / "stl_right")]) == 0
    assert f"Δm% = {expected:+.2f}" in capsys.readouterr().out


@pytest.mark.parametrize("stage", available_stages())
@pytest.mark.parametrize("dataset", ["multimnist", "celeba"])
def test_every_stage_trains_and_evaluates_from_the_cli(tmp_path, dataset, stage):
    if dataset == "multimnist":
        config, sets = MULTIMNIST, [*TINY, "data.split_sizes=[128, 32, 32]", "trainer.batch_size=32"]
    else:
        root = write_celeba_sample(tmp_path / "celeba", (16, 4, 4))
        config, sets = CELEBA, [f"data.root={root}", "data.image_size=16", "model.width=4",
                                "data.attributes=[Smiling, Male, Young]", "trainer.batch_size=8",
                                "trainer.eval_batch_size=8"]
    assert train(config, tmp_path / "run", *cli_settings(stage), "trainer.max_steps=2", *sets) == 0
    summary = read(tmp_path / "run" / "run_summary.json")
    assert summary["steps"] == 2 and summary["skipped_nonfinite_steps"] == 0
    assert cli("evaluate", "--run", tmp_path / "run") == 0
    assert read(tmp_path / "run" / "eval_report.json")["primary_metric"] in ("avg_accuracy", "avg_f1")


def test_celeba_trains_and_evaluates_on_generated_images(tmp_path):
    root = write_celeba_sample(tmp_path / "celeba", (24, 8, 8))
    sets = [f"data.root={root}", "data.image_size=16", "data.attributes=[Smiling, Male, Young]",
            "model.width=4", "trainer.batch_size=8", "trainer.eval_batch_size=8", "trainer.max_epochs=1",
            "stage.name=ldc_mtl"]
    assert train(CELEBA, tmp_path / "run", *sets) == 0
    assert cli("evaluate", "--run", tmp_path / "run") == 0
    report = read(tmp_path / "run" / "eval_report.json")
    assert list(report["tasks"]) == ["Smiling", "Male", "Young"] and report["rows"] == 8
    assert 0 <= report["avg_f1"] <= 1 and {"accuracy", "f1", "precision", "recall"} <= set(report["tasks"]["Male"])
    assert read(tmp_path / "run" / "run_summary.json")["steps"] == 3


def test_resume_reaches_the_uninterrupted_state(tmp_path):
    """Stopped after 3 batches and resumed = never stopped (dropout RNG, Adam, data order, LDC router)."""
    import torch

    from recsys_hmtl.training.checkpoint import CheckpointStore

    sets = [*TINY, "trainer.max_epochs=2", "stage.name=ldc_mtl", "stage.penalty=100"]
    assert train(MULTIMNIST, tmp_path / "whole", *sets) == 0
    assert train(MULTIMNIST, tmp_path / "split", *sets, "trainer.max_steps=3") == 0
    args = [x for item in sets for x in ("--set", item)]
    assert cli("train", "--config", MULTIMNIST, "--out", tmp_path / "split", "--resume", *args) == 0

    def final(run: Path) -> dict:
        return torch.load(Path(CheckpointStore(run).latest()["path"]) / "rank0.pt", weights_only=True)

    whole, split = final(tmp_path / "whole"), final(tmp_path / "split")
    assert whole["counters"]["steps"] == split["counters"]["steps"] == 8
    for name, value in whole["model"].items():
        assert torch.equal(value, split["model"][name]), name


def test_reproduce_suite_and_delta_m_table(tmp_path):
    """A 4-cell slice of seed003_vision: the tables in accuracy points, Δm% and time ratio per variant."""
    from recsys_hmtl.reproduce import reproduce

    values = dict(item.split("=", 1) for item in [*TINY, "trainer.max_steps=2"])
    suite = {"config": str(MULTIMNIST), "set": {k: yaml.safe_load(v) for k, v in values.items()}, "seeds": 1,
             "lrs": [0.001], "metric": {"task": "accuracy", "primary": "avg_accuracy", "change": "points"},
             "datasets": {"multimnist": {}}, "backbones": ["lenet"],
             "variants": {"sum": {"stage.name": "sum"},
                          "ldc_mtl_one": {"stage.name": "ldc_mtl", "stage.tau": "one", "stage.penalty": 100.0},
                          "stl_left": {"model.single_task": "left"}, "stl_right": {"model.single_task": "right"}},
             "tables": [{"title": "T", "baseline": "sum", "rows": ["ldc_mtl_one", "stl_left", "stl_right"]}]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    reproduce(str(path), tmp_path / "out")
    tables = (tmp_path / "out" / "tables.md").read_text()
    assert "| model | lr | left | right | Avg. acc. | acting |" in tables and "Failed" not in tables
    rows = {r["variant"]: r for r in dm.suite_rows(tmp_path / "out", "multimnist", "lenet")}
    assert set(rows) == {"sum", "ldc_mtl_one"} and len(rows["ldc_mtl_one"]["delta_m"]) == 1
    assert rows["sum"]["time_ratio"] == pytest.approx(1.0) and rows["ldc_mtl_one"]["time_ratio"] > 0
    assert "| ldc_mtl_one | 0.001 | 1 |" in dm.suite_markdown(list(rows.values()), "accuracy")


def test_every_suite_cell_resolves():
    suite = load_suite("seed003_vision")
    assert {c.variant for c in suite.cells()} >= {"sum", "ldc_mtl_sigma", "ldc_mtl_one", "famo", "mgda",
                                                  "nash_mtl", "fairgrad", "stl_left", "stl_Smiling"}
    for cell in suite.cells():
        config, items = suite.overrides(cell, [])
        plan = resolve_run(load_config(config, items))
        single = suite.variants[cell.variant].get("model.single_task")
        assert plan.task_names == ((single,) if single else plan.task_names)
        assert len(plan.task_names) == (1 if single else 2 if cell.dataset == "multimnist" else 40)


@pytest.mark.parametrize("setting, key", [
    ("data.dataset=mnist", "data.dataset"),
    ("data.attributes=[Smiling]", "data.attributes"),
    ("data.split_sizes=[100, 10]", "data.split_sizes"),
    ("data.split_sizes=[9000, 1000, 1000]", "data.split_sizes"),
    ("data.image_size=8", "data.image_size"),
    ("data.images_file=absent.gz", "data.images_file"),
    ("model.name=celeba_cnn", "model.name"),
    ("model.dropot=0.1", "model.dropot"),
    ("model.dropout=1.5", "model.dropout"),
    ("model.single_task=middle", "model.single_task"),
    ("tasks=[left, middle]", "tasks"),
    ("stage.name=ldc", "stage.name"),
    ("adapter=visoin", "adapter"),
])
def test_config_mistakes_name_the_key(tmp_path, capsys, setting, key):
    assert train(MULTIMNIST, tmp_path / "run", *TINY, setting) == 2
    err = capsys.readouterr().err
    assert f"'{key}'" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_celeba_config_mistakes_name_the_key(tmp_path, capsys):
    root = write_celeba_sample(tmp_path / "celeba", (4, 2, 2))
    for setting, key in (("data.attributes=[Smilling]", "data.attributes"), ("model.logits=3", "model.logits"),
                         ("data.pairs_per_image=2", "data.pairs_per_image"), ("tasks=[Male]", "tasks")):
        assert train(CELEBA, tmp_path / "run", f"data.root={root}", setting) == 2
        assert f"'{key}'" in capsys.readouterr().err
    (root / "img_align_celeba" / "000003.jpg").unlink()
    assert train(CELEBA, tmp_path / "run", f"data.root={root}", "model.width=4", "data.image_size=16") == 2
    assert "000003.jpg: image file not found" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_one_process_only(tmp_path, capsys):
    sets = [x for item in TINY for x in ("--set", item)]
    assert cli("train", "--config", MULTIMNIST, "--out", tmp_path / "run", "--nproc", "2", *sets) == 2
    assert "'--nproc'" in capsys.readouterr().err and not (tmp_path / "run").exists()
