#!/usr/bin/env python3
"""Offline evaluation job: ``python pipelines/evaluate.py --run RUN_DIR [--split test|val] [--out FILE]``.

Writes ``eval_report.json`` + ``.md`` and pushes the AUCs to ``metrics.pushgateway`` when the run's
config sets it. Exit codes as ``recsys-hmtl``.
"""

import sys

from recsys_hmtl.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
