"""ERE metrics: micro-averaged triple / entity-pair / relation P, R, F1 (hand-computed cases)."""

from __future__ import annotations

import pytest

from recsys_hmtl.adapters.ere.document import Triple
from recsys_hmtl.adapters.ere.metrics import ExtractionCounts, prf

T = Triple


def test_prf_arithmetic_and_empty_denominators():
    # P = 2/4 = 0.5, R = 2/5 = 0.4, F1 = 2 * 0.5 * 0.4 / 0.9 = 0.4444...
    assert prf(2, 4, 5) == pytest.approx(
        {"precision": 0.5, "recall": 0.4, "f1": 0.4 / 0.9, "correct": 2, "predicted": 4, "gold": 5})
    assert prf(0, 0, 3) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "correct": 0, "predicted": 0, "gold": 3}
    assert prf(0, 2, 0)["f1"] == 0.0 and prf(0, 0, 0)["precision"] == 0.0


def _documents():
    return [
        # doc 1. gold {(A,born_in,B), (A,lives_in,C)}; predicted {(A,born_in,B), (A,born_in,C), (B,contains,A)}
        #   triple: correct 1 (A,born_in,B); predicted 3; gold 2
        #   entity: gold {(A,B),(A,C)}; predicted {(A,B),(A,C),(B,A)}: correct 2, predicted 3, gold 2
        #   relation: gold {born_in, lives_in}; predicted {born_in, contains}: correct 1, predicted 2, gold 2
        ({T("A", "born_in", "B"), T("A", "lives_in", "C")},
         [T("A", "born_in", "B"), T("A", "born_in", "C"), T("B", "contains", "A")]),
        # doc 2. no gold; predicted (X,r,Y) twice (counts once)
        #   triple 0/1/0, entity 0/1/0, relation 0/1/0
        (set(), [T("X", "r", "Y"), T("X", "r", "Y")]),
        # doc 3. gold {(D,r,E), (D,s,E)}; nothing predicted
        #   triple 0/0/2, entity: one pair (D,E): 0/0/1, relation {r, s}: 0/0/2
        ({T("D", "r", "E"), T("D", "s", "E")}, []),
    ]


# sums: triple   correct 1, predicted 3+1+0 = 4, gold 2+0+2 = 4 -> P 1/4, R 1/4, F1 1/4
#       entity   correct 2, predicted 3+1+0 = 4, gold 2+0+1 = 3 -> P 2/4, R 2/3, F1 2*.5*(2/3)/(.5+2/3) = 4/7
#       relation correct 1, predicted 2+1+0 = 3, gold 2+0+2 = 4 -> P 1/3, R 1/4, F1 2*(1/12)/(7/12) = 2/7
EXPECTED = {
    "triple": (1, 4, 4, 0.25, 0.25, 0.25),
    "entity": (2, 4, 3, 0.5, 2 / 3, 4 / 7),
    "relation": (1, 3, 4, 1 / 3, 0.25, 2 / 7),
}


def _check(report: dict) -> None:
    assert set(report) == set(EXPECTED)
    for level, (correct, predicted, gold, p, r, f1) in EXPECTED.items():
        got = report[level]
        assert (got["correct"], got["predicted"], got["gold"]) == (correct, predicted, gold), level
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p, r, f1)), level


def test_hand_computed_split():
    counts = ExtractionCounts()
    for gold, predicted in _documents():
        counts.add(gold, predicted)
    assert counts.documents == 3
    _check(counts.report())


def test_merge_equals_single_pass():
    shards = [ExtractionCounts(), ExtractionCounts()]
    for i, (gold, predicted) in enumerate(_documents()):
        shards[i % 2].add(gold, predicted)
    merged = ExtractionCounts().merge(shards[0]).merge(shards[1])
    assert merged.documents == 3
    _check(merged.report())
    single = ExtractionCounts()
    for gold, predicted in _documents():
        single.add(gold, predicted)
    assert merged == single


def test_empty_predictions_and_perfect():
    counts = ExtractionCounts()
    counts.add([T("A", "r", "B")], [])
    report = counts.report()
    assert report["triple"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "correct": 0, "predicted": 0, "gold": 1}
    perfect = ExtractionCounts()
    perfect.add([T("A", "r", "B"), T("A", "r", "B")], {T("A", "r", "B")})  # duplicates in gold count once
    assert all(level["f1"] == 1.0 and level["gold"] == 1 for level in perfect.report().values())


def test_nothing_at_all():
    counts = ExtractionCounts()
    counts.add([], [])
    assert all(level["f1"] == 0.0 and level["gold"] == 0 for level in counts.report().values())
    assert ExtractionCounts().report()["triple"]["predicted"] == 0


def test_entity_pairs_are_directed_and_relation_free():
    counts = ExtractionCounts()
    # gold (A,r,B); predicted (A,s,B) and (B,r,A): entity pair (A,B) matches, (B,A) does not
    # entity: correct 1, predicted 2, gold 1; relation: gold {r}, predicted {r, s}: correct 1, predicted 2
    counts.add({T("A", "r", "B")}, {T("A", "s", "B"), T("B", "r", "A")})
    report = counts.report()
    assert (report["triple"]["correct"], report["triple"]["predicted"]) == (0, 2)
    assert (report["entity"]["correct"], report["entity"]["predicted"], report["entity"]["gold"]) == (1, 2, 1)
    assert (report["relation"]["correct"], report["relation"]["predicted"]) == (1, 2)
