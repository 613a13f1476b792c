"""CasRel JSON (NYT, WebNLG): ``[{"text", "triple_list": [[subject, relation, object], ...]}]``.

Entities are plain strings; this reader finds them in the text (exact, case-sensitive substring).
"""

from __future__ import annotations

from pathlib import Path

from ....errors import InputError
from ..document import Corpus, Triple
from .common import check_relation, located, open_json_corpus, require, require_object, shown


def read_casrel(path: str | Path, relations_path: str | Path | None = None) -> Corpus:
    """One CasRel split.

    Each entity is located by exact substring search, whole-word occurrences preferred (one inside
    a longer word only when there is no other): the subject at its first occurrence; the
    object at its occurrence nearest to the subject (smallest gap between the two spans, the earlier
    one on a tie) that does not overlap it; when every occurrence of the object overlaps the
    subject's (nested entities such as 'New York' / 'New York City', or subject == object), at the
    object's first occurrence. A triple whose subject or object does not occur in the text is
    dropped and counted in ``Corpus.dropped`` (distinct triples: a duplicate is counted once).
    A triple repeated in a document is kept once. Document ids are the 1-based rows.

    The relation inventory is ``rel2id.json`` (``relations_path``, else beside the file) in id
    order, and then every relation must be in it; without that file, sorted from the data.
    """
    path = Path(path)
    inventory, relations, known, documents, builder = open_json_corpus(path, relations_path)
    for row, raw in enumerate(documents, start=1):
        doc = require_object(raw, path, row)
        text = require(doc, "text", str, path, row)
        triples = require(doc, "triple_list", list, path, row)
        seen: set[Triple] = set()
        items = []
        for j, raw_triple in enumerate(triples):
            key = f"triple_list[{j}]"
            triple = _triple(raw_triple, path, row, key)
            check_relation(triple.relation, known, path, row, key, inventory)
            if triple in seen:
                continue
            seen.add(triple)
            spans = locate(text, triple.subject, triple.object)
            if isinstance(spans, str):
                builder.drop(f"{path.name} row {row}", triple, f"{spans!r} does not occur in the text")
                continue
            items.append(located(triple.subject, triple.relation, triple.object, *spans))
        builder.add(text, items, str(row))
    return builder.build(relations)


def _triple(value: object, path: Path, row: int, key: str) -> Triple:
    if (not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, str) for v in value)):
        raise InputError(f"expected [subject, relation, object] (three strings), got {shown(value)}",
                         file=str(path), row=row, key=key)
    subject, relation, obj = value
    for name, text in (("subject", subject), ("relation", relation), ("object", obj)):
        if not text.strip():
            raise InputError(f"the {name} is empty", file=str(path), row=row, key=key)
    return Triple(subject, relation, obj)


def _occurrences(text: str, entity: str) -> list[int]:
    """Start offsets of ``entity`` in ``text``: the whole-word ones (not inside a longer word, as
    'Efxeinoupoli' inside 'Efxeinoupolis') when there are any, else every one."""
    starts, at = [], text.find(entity)
    while at >= 0:
        starts.append(at)
        at = text.find(entity, at + 1)

    def whole(at: int) -> bool:
        end = at + len(entity)
        return (at == 0 or not text[at - 1].isalnum()) and (end == len(text) or not text[end].isalnum())

    return [at for at in starts if whole(at)] or starts


def locate(text: str, subject: str, obj: str) -> tuple[tuple[int, int], tuple[int, int]] | str:
    """``((s_start, s_end), (o_start, o_end))`` by the rule of :func:`read_casrel`, or the entity
    text that does not occur in ``text``."""
    subjects, objects = _occurrences(text, subject), _occurrences(text, obj)
    if not subjects:
        return subject
    if not objects:
        return obj
    s_start = subjects[0]
    s_end = s_start + len(subject)
    best: tuple[int, int] | None = None  # (gap, start)
    for start in objects:
        end = start + len(obj)
        if end <= s_start or start >= s_end:
            gap = s_start - end if end <= s_start else start - s_end
            if best is None or gap < best[0]:
                best = (gap, start)
    o_start = best[1] if best is not None else objects[0]
    return (s_start, s_end), (o_start, o_start + len(obj))
