"""Every gradient stage end to end through ``recsys-hmtl train``, as a ratio to ``sum`` (issue 13,
target 2: ≥ 0.75x on SharedBottom, OMoE, MMoE and PLE at 8 tasks).

Demo data (KuaiRand-1K format, 8 funnel tasks), one process, batch 4096, ``trainer.max_steps``
steps per run (every gradient stage of the registry; no checkpoints, no validation inside the timed steps); the sizes of the speed issue:
embeddings 16, 8 experts [128, 64] (PLE: one level, 8 shared + 1 task expert), SharedBottom's
bottom [128, 64], towers [32]. ``samples_per_second`` is each run's ``run_summary.json`` figure
(training steps only). The towers give the stages task views (models/base.py): each task's
gradient from one backward at the task split, the combined direction through the trunk once.
Run it on a quiet machine: the ratios are side by side in one run, but a busy neighbour makes
OpenMP spin.

By default (``make bench``) on MMoE only, every gradient stage: each run is a whole CLI process
(~15 s on 2 cores, most of it imports and set-up), and the four backbones' 88 runs take 22 minutes,
more than ``make bench`` may. ``python -m benchmarks.bench_train_stages --models all`` runs them all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from recsys_hmtl.priority.registry import STAGES

ROOT = Path(__file__).resolve().parents[1]
GRADIENT_STAGES = tuple(n for n in STAGES.names() if STAGES.get(n).needs_task_grads)
MODELS = {
    "shared_bottom": ["model.bottom_dims=[128,64]"],
    "omoe": ["model.num_experts=8", "model.expert_dims=[128,64]"],
    "mmoe": ["model.num_experts=8", "model.expert_dims=[128,64]"],
    "ple": ["model.num_levels=1", "model.num_shared_experts=8", "model.num_task_experts=1",
            "model.expert_dims=[128,64]"],
}
COMMON = ["model.embedding_dim=16", "model.tower_dims=[32]", "trainer.batch_size=4096",
          "trainer.ckpt_every=0", "trainer.max_epochs=1"]
TARGET = 0.75
DEFAULT_MODELS = ("mmoe",)


def stage_settings(stage: str) -> list[str]:
    """``stage.name``, and ``grad_mode: params`` for stages that combine parameter gradients only
    (moco, db_mtl: their gradient averages need fixed coordinates)."""
    cls = STAGES.get(stage)
    params = cls.needs_task_grads and "rep" not in cls.grad_modes
    return [f"stage.name={stage}", *(["stage.grad_mode=params"] if params else [])]


def train(cli: list[str], env: dict, data: str, out: Path, model: str, stage: str, steps: int) -> dict:
    sets = [f"data.root={data}", f"model.name={model}", *stage_settings(stage),
            f"trainer.max_steps={steps}", *COMMON, *MODELS[model]]
    args = [*cli, "train", "--config", str(ROOT / "configs" / "kuairand_demo.yaml"), "--out", str(out)]
    for item in sets:
        args += ["--set", item]
    subprocess.run(args, check=True, env=env, capture_output=True)
    return json.loads((out / "run_summary.json").read_text())


def main(quick: bool = False, stages: tuple[str, ...] | None = None, models: tuple[str, ...] | None = None) -> None:
    """``stages`` / ``models``: a subset (``--stages a,b --models mmoe``, ``--models all``); default every
    gradient stage on :data:`DEFAULT_MODELS`."""
    rows, steps = (60_000, 5) if quick else (300_000, 20)
    stages = stages or (GRADIENT_STAGES[:2] if quick else GRADIENT_STAGES)
    models = tuple(MODELS) if models == ("all",) else models or DEFAULT_MODELS
    unknown = [s for s in stages if s not in GRADIENT_STAGES] + [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"not a gradient stage or a benchmarked model: {unknown}")
    env = {**os.environ, "RECSYS_HMTL_PROGRESS": "0"}
    cli = [sys.executable, "-m", "recsys_hmtl.cli"]
    print(f"{rows:,} demo rows, 8 tasks, batch 4096, {steps} steps a run, 1 process, CPU "
          f"threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    print(f"{'model':<15}{'stage':<12}{'samples/s':>12}{'vs sum':>9}")
    worst = None
    with tempfile.TemporaryDirectory(prefix="bench_train_stages_") as tmp:
        subprocess.run([*cli, "demo-data", "--out", tmp, "--rows", str(rows)], check=True, env=env,
                       capture_output=True)
        for model in models:
            base = None
            for stage in ("sum", *stages):
                summary = train(cli, env, tmp, Path(tmp) / f"{model}_{stage}", model, stage, steps)
                sps = summary["samples_per_second"]
                base = base or sps
                ratio = sps / base
                if stage != "sum":
                    worst = ratio if worst is None else min(worst, ratio)
                print(f"{model:<15}{stage:<12}{sps:>12,.0f}{ratio:>8.2f}x", flush=True)
    verdict = "meets" if worst is not None and worst >= TARGET else "misses"
    print(f"slowest gradient stage: {worst:.2f}x sum ({verdict} the {TARGET}x target)")


def _listed(flag: str) -> tuple[str, ...] | None:
    return tuple(sys.argv[sys.argv.index(flag) + 1].split(",")) if flag in sys.argv else None


if __name__ == "__main__":
    main(quick="--quick" in sys.argv, stages=_listed("--stages"), models=_listed("--models"))
