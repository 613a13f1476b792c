"""The two-task toy of seed 003 App. A.3: trajectories of every loss stage in the loss plane.

Each stage trains x ∈ R² (the "shared" of gradient stages is x itself) with Adam (lr 1e-3; stage
parameters lr 0.025, the published toy's ``--method-params-lr``, except LDC-MTL whose router uses
the model's step size, seed 003 Sec. 5) from the published code's five start points and from the
seed's five, 50k steps (``--quick``: 2k steps, only sum, mgda, famo, ldc_mtl; the full run adds the
other seeds' stages, scd_vio, hb_aho, getmtl, wc_penalty: about 30 min on 2 cores). Prints where each
run ends and the seed's claims; saves a PNG with the Pareto front (``TOY_PLOT`` overrides the path;
``TOY_METHODS="a b ..."`` runs those stages, ``TOY_METHODS=all`` every stage: over an hour on 2 cores).
"""

from __future__ import annotations

import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from recsys_hmtl.adapters.toy.config import TASKS
from recsys_hmtl.adapters.toy.data import ToyBatch
from recsys_hmtl.adapters.toy.model import ToyModel
from recsys_hmtl.adapters.toy.problem import (
    FRONT_X2,
    PUBLISHED_SIGN,
    PUBLISHED_STARTS,
    SEED_STARTS,
    pareto_front,
    toy_losses,
)
from recsys_hmtl.priority import available_stages, build_stage
from recsys_hmtl.training.adapter import Trainable
from recsys_hmtl.training.bilevel import PairedBatch
from recsys_hmtl.training.meta_step import MetaStep

LONG = True  # about 30 min on 2 cores: `python -m benchmarks toy` runs it, `make bench` does not
LR = 1e-3
STAGE_LR = 0.025
DEFAULT_PLOT = Path(__file__).resolve().parent / "out" / "toy_trajectories.png"
# Per-stage settings for this toy: FAMO's lower bounds are the published toy's set_min_losses
# (−21·0.1, −21). LDC-MTL trains its router with the model's step size. The seed runs LDC-MTL with
# "rescale" (l / l_0), which needs positive losses and the toy's are negative near the front: the
# default run keeps normalize "none", and the extra variant LDC_RESCALED feeds it L − m with FAMO's
# bounds m (a shift: the Pareto set is unchanged, every loss stays > 0).
MIN_LOSSES = (-2.1, -21.0)
LDC_RESCALED = "ldc_mtl[rescale,L-m]"
VARIANTS = {LDC_RESCALED: ("ldc_mtl", {"normalize": "rescale"}, MIN_LOSSES)}  # label: stage, hp, m
HPARAMS = {"famo": {"min_losses": list(MIN_LOSSES)}}
REQUIRED = ("sum", "mgda", "famo", "ldc_mtl", LDC_RESCALED)
SEED_METHODS = ("scd_vio", "hb_aho", "getmtl", "wc_penalty")  # the other seeds' methods, run by default
STAGE_LRS = {"ldc_mtl": LR}
EPOCH = 1000  # steps per "epoch" for stages with epoch-granular updates (DWA, HB-AHO epoch mode)


@dataclass
class Run:
    method: str
    starts: str
    start: tuple[float, float]
    path: list[tuple[float, float]] = field(default_factory=list)  # losses every `stride` steps
    end_x: tuple[float, float] = (math.nan, math.nan)
    end_loss: tuple[float, float] = (math.nan, math.nan)
    error: str = ""


def run_one(method: str, starts: str, start: tuple[float, float], steps: int, stride: int) -> Run:
    """Train x from ``start`` with stage ``method``; a stage that rejects the toy records why.
    Stages that learn their weights from a held-out batch (Auto-Lambda, MOML) take the training
    job's meta step first; the toy's held-out "batch" gives the same losses as its training one."""
    torch.set_num_threads(1)
    run = Run(method, starts, start)
    model = ToyModel(start, PUBLISHED_SIGN)
    x = model.x
    name, hparams, shift = VARIANTS.get(method, (method, HPARAMS.get(method, {}), (0.0, 0.0)))
    try:
        stage = build_stage(name, tasks=TASKS, **hparams)
        meta = MetaStep(Trainable(model), stage) if stage.needs_meta_batch else None
        groups = [{"params": [x], "lr": LR}]
        if list(stage.parameters()):
            stage_lr = STAGE_LRS.get(name, STAGE_LR)
            groups.append({"params": list(stage.parameters()), "lr": stage_lr})
        optimizer = torch.optim.Adam(groups)
        for step in range(steps):
            optimizer.zero_grad()
            if meta is not None:
                out = meta.forward(PairedBatch(ToyBatch(), ToyBatch()))
                losses = torch.stack(list(out.losses.values()))
            else:
                losses = toy_losses(x)
            if step % stride == 0:
                run.path.append(tuple(losses.detach().tolist()))
            if meta is not None:
                meta.backward(out, out.losses, None)
            else:
                seen = losses - torch.tensor(shift)
                stage.backward(dict(zip(TASKS, seen)), shared=[x])
            optimizer.step()
            if (step + 1) % EPOCH == 0:
                stage.end_epoch()
    except (ValueError, FloatingPointError) as err:
        run.error = f"{type(err).__name__}: {err}"
        return run
    with torch.no_grad():
        run.end_x = tuple(x.tolist())
        run.end_loss = tuple(toy_losses(x).tolist())
    run.path.append(run.end_loss)
    return run


