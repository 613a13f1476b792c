"""DocRED JSON: ``[{"title", "sents": [[token]], "vertexSet": [[{"name", "sent_id", "pos", "type"}]],
"labels": [{"h", "t", "r", "evidence"}]}]``; ``rel_info.json`` maps P-ids to relation names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ....errors import InputError
from ..document import Corpus, LocatedTriple
from .common import CorpusBuilder, beside, load_json, load_array, located, require, require_object, require_span, shown


def read_docred(path: str | Path, rel_info_path: str | Path | None = None) -> Corpus:
    """One DocRED split.

    The text is every token of every sentence joined by single spaces; a mention's char span comes
    from its token ``pos`` (``[start, end)`` within sentence ``sent_id``). A vertex (entity) is
    located at its first mention, and its text is the document text there (the mention's tokens
    joined by spaces: that is what a span decodes to; it equals ``name`` for a well-formed mention).
    Relation names from ``rel_info.json`` (``rel_info_path``, else beside the file; every label must
    be in it; inventory in file order), else the P-ids sorted. A document without ``labels`` (the
    test split) has no triples. Document ids are the titles.
    """
    path = Path(path)
    info_path = beside(path, rel_info_path, "rel_info.json")
    rel_info = _rel_info(info_path) if info_path is not None else None
    documents = load_array(path, "documents")
    builder = CorpusBuilder(path)
    for row, raw in enumerate(documents, start=1):
        doc = require_object(raw, path, row)
        title = require(doc, "title", str, path, row)
        sents = require(doc, "sents", list, path, row)
        text, offsets = _text(sents, path, row)
        vertices = require(doc, "vertexSet", list, path, row)
        spans = [_first_mention(v, offsets, path, row, i) for i, v in enumerate(vertices)]
        items: list[LocatedTriple] = []
        labels = doc.get("labels", [])
        if not isinstance(labels, list):
            raise InputError(f"expected an array, got {shown(labels)}", file=str(path), row=row, key="labels")
        for j, raw_label in enumerate(labels):
            key = f"labels[{j}]"
            label = require_object(raw_label, path, row, key)
            h = _vertex(label, "h", len(spans), path, row, key)
            t = _vertex(label, "t", len(spans), path, row, key)
            r = require(label, "r", str, path, row, label=f"{key}.r")
            if rel_info is not None and r not in rel_info:
                raise InputError(f"the relation {r!r} is not in {info_path}", file=str(path), row=row, key=f"{key}.r")
            relation = rel_info[r] if rel_info is not None else r
            s, o = spans[h], spans[t]
            items.append(located(text[s[0]:s[1]], relation, text[o[0]:o[1]], s, o))
        builder.add(text, items, title)
    relations = list(dict.fromkeys(rel_info.values())) if rel_info is not None else None
    return builder.build(relations)


def _rel_info(path: Path) -> dict[str, str]:
    value = load_json(path)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InputError("expected a JSON object {P-id: relation name}", file=str(path))
    return value


def _text(sents: list[Any], path: Path, row: int) -> tuple[str, list[list[tuple[int, int]]]]:
    """The document text and each token's ``(start, end)``, per sentence."""
    parts: list[str] = []
    offsets: list[list[tuple[int, int]]] = []
    position = 0
    for i, sent in enumerate(sents):
        if not isinstance(sent, list) or not all(isinstance(tok, str) for tok in sent):
            raise InputError(f"expected an array of token strings, got {shown(sent)}",
                             file=str(path), row=row, key=f"sents[{i}]")
        spans = []
        for tok in sent:
            if parts:
                position += 1  # the joining space
            spans.append((position, position + len(tok)))
            parts.append(tok)
            position += len(tok)
        offsets.append(spans)
    return " ".join(parts), offsets


def _first_mention(vertex: Any, offsets: list[list[tuple[int, int]]], path: Path, row: int, i: int) -> tuple[int, int]:
    key = f"vertexSet[{i}]"
    if not isinstance(vertex, list) or not vertex:
        raise InputError(f"expected a non-empty array of mentions, got {shown(vertex)}",
                         file=str(path), row=row, key=key)
    mention = require_object(vertex[0], path, row, f"{key}[0]")
    sent_id = require(mention, "sent_id", int, path, row, label=f"{key}[0].sent_id")
    if not 0 <= sent_id < len(offsets):
        raise InputError(f"sentence {sent_id} does not exist (the document has {len(offsets)})",
                         file=str(path), row=row, key=f"{key}[0].sent_id")
    if "pos" not in mention:
        raise InputError("missing", file=str(path), row=row, key=f"{key}[0].pos")
    start, end = require_span(mention["pos"], path, row, f"{key}[0].pos")
    tokens = offsets[sent_id]
    if end > len(tokens):
        raise InputError(f"tokens {start}:{end} run past sentence {sent_id} ({len(tokens)} tokens)",
                         file=str(path), row=row, key=f"{key}[0].pos")
    return tokens[start][0], tokens[end - 1][1]


def _vertex(label: dict, name: str, count: int, path: Path, row: int, key: str) -> int:
    index = require(label, name, int, path, row, label=f"{key}.{name}")
    if not 0 <= index < count:
        raise InputError(f"vertex {index} does not exist (the document has {count})", file=str(path), row=row,
                         key=f"{key}.{name}")
    return index
