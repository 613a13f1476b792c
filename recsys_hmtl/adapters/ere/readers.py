"""Readers of the ERE data sets, one per on-disk format, each returning a :class:`Corpus` of one split,
and :func:`read_split`, which finds a split's file under a data root by the format's naming rule.

The formats live in :mod:`.formats` (one module each); every problem with an input file is an
:class:`~recsys_hmtl.errors.InputError` naming the file and the row (1-based document index) or
line, never a partial corpus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ...errors import InputError, did_you_mean
from .document import Corpus
from .formats.casrel import read_casrel
from .formats.docred import read_docred
from .formats.pubtator import read_pubtator
from .formats.tplinker import read_tplinker

__all__ = ["FORMATS", "read_casrel", "read_docred", "read_pubtator", "read_split", "read_tplinker", "split_file"]

FORMATS = ("casrel", "tplinker", "docred", "pubtator")
VALIDATION = ("val", "dev", "valid")  # names of the validation split, tried in this order
PUBTATOR_SUFFIXES = (".pubtator", ".txt")


def read_split(format: str, root: str | Path, split: str, *, relations_path: str | Path | None = None) -> Corpus:
    """The ``split`` (``train``, ``val``, ``test``) of the data set under ``root`` in ``format``.

    ``relations_path`` overrides the relation inventory found beside the file: ``rel2id.json``
    (casrel, tplinker) or ``rel_info.json`` (docred); pubtator has none. See :func:`split_file`
    for the file names.
    """
    path = split_file(format, root, split)
    if format == "pubtator":
        if relations_path is not None:
            raise InputError("the pubtator format has no relation inventory file", key="relations_path")
        return read_pubtator(path)
    reader: Callable[..., Corpus] = {"casrel": read_casrel, "tplinker": read_tplinker, "docred": read_docred}[format]
    return reader(path, relations_path)


def split_file(format: str, root: str | Path, split: str) -> Path:
    """The file of ``split`` under ``root``; ``val`` also answers to ``dev`` and ``valid``.

    - casrel: ``{split}_triples.json`` (val: ``val_``, ``dev_``, ``valid_triples.json``);
    - tplinker: ``{split}_data.json`` (val: ``val_``, ``dev_``, ``valid_data.json``);
    - docred: ``train_annotated.json``, ``dev.json`` (val), ``test.json``; else ``{split}.json``;
    - pubtator: ``{split}.PubTator``; else the one ``*.txt`` / ``*.PubTator`` file whose name
      contains the split's name, case-insensitively (``CDR_TrainingSet.PubTator.txt`` for train,
      ``CDR_DevelopmentSet.PubTator.txt`` for val via ``dev``); several matches are an error.
    """
    if format not in FORMATS:
        raise InputError(f"unknown ERE format {format!r}", key="data.format", hint=did_you_mean(format, FORMATS))
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"the data folder of the {split!r} split does not exist", file=str(root))
    names = _aliases(split)
    if format == "casrel":
        candidates = [f"{name}_triples.json" for name in names]
    elif format == "tplinker":
        candidates = [f"{name}_data.json" for name in names]
    elif format == "docred":
        fixed = {"train": "train_annotated.json", "val": "dev.json", "dev": "dev.json", "valid": "dev.json"}
        candidates = list(dict.fromkeys([fixed.get(split, f"{split}.json"), f"{split}.json"]))
    else:
        candidates = [f"{name}.PubTator" for name in names]
    for name in candidates:
        if (root / name).is_file():
            return root / name
    if format == "pubtator":
        found = _pubtator_match(root, names, split)
        if found is not None:
            return found
        candidates.append("*{" + ",".join(names) + "}*.txt / .PubTator")
    raise InputError(f"no file for the {split!r} split (looked for {', '.join(candidates)} in {root})",
                     file=str(root / candidates[0]))


def _aliases(split: str) -> tuple[str, ...]:
    if split in VALIDATION:
        return (split,) + tuple(name for name in VALIDATION if name != split)
    return (split,)


def _pubtator_match(root: Path, names: tuple[str, ...], split: str) -> Path | None:
    files = sorted(p for p in root.iterdir() if p.is_file() and p.name.lower().endswith(PUBTATOR_SUFFIXES))
    for name in names:
        matches = [p for p in files if name.lower() in p.name.lower()]
        if len(matches) > 1:
            raise InputError(f"several files match the {split!r} split: " + ", ".join(p.name for p in matches),
                             file=str(root), hint="name the split's file '{split}.PubTator'".format(split=split))
        if matches:
            return matches[0]
    return None
