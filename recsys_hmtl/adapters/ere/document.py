"""The ERE adapter's data contract: a document, its gold triples and where their entities are.

Every reader (CasRel, TPLinker, DocRED, PubTator) returns a :class:`Corpus` of :class:`Document`;
the features, the model, decoding and the metrics read nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Triple:
    """A gold or predicted (subject, relation, object); entities compared by exact text."""

    subject: str
    relation: str
    object: str


@dataclass(frozen=True)
class Span:
    """Character offsets of an entity mention in :attr:`Document.text` (``end`` exclusive)."""

    start: int
    end: int


@dataclass(frozen=True)
class LocatedTriple:
    """A triple with the mentions its entities were found at (the training targets)."""

    triple: Triple
    subject: Span
    object: Span


@dataclass
class Document:
    """``triples``: the gold triples the metrics score (deduplicated, in file order); ``located``:
    the same triples with the mentions their entities were found at (one per triple). A triple
    whose entity text does not occur in ``text`` is in neither: the reader drops and counts it."""

    text: str
    triples: tuple[Triple, ...]
    located: tuple[LocatedTriple, ...]
    id: str = ""


@dataclass
class Corpus:
    """One split of one data set: its documents, the relation inventory (index = relation id) and
    the number of gold triples dropped because an entity's text does not occur in its document."""

    documents: list[Document]
    relations: list[str]
    source: str
    dropped: int = 0
    dropped_examples: list[str] = field(default_factory=list)  # the first few, for the message
