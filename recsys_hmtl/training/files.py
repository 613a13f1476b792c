"""Files of a run folder, always written atomically (temp file in the same folder + rename)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..config import RunConfig, load_config
from ..errors import InputError
from ..evaluation.report import atomic_write_text, json_safe

CONFIG_FILE = "config.yaml"


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
