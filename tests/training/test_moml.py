"""MOML (issue 17's bilevel stages): the meta step against the official code, and from the CLI.

Golden values: Baijiong-Lin/MOML@049437a, ``MTL/moml_office.py``'s step run with its own ``Model_h``
(weights softmax(a), a a float32 parameter starting at 1/K), ``utils.set_param`` (the virtual step,
differentiated through with ``create_graph``), ``min_norm_solvers.gradient_normalizers(..., 'l2')`` and
``MinNormSolver.find_min_norm_element``, and its Adam on a, in float64 elsewhere, on the model and
batches below: ``nn.Sequential(Linear(3, 4), Tanh, Linear(4, 3))`` seeded 0, six batches of
``randn(8, 3)`` / ``randn(8, 3)`` from a generator seeded 1 (train = even, held-out = odd), MSE per
task, virtual-step lr 0.1, meta Adam lr 1e-2, model SGD lr 0.1; three steps of meta-update then model
update (its order). The training batch stands for both its ``train`` and ``trval`` batches.
``Model_h`` was cast to float64 for the goldens (the code keeps a in float32). The first step's
hypergradients match to 1e-9; the MGDA weights only to 1e-6, as the official min-norm solver stops
iterating at a 1e-5 change (ours solves the simplex QP exactly), and Adam's first steps amplify that
into a (5e-5) where a coordinate's combined gradient is near zero."""

from __future__ import annotations

import pytest
import torch

from mainjob import read_json, run_cli, train_args
from recsys_hmtl.priority import build_stage
from recsys_hmtl.training.bilevel import PairedBatch
from recsys_hmtl.training.meta_step import MetaStep
from test_auto_lambda import Regression, regression_problem

# step -> (MGDA weights s, a after the meta Adam step); the reference run with Model_h in float64
GOLDEN = [
    ([0.2835844933226387, 0.37227473053796445, 0.3441407761393969],
     [0.34333320662822936, 0.3233334799354778, 0.323941762720742]),
    ([0.4999999999999999, 0.0, 0.5000000000000001], [0.34008922432778693, 0.3247844760226898, 0.33138049708567363]),
    ([0.5, 0.0, 0.5], [0.34635786723195594, 0.3185752622933707, 0.32509794563880057]),
]
# the first step's per-task hypergradients in a (rows: the held-out loss of task j), before MGDA
FIRST_G = [[-0.011039282010713098, 0.006445912967750886, 0.004593369042962212],
           [0.0031061767380775734, -0.007917314678172279, 0.004811137940094706],
           [0.003610074228229439, 0.005379034785040684, -0.008989109013270123]]
FIRST_WEIGHTS_AFTER = [0.5512962498846317, 0.22337457097435193, -0.03291956236067567]


def test_the_meta_step_matches_the_official_moml():
    model, batches, stage = regression_problem(3, "moml", meta_lr=1e-2, alpha=0.1)
    rule = MetaStep(Regression(model), stage)
    seen = []
    update = stage.meta_update
    stage.meta_update = lambda h: (seen.append((h.clone(), stage.weights().double())), update(h))
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    for step, (mgda, logits) in enumerate(GOLDEN):
        out = rule.forward(PairedBatch(batches[2 * step], batches[2 * step + 1]))
        if step == 0:
            h, w = seen[0]
            g = w * (h - (h * w).sum(1, keepdim=True))  # through the softmax, as the stage does
            torch.testing.assert_close(g, torch.tensor(FIRST_G, dtype=torch.float64), rtol=1e-9, atol=1e-15)
        d = stage.diagnostics()
        torch.testing.assert_close(torch.tensor([d[f"mgda/{t}"] for t in "abc"], dtype=torch.float64),
                                   torch.tensor(mgda, dtype=torch.float64), rtol=0, atol=1e-6)
        torch.testing.assert_close(stage.logits.double(), torch.tensor(logits, dtype=torch.float64), rtol=0, atol=5e-5)
        sgd.zero_grad()
        rule.backward(out, out.losses, None)
        sgd.step()
    torch.testing.assert_close(model[0].weight.reshape(-1)[:3], torch.tensor(FIRST_WEIGHTS_AFTER, dtype=torch.float64),
                               rtol=0, atol=1e-6)


def test_without_mgda_the_upper_objectives_are_summed():
    stage = build_stage("moml", ["a", "b"], mgda=False)
    stage.meta_update(torch.tensor([[1.0, -1.0], [3.0, 0.0]]))
    # w = (1/2, 1/2): G[j, m] = w_m (H[j, m] − Σ_i w_i H[j, i]) = [[0.5, -0.5], [0.75, -0.75]]; Adam's first
    # step moves every coordinate by meta_lr against the sign of Σ_j G[j].
    assert stage.logits.tolist() == pytest.approx([0.5 - 1e-3, 0.5 + 1e-3], abs=1e-7)  # float32
    with pytest.raises(ValueError, match="mgda"):
        build_stage("moml", ["a", "b"], mgda="yes")


def test_moml_trains_in_bilevel_mode_and_is_refused_without_it(demo_root, tmp_path, capsys):
    run = tmp_path / "moml"
    assert run_cli(*train_args(demo_root, run, "stage.name=moml", "bilevel.holdout=0.2", "stage.meta_lr=0.05",
                               "trainer.max_steps=6")) == 0
    diagnostics = read_json(run / "run_summary.json")["stage_diagnostics"]
    weights = [v for k, v in diagnostics.items() if k.startswith("weight/")]
    assert len(weights) == 8 and sum(weights) == pytest.approx(1.0) and len(set(weights)) > 1
    assert run_cli(*train_args(demo_root, tmp_path / "no", "stage.name=moml")) == 2
    assert "key 'bilevel'" in capsys.readouterr().err
