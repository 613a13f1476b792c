"""Outputs that appear whole or not at all: written into a temporary folder beside their place.

``export`` (a folder) and ``predict`` (a Parquet file) write everything into
``.NAME.tmp-<pid>-<random>`` next to ``--out`` and rename it into place only at the end. The
temporary folder is removed whatever happens; when the command fails, so are the parent folders
it created for ``--out`` (only those, and only while empty).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A new empty folder beside ``out`` (its missing parents created) for the block to fill and
    rename into place."""
    made = [folder for folder in (out.parent, *out.parent.parents) if not folder.exists()]  # deepest first
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    shutil.rmtree(tmp, ignore_errors=True)
