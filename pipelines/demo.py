#!/usr/bin/env python3
"""``make demo``: KuaiRand-1K-format demo data, then the default config (MMoE) trained with ``sum``,
with ``scd_vio`` as published (α = 1) and with its acting variant (``alpha: auto``), each evaluated on
the test split, and the comparison table with each run's ``stage_acting``.

    python pipelines/demo.py --out DIR [--rows N] [--set k=v ...]
"""

import argparse
import shutil
import sys
from pathlib import Path

from recsys_hmtl.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "kuairand_demo.yaml"
RUNS = {  # run folder name -> the settings that make it
    "sum": ["stage.name=sum"],
    "scd_vio": ["stage.name=scd_vio"],
    "scd_vio_auto": ["stage.name=scd_vio", "stage.alpha=auto"],
}


def run(args: list[str]) -> None:
    code = main(args)
    if code != 0:
        sys.exit(code)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--rows", default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    a = p.parse_args()
    out = Path(a.out)
    run(["demo-data", "--out", str(out), *(["--rows", a.rows] if a.rows else [])])
    runs = out / "runs"
    shutil.rmtree(runs, ignore_errors=True)  # fresh data: fresh runs
    settings = [item for kv in [f"data.root={out}", *a.overrides] for item in ("--set", kv)]
    for name, stage in RUNS.items():
        run(["train", "--config", str(CONFIG), "--out", str(runs / name), *settings,
             *(item for kv in stage for item in ("--set", kv))])
        run(["evaluate", "--run", str(runs / name), "--split", "test"])
    run(["compare", *(str(runs / name) for name in RUNS)])
