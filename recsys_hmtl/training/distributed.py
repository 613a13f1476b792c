"""Processes of a run: this rank, the world size, the process group (gloo on CPU, nccl on CUDA)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size (torchrun's environment; 0 of 1 without it)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def ensure_process_group(device: torch.device) -> dist.ProcessGroup:
    """The default process group, initialised if needed: from torchrun's environment variables
    when they are set (``env://``), otherwise a single-rank group on an in-process store (no
    port). The backend is gloo on CPU, nccl on CUDA."""
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if "MASTER_ADDR" in os.environ and "WORLD_SIZE" in os.environ:
            dist.init_process_group(backend, init_method="env://")
        else:
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    group = dist.GroupMember.WORLD
    assert group is not None
    return group
