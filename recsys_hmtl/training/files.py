"""Files of a run folder, always written atomically (temp file in the same folder + rename)."""

from __future__ import annotations

import fcntl
import json
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml

from ..config import RunConfig, load_config
from ..errors import InputError
from ..evaluation.report import atomic_write_text, json_safe

CONFIG_FILE = "config.yaml"
MARKER_FILE = ".recsys_hmtl_run"  # written when train creates or adopts a run folder
LOCK_FILE = ".lock"


def write_json(path: Path, data: dict) -> None:
    """``data`` as JSON (NaN/inf as null, so the file stays valid JSON)."""
    atomic_write_text(path, json.dumps(json_safe(data), indent=2, default=str, allow_nan=False) + "\n")


def write_run_config(cfg: RunConfig, run_dir: Path) -> None:
    """The resolved config, which ``evaluate --run RUN_DIR`` reads back."""
    atomic_write_text(Path(run_dir) / CONFIG_FILE, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def read_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise InputError("not a run folder (no config.yaml; was it written by recsys-hmtl train?)",
                         file=str(run_dir))
    return load_config(path)


class RunFolderBusy(RuntimeError):
    """Another training process holds the run folder (exit 1: a later retry may succeed)."""


def check_run_folder(run_dir: Path) -> None:
    """``--out`` must be new, empty, or a run folder (it holds :data:`MARKER_FILE`, or, for runs
    made before the marker existed, ``config.yaml`` and ``checkpoints/latest.json``). Anything
    else is a user's folder: refused (exit 2) before anything in it is touched."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise InputError("exists and is not a folder", file=str(run_dir), key="--out")
    if (run_dir / MARKER_FILE).is_file() or {p.name for p in run_dir.iterdir()} <= {LOCK_FILE}:
        return  # ours, empty, or only the lock of a train that stopped before writing anything
    if (run_dir / CONFIG_FILE).is_file() and (run_dir / "checkpoints" / "latest.json").is_file():
        return  # a run folder written before the marker file existed
    raise InputError("is a non-empty folder that recsys-hmtl train did not create (no "
                     f"{MARKER_FILE}); nothing in it was changed", file=str(run_dir), key="--out",
                     hint="choose a new or empty folder for --out")


@contextmanager
def exclusive_run_folder(run_dir: Path) -> Iterator[None]:
    """Claim ``run_dir`` (:func:`check_run_folder`, then the marker file) and hold an exclusive lock
    on ``RUN_DIR/.lock`` while a run trains (two writers would interleave their checkpoints). A
    folder this call created is removed again if the run fails before writing anything into it,
    so a refused run leaves nothing behind."""
    run_dir = Path(run_dir)
    check_run_folder(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    lock_path = run_dir / LOCK_FILE
    handle = open(lock_path, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RunFolderBusy(f"{run_dir}: another recsys-hmtl train is using this run folder") from None
    marker = run_dir / MARKER_FILE
    if not marker.is_file():
        marker.write_text("recsys-hmtl run folder\n")
    try:
        yield
    except BaseException:
        if created and {p.name for p in run_dir.iterdir()} <= {LOCK_FILE, MARKER_FILE}:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        handle.close()
