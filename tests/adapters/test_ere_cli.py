"""The ERE adapter through the product path: train / evaluate / compare / resume from the CLI, with
every loss stage, on a few genuine WebNLG sentences and the small scratch encoder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from recsys_hmtl.adapters.ere.metrics import prf
from recsys_hmtl.cli import main
from recsys_hmtl.priority import available_stages
from recsys_hmtl.training.checkpoint import CheckpointStore
from stage_modes import cli_settings, needs_bilevel

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "ere_webnlg.yaml"
WEBNLG = ROOT.parent / "shared" / "data" / "ere" / "webnlg"
os.environ["RECSYS_HMTL_PROGRESS"] = "0"
TINY = ["model.encoder=scratch", "model.hidden=32", "model.heads=2", "model.layers=1",
        "model.encoder_options={hidden: 32, num_layers: 1, heads: 2}", "model.encoder_lr=null",
        "trainer.batch_size=4", "trainer.eval_batch_size=16", "trainer.lr=0.003", "trainer.ckpt_every=3",
        "trainer.log_every=2", "trainer.max_epochs=1"]


@pytest.fixture(scope="module")
def webnlg(tmp_path_factory) -> Path:
    """The first documents of each genuine WebNLG split, in its own CasRel files."""
    if not WEBNLG.is_dir():
        pytest.skip(f"genuine WebNLG not found at {WEBNLG}")
    root = tmp_path_factory.mktemp("webnlg")
    (root / "rel2id.json").write_text((WEBNLG / "rel2id.json").read_text())
    for split, n in (("train", 16), ("val", 8), ("test", 8)):
        docs = json.loads((WEBNLG / f"{split}_triples.json").read_text())[:n]
        (root / f"{split}_triples.json").write_text(json.dumps(docs))
    return root


def cli(*args) -> int:
    return main([str(a) for a in args])


def train(root: Path, run: Path, *extra: str) -> int:
    sets = [x for item in [f"data.root={root}", *TINY, *extra] for x in ("--set", item)]
    return cli("train", "--config", CONFIG, "--out", run, *sets)


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_train_evaluate_compare(webnlg, tmp_path, capsys):
    for stage in ("sum", "hb_aho"):
        assert train(webnlg, tmp_path / stage, f"stage.name={stage}") == 0
        assert cli("evaluate", "--run", tmp_path / stage) == 0
    summary, report = read(tmp_path / "sum" / "run_summary.json"), read(tmp_path / "sum" / "eval_report.json")
    assert summary["primary_metric"] == "triple_f1" and 0 <= summary["val_triple_f1"] <= 1
    assert summary["steps"] == 4 and summary["stage_acting"]["acting"] is not None  # 16 docs / 4 a batch
    assert report["split"] == "test" and report["rows"] == 8 and list(report["tasks"]) == ["entity", "relation"]
    triple = report["triple"]
    assert report["triple_f1"] == triple["f1"] == prf(triple["correct"], triple["predicted"], triple["gold"])["f1"]
    assert triple["gold"] == sum(len({tuple(t) for t in d["triple_list"]})
                                 for d in json.loads((webnlg / "test_triples.json").read_text()))
    assert (tmp_path / "sum" / "eval_report.md").read_text().count("| entity |") == 1
    capsys.readouterr()
    assert cli("compare", tmp_path / "sum", tmp_path / "hb_aho") == 0
    table = capsys.readouterr().out
    assert "triple F1" in table and "pt |" in table and "hb_aho" in table


@pytest.mark.parametrize("stage", available_stages())
def test_every_stage_trains_from_the_cli(webnlg, tmp_path, stage, capsys):
    if needs_bilevel(stage):  # held-out batches: the recommendation adapter's bilevel mode only
        assert train(webnlg, tmp_path / "run", *cli_settings(stage), "trainer.max_steps=2") == 2
        assert "key 'bilevel'" in capsys.readouterr().err
        return
    # ExcessMTL accumulates per coordinate: ERE's representation changes length with the batch
    params = ["stage.grad_mode=params"] if stage == "excess_mtl" else []
    assert train(webnlg, tmp_path / "run", *cli_settings(stage), *params, "trainer.max_steps=2") == 0
    summary = read(tmp_path / "run" / "run_summary.json")
    assert summary["steps"] == 2 and summary["skipped_nonfinite_steps"] == 0


def test_resume_reaches_the_uninterrupted_state(webnlg, tmp_path):
    """A run stopped after 3 batches and resumed is the run that was never stopped (dropout RNG,
    Adam state, data position and the stage's running state all come back)."""
    assert train(webnlg, tmp_path / "whole", "stage.name=hb_aho", "trainer.max_epochs=2") == 0
    assert train(webnlg, tmp_path / "split", "stage.name=hb_aho", "trainer.max_epochs=2", "trainer.max_steps=3") == 0
    assert train(webnlg, tmp_path / "split", "stage.name=hb_aho", "trainer.max_epochs=2") != 0  # needs --resume
    sets = [x for item in [f"data.root={webnlg}", *TINY, "stage.name=hb_aho", "trainer.max_epochs=2"]
            for x in ("--set", item)]
    assert cli("train", "--config", CONFIG, "--out", tmp_path / "split", "--resume", *sets) == 0

    def final(run: Path) -> dict:
        return torch.load(Path(CheckpointStore(run).latest()["path"]) / "rank0.pt", weights_only=True)

    whole, split = final(tmp_path / "whole"), final(tmp_path / "split")
    assert whole["position"] == split["position"] and whole["counters"]["steps"] == 8
    for name, value in whole["model"].items():
        assert torch.equal(value, split["model"][name]), name
    assert read(tmp_path / "whole" / "run_summary.json")["val"] == read(tmp_path / "split" / "run_summary.json")["val"]


@pytest.mark.parametrize("setting, key", [
    ("tasks=[relation, entity]", "tasks"),
    ("model.hiden=8", "model.hiden"),
    ("model.encoder=deberta", "model.encoder"),
    ("model.name=casrel", "model.name"),
    ("data.format=casrell", "data.format"),
    ("data.val_fraction=1.5", "data.val_fraction"),
    ("adapter=eer", "adapter"),
])
def test_config_mistakes_name_the_key(webnlg, tmp_path, capsys, setting, key):
    assert train(webnlg, tmp_path / "run", setting) == 2
    err = capsys.readouterr().err
    assert f"'{key}'" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_one_process_only(webnlg, tmp_path, capsys):
    sets = [x for item in [f"data.root={webnlg}", *TINY] for x in ("--set", item)]
    assert cli("train", "--config", CONFIG, "--out", tmp_path / "run", "--nproc", "2", *sets) == 2
    assert "'--nproc'" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_missing_split_names_the_file(webnlg, tmp_path, capsys):
    assert train(webnlg, tmp_path / "run", "data.test_split=heldout") == 2
    err = capsys.readouterr().err
    assert "heldout" in err and str(webnlg) in err


def test_reproduce_writes_the_table2_shape(webnlg, tmp_path):
    """A two-cell ERE suite: results.csv carries the F1 figures, tables.md the Δ in F1 points."""
    import yaml

    from recsys_hmtl.reproduce import reproduce

    values = dict(item.split("=", 1) for item in [f"data.root={webnlg}", *TINY, "trainer.max_steps=3"])
    suite = {"config": str(CONFIG), "set": {k: yaml.safe_load(v) for k, v in values.items()}, "seeds": 1,
             "lrs": [0.003], "metric": {"task": "f1", "primary": "triple_f1", "change": "points"},
             "datasets": {"webnlg": {}}, "backbones": ["e1"],
             "variants": {"sum": {"stage.name": "sum"}, "hb_aho": {"stage.name": "hb_aho"}},
             "tables": [{"title": "Table 2 shape", "baseline": "sum", "rows": ["hb_aho"]}]}
    path = tmp_path / "ere_suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    reproduce(str(path), tmp_path / "out")
    rows = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert any(",test,,triple_f1," in r for r in rows) and any(",test,entity,f1," in r for r in rows)
    tables = (tmp_path / "out" / "tables.md").read_text()
    assert "| model | lr | entity | relation | triple F1 | acting |" in tables
    hb = next(line for line in tables.splitlines() if line.startswith("| e1 – hb_aho"))
    assert hb.count(" pt") == 3  # entity, relation, triple F1: changes in points
