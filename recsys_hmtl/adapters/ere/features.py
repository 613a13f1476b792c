"""Documents → model inputs and training targets (Appendix E.1, the targets of Eq. 34 and 35).

:func:`encode_document` tokenizes one :class:`.document.Document` and turns its located triples into

- boundary targets ``y^pos`` for pos ∈ (subject_start, subject_end, object_start, object_end)
  (:data:`BOUNDARIES`): 0/1 per token, Eq. 34's tags. A mention ``[start, end)`` starts at the first
  token overlapping it (the token whose offsets contain ``start``) and ends at the last one (the
  token containing ``end - 1``);
- relation candidates, Eq. 35's ``r_i``: every (subject span, object span) combination of the
  document's gold subject spans × gold object spans. A combination that is a gold triple is one
  candidate per gold relation (WebNLG has a few pairs with two relations: each is a separate
  candidate, so Eq. 35 sums ``-log p^r`` over all gold triples and the softmax learns to split its
  mass between them; :mod:`.decode` can return more than one relation per pair); every other
  combination is a negative labelled "no relation" (id = number of relations).

A triple whose subject or object lies (partly) beyond the ``max_length`` tokens kept is no target
and is counted in :attr:`EreExample.truncated`; one whose mention covers no token at all (text the
tokenizer drops) is counted in :attr:`EreExample.unaligned`. Either way its gold triple is still
scored. A mention whose boundary falls inside a token ("Peter" in "Peterson") is still a target (the
whole token) but can never be decoded to its exact text: counted in :attr:`EreExample.inexact`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import torch
from torch import Tensor

from .document import Document, Span, Triple
from .tokenizers import Tokenizer

BOUNDARIES = ("subject_start", "subject_end", "object_start", "object_end")

# (start token, end token) inclusive
TokenSpan = tuple[int, int]


@dataclass
class EreExample:
    """One encoded document. ``boundary[pos][i]``: 1 when token ``i`` is a ``BOUNDARIES[pos]``;
    ``gold``: ``(s_start, s_end, o_start, o_end, relation id)`` token tuples of the usable triples;
    ``candidates``: the training pairs (same layout, label ``num_relations`` = no relation);
    ``triples``: the document's gold triples (what the metrics score); ``text``/``offsets``: to map
    decoded token spans back to strings."""

    text: str
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    boundary: list[list[int]]
    gold: list[tuple[int, int, int, int, int]]
    candidates: list[tuple[int, int, int, int, int]]
    triples: frozenset[Triple]
    truncated: int = 0
    unaligned: int = 0
    inexact: int = 0
    id: str = ""

    def __len__(self) -> int:
        return len(self.input_ids)


def token_span(span: Span, offsets: Sequence[tuple[int, int]]) -> TokenSpan | None:
    """The first and last (non-special) token overlapping ``span``, or None if none does."""
    hits = [i for i, (a, b) in enumerate(offsets) if a < b and a < span.end and b > span.start]
    return (hits[0], hits[-1]) if hits else None


def _exact(span: Span, tokens: TokenSpan, offsets: Sequence[tuple[int, int]]) -> bool:
    return offsets[tokens[0]][0] == span.start and offsets[tokens[1]][1] == span.end


def encode_document(
    doc: Document, tokenizer: Tokenizer, relation_ids: Mapping[str, int], max_length: int = 128
) -> EreExample:
    """Tokenize ``doc`` (at most ``max_length`` tokens) and build its targets (module docstring).
    ``relation_ids``: relation name → id (0..R-1); a located relation not in it is a ValueError."""
    ids, offsets = tokenizer.encode(doc.text, max_length)
    was_cut = len(ids) >= max_length and len(tokenizer.encode(doc.text, None)[0]) > len(ids)
    covered = max((b for a, b in offsets if a < b), default=0) if was_cut else len(doc.text)
    no_relation = len(relation_ids)

    boundary = [[0] * len(ids) for _ in BOUNDARIES]
    gold: list[tuple[int, int, int, int, int]] = []
    truncated = unaligned = inexact = 0
    for located in doc.located:
        relation = located.triple.relation
        if relation not in relation_ids:
            raise ValueError(f"relation {relation!r} of document {doc.id!r} has no id")
        if located.subject.end > covered or located.object.end > covered:
            truncated += 1
            continue
        subject, obj = token_span(located.subject, offsets), token_span(located.object, offsets)
        if subject is None or obj is None:
            unaligned += 1
            continue
        exact = _exact(located.subject, subject, offsets) and _exact(located.object, obj, offsets)
        inexact += not exact
        for pos, token in enumerate((*subject, *obj)):
            boundary[pos][token] = 1
        item = (*subject, *obj, relation_ids[relation])
        if item not in gold:
            gold.append(item)

    subjects = list(dict.fromkeys(g[:2] for g in gold))
    objects = list(dict.fromkeys(g[2:4] for g in gold))
    candidates = []
    for s in subjects:
        for o in objects:
            labels = [g[4] for g in gold if g[:2] == s and g[2:4] == o]
            candidates.extend((*s, *o, label) for label in (labels or [no_relation]))
    return EreExample(
        text=doc.text, input_ids=ids, offsets=offsets, boundary=boundary, gold=gold,
        candidates=candidates, triples=frozenset(doc.triples), truncated=truncated,
        unaligned=unaligned, inexact=inexact, id=doc.id,
    )


@dataclass
class EreBatch:
    """Padded examples. ``input_ids``/``attention_mask`` ``[B, L]`` (mask 1 on real tokens),
    ``boundary`` ``[B, L, 4]`` (order :data:`BOUNDARIES`); the relation candidates as parallel
    index tensors ``[P]``: ``pair_doc`` (row in the batch), token positions ``s_start, s_end,
    o_start, o_end`` and ``pair_label`` (relation id; ``R`` = no relation)."""

    input_ids: Tensor
    attention_mask: Tensor
    boundary: Tensor
    pair_doc: Tensor
    s_start: Tensor
    s_end: Tensor
    o_start: Tensor
    o_end: Tensor
    pair_label: Tensor
    examples: list[EreExample]

    TENSORS = ("input_ids", "attention_mask", "boundary", "pair_doc", "s_start", "s_end",
               "o_start", "o_end", "pair_label")

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device: torch.device | str) -> "EreBatch":
        """A copy with every tensor on ``device`` (the examples are shared, not copied)."""
        return replace(self, **{name: getattr(self, name).to(device) for name in self.TENSORS})


def collate(examples: Sequence[EreExample], pad_id: int = 0) -> EreBatch:
    """Pad ``examples`` to the longest one (``pad_id``: the tokenizer's) and gather candidates."""
    if not examples:
        raise ValueError("collate needs at least one example")
    size, length = len(examples), max(len(ex) for ex in examples)
    input_ids = torch.full((size, length), pad_id, dtype=torch.long)
    mask = torch.zeros((size, length), dtype=torch.long)
    boundary = torch.zeros((size, length, len(BOUNDARIES)), dtype=torch.long)
    pairs: list[tuple[int, ...]] = []
    for row, ex in enumerate(examples):
        n = len(ex)
        input_ids[row, :n] = torch.tensor(ex.input_ids, dtype=torch.long)
        mask[row, :n] = 1
        boundary[row, :n] = torch.tensor(ex.boundary, dtype=torch.long).T
        pairs.extend((row, *c) for c in ex.candidates)
    columns = torch.tensor(pairs, dtype=torch.long).reshape(-1, 6).T
    return EreBatch(input_ids, mask, boundary, *columns, examples=list(examples))
