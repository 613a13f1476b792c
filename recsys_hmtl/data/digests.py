"""Content fingerprints of input files: a SHA-256 digest, computed once per version of a file.

A file's *stat key* is (size, modification time, change time, inode). Its content digest is read
(streamed, never held in memory) the first time a stat key is seen and memoised in
``<cache root>/input_digests.json``, so a run over unchanged files reads no input twice. The key
includes the change time, which no program can set back: a file rewritten in place with the same
size and its old modification time restored (``os.utime``) gets a new stat key, so its digest is
read again and the change is seen. A mere ``touch`` also gives a new stat key, but the same digest:
the cache key and the resume check use the digest, so it counts as the same data.

The memo is a small JSON document replaced atomically (write a temporary file, rename it); a
missing, unreadable or corrupt memo is ignored (digests are read again) and rewritten. It is only
written where the caller says so (:meth:`DigestMemo.save`), so that failed validation writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

MEMO_NAME = "input_digests.json"
STAT_FIELDS = ("size", "mtime_ns", "ctime_ns", "inode")
_SEEN: dict[tuple, str] = {}  # (path, *stat key) -> digest, for this process


def stat_key(path: Path) -> dict:
    """(size, mtime_ns, ctime_ns, inode) of ``path``."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns,
            "inode": stat.st_ino}


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of the file's bytes, read in chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class DigestMemo:
    """Digests of input files by stat key, kept in ``folder/input_digests.json``."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / MEMO_NAME
        self.entries = self._read()
        self.changed = False

    def fingerprint(self, path: Path) -> dict:
        """``{path, size, mtime_ns, ctime_ns, inode, sha256}`` of ``path`` (digest read if new)."""
        key = stat_key(path)
        name = str(path)
        known = self.entries.get(name)
        if isinstance(known, dict) and all(known.get(f) == key[f] for f in STAT_FIELDS) \
                and isinstance(known.get("sha256"), str):
            digest = known["sha256"]
        else:
            digest = _SEEN.get((name, *key.values())) or self._digest(path, key)
            self.entries[name] = {**key, "sha256": digest}
            self.changed = True
        return {"path": name, **key, "sha256": digest}

    def save(self) -> None:
        """Write the memo if it changed (atomically; a read-only folder is only logged)."""
        if not self.changed:
            return
        tmp = self.path.parent / f".{MEMO_NAME}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            live = {name: entry for name, entry in self.entries.items() if Path(name).exists()}
            tmp.write_text(json.dumps(live, sort_keys=True))
            os.replace(tmp, self.path)
            self.changed = False
        except OSError as exc:
            log.debug("input digests not memoised in %s (%s)", self.path, exc)
        finally:
            tmp.unlink(missing_ok=True)

    def _read(self) -> dict:
        try:
            entries = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable input digest memo %s (%s); it will be rewritten", self.path,
                        type(exc).__name__)
            return {}
        if not isinstance(entries, dict):
            log.warning("ignoring input digest memo %s (not a mapping); it will be rewritten", self.path)
            return {}
        return entries

    @staticmethod
    def _digest(path: Path, key: dict) -> str:
        if key["size"] >= 1 << 26:
            log.info("reading %s (%.0f MB) for its content digest", path, key["size"] / 2**20)
        digest = sha256_of(path)
        after = stat_key(path)
        if after == key:  # not rewritten while it was read
            _SEEN[(str(path), *key.values())] = digest
        return digest
