"""End-to-end training throughput of ``recsys-hmtl train`` (issue 5): MMoE on demo data with the
loss stages ``sum``, ``scd_vio`` and ``getmtl`` (rep-grad), side by side in one run.

2M KuaiRand-1K-format demo rows (``--quick``: 100k), the default demo config (MMoE, 8 tasks),
one epoch, batch 4096, one process. ``samples_per_second`` is read from each run's
``run_summary.json`` (training steps only: data preparation, checkpoints and validation are left
out); the ratio to ``sum`` is the cost of the stage inside the whole job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("sum", "scd_vio", "getmtl")


def main(quick: bool = False) -> None:
    rows = 100_000 if quick else 2_000_000
    env = {**os.environ, "RECSYS_HMTL_PROGRESS": "0"}
    cli = [sys.executable, "-m", "recsys_hmtl.cli"]
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        subprocess.run([*cli, "demo-data", "--out", tmp, "--rows", str(rows)], check=True, env=env,
                       capture_output=True)
        results = {}
        for stage in STAGES:
            run = Path(tmp) / stage
            subprocess.run([*cli, "train", "--config", str(ROOT / "configs" / "kuairand_demo.yaml"),
                            "--out", str(run), "--set", f"data.root={tmp}", "--set", f"stage.name={stage}",
                            "--set", "trainer.batch_size=4096", "--set", "trainer.ckpt_every=0",
                            "--set", "trainer.max_epochs=1"],
                           check=True, env=env, capture_output=True)
            results[stage] = json.loads((run / "run_summary.json").read_text())
    base = results["sum"]["samples_per_second"]
    print(f"{rows:,} demo rows, MMoE (default demo config), 8 tasks, batch 4096, 1 process, 1 epoch")
    print(f"{'stage':<10}{'steps':>8}{'samples/s':>14}{'vs sum':>9}{'val avg AUC':>13}")
    for stage, summary in results.items():
        sps = summary["samples_per_second"]
        print(f"{stage:<10}{summary['steps']:>8}{sps:>14,.0f}{sps / base:>8.2f}x{summary['val_avg_auc']:>13.4f}")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
