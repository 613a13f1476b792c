"""Atomic, per-rank checkpoints of a sharded run (SPEC §6, §11).

Layout under ``RUN_DIR/checkpoints/``::

    step_000000200/rank0.pt  rank1.pt ...   one file per rank: that rank's shards only
    latest.json                              {"step": 200, "dir": "step_000000200", "world_size": 2}

Every rank writes ``rank<r>.pt`` to a temporary name and renames it; after a barrier, rank 0
replaces ``latest.json`` (also temp + rename). A kill at any moment leaves the previous
``latest.json`` pointing at a complete set of files. Older step folders beyond ``keep`` are removed.

``ShardedTensor`` values (TorchRec's table shards, the fused optimizer's per-row state) are stored
as plain tensors with their offsets (:func:`plain_state`), so the files load with
``torch.load(weights_only=True)`` and can be re-assembled into full tables for single-process
evaluation (:func:`assemble_full_state`) whatever the world size of the run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed._shard.sharded_tensor import ShardedTensor

from ..errors import InputError

LATEST = "latest.json"
_SHARDS = "__shards__"


def plain_state(value: Any) -> Any:
    """``value`` with every ``ShardedTensor`` replaced by ``{__shards__: [...], size: [...]}``
    (local shards: offsets, sizes and a detached copy of the tensor); tensors are cloned."""
    if isinstance(value, ShardedTensor):
        shards = [
            {"offsets": list(s.metadata.shard_offsets), "tensor": s.tensor.detach().clone()}
            for s in value.local_shards()
        ]
        return {_SHARDS: shards, "size": list(value.size())}
    if torch.is_tensor(value):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: plain_state(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_state(v) for v in value)
    return value


def restore_into(target: Any, saved: Any, where: str = "") -> Any:
    """Copy ``saved`` (from :func:`plain_state`) into ``target`` (a live state, e.g.
    ``dmp.state_dict()``): tensors and local shards in place; returns the merged plain values."""
    if isinstance(target, ShardedTensor):
        if not (isinstance(saved, dict) and _SHARDS in saved):
            raise ValueError(f"checkpoint entry '{where}' is not sharded here")
        by_offset = {tuple(s["offsets"]): s["tensor"] for s in saved[_SHARDS]}
        for shard in target.local_shards():
            key = tuple(shard.metadata.shard_offsets)
            if key not in by_offset:
                raise ValueError(f"checkpoint entry '{where}' has no shard at offsets {list(key)}: "
                                 "was the run resumed with another plan or world size?")
            shard.tensor.copy_(by_offset[key])
        return target
    if torch.is_tensor(target):
        if not torch.is_tensor(saved) or saved.shape != target.shape:
            raise ValueError(f"checkpoint entry '{where}' has another shape")
        target.copy_(saved)
        return target
    if isinstance(target, dict):
        missing = sorted(set(map(str, target)) - set(map(str, saved)))
        if missing:
            raise ValueError(f"checkpoint lacks {missing[:5]} under '{where or '/'}'")
        return {k: restore_into(v, saved[k], f"{where}/{k}") for k, v in target.items()}
    return saved


def assemble_full_state(step_dir: Path, world_size: int, key: str = "model") -> dict[str, torch.Tensor]:
    """The full (unsharded) ``payload[key]`` state of a checkpoint, stitched from every rank's file."""
    full: dict[str, torch.Tensor] = {}
    for rank in range(world_size):
        for name, value in load_rank_file(step_dir, rank)[key].items():
            if isinstance(value, dict) and _SHARDS in value:
                for shard in value[_SHARDS]:  # a rank may hold none of a table's shards
                    if name not in full:
                        full[name] = torch.zeros(value["size"], dtype=shard["tensor"].dtype)
                    index = tuple(slice(o, o + n) for o, n in zip(shard["offsets"], shard["tensor"].shape))
                    full[name][index] = shard["tensor"]
            elif name not in full:  # replicated (dense, data-parallel): every rank holds the same
                full[name] = value
    return full


def load_rank_file(step_dir: Path, rank: int) -> dict:
    path = step_dir / f"rank{rank}.pt"
    if not path.is_file():
        raise InputError("checkpoint file missing (incomplete or foreign checkpoint)", file=str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


class CheckpointStore:
    """Writes and finds the checkpoints of one run directory (``rank`` of ``world_size``)."""

    def __init__(self, run_dir: str | Path, rank: int = 0, world_size: int = 1, keep: int = 2) -> None:
        self.root = Path(run_dir) / "checkpoints"
        self.rank, self.world_size, self.keep = rank, world_size, keep

    def latest(self) -> dict | None:
        """``{"step", "dir", "world_size", ...}`` of the last complete checkpoint, or None."""
        path = self.root / LATEST
        if not path.is_file():
            return None
        try:
            info = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"unreadable checkpoint pointer ({exc})", file=str(path)) from None
        info["path"] = self.root / info["dir"]
        return info

    def save(self, step: int, payload: dict, meta: dict | None = None) -> Path:
        """Write this rank's ``payload`` (see :func:`plain_state`) for ``step``; every rank calls it."""
        step_dir = self.root / f"step_{step:09d}"
        step_dir.mkdir(parents=True, exist_ok=True)
        final = step_dir / f"rank{self.rank}.pt"
        tmp = final.with_suffix(".pt.tmp")
        try:
            torch.save(payload, tmp)
            _fsync(tmp)
            os.replace(tmp, final)
        except BaseException:  # a full disk or an interrupt leaves no half-written file behind
            tmp.unlink(missing_ok=True)
            raise
        _barrier()
        if self.rank == 0:
            info = {"step": step, "dir": step_dir.name, "world_size": self.world_size, **(meta or {})}
            pointer = self.root / LATEST
            tmp_pointer = pointer.with_suffix(".json.tmp")
            tmp_pointer.write_text(json.dumps(info, indent=1))
            _fsync(tmp_pointer)
            os.replace(tmp_pointer, pointer)
            self._prune(step_dir.name)
        _barrier()
        return step_dir

    def load(self, info: dict) -> dict:
        """This rank's payload of the checkpoint ``info`` (from :meth:`latest`)."""
        if int(info["world_size"]) != self.world_size:
            raise InputError(
                f"the checkpoint was written by {info['world_size']} process(es), this run has "
                f"{self.world_size}", file=str(info["path"]), hint="resume with the same --nproc",
            )
        return load_rank_file(Path(info["path"]), self.rank)

    def _prune(self, current: str) -> None:
        steps = sorted(p for p in self.root.glob("step_*") if p.is_dir())
        for old in steps[: max(0, len(steps) - self.keep)]:
            if old.name != current:
                shutil.rmtree(old, ignore_errors=True)


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
