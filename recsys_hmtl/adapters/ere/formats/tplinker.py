"""TPLinker JSON: ``[{"id", "text", "relation_list": [{"subject", "object", "subj_char_span",
"obj_char_span", "predicate", ...}], "entity_list": [...]}]``, char spans end-exclusive."""

from __future__ import annotations

from pathlib import Path

from ....errors import InputError
from ..document import Corpus, LocatedTriple
from .common import check_relation, located, open_json_corpus, require, require_object, require_span, shown


def read_tplinker(path: str | Path, relations_path: str | Path | None = None) -> Corpus:
    """One TPLinker split, entities at the given char spans (``text[span]`` must equal the entity).

    ``entity_list`` is not read (the triples carry their own spans). A triple repeated in a
    document (another mention pair of the same texts) is kept once, at its first spans. Document
    ids: ``id`` when present, else the 1-based row. Relations: ``rel2id.json`` (``relations_path``,
    else beside the file; TPLinker writes ``{name: id}``) in id order, else sorted from the data.
    """
    path = Path(path)
    inventory, relations, known, documents, builder = open_json_corpus(path, relations_path)
    for row, raw in enumerate(documents, start=1):
        doc = require_object(raw, path, row)
        text = require(doc, "text", str, path, row)
        relation_list = require(doc, "relation_list", list, path, row)
        items: list[LocatedTriple] = []
        for j, raw_relation in enumerate(relation_list):
            key = f"relation_list[{j}]"
            rel = require_object(raw_relation, path, row, key)
            subject = require(rel, "subject", str, path, row, label=f"{key}.subject")
            obj = require(rel, "object", str, path, row, label=f"{key}.object")
            predicate = require(rel, "predicate", str, path, row, label=f"{key}.predicate")
            check_relation(predicate, known, path, row, f"{key}.predicate", inventory)
            s = _span(rel, "subj_char_span", subject, text, path, row, j)
            o = _span(rel, "obj_char_span", obj, text, path, row, j)
            items.append(located(subject, predicate, obj, s, o))
        doc_id = doc.get("id", row)
        builder.add(text, items, str(doc_id))
    return builder.build(relations)


def _span(rel: dict, name: str, entity: str, text: str, path: Path, row: int, j: int) -> tuple[int, int]:
    label = f"relation_list[{j}].{name}"
    if name not in rel:
        raise InputError(f"relation {j} has no {name!r}", file=str(path), row=row, key=label)
    start, end = require_span(rel[name], path, row, label)
    if text[start:end] != entity:
        raise InputError(f"relation {j} (0-based): the text at {start}:{end} is "
                         f"{shown(text[start:end])}, not the entity {shown(entity)}",
                         file=str(path), row=row, key=label)
    return start, end
