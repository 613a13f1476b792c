"""The reader of FDU-MTL's files: ``<root>/<domain>.task.<split>``, one review a line,
``label<TAB>text`` (label 0 or 1, text lower-cased and space-tokenised).

A few lines of the set are not UTF-8 (``dvd`` and ``MR`` carry Windows-1252 bytes such as ``\\x96``
and ``\\xe9``): such a line is decoded as Windows-1252 (Latin-1 for its five undefined bytes) and
counted. Lines are split on ``\\n`` only (``MR`` holds NEL characters inside reviews). Empty lines
are skipped; every other problem is an :class:`~recsys_hmtl.errors.InputError` naming the file and
the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError, did_you_mean
from .config import KNOWN_DOMAINS

SPLIT_FILES = ("train", "test")


@dataclass(frozen=True)
class Review:
    label: int
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class DomainFile:
    """The reviews of one file, and how many of its lines were not UTF-8."""

    path: Path
    reviews: list[Review]
    non_utf8_lines: int = 0


def domain_file(root: str | Path, domain: str, split: str) -> Path:
    """``<root>/<domain>.task.<split>``; a missing file names itself and ``data.domains``."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("the data folder does not exist", file=str(root), key="data.root")
    path = root / f"{domain}.task.{split}"
    if not path.is_file():
        present = sorted({p.name.split(".task.")[0] for p in root.glob("*.task.*")} | set(KNOWN_DOMAINS))
        raise InputError(f"no {split} file for domain '{domain}'", file=str(path), key="data.domains",
                         hint=did_you_mean(domain, present))
    return path


def _decode(raw: bytes) -> tuple[str, bool]:
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        try:
            return raw.decode("cp1252"), True
        except UnicodeDecodeError:
            return raw.decode("latin-1"), True


def read_reviews(path: str | Path) -> DomainFile:
    """Every review of ``path``, in file order."""
    path = Path(path)
    reviews, non_utf8 = [], 0
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        line, fallback = _decode(raw)
        non_utf8 += fallback
        label, tab, text = line.partition("\t")
        if not tab:
            raise InputError(f"line {number}: no TAB between the label and the text "
                             f"(expected 'label<TAB>text', got {line[:40]!r})", file=str(path))
        if label.strip() not in ("0", "1"):
            raise InputError(f"line {number}: the label must be 0 or 1, got {label[:20]!r}", file=str(path))
        reviews.append(Review(int(label), tuple(text.split())))
    return DomainFile(path, reviews, non_utf8)
