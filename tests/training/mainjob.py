"""Helpers of the main-job tests: CLI runners and the small schedule they train with.

Imported by the test modules as ``mainjob`` (a unique name; ``conftest`` is ambiguous across folders)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from recsys_hmtl.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "kuairand_demo.yaml"
# A small model and schedule: a run takes about a second.
SMALL = ["model.embedding_dim=4", "model.num_experts=2", "model.expert_dims=[16]", "model.gate_dims=[]",
         "model.tower_dims=[8]", "trainer.batch_size=256", "trainer.max_steps=12", "trainer.ckpt_every=5",
         "trainer.log_every=4"]
os.environ["RECSYS_HMTL_PROGRESS"] = "0"


def settings(demo_root: Path, *extra: str) -> list[str]:
    out = []
    for item in [f"data.root={demo_root}", *SMALL, *extra]:
        out += ["--set", item]
    return out


def train_args(demo_root: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["train", "--config", str(CONFIG), "--out", str(run_dir), *settings(demo_root, *extra)]


def run_cli(*args: str) -> int:
    """The CLI in this process (fast; exit code as the console script would return it)."""
    return main([str(a) for a in args])


def run_cli_process(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI in a fresh process, as a scheduler runs it."""
    env = {**os.environ, "RECSYS_HMTL_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "recsys_hmtl.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
