"""Peak RSS of the product path as the rows grow, vocabularies fixed (issue 13, target 3).

Two demo data sets of 2M and 16M rows (``--quick``: 250k and 2M) with the same 1,000 users and
100,000 videos (``demo-data --users --videos``), the default demo config (MMoE, 8 tasks, side tables),
batch 4096. For each size, each a separate process whose peak RSS is read from ``wait4`` (by a small
launcher process: Linux starts a child's ``ru_maxrss`` at its parent's RSS when it forks, and this
process holds gigabytes after the other benchmarks of ``python -m benchmarks``):
- ``prepare memory`` / ``prepare blocks``: ``recsys-hmtl validate`` on an empty cache (load, split,
  encode, write the cache) with ``data.reader`` memory (all rows at once) and blocks (chunk by chunk);
- ``train memory`` / ``train blocks``: a 50-step ``recsys-hmtl train`` on the cache (a hit), every
  split read whole, or a window of row groups at a time;
- ``evaluate``: ``recsys-hmtl evaluate`` of the blocks run on the test split.
Target: the large size's peak ≤ 1.3x the small size's, for preparation, training and evaluate
(``blocks``; ``memory`` is shown for comparison).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "kuairand_demo.yaml"
TARGET = 1.3
USERS, VIDEOS = 1_000, 100_000


# Runs argv[1:] with its stdout discarded, prints its ru_maxrss (KiB), exits with its exit code.
LAUNCHER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL); "
            "_, status, usage = os.wait4(p.pid, 0); print(usage.ru_maxrss); "
            "sys.exit(os.waitstatus_to_exitcode(status))")


def peak_rss_mib(*args: str) -> float:
    """Run the CLI; its peak RSS in MiB (``ru_maxrss`` of the child, from ``wait4`` in the launcher)."""
    env = {**os.environ, "RECSYS_HMTL_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, "-m", "recsys_hmtl.cli", *args],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"recsys-hmtl {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return int(done.stdout.split()[-1]) / 1024


def measure(tmp: Path, rows: int) -> dict[str, float]:
    data = tmp / f"rows{rows}"
    subprocess.run([sys.executable, "-m", "recsys_hmtl.cli", "demo-data", "--out", str(data), "--rows", str(rows),
                    "--users", str(USERS), "--videos", str(VIDEOS)], check=True, capture_output=True)
    common = ["--config", str(CONFIG), "--set", f"data.root={data}"]
    train = ["--set", "trainer.max_steps=50", "--set", "trainer.batch_size=4096", "--set", "trainer.ckpt_every=0"]
    out = {}
    for reader in ("memory", "blocks"):  # each from an empty cache; the blocks one stays for training
        shutil.rmtree(data / ".recsys_hmtl_cache", ignore_errors=True)
        out[f"prepare {reader}"] = peak_rss_mib("validate", *common, "--set", f"data.reader={reader}")
    for reader in ("memory", "blocks"):
        run = tmp / f"run{rows}_{reader}"
        out[f"train {reader}"] = peak_rss_mib("train", *common, *train, "--out", str(run),
                                              "--set", f"data.reader={reader}")
    out["evaluate"] = peak_rss_mib("evaluate", "--run", str(tmp / f"run{rows}_blocks"), "--split", "test")
    return out


def main(quick: bool = False) -> None:
    small, large = (250_000, 2_000_000) if quick else (2_000_000, 16_000_000)
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        results = {rows: measure(Path(tmp), rows) for rows in (small, large)}
    print(f"demo data, {USERS:,} users, {VIDEOS:,} videos at both sizes; default demo config, batch 4096, "
          "50 training steps; peak RSS in MiB")
    print(f"{'path':<15}{small:>12,}{large:>12,}{'ratio':>8}")
    for path in results[small]:
        a, b = results[small][path], results[large][path]
        verdict = ""
        if path.endswith("blocks") or path == "evaluate":
            verdict = f"  (target <= {TARGET}x {'ok' if b / a <= TARGET else 'MISSED'})"
        print(f"{path:<15}{a:>12,.0f}{b:>12,.0f}{b / a:>7.2f}x{verdict}")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
