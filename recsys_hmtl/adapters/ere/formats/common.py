"""What every ERE reader shares: reading a JSON file, checking a document's shape, the relation
inventory files, and collecting documents (deduplicated triples, counted drops) into a Corpus.

Every problem with an input file is an :class:`~recsys_hmtl.errors.InputError` naming the file, the
row (1-based index of the document in the file) and the key; a reader raises before returning
anything, so there is never a partial corpus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ....errors import InputError
from ..document import Corpus, Document, LocatedTriple, Span, Triple

EXAMPLES = 5  # dropped triples kept as readable strings in Corpus.dropped_examples
LIMIT = 80  # characters of a value shown in a message


def shown(value: object, limit: int = LIMIT) -> str:
    """``repr`` of a value for a message, cut to about ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_json(path: Path) -> Any:
    """The parsed JSON value of ``path``; unreadable or invalid JSON is an InputError."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                         file=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror or exc}", file=str(path)) from None


def load_array(path: Path, what: str) -> list[Any]:
    """A JSON file whose value must be an array (of ``what``)."""
    value = load_json(path)
    if not isinstance(value, list):
        raise InputError(f"expected a JSON array of {what}, got a JSON {json_type(value)}", file=str(path))
    return value


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def require_object(value: object, path: Path, row: int, key: str | None = None) -> dict[str, Any]:
    """``value`` as a JSON object, else an InputError at ``row``/``key``."""
    if not isinstance(value, dict):
        what = "a document" if key is None else f"'{key}'"
        raise InputError(f"expected {what} to be a JSON object, got a JSON {json_type(value)}",
                         file=str(path), row=row, key=key)
    return value


def require(doc: dict[str, Any], key: str, kind: type, path: Path, row: int, *, label: str | None = None) -> Any:
    """``doc[key]``, which must exist and be of ``kind`` (str, list, int or dict)."""
    label = label or key
    if key not in doc:
        raise InputError("missing (the document has keys " + ", ".join(map(repr, doc)) + ")",
                         file=str(path), row=row, key=label)
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = {str: "a string", list: "an array", int: "an integer", dict: "an object"}[kind]
        raise InputError(f"expected {expected}, got {shown(value)}", file=str(path), row=row, key=label)
    return value


def require_span(value: object, path: Path, row: int, key: str) -> tuple[int, int]:
    """A ``[start, end)`` pair of non-negative integers with ``start < end``."""
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise InputError(f"expected [start, end] (two integers), got {shown(value)}", file=str(path), row=row, key=key)
    start, end = value
    if not 0 <= start < end:
        raise InputError(f"expected 0 <= start < end, got {shown(value)}", file=str(path), row=row, key=key)
    return start, end


def beside(path: Path, explicit: str | Path | None, name: str) -> Path | None:
    """``explicit`` when given (it must exist), else ``name`` in ``path``'s folder when it exists."""
    if explicit is not None:
        explicit = Path(explicit)
        if not explicit.is_file():
            raise InputError("relation inventory file not found", file=str(explicit))
        return explicit
    candidate = path.parent / name
    return candidate if candidate.is_file() else None


def load_rel2id(path: Path) -> list[str]:
    """The relation names of a ``rel2id.json`` in id order.

    Accepted shapes: CasRel's ``[id2rel, rel2id]`` (NYT), a one-element ``[rel2id]`` (the genuine
    WebNLG file), TPLinker's plain ``{name: id}``, or an ``{"0": name}`` id2rel mapping.
    """
    value = load_json(path)
    parts = value if isinstance(value, list) else [value]
    rel2id = next((p for p in parts if isinstance(p, dict) and p and all(
        isinstance(v, int) and not isinstance(v, bool) for v in p.values())), None)
    if rel2id is None:
        id2rel = next((p for p in parts if isinstance(p, dict) and p and all(
            isinstance(k, str) and k.isdigit() and isinstance(v, str) for k, v in p.items())), None)
        if id2rel is None:
            raise InputError("expected a relation inventory: {name: id}, [id2rel, rel2id] or [rel2id]",
                             file=str(path))
        rel2id = {name: int(i) for i, name in id2rel.items()}
    by_id: dict[int, str] = {}
    for name, i in rel2id.items():
        if i in by_id:
            raise InputError(f"relations {by_id[i]!r} and {name!r} share the id {i}", file=str(path), key=name)
        by_id[i] = name
    return [by_id[i] for i in sorted(by_id)]


def check_relation(relation: str, known: set[str] | None, path: Path, row: int, key: str,
                   inventory: Path | None) -> None:
    """An InputError when an inventory file was given and ``relation`` is not in it."""
    if known is not None and relation not in known:
        raise InputError(f"the relation {relation!r} is not in {inventory}", file=str(path), row=row, key=key)


class CorpusBuilder:
    """Documents of one split: each triple kept once (first in file order), drops counted."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.documents: list[Document] = []
        self.relations_seen: set[str] = set()
        self.dropped = 0
        self.dropped_examples: list[str] = []

    def drop(self, where: str, triple: Triple, reason: str) -> None:
        """Count a gold triple whose entity could not be located."""
        self.dropped += 1
        if len(self.dropped_examples) < EXAMPLES:
            self.dropped_examples.append(
                f"{where}: ({triple.subject!r}, {triple.relation!r}, {triple.object!r}): {reason}")

    def add(self, text: str, located: Iterable[LocatedTriple], doc_id: str) -> None:
        """A document from its located triples, a triple seen before in it dropped silently."""
        kept: dict[Triple, LocatedTriple] = {}
        for item in located:
            kept.setdefault(item.triple, item)
        self.relations_seen.update(t.relation for t in kept)
        self.documents.append(Document(text=text, triples=tuple(kept), located=tuple(kept.values()), id=doc_id))

    def build(self, relations: list[str] | None) -> Corpus:
        """The corpus; ``relations`` from an inventory file, else sorted from the data."""
        inventory = relations if relations is not None else sorted(self.relations_seen)
        return Corpus(documents=self.documents, relations=inventory, source=str(self.path),
                      dropped=self.dropped, dropped_examples=self.dropped_examples)


def located(subject: str, relation: str, obj: str, s: tuple[int, int], o: tuple[int, int]) -> LocatedTriple:
    """A LocatedTriple from texts and ``(start, end)`` pairs."""
    return LocatedTriple(Triple(subject, relation, obj), Span(*s), Span(*o))


def open_json_corpus(path: Path, relations_path: str | Path | None):
    """(the inventory file or None, its relation names or None, their set or None, the JSON array
    of documents, a builder) of a JSON split whose relation inventory is a ``rel2id.json``
    (``relations_path``, else beside it)."""
    inventory = beside(path, relations_path, "rel2id.json")
    relations = load_rel2id(inventory) if inventory is not None else None
    known = set(relations) if relations is not None else None
    return inventory, relations, known, load_array(path, "documents"), CorpusBuilder(path)