def _front_distance(loss: tuple[float, float], front: torch.Tensor) -> float:
    """Distance in the loss plane from ``loss`` to the sampled front (L1 rescaled by 10)."""
    scale = torch.tensor([10.0, 1.0], dtype=front.dtype)
    point = torch.tensor(loss, dtype=front.dtype)
    return float(((front - point) * scale).norm(dim=1).min())


def _plot(runs: list[Run], methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto_front().numpy()
    cols = min(4, len(methods))
    rows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    for ax, method in zip(axes.flat, methods):
        ax.plot(front[:, 0], front[:, 1], "-", lw=6, color="#bbbbbb", label="Pareto front")
        for run in (r for r in runs if r.method == method and r.path):
            pts = list(zip(*run.path))
            style = "-" if run.starts == "published" else "--"
            ax.plot(pts[0], pts[1], style, lw=1)
            ax.scatter([pts[0][0]], [pts[1][0]], color="k", s=15, zorder=5)
            if not run.error:
                ax.scatter([run.end_loss[0]], [run.end_loss[1]], marker="*", s=80, zorder=6)
        ax.set_title(method)
        ax.set_xlabel("L1")
        ax.set_ylabel("L2")
    for ax in list(axes.flat)[len(methods):]:
        ax.axis("off")
    fig.suptitle("toy (seed 003 A.3, published f2 sign): solid = published starts, dashed = seed's")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _report(runs: list[Run], methods: list[str]) -> None:
    front = pareto_front()
    print(f"{'method':<20} {'starts':<9} {'start':>13} -> {'x1':>7} {'x2':>7} "
          f"{'L1':>8} {'L2':>8} {'d(front)':>8}")
    for run in runs:
        head = f"{run.method:<20} {run.starts:<9} {str(run.start):>13} ->"
        if run.error:
            print(f"{head} did not run: {run.error}")
            continue
        (x1, x2), (l1, l2) = run.end_x, run.end_loss
        dist = _front_distance(run.end_loss, front)
        print(f"{head} {x1:7.3f} {x2:7.3f} {l1:8.4f} {l2:8.4f} {dist:8.3f}")
    print("\nper method (on the front = within 0.5 of it in the loss plane, L1 scaled x10):")
    for method in methods:
        done = [r for r in runs if r.method == method and not r.error]
        if not done:
            print(f"  {method:<20} no run completed")
            continue
        on_front = [r for r in done if _front_distance(r.end_loss, front) < 0.5]
        x1s = [r.end_x[0] for r in on_front]
        spread = f"{max(x1s) - min(x1s):.3f}" if x1s else "n/a"
        ends = ", ".join(f"{v:+.2f}" for v in sorted(x1s))
        print(f"  {method:<20} on front {len(on_front)}/{len(done)}; end x1 there: [{ends}]; "
              f"spread {spread}")
    print("\nseed 003 claims (x1 = 0 is the middle of the front, x1 = ±7 its ends):")
    print("  LS and MGDA end at unbalanced points; FAMO more balanced but at different points;")
    print("  LDC-MTL reaches the same balanced point from every start. Compare with the above.")


def main(quick: bool = False) -> None:
    steps = 2000 if quick else 50_000
    stride = max(1, steps // 400)
    buildable = available_stages()
    chosen = os.environ.get("TOY_METHODS", "").split()  # e.g. TOY_METHODS="sum mgda pcgrad", or "all"
    if chosen == ["all"]:
        wanted = list(REQUIRED) + [s for s in buildable if s not in REQUIRED]
    elif chosen:
        wanted = chosen
    else:
        wanted = list(REQUIRED) if quick else list(REQUIRED) + list(SEED_METHODS)
    methods = [m for m in wanted if VARIANTS.get(m, (m,))[0] in buildable]
    for m in wanted:
        if m not in methods:
            print(f"note: stage '{m}' is not available yet; skipped")
    print("toy losses: published code's f2 = log|0.5(-x1+3) + tanh(-x2) + 2| + 6 (Nash-MTL/FAMO "
          "experiments/toy); seed 003 A.3 prints '- tanh(-x2)'. L1 scaled by 0.1. Front plotted "
          f"at x2 = {FRONT_X2}.")
    print(f"{len(methods)} stages x 10 starts, {steps} Adam steps (lr {LR}) each")
    jobs = [(m, label, s, steps, stride) for m in methods
            for label, starts in (("published", PUBLISHED_STARTS), ("seed", SEED_STARTS))
            for s in starts]
    t0 = time.perf_counter()
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        runs = list(pool.map(run_one, *zip(*jobs)))
    print(f"({time.perf_counter() - t0:.1f} s on {workers} processes)\n")
    _report(runs, methods)
    path = Path(os.environ.get("TOY_PLOT", DEFAULT_PLOT))
    _plot(runs, methods, path)
    print(f"\ntrajectory plot: {path}")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
