"""Extraction metrics as PRGC (and seed 000's Table 2) report them: micro-averaged over a split.

Per document the gold and predicted triples are sets (a repeated triple counts once); the counts of
all documents add up before precision, recall and F1 are computed. Three levels:

- ``triple``: exact (subject text, relation, object text);
- ``entity``: the (subject, object) pairs, whatever the relation;
- ``relation``: the relation types present in the document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from .document import Triple

__all__ = ["Counts", "ExtractionCounts", "LEVELS", "prf"]

LEVELS = ("triple", "entity", "relation")


def prf(correct: int, predicted: int, gold: int) -> dict[str, float | int]:
    """Precision, recall and F1 from counts (0 where a denominator is 0), with the counts."""
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "correct": correct, "predicted": predicted, "gold": gold}


@dataclass
class Counts:
    """Matched, predicted and gold items of one level, summed over documents."""

    correct: int = 0
    predicted: int = 0
    gold: int = 0

    def add(self, gold: set, predicted: set) -> None:
        """One document's sets."""
        self.correct += len(gold & predicted)
        self.predicted += len(predicted)
        self.gold += len(gold)

    def merge(self, other: Counts) -> None:
        self.correct += other.correct
        self.predicted += other.predicted
        self.gold += other.gold

    def prf(self) -> dict[str, float | int]:
        return prf(self.correct, self.predicted, self.gold)


@dataclass
class ExtractionCounts:
    """Micro-averaged triple / entity-pair / relation counts; add documents, merge shards, report."""

    triple: Counts = field(default_factory=Counts)
    entity: Counts = field(default_factory=Counts)
    relation: Counts = field(default_factory=Counts)
    documents: int = 0

    def add(self, gold: Iterable[Triple], predicted: Iterable[Triple]) -> None:
        """One document's gold and predicted triples (duplicates count once)."""
        gold, predicted = set(gold), set(predicted)
        self.triple.add(gold, predicted)
        self.entity.add({(t.subject, t.object) for t in gold}, {(t.subject, t.object) for t in predicted})
        self.relation.add({t.relation for t in gold}, {t.relation for t in predicted})
        self.documents += 1

    def merge(self, other: ExtractionCounts) -> ExtractionCounts:
        """Add another shard's counts to these; returns self."""
        for level in LEVELS:
            getattr(self, level).merge(getattr(other, level))
        self.documents += other.documents
        return self

    def report(self) -> dict[str, dict[str, float | int]]:
        """``{"triple": prf, "entity": prf, "relation": prf}``."""
        return {level: getattr(self, level).prf() for level in LEVELS}
