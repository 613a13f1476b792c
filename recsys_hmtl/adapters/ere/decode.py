"""Boundary and relation probabilities → triples (the inference side of Eq. 32 and 33).

Spans are decoded as CasRel/TPLinker do: every subject-start token with ``p^subject_start > 0.5``
is paired with the nearest subject-end token at or after it with ``p^subject_end > 0.5`` (at most
``max_span_tokens`` tokens long); the same for objects. Special tokens (offsets ``(0, 0)``) and
padding are never boundaries. Every (subject span, object span) combination of a document is a
candidate the relation head (Eq. 33) classifies; a candidate yields

- its argmax relation, unless the argmax is "no relation" (the last class), and
- any other relation with probability ≥ ``extra_relation_threshold`` (default 0.4), for the pairs
  with several gold relations: training puts ~1/2 of the mass on each of two relations
  (:mod:`.features`), so the second one sits just under 0.5 and a 0.5 cut would miss it.

Token spans become strings through the offsets: ``text[offsets[start][0]:offsets[end][1]]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from .document import Triple
from .features import EreExample, TokenSpan


@dataclass(frozen=True)
class DecodeConfig:
    """``threshold``: boundary probability cut; ``max_span_tokens``: longest span (tokens);
    ``max_spans``: spans kept per document and role (the most confident starts; bounds the
    candidates of an untrained model at ``max_spans²``); ``extra_relation_threshold``: see module."""

    threshold: float = 0.5
    max_span_tokens: int = 32
    max_spans: int = 24
    extra_relation_threshold: float = 0.4


def boundary_mask(example: EreExample, length: int) -> list[bool]:
    """Tokens that may be a span boundary: real text tokens (no [CLS]/[SEP]/padding)."""
    mask = [a < b for a, b in example.offsets]
    return mask + [False] * (length - len(mask))


def decode_spans(
    p_start: Sequence[float], p_end: Sequence[float], valid: Sequence[bool], config: DecodeConfig
) -> list[TokenSpan]:
    """Start tokens above the threshold, each closed by the nearest end token at/after it."""
    thr = config.threshold
    starts = [i for i, (p, ok) in enumerate(zip(p_start, valid)) if ok and p > thr]
    ends = [j for j, (p, ok) in enumerate(zip(p_end, valid)) if ok and p > thr]
    spans: list[tuple[float, TokenSpan]] = []
    for i in starts:
        j = next((j for j in ends if j >= i), None)
        if j is not None and j - i < config.max_span_tokens:
            spans.append((p_start[i], (i, j)))
    spans.sort(key=lambda item: -item[0])
    return sorted(span for _, span in spans[: config.max_spans])


def candidate_pairs(
    boundary_probs: Tensor, examples: Sequence[EreExample], config: DecodeConfig
) -> tuple[Tensor, ...]:
    """``boundary_probs [B, L, 4]`` (p of tag 1 per :data:`.features.BOUNDARIES`) → the candidate
    index tensors ``(pair_doc, s_start, s_end, o_start, o_end)``, each ``[P]`` long."""
    probs = boundary_probs.detach().float().cpu().tolist()
    rows: list[tuple[int, int, int, int, int]] = []
    for doc, (example, p) in enumerate(zip(examples, probs)):
        valid = boundary_mask(example, len(p))
        columns = list(zip(*p))  # 4 lists of length L
        subjects = decode_spans(columns[0], columns[1], valid, config)
        objects = decode_spans(columns[2], columns[3], valid, config)
        rows.extend((doc, *s, *o) for s in subjects for o in objects)
    table = torch.tensor(rows, dtype=torch.long).reshape(-1, 5).T.to(boundary_probs.device)
    return tuple(table)


def select_relations(relation_probs: Tensor, config: DecodeConfig) -> list[list[int]]:
    """Per candidate (rows of ``[P, R + 1]`` softmax probabilities), the relation ids it yields."""
    no_relation = relation_probs.shape[-1] - 1
    chosen: list[list[int]] = []
    for row in relation_probs.detach().float().cpu().tolist():
        best = max(range(len(row)), key=row.__getitem__)
        ids = [] if best == no_relation else [best]
        ids += [r for r in range(no_relation) if r != best and row[r] >= config.extra_relation_threshold]
        chosen.append(ids)
    return chosen


def span_text(example: EreExample, span: TokenSpan) -> str:
    start, end = span
    return example.text[example.offsets[start][0]: example.offsets[end][1]]


def to_triples(
    examples: Sequence[EreExample], pairs: Sequence[Tensor], relation_ids: list[list[int]],
    relations: Sequence[str],
) -> list[set[Triple]]:
    """One set of :class:`Triple` per example from the candidates ``pairs`` (as returned by
    :func:`candidate_pairs`) and the relations :func:`select_relations` chose for each."""
    out: list[set[Triple]] = [set() for _ in examples]
    columns = [t.tolist() for t in pairs]
    for (doc, ss, se, os_, oe), rels in zip(zip(*columns), relation_ids):
        example = examples[doc]
        subject, obj = span_text(example, (ss, se)), span_text(example, (os_, oe))
        out[doc].update(Triple(subject, relations[r], obj) for r in rels)
    return out
