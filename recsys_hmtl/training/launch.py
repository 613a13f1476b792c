"""``--nproc N``: the same command under torchrun, one process per rank (SPEC §6).

torchrun (``torch.distributed.run``) sets RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT for each child,
which :func:`~recsys_hmtl.training.distributed.ensure_process_group` reads (gloo on CPU, nccl on
GPU). ``--standalone`` picks a free port on 127.0.0.1, so concurrent runs do not collide. The
launcher *replaces* this process with torchrun (``exec``): a scheduler's SIGTERM reaches torchrun,
which forwards it to every rank (they stop together after the next step and checkpoint it).
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn, Sequence


def launch(nproc: int, cli_args: Sequence[str]) -> NoReturn:
    """Exec ``recsys-hmtl <cli_args>`` on ``nproc`` local ranks; torchrun's exit code is the process's
    (the failing rank's one-paragraph error is on stderr)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "recsys_hmtl.cli", *cli_args]
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // nproc))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, {**os.environ, "OMP_NUM_THREADS": threads})
