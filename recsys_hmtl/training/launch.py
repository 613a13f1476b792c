"""``--nproc N``: re-run the same command under torchrun, one process per rank (SPEC §6).

torchrun (``torch.distributed.run``) sets RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT for each child,
which :func:`~recsys_hmtl.training.sharding.ensure_process_group` reads (gloo on CPU, nccl on
GPU). ``--standalone`` picks a free port on 127.0.0.1, so concurrent runs do not collide.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Sequence


def launch(nproc: int, cli_args: Sequence[str]) -> int:
    """Run ``recsys-hmtl <cli_args>`` on ``nproc`` local ranks; the exit code of torchrun (the
    first failing rank's error is on stderr)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "recsys_hmtl.cli", *cli_args]
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // nproc))
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    return subprocess.call(command, env=env)
