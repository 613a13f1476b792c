"""PubTator (BC5CDR, GDA): per document ``PMID|t|title``, ``PMID|a|abstract``, mention lines
``PMID<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>id[<TAB>...]`` and relation lines
``PMID<TAB>relation<TAB>id1<TAB>id2``; documents separated by blank lines."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ....errors import InputError
from ..document import Corpus, LocatedTriple, Triple
from .common import CorpusBuilder, located, shown

HEADER = re.compile(r"^([^\t|]+)\|([ta])\|(.*)$")
NO_ID = {"", "-1", "-"}


@dataclass
class _Block:
    pmid: str
    line: int
    title: str | None = None
    abstract: str = ""
    mentions: list[tuple[int, int, int, str, list[str]]] = field(default_factory=list)  # line, start, end, text, ids
    relations: list[tuple[int, str, str, str]] = field(default_factory=list)  # line, name, id1, id2


def read_pubtator(path: str | Path) -> Corpus:
    """One PubTator split.

    Text = title + " " + abstract; mention offsets index into it (end exclusive) and must spell the
    mention. A composite id ``A|B`` gives the mention to both; ``-1`` (no id) is skipped. An id's
    text and span are those of its first mention (file order). A relation line's column 2 is the
    relation name (``CID`` in CDR), columns 3 and 4 the subject and object ids; a relation whose id
    has no mention is dropped and counted. Relations sorted from the data; document ids are PMIDs.
    """
    path = Path(path)
    builder = CorpusBuilder(path)
    for block in _blocks(path):
        text = block.title + " " + block.abstract  # type: ignore[operator]
        first: dict[str, tuple[int, int]] = {}
        for line, start, end, mention, ids in block.mentions:
            if text[start:end] != mention:
                raise InputError(f"PMID {block.pmid}, line {line}: the text at {start}:{end} is "
                                 f"{shown(text[start:end])}, not the mention {shown(mention)}", file=str(path))
            for entity in ids:
                first.setdefault(entity, (start, end))
        items: list[LocatedTriple] = []
        seen: set[tuple[str, str, str]] = set()
        for line, name, id1, id2 in block.relations:
            if (id1, name, id2) in seen:
                continue
            seen.add((id1, name, id2))
            missing = [i for i in (id1, id2) if i not in first]
            if missing:
                builder.drop(f"{path.name} PMID {block.pmid} line {line}", Triple(id1, name, id2),
                             f"no mention of {', '.join(map(repr, missing))}")
                continue
            s, o = first[id1], first[id2]
            items.append(located(text[s[0]:s[1]], name, text[o[0]:o[1]], s, o))
        builder.add(text, items, block.pmid)
    return builder.build(None)


def _blocks(path: Path) -> list[_Block]:
    """The parsed documents of the file, each with its title."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror or exc}", file=str(path)) from None
    blocks: list[_Block] = []
    block: _Block | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            block = _close(block, blocks, path)
            continue
        header = HEADER.match(line)
        if header is not None:
            pmid, kind, body = header.groups()
            if block is not None and pmid != block.pmid:
                block = _close(block, blocks, path)  # tolerate a missing blank line between documents
            if block is None:
                block = _Block(pmid, number)
            if kind == "t":
                block.title = body
            else:
                block.abstract = body
            continue
        cols = line.split("\t")
        if block is None or block.title is None:
            raise InputError(f"line {number}: expected 'PMID|t|title' before the annotations, got {shown(line)}",
                             file=str(path))
        if cols[0] != block.pmid:
            raise InputError(f"PMID {block.pmid}, line {number}: an annotation of PMID {cols[0]!r} inside the "
                             "document", file=str(path))
        if len(cols) == 4:
            block.relations.append((number, cols[1].strip(), cols[2].strip(), cols[3].strip()))
        elif len(cols) >= 6 and cols[1].isdigit() and cols[2].isdigit():
            start, end = int(cols[1]), int(cols[2])
            ids = [i.strip() for i in cols[5].split("|") if i.strip() not in NO_ID]
            block.mentions.append((number, start, end, cols[3], ids))
        else:
            raise InputError(f"PMID {block.pmid}, line {number}: expected a mention line (PMID, start, end, "
                             f"mention, type, id) or a relation line (PMID, relation, id1, id2), got {shown(line)}",
                             file=str(path))
    _close(block, blocks, path)
    return blocks


def _close(block: _Block | None, blocks: list[_Block], path: Path) -> None:
    if block is not None:
        if block.title is None:
            raise InputError(f"PMID {block.pmid}, line {block.line}: the document has no 'PMID|t|title' line",
                             file=str(path))
        blocks.append(block)
    return None
