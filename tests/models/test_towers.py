"""Every tower: registry, shapes, finiteness, priority order, training on a planted funnel; ESMM
chain, AITM calibrator, PLE structure."""

from __future__ import annotations

import math

import pytest
import torch
from torchrec.distributed.train_pipeline.tracing import Tracer
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from synthetic import FEATURES, TASKS, TINY, make_batch, task_losses
from recsys_hmtl.errors import InputError
from recsys_hmtl.models import MultiTaskModel, available_models, build_model
from recsys_hmtl.models.aitm import calibrator_loss
from recsys_hmtl.models.esmm import chained_logits

ALL = sorted(TINY)


def build(name: str, **overrides) -> MultiTaskModel:
    torch.manual_seed(0)
    return build_model(name, FEATURES, TASKS, **{**TINY[name], **overrides})


def test_registry_has_the_seven_seed_backbones():
    assert available_models() == ALL == sorted(
        ["shared_bottom", "omoe", "mmoe", "ple", "esmm", "aitm", "stem"]
    )


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(InputError, match="unknown model 'mmeo'.*did you mean 'mmoe'"):
        build_model("mmeo", FEATURES, TASKS)


def test_unknown_hparam_names_the_valid_ones():
    with pytest.raises(InputError) as err:
        build_model("mmoe", FEATURES, TASKS, num_levels=2)
    text = str(err.value)
    assert "model.num_levels" in text and "'mmoe' has no hyper-parameter" in text
    for valid in ("num_experts", "expert_dims", "gate_dims", "tower_dims", "embedding_dim"):
        assert valid in text
    with pytest.raises(InputError, match="did you mean 'num_experts'"):
        build_model("omoe", FEATURES, TASKS, num_expert=4)


@pytest.mark.parametrize(
    "hparams, key",
    [
        ({"num_experts": 0}, "model.num_experts"),
        ({"expert_dims": []}, "model.expert_dims"),
        ({"expert_dims": [64, "wide"]}, "model.expert_dims"),
        ({"embedding_dim": True}, "model.embedding_dim"),
        ({"dropout": 1.0}, "model.dropout"),
    ],
)
def test_bad_hparam_values_are_clear_errors(hparams, key):
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        build_model("mmoe", FEATURES, TASKS, **hparams)


def test_duplicate_tasks_are_rejected():
    with pytest.raises(InputError, match="duplicate task"):
        build_model("mmoe", FEATURES, ["click", "click"], **TINY["mmoe"])


def test_defaults_are_the_stem_code_sizes():
    model = build_model("mmoe", FEATURES, TASKS)
    assert model.params.embedding_dim == 16 and model.params.num_experts == 8
    assert model.experts.num_groups == 8 and model.experts.out_dim == 512
    assert [w.shape[-1] for w in model.experts.weights] == [512, 512, 512]
    assert [w.shape[-1] for w in model.gates.net.weights] == [128, 64, 8]
    assert [w.shape[-1] for w in model.towers.weights] == [128, 64, 1]
    ple = build_model("ple", FEATURES, TASKS)
    assert (ple.params.num_shared_experts, ple.params.num_task_experts) == (8, 1)


@pytest.mark.parametrize("name", ALL)
def test_forward_shapes_priority_order_and_finite(name, batch):
    model = build(name)
    out = model(batch)
    assert list(out) == list(TASKS)
    assert out.stacked.shape == (len(TASKS), batch.batch_size)
    for t, task in enumerate(TASKS):
        assert out[task].shape == (batch.batch_size,)
        assert torch.equal(out[task], out.stacked[t])
    assert torch.isfinite(out.stacked).all()
    assert out.shared.shape[0] == batch.batch_size


@pytest.mark.parametrize("name", ALL)
def test_every_task_depends_on_the_shared_representation(name, batch):
    """The rep-grad contract: d loss_t / d outputs.shared is non-zero for every task."""
    out = build(name)(batch)
    losses = task_losses(out, batch.labels)
    for t, task in enumerate(TASKS):
        (grad,) = torch.autograd.grad(losses[t], out.shared, retain_graph=True)
        assert grad.abs().sum() > 0, task


@pytest.mark.parametrize("name", ALL)
def test_shared_parameters_get_gradient_from_every_task(name, batch):
    model = build(name)
    shared = model.shared_parameters()
    for t in range(len(TASKS)):
        model.zero_grad()
        task_losses(model(batch), batch.labels)[t].backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in shared), TASKS[t]


