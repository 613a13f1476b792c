"""Every config in ``configs/`` trains and evaluates on files in its data set's real format
(written by the fixture generators), with its own model and stage sections, and every backbone is
selectable with ``--set model.name=...`` on a shipped config."""

from __future__ import annotations

import shutil

import pytest

from mainjob import ROOT, read_json, run_cli
from recsys_hmtl.data.demo import write_demo_data
from recsys_hmtl.data.synthetic import write_qk_video, write_tiktok

WRITERS = {
    "tiktok.yaml": lambda root: write_tiktok(root / "final_track2_train.txt", rows=6000, seed=1),
    "qk_video.yaml": lambda root: write_qk_video(root / "ctr_data_1M.csv", rows=6000, seed=2),
    "kuairand_1k.yaml": lambda root: write_demo_data(root, rows=6000, seed=4),
    "kuairand_demo.yaml": lambda root: write_demo_data(root, rows=6000, seed=4),
    "kuairand_genuine.yaml": lambda root: copy_genuine_kuairand(root),
}
GENUINE = ROOT.parent / "shared" / "data" / "kuairand"


def copy_genuine_kuairand(root) -> None:
    if not GENUINE.is_dir():
        pytest.skip(f"genuine KuaiRand rows not found at {GENUINE}")
    shutil.copytree(GENUINE, root)
QUICK = ["trainer.max_steps=3", "trainer.batch_size=512", "trainer.eval_batch_size=4096"]


def test_every_shipped_config_is_covered():
    assert {p.name for p in (ROOT / "configs").glob("*.yaml")} == set(WRITERS)


@pytest.mark.parametrize("config", sorted(WRITERS))
def test_shipped_config_trains_and_evaluates(tmp_path, config):
    data, run = tmp_path / "data", tmp_path / "run"
    WRITERS[config](data)
    sets = [x for item in [f"data.root={data}", f"data.cache_dir={tmp_path / 'cache'}", *QUICK]
            for x in ("--set", item)]
    assert run_cli("train", "--config", ROOT / "configs" / config, "--out", run, *sets) == 0
    assert run_cli("evaluate", "--run", run) == 0
    report = read_json(run / "eval_report.json")
    tasks = [t["name"] for t in read_json(run / "run_summary.json")["config"]["tasks"]]
    assert list(report["tasks"]) == tasks and report["rows"] > 0


@pytest.mark.parametrize("model", ["shared_bottom", "omoe", "ple", "esmm", "aitm", "stem"])
def test_backbones_are_selectable_on_a_shipped_config(tmp_path, model):
    data, run = tmp_path / "data", tmp_path / "run"
    WRITERS["tiktok.yaml"](data)
    sets = [x for item in [f"data.root={data}", f"model.name={model}", *QUICK] for x in ("--set", item)]
    assert run_cli("train", "--config", ROOT / "configs" / "tiktok.yaml", "--out", run, *sets) == 0
    assert read_json(run / "run_summary.json")["config"]["model"]["name"] == model
