#!/usr/bin/env python3
"""Scheduled training: ``python pipelines/train.py --config CFG --out RUN_DIR [--set k=v ...]``.

Always resumable: a retry after a kill or crash continues the same RUN_DIR from its last
checkpoint, and a finished run is not trained again. Exit codes as ``recsys-hmtl`` (0 ok,
2 bad input or configuration: do not retry, 1 anything else).
"""

import sys

from recsys_hmtl.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(["train", *args, *([] if "--resume" in args else ["--resume"])]))