@pytest.mark.parametrize("name", ALL)
def test_loss_decreases_on_a_planted_funnel(name):
    train, held_out = make_batch(512, seed=0), make_batch(512, seed=1)
    model = build(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)

    def held_out_loss() -> float:
        with torch.no_grad():
            return float(task_losses(model(held_out), held_out.labels).sum())

    before = held_out_loss()
    for _ in range(40):
        out = model(train)
        loss = task_losses(out, train.labels).sum()
        loss = loss + sum(model.auxiliary_losses(out, train.labels).values(), torch.zeros(()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = held_out_loss()
    assert math.isfinite(after) and after < 0.75 * before, (before, after)


def test_dropout_is_active_in_training_only(batch):
    model = build("mmoe", dropout=0.5)
    torch.manual_seed(1)
    a, b = model(batch).stacked, model(batch).stacked
    assert not torch.equal(a, b)
    model.eval()
    assert torch.equal(model(batch).stacked, model(batch).stacked)


def test_meta_embeddings_for_dmp():
    model = build_model("stem", FEATURES, TASKS, embedding_device="meta", **TINY["stem"])
    tables = [m.weight for m in model.modules() if isinstance(m, torch.nn.EmbeddingBag)]
    assert len(tables) == (len(TASKS) + 1) * len(FEATURES.sparse)
    assert all(t.is_meta for t in tables)
    assert not any(p.is_meta for p in model.towers.parameters())


# --------------------------------------------------------------------------------------- ESMM
def test_esmm_outputs_are_monotone_along_the_chain(batch):
    model = build("esmm")
    p = torch.sigmoid(model(batch).stacked)
    assert model.chained_probabilities
    assert (p[1:] <= p[:-1]).all()


def test_esmm_chained_logits_are_logits_of_products():
    z = torch.tensor(
        [[0.0, 3.0, -30.0, 30.0, 12.0], [0.0, -2.0, 5.0, 30.0, -40.0]], dtype=torch.float64
    )
    # p_1 = σ(z_1); p_2 = σ(z_1)·σ(z_2), e.g. column 0: 0.5·0.5 = 0.25 → logit(0.25) = −ln 3
    expected_p = torch.stack([torch.sigmoid(z[0]), torch.sigmoid(z[0]) * torch.sigmoid(z[1])])
    got = chained_logits(z)
    torch.testing.assert_close(torch.sigmoid(got), expected_p, rtol=1e-12, atol=0)
    assert got[1, 0].item() == pytest.approx(-math.log(3.0), abs=1e-12)
    z32 = z.float().requires_grad_()
    chained_logits(z32).sum().backward()
    assert torch.isfinite(chained_logits(z32)).all() and torch.isfinite(z32.grad).all()


# --------------------------------------------------------------------------------------- AITM
def test_aitm_calibrator_zero_when_monotone_positive_otherwise():
    model = build("aitm", calibrator_weight=0.6)
    labels = torch.zeros(4, 3)
    # logits 0 → p = 0.5; ln 3 → p = 0.75; −ln 3 → p = 0.25
    monotone = {
        "click": torch.full((4,), math.log(3)), "like": torch.zeros(4), "follow": torch.zeros(4)
    }
    assert model.auxiliary_losses(monotone, labels)["calibrator"].item() == 0.0
    # like > click on 2 of 4 rows by 0.25: 0.6 · mean([.25, .25, 0, 0]) = 0.6 · 0.125 = 0.075
    like = torch.tensor([math.log(3), math.log(3), -math.log(3), 0.0])
    violated = {"click": torch.zeros(4), "like": like, "follow": torch.full((4,), -math.log(3))}
    value = model.auxiliary_losses(violated, labels)["calibrator"]
    assert value.item() == pytest.approx(0.075, abs=1e-6)
    assert calibrator_loss(torch.zeros(1, 4), 0.6).item() == 0.0  # one task: nothing to calibrate


def test_only_aitm_has_auxiliary_losses(batch):
    for name in ALL:
        model = build(name)
        aux = model.auxiliary_losses(model(batch), batch.labels)
        assert list(aux) == (["calibrator"] if name == "aitm" else [])


# ---------------------------------------------------------------------------------------- PLE
def test_ple_experts_and_gates_per_level_as_configured():
    model = build("ple", num_levels=3, num_shared_experts=3, num_task_experts=2)
    assert len(model.levels) == 3
    for i, level in enumerate(model.levels):
        assert level.task_experts.num_groups == len(TASKS) * 2
        assert level.shared_experts.num_groups == 3
        assert level.task_gates.num_gates == len(TASKS)
        assert level.task_gates.num_experts == 2 + 3  # own + shared
        if i < 2:
            assert level.shared_gate.num_experts == len(TASKS) * 2 + 3  # all experts
        else:
            assert level.shared_gate is None  # skipped at the last level


# ------------------------------------------------------------------------------ pipelining
def _leaf_names(model: torch.nn.Module, prefix: str = "") -> list[str]:
    """TorchRec's ``_get_leaf_module_names`` with the EBCs in the role of the sharded modules:
    under a module that holds an EBC, each child holding none is a leaf (by its exact name, so the
    children of a leaf ``ModuleList`` are traced through), and the EBCs themselves are leaves."""
    names = []
    for name, child in model.named_children():
        if isinstance(child, EmbeddingBagCollection):
            names.append(prefix + name)
        elif any(isinstance(m, EmbeddingBagCollection) for m in child.modules()):
            names += _leaf_names(child, f"{prefix}{name}.")
        else:
            names.append(prefix + name)
    return names


@pytest.mark.parametrize("name", ALL)
def test_forward_is_fx_traceable_around_the_embedding_collections(name):
    """TrainPipelineSparseDist finds the sharded EBCs' inputs by FX-tracing the model's forward."""
    model = build(name)
    graph = Tracer(leaf_modules=_leaf_names(model)).trace(model)
    ebc_calls = [n for n in graph.nodes if n.op == "call_module" and n.target.endswith("ebc")]
    expected = len(TASKS) + 1 if name == "stem" else 1
    assert len(ebc_calls) == expected
    for node in ebc_calls:  # the input is `batch.sparse`, so the pipeline can prefetch it
        (arg,) = node.args
        assert arg.op == "call_function" and arg.args[1] == "sparse"
