"""The vision models: the TaskOutputs contract, seed 003's CelebA parameter count, and every loss
stage of recsys_hmtl.priority training one step (in process, on a small batch)."""

from __future__ import annotations

import pytest
import torch

from recsys_hmtl.adapters.vision.celeba import ATTRIBUTES
from recsys_hmtl.adapters.vision.data import ImageBatch
from recsys_hmtl.adapters.vision.model import HPARAMS, build_model
from recsys_hmtl.priority import available_stages, build_stage
from stage_modes import shared_for


def lenet(tasks=("left", "right"), dropout=0.0):
    torch.manual_seed(0)
    hparams = {**HPARAMS["lenet"], "dropout": dropout}
    return build_model("multimnist", tasks, {"left": 0, "right": 1}, 10, 28, hparams)


def digits(n=8, seed=0) -> ImageBatch:
    g = torch.Generator().manual_seed(seed)
    return ImageBatch(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n, 2), generator=g))


def test_lenet_keeps_the_task_outputs_contract():
    model, batch = lenet(), digits()
    out = model(batch)
    assert list(out.losses) == ["left", "right"] and out.batch_size == 8 and out.extra is None
    assert out.shared.shape == (8, 50) and out.shared.grad_fn is not None
    for task, loss in out.losses.items():
        assert loss.dim() == 0 and torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, out.shared, retain_graph=True)
        assert grad.abs().sum() > 0, task
    _, logits = model.logits(batch.images)
    expected = torch.nn.functional.cross_entropy(logits["right"], batch.labels[:, 1])
    assert torch.allclose(out.losses["right"], expected)
    # priority order follows the plan; single-task mode is the trunk and one head
    assert list(lenet(("right", "left"))(batch).losses) == ["right", "left"]
    single = lenet(("right",))
    assert list(single(batch).losses) == ["right"] and list(single.heads) == ["right"]


def test_celeba_cnn_is_seed003s_network():
    columns = {a: i for i, a in enumerate(ATTRIBUTES)}
    with torch.device("meta"):
        one = build_model("celeba", ATTRIBUTES, columns, 2, 64, {"width": 64, "logits": 1})
        two = build_model("celeba", ATTRIBUTES, columns, 2, 64, {"width": 64, "logits": 2})
    trunk = sum(p.numel() for p in one.trunk.parameters())
    assert trunk == 5_176_640
    assert sum(p.numel() for p in one.parameters()) == trunk + 40 * 513
    # softmax heads + LDC-MTL's 40-weight router: seed 003 App. A.1's "5,217,720 parameters"
    assert sum(p.numel() for p in two.parameters()) + 40 == 5_217_720
    convs = [m for m in one.trunk.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(convs) == 9  # the 9-layer CNN


def test_celeba_binary_heads():
    torch.manual_seed(0)
    tasks = ("Smiling", "Male")
    model = build_model("celeba", tasks, {"Smiling": 1, "Male": 0}, 2, 16, {"width": 4, "logits": 1})
    batch = ImageBatch(torch.rand(6, 3, 16, 16), torch.randint(0, 2, (6, 2)))
    out = model(batch)
    assert out.shared.shape == (6, 32)
    _, logits = model.logits(batch.images)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits["Smiling"][:, 0], batch.labels[:, 1].float())
    assert torch.allclose(out.losses["Smiling"], expected)
    model.eval()
    pred = model.predict(batch.images)
    assert torch.equal(pred["Male"], (torch.sigmoid(model.logits(batch.images)[1]["Male"][:, 0]) > 0.5).long())


@pytest.mark.parametrize("name", available_stages())
def test_every_loss_stage_trains_one_step(name):
    model, batch = lenet(dropout=0.5), digits(16)
    stage = build_stage(name, tasks=["left", "right"])
    optimizer = torch.optim.Adam([*model.parameters(), *stage.parameters()], lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(2):
        optimizer.zero_grad()
        out = model(batch)
        stage.backward(out.losses, shared=shared_for(name, out, model), extra=out.extra)
        optimizer.step()
        assert all(torch.isfinite(v) for v in out.losses.values())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name", ["ldc_mtl", "mgda", "nash_mtl", "famo"])
def test_many_task_stages_on_the_celeba_network(name):
    """A few stages with 40 tasks on the CelebA CNN (narrow, small images)."""
    torch.manual_seed(0)
    columns = {a: i for i, a in enumerate(ATTRIBUTES)}
    model = build_model("celeba", ATTRIBUTES, columns, 2, 16, {"width": 4, "logits": 1})
    stage = build_stage(name, tasks=list(ATTRIBUTES))
    optimizer = torch.optim.Adam([*model.parameters(), *stage.parameters()], lr=1e-3)
    batch = ImageBatch(torch.rand(8, 3, 16, 16), torch.randint(0, 2, (8, 40)))
    optimizer.zero_grad()
    out = model(batch)
    stage.backward(out.losses, shared=out.shared, extra=out.extra)
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
