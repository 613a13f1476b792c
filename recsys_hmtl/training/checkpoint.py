"""Atomic, per-rank checkpoints of a sharded run, checked on every load (SPEC §6, §11).

Layout under ``RUN_DIR/checkpoints/``::

    step_000000200/rank0.pt  rank1.pt ...   one file per rank: that rank's shards only
    step_000000200/rank0.pt.sha256 ...      each file's sha256 (``sha256sum`` format: ``<hex>  rank0.pt``)
    step_000000200/checkpoint.json           the step's metadata: {"step", "dir", "world_size", "steps", "inputs"}
    latest.json                              a copy of the newest step's checkpoint.json

Every rank writes ``rank<r>.pt`` to a temporary name, hashes what it wrote, writes the digest file
(temp + rename) and only then renames the checkpoint file into place. After a barrier rank 0 writes
the step's ``checkpoint.json`` (a step folder without it is incomplete) and replaces ``latest.json``
(both temp + rename). A kill at any moment leaves the previous ``latest.json`` pointing at a
complete set of files. Older step folders beyond ``keep`` are removed (and incomplete ones), and
so are step folders *newer* than the one just saved: a timeline superseded by resuming from an
older checkpoint, which must neither be taken for the latest later nor push good ones out.

Every load (:func:`load_rank_file`, :func:`assemble_full_state`, :meth:`CheckpointStore.load`)
re-hashes the file and compares it with the recorded digest: a changed, truncated, empty or foreign
file is an :class:`~recsys_hmtl.errors.InputError` (exit 2) naming the file, never a model with
wrong numbers or a traceback. Checkpoints written before digests were recorded (no
``checkpoint.json`` and no ``.sha256`` files) still load, unchecked, but a file ``torch.load``
cannot read is the same clear error. ``evaluate`` reads ``latest.json`` and refuses a damaged
checkpoint; ``train --resume`` uses :meth:`CheckpointStore.resume_point`, the newest step whose
files for every rank are intact, skipping damaged ones with a warning (a damaged ``latest.json``
included).

``ShardedTensor`` values (TorchRec's table shards, the fused optimizer's per-row state) are stored
as plain tensors with their offsets (:func:`plain_state`), so the files load with
``torch.load(weights_only=True)`` and can be re-assembled into full tables for single-process
evaluation (:func:`assemble_full_state`) whatever the world size of the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed._shard.sharded_tensor import ShardedTensor

from ..errors import InputError
from ..evaluation.report import atomic_write_text

log = logging.getLogger(__name__)

LATEST = "latest.json"
META = "checkpoint.json"  # per step folder; written last, so its presence marks a complete step
DIGEST_SUFFIX = ".sha256"
_SHARDS = "__shards__"
_STEP_DIR = re.compile(r"step_(\d+)")
_HEX = re.compile(r"[0-9a-f]{64}")
_DAMAGED_HINT = ("restore it from a copy, or rerun the run's `recsys-hmtl train` with --resume: it "
                 "continues from the newest intact checkpoint")


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
    """The full (unsharded) ``payload[key]`` state of a checkpoint, stitched from every rank's file
    (each verified against its recorded digest)."""
    full: dict[str, torch.Tensor] = {}
    for rank in range(world_size):
        payload = load_rank_file(step_dir, rank)
        if not isinstance(payload.get(key), dict):
            raise InputError(f"not a checkpoint of this program (no '{key}' state)",
                             file=str(Path(step_dir) / f"rank{rank}.pt"))
        for name, value in payload[key].items():
            if isinstance(value, dict) and _SHARDS in value:
                for shard in value[_SHARDS]:  # a rank may hold none of a table's shards
                    if name not in full:
                        full[name] = torch.zeros(value["size"], dtype=shard["tensor"].dtype)
                    index = tuple(slice(o, o + n) for o, n in zip(shard["offsets"], shard["tensor"].shape))
                    full[name][index] = shard["tensor"]
            elif name not in full:  # replicated (dense, data-parallel): every rank holds the same
                full[name] = value
    return full


def load_rank_file(step_dir: Path, rank: int, hint: str | None = _DAMAGED_HINT, *,
                   verified: bool = False) -> dict:
    """Rank ``rank``'s payload of the checkpoint in ``step_dir``, after :func:`verify_rank_file`
    (``verified``: it has just been, by :meth:`CheckpointStore.resume_point`: not read twice);
    a file ``torch.load`` cannot read is an :class:`InputError` naming it (``hint``: what to do)."""
    path = Path(step_dir) / f"rank{rank}.pt" if verified else verify_rank_file(step_dir, rank, hint)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, random bytes, a pickle weights_only refuses, ...
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputError(f"not a readable checkpoint: truncated/not a checkpoint file "
                         f"({type(exc).__name__}: {reason})", file=str(path), hint=hint) from None
    if not isinstance(payload, dict):
        raise InputError("not a checkpoint of this program (no state dict inside)", file=str(path))
    return payload


def verify_rank_file(step_dir: Path, rank: int, hint: str | None = _DAMAGED_HINT) -> Path:
    """The path of ``rank<rank>.pt`` in ``step_dir`` once it is known to be the file that was
    written: present, and its sha256 equal to the one recorded next to it. A step folder with
    ``checkpoint.json`` (this format) must have the digest; an older one without digests is only
    checked for being present and non-empty."""
    path = Path(step_dir) / f"rank{rank}.pt"
    if not path.is_file():
        raise InputError("checkpoint file missing (incomplete or foreign checkpoint)", file=str(path))
    size = path.stat().st_size
    expected = _recorded_digest(path, hint)
    if expected is None:
        if (Path(step_dir) / META).is_file():
            raise InputError(f"no digest recorded ({path.name}{DIGEST_SUFFIX} is missing), so the file "
                             "cannot be checked", file=str(path), hint=hint)
        if size == 0:
            raise InputError("empty file: truncated/not a checkpoint", file=str(path), hint=hint)
        return path  # written before digests were recorded: torch.load is the only check
    actual = file_digest(path)
    if actual != expected:
        raise InputError(
            f"digest mismatch: the file was changed or damaged after it was written (sha256 of its "
            f"{size} bytes is {actual[:16]}..., {path.name}{DIGEST_SUFFIX} records {expected[:16]}...)",
            file=str(path), hint=hint)
    return path


def file_digest(path: Path) -> str:
    """The sha256 of the file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _recorded_digest(path: Path, hint: str | None) -> str | None:
    record = path.with_name(path.name + DIGEST_SUFFIX)
    if not record.is_file():
        return None
    try:
        fields = record.read_text(errors="replace").split()
    except OSError as exc:
        raise InputError(f"unreadable digest file ({exc})", file=str(record)) from None
    if len(fields) != 2 or not _HEX.fullmatch(fields[0]) or fields[1].lstrip("*") != path.name:
        raise InputError(f"damaged digest file (expected '<sha256>  {path.name}')", file=str(record),
                         hint=hint)
    return fields[0]


