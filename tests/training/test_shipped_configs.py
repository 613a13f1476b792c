"""Every config in ``configs/`` trains and evaluates on files in its data set's real format
(written by the fixture generators), with its own model and stage sections, and every backbone is
selectable with ``--set model.name=...`` on a shipped config."""

from __future__ import annotations

import json
import shutil

import pytest

from mainjob import ROOT, read_json, run_cli
from recsys_hmtl.data.demo import write_demo_data
from recsys_hmtl.adapters.vision.sample import write_celeba_sample
from recsys_hmtl.data.synthetic import write_qk_video, write_tiktok

WRITERS = {
    "tiktok.yaml": lambda root: write_tiktok(root / "final_track2_train.txt", rows=6000, seed=1),
    "qk_video.yaml": lambda root: write_qk_video(root / "ctr_data_1M.csv", rows=6000, seed=2),
    "kuairand_1k.yaml": lambda root: write_demo_data(root, rows=6000, seed=4),
    "kuairand_demo.yaml": lambda root: write_demo_data(root, rows=6000, seed=4),
    "kuairand_genuine.yaml": lambda root: copy_genuine_kuairand(root),
    "ere_webnlg.yaml": lambda root: copy_genuine_ere(root, "webnlg", ("train", "val", "test")),
    "ere_nyt.yaml": lambda root: copy_genuine_ere(root, "nyt", ("val", "test")),
    "vision_multimnist.yaml": lambda root: copy_genuine(root, "vision/mnist"),
    "vision_celeba.yaml": lambda root: write_celeba_sample(root),
    "text_amazon.yaml": lambda root: copy_genuine(root, "text/amazon_mtl", lines=40),
    "text_amazon_minilm.yaml": lambda root: copy_genuine(root, "text/amazon_mtl", lines=40),
    "toy_seed003.yaml": lambda root: None,  # no files: the toy problem is a formula
}
# Settings a config needs beside QUICK (the text adapter's batch is per task: 14 domains x 2 reviews).
EXTRA = {
    "text_amazon.yaml": ["data.per_task_batch=2", "trainer.batch_size=28"],
    "text_amazon_minilm.yaml": ["data.per_task_batch=2", "trainer.batch_size=28"],
    "vision_multimnist.yaml": ["data.split_sizes=[600, 200, 200]"],
    "vision_celeba.yaml": ["data.image_size=32"],
}
GENUINE = ROOT.parent / "shared" / "data" / "kuairand"
GENUINE_ERE = ROOT.parent / "shared" / "data" / "ere"


def copy_genuine(root, name: str, lines: int | None = None) -> None:
    """A genuine shared data folder (the first ``lines`` of each file when given)."""
    source = ROOT.parent / "shared" / "data" / name
    if not source.is_dir():
        pytest.skip(f"genuine data not found at {source}")
    if lines is None:
        shutil.copytree(source, root)
        return
    root.mkdir(parents=True)
    for path in source.iterdir():
        with open(path, "rb") as handle:
            (root / path.name).write_bytes(b"".join(handle.readline() for _ in range(lines)))


def copy_genuine_ere(root, name: str, splits: tuple[str, ...], documents: int = 24) -> None:
    """The first documents of each split of a genuine ERE set, in its CasRel files."""
    source = GENUINE_ERE / name
    if not source.is_dir():
        pytest.skip(f"genuine ERE data not found at {source}")
    root.mkdir(parents=True)
    shutil.copy(source / "rel2id.json", root / "rel2id.json")
    for split in splits:
        docs = json.loads((source / f"{split}_triples.json").read_text())[:documents]
        (root / f"{split}_triples.json").write_text(json.dumps(docs))


def copy_genuine_kuairand(root) -> None:
    if not GENUINE.is_dir():
        pytest.skip(f"genuine KuaiRand rows not found at {GENUINE}")
    shutil.copytree(GENUINE, root)
NO_FILES = {"toy_seed003.yaml"}
RECSYS = {"tiktok.yaml", "qk_video.yaml", "kuairand_1k.yaml", "kuairand_demo.yaml", "kuairand_genuine.yaml"}
QUICK = ["trainer.max_steps=3", "trainer.batch_size=512", "trainer.eval_batch_size=4096"]


def test_every_shipped_config_is_covered():
    assert {p.name for p in (ROOT / "configs").glob("*.yaml")} == set(WRITERS)


@pytest.mark.parametrize("config", sorted(WRITERS))
def test_shipped_config_trains_and_evaluates(tmp_path, config):
    data, run = tmp_path / "data", tmp_path / "run"
    WRITERS[config](data)
    cache = [f"data.cache_dir={tmp_path / 'cache'}"] if config in RECSYS else []  # the others keep no cache
    root = [] if config in NO_FILES else [f"data.root={data}"]
    sets = [x for item in [*root, *cache, *QUICK, *EXTRA.get(config, [])] for x in ("--set", item)]
    assert run_cli("train", "--config", ROOT / "configs" / config, "--out", run, *sets) == 0
    assert run_cli("evaluate", "--run", run) == 0
    report, summary = read_json(run / "eval_report.json"), read_json(run / "run_summary.json")
    tasks = [t["name"] for t in summary["config"]["tasks"]] or list(summary["val"])  # ERE: fixed tasks
    assert list(report["tasks"]) == tasks and report["rows"] > 0
    assert report[report["primary_metric"]] is not None


@pytest.mark.parametrize("model", ["shared_bottom", "omoe", "ple", "esmm", "aitm", "stem"])
def test_backbones_are_selectable_on_a_shipped_config(tmp_path, model):
    data, run = tmp_path / "data", tmp_path / "run"
    WRITERS["tiktok.yaml"](data)
    sets = [x for item in [f"data.root={data}", f"model.name={model}", *QUICK] for x in ("--set", item)]
    assert run_cli("train", "--config", ROOT / "configs" / "tiktok.yaml", "--out", run, *sets) == 0
    assert read_json(run / "run_summary.json")["config"]["model"]["name"] == model
