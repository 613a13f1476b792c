"""Auto-Lambda (issue 17's bilevel stages): the meta step against the official code, and from the CLI.

Golden values: lorenmt/auto-lambda@bdba636, ``auto_lambda.py`` ``AutoLambda.unrolled_backward`` run
unmodified (its ``utils`` import reduced to torch) in float64 on the model and batches below: an
``nn.Sequential(Linear(3, 4), Tanh, Linear(4, 2))`` seeded 0, six batches of ``randn(8, 3)`` /
``randn(8, 2)`` from a generator seeded 1 (train = even, meta = odd), MSE per task, primary task
``a``, λ₀ = 0.1, meta Adam lr 1e-3, model SGD lr 0.1 (no momentum), α = 0.1; three steps of
meta-update then model update (its dense-prediction trainer's order)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from mainjob import read_json, run_cli, train_args
from recsys_hmtl.priority import build_stage
from recsys_hmtl.training.adapter import Trainable
from recsys_hmtl.training.bilevel import PairedBatch
from recsys_hmtl.training.meta_step import MetaStep
from recsys_hmtl.training.outputs import TaskOutputs

# step -> (hypergradient = meta_weights.grad, λ after the meta Adam step)
GOLDEN = [
    ([-0.044008384368306556, -0.0057770372210866686], [0.10099999977277063, 0.1009999982690119]),
    ([-0.11608702320577996, 0.006789845199342805], [0.10193327733993598, 0.1008672093757221]),
    ([-0.11364836570481301, 0.015083870632881902], [0.10289674825221037, 0.1002649658732726]),
]
FIRST_WEIGHTS_AFTER = [0.5411241944481846, 0.2428634303146878, -0.04810850809004977]


@dataclass
class Rows:
    x: torch.Tensor
    y: torch.Tensor

    @property
    def batch_size(self) -> int:
        return len(self.x)


class Regression(Trainable):
    """MSE per output column; the tasks are named a, b, c, ... in column order."""

    def forward(self, batch) -> TaskOutputs:
        pred = self.module(batch.x)
        tasks = "abcd"[:pred.shape[1]]
        return TaskOutputs({t: ((pred[:, i] - batch.y[:, i]) ** 2).mean() for i, t in enumerate(tasks)},
                           None, None, batch.batch_size)


def regression_problem(tasks: int, stage: str, **hparams):
    """The golden problems' float64 model ``Linear(3, 4), Tanh, Linear(4, tasks)`` seeded 0, six
    batches of ``randn(8, 3)`` / ``randn(8, tasks)`` from a generator seeded 1, and the stage built
    in float64 (its buffers too)."""
    with torch.random.fork_rng():
        torch.set_default_dtype(torch.float64)
        try:
            torch.manual_seed(0)
            model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, tasks))
            g = torch.Generator().manual_seed(1)
            batches = [Rows(torch.randn(8, 3, generator=g), torch.randn(8, tasks, generator=g)) for _ in range(6)]
            return model, batches, build_stage(stage, list("abcd"[:tasks]), **hparams)
        finally:
            torch.set_default_dtype(torch.float32)


def test_the_meta_step_matches_the_official_auto_lambda():
    model, batches, stage = regression_problem(2, "auto_lambda", meta_lr=1e-3, alpha=0.1, primary=["a"])
    rule = MetaStep(Regression(model), stage)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    for step, (hyper, weights) in enumerate(GOLDEN):
        out = rule.forward(PairedBatch(batches[2 * step], batches[2 * step + 1]))
        d = stage.diagnostics()
        torch.testing.assert_close(torch.tensor([d["hypergradient/a"], d["hypergradient/b"]], dtype=torch.float64),
                                   torch.tensor(hyper, dtype=torch.float64), rtol=1e-9, atol=1e-14)
        torch.testing.assert_close(stage.weights, torch.tensor(weights, dtype=torch.float64), rtol=1e-10, atol=1e-14)
        sgd.zero_grad()
        rule.backward(out, out.losses, None)
        sgd.step()
    torch.testing.assert_close(model[0].weight.reshape(-1)[:3], torch.tensor(FIRST_WEIGHTS_AFTER, dtype=torch.float64),
                               rtol=1e-9, atol=1e-12)


def test_auto_lambda_trains_in_bilevel_mode_and_is_refused_without_it(demo_root, tmp_path, capsys):
    run = tmp_path / "al"
    assert run_cli(*train_args(demo_root, run, "stage.name=auto_lambda", "bilevel.holdout=0.2",
                               "stage.meta_lr=0.01")) == 0
    diagnostics = read_json(run / "run_summary.json")["stage_diagnostics"]
    weights = [v for k, v in diagnostics.items() if k.startswith("weight/")]
    assert len(weights) == 8 and len(set(weights)) > 1 and all(w != pytest.approx(0.1) for w in weights)
    assert run_cli(*train_args(demo_root, tmp_path / "no", "stage.name=auto_lambda")) == 2
    assert "key 'bilevel'" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_auto_lambda_runs_on_the_vision_adapter_and_wc_penalty_constraints_do_not(tmp_path, capsys):
    from mainjob import ROOT

    mnist = ROOT.parent / "shared" / "data" / "vision" / "mnist"
    if not mnist.is_dir():
        pytest.skip(f"genuine MNIST files not found at {mnist}")
    config = ROOT / "configs" / "vision_multimnist.yaml"
    base = ["--config", config, *[x for item in [f"data.root={mnist}", "data.split_sizes=[256, 64, 64]",
                                                  "trainer.batch_size=64", "trainer.max_steps=4",
                                                  "bilevel.holdout=0.25"]
                                  for x in ("--set", item)]]
    assert run_cli("train", "--out", tmp_path / "al", *base, "--set", "stage.name=auto_lambda",
                   "--set", "stage.meta_lr=0.01") == 0
    weights = [v for k, v in read_json(tmp_path / "al" / "run_summary.json")["stage_diagnostics"].items()
               if k.startswith("weight/")]
    assert len(weights) == 2 and all(w != pytest.approx(0.1) for w in weights)
    assert run_cli("validate", *base, "--set", "stage.name=wc_penalty") == 2
    assert "key 'stage.name'" in capsys.readouterr().err