class CheckpointStore:
    """Writes and finds the checkpoints of one run directory (``rank`` of ``world_size``)."""

    def __init__(self, run_dir: str | Path, rank: int = 0, world_size: int = 1, keep: int = 2) -> None:
        self.root = Path(run_dir) / "checkpoints"
        self.rank, self.world_size, self.keep = rank, world_size, keep

    def latest(self) -> dict | None:
        """``{"step", "dir", "world_size", ..., "path"}`` that ``latest.json`` points at (the last
        complete checkpoint written), or None. The files are not checked here: loading them is."""
        path = self.root / LATEST
        if not path.is_file():
            return None
        return self._read_info(path, "checkpoint pointer")

    def resume_point(self) -> dict | None:
        """For ``--resume``: the newest checkpoint whose files for *every* rank of the run that wrote
        it are present and match their digests (same shape as :meth:`latest`), or None when there
        is none at all. Damaged or incomplete newer ones (and a damaged ``latest.json``) are skipped
        with a warning naming them; every rank reads the same files, so every rank picks the same
        step. When ``latest.json`` was unreadable or pointed elsewhere, rank 0 points it at the
        step returned. Checkpoints exist but none is intact: :class:`InputError` naming them."""
        problems: list[str] = []
        try:
            pointer = self.latest()
        except InputError as exc:
            pointer, problems = None, [str(exc)]
        candidates: dict[str, dict] = {}
        for _, step_dir in self._step_dirs():
            if (step_dir / META).is_file():
                try:
                    candidates[step_dir.name] = self._read_info(step_dir / META, "checkpoint metadata")
                except InputError as exc:
                    problems.append(str(exc))
        if pointer is not None and pointer["dir"] not in candidates:
            candidates[pointer["dir"]] = pointer  # written before step folders had checkpoint.json
        for info in sorted(candidates.values(), key=lambda i: i["step"], reverse=True):
            try:
                for rank in range(info["world_size"]):
                    verify_rank_file(info["path"], rank, hint=None)
            except InputError as exc:
                problems.append(str(exc))
                continue
            for problem in problems:
                log.warning("resume: skipping a damaged checkpoint: %s", problem)
            if problems:
                log.warning("resume: continuing from the newest intact checkpoint, %s (batch %d)",
                            info["path"], info["step"])
            if self.rank == 0 and (pointer is None or pointer["dir"] != info["dir"]):
                self._write_pointer(info)
            return {**info, "verified": True}
        if problems:
            raise InputError("no intact checkpoint to resume from. " + " ".join(problems), file=str(self.root),
                             hint="restore the damaged file from a copy, or start a new run folder")
        return None

    def save(self, step: int, payload: dict, meta: dict | None = None) -> Path:
        """Write this rank's ``payload`` (see :func:`plain_state`) for ``step``; every rank calls it."""
        step_dir = self.root / f"step_{step:09d}"
        step_dir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:  # a folder of a superseded timeline is rewritten: incomplete until the end
            (step_dir / META).unlink(missing_ok=True)
        final = step_dir / f"rank{self.rank}.pt"
        tmp = final.with_suffix(".pt.tmp")
        try:
            torch.save(payload, tmp)
            _fsync(tmp)
            # The digest of the bytes on disk goes into place before the file it describes.
            atomic_write_text(final.with_name(final.name + DIGEST_SUFFIX), f"{file_digest(tmp)}  {final.name}\n")
            os.replace(tmp, final)
            _fsync_dir(step_dir)
        except BaseException:  # a full disk or an interrupt leaves no half-written file behind
            tmp.unlink(missing_ok=True)
            raise
        _barrier()
        if self.rank == 0:
            info = {"step": step, "dir": step_dir.name, "world_size": self.world_size, **(meta or {})}
            atomic_write_text(step_dir / META, json.dumps(info, indent=1))
            self._write_pointer(info)
            self._prune(step)
        _barrier()
        return step_dir

    def load(self, info: dict) -> dict:
        """This rank's payload of the checkpoint ``info`` (from :meth:`latest` or
        :meth:`resume_point`), verified against its recorded digest."""
        if int(info["world_size"]) != self.world_size:
            raise InputError(
                f"the checkpoint was written by {info['world_size']} process(es), this run has "
                f"{self.world_size}", file=str(info["path"]), hint="resume with the same --nproc",
            )
        return load_rank_file(Path(info["path"]), self.rank, verified=bool(info.get("verified")),
                              hint="restore it from a copy, or start a new run folder")

    def _read_info(self, path: Path, what: str) -> dict:
        """``latest.json`` or a step's ``checkpoint.json``, checked, with ``path`` (the step folder)."""
        try:
            info = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"unreadable {what} ({exc})", file=str(path)) from None
        match = _STEP_DIR.fullmatch(str(info.get("dir"))) if isinstance(info, dict) else None
        if (match is None or type(info.get("step")) is not int or int(match.group(1)) != info["step"]
                or type(info.get("world_size")) is not int or info["world_size"] < 1):
            raise InputError(f"damaged {what} (no valid step, dir and world_size)", file=str(path))
        if path.name == META and info["dir"] != path.parent.name:
            raise InputError(f"{what} of another folder ({info['dir']})", file=str(path))
        info["path"] = self.root / info["dir"]
        return info

    def _write_pointer(self, info: dict) -> None:
        atomic_write_text(self.root / LATEST, json.dumps({k: v for k, v in info.items() if k != "path"}, indent=1))

    def _step_dirs(self) -> list[tuple[int, Path]]:
        """``(step, folder)`` of every step folder, oldest first."""
        if not self.root.is_dir():
            return []
        found = ((_STEP_DIR.fullmatch(p.name), p) for p in self.root.iterdir() if p.is_dir())
        return sorted((int(m.group(1)), p) for m, p in found if m)

    def _prune(self, current: int) -> None:
        """Keep the ``keep`` newest complete step folders at or below ``current`` (the one just
        written); remove older ones, folders without ``checkpoint.json`` below ``current`` (cut
        short, or from before this format: nothing resumes from them) and every folder above
        ``current`` (a timeline superseded by resuming from an older checkpoint)."""
        complete = []
        for step, path in self._step_dirs():
            if step > current:
                log.info("removing %s: newer than the checkpoint this run resumed from", path)
                shutil.rmtree(path, ignore_errors=True)
            elif step < current and not (path / META).is_file():
                shutil.rmtree(path, ignore_errors=True)
            else:
                complete.append(path)
        for old in complete[: max(0, len(complete) - max(1, self.keep))]:
            shutil.rmtree(old, ignore_errors=True)


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    """Make the renames in ``path`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

