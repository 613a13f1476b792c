"""The text adapter's data side: the FDU-MTL reader on the genuine shared files (counts per
domain, label balance), reading errors, the vocabulary, the validation hold-out, accuracy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recsys_hmtl.adapters.text.config import AMAZON_DOMAINS, TextDataConfig
from recsys_hmtl.adapters.text.data import held_out, prepare
from recsys_hmtl.adapters.text.metrics import AccuracyCounts
from recsys_hmtl.adapters.text.readers import domain_file, read_reviews
from recsys_hmtl.adapters.text.vocab import PAD_ID, UNK_ID, Vocabulary
from recsys_hmtl.errors import InputError

# (train reviews, train positives, test positives) per domain; every test file has 400 reviews.
GENUINE = {
    "apparel": (1600, 785, 215), "baby": (1500, 800, 200), "books": (1600, 798, 202),
    "camera_photo": (1597, 805, 194), "dvd": (1600, 802, 198), "electronics": (1598, 802, 198),
    "health_personal_care": (1600, 812, 188), "kitchen_housewares": (1600, 808, 192),
    "magazines": (1570, 783, 217), "music": (1600, 801, 199), "software": (1515, 788, 212),
    "sports_outdoors": (1600, 810, 190), "toys_games": (1600, 794, 206), "video": (1600, 787, 213),
}


@pytest.fixture
def amazon(shared_data) -> Path:
    root = shared_data / "text" / "amazon_mtl"
    if not root.is_dir():
        pytest.skip(f"FDU-MTL not found at {root}")
    return root


def test_genuine_counts_and_label_balance(amazon):
    """Seed 002 §5.1: 14 domains, 22,180 training and 5,600 test reviews; labels near balanced."""
    assert tuple(GENUINE) == AMAZON_DOMAINS
    train_total = test_total = 0
    for domain, (n_train, pos_train, pos_test) in GENUINE.items():
        train = read_reviews(domain_file(amazon, domain, "train"))
        test = read_reviews(domain_file(amazon, domain, "test"))
        assert len(train.reviews) == n_train and len(test.reviews) == 400, domain
        assert sum(r.label for r in train.reviews) == pos_train, domain
        assert sum(r.label for r in test.reviews) == pos_test, domain
        assert 0.45 < pos_train / n_train < 0.55 and 0.45 < pos_test / 400 < 0.55, domain
        empty = sum(not r.tokens for r in train.reviews + test.reviews)
        assert empty == (domain == "sports_outdoors"), domain  # its line 1,121 is "0<TAB>" (kept, all PAD)
        train_total += n_train
        test_total += 400
    assert (train_total, test_total) == (22180, 5600)


def test_non_utf8_lines_are_read_as_windows_1252(amazon):
    dvd = read_reviews(domain_file(amazon, "dvd", "train"))
    assert dvd.non_utf8_lines == 1 and len(dvd.reviews) == 1600
    mr = read_reviews(domain_file(amazon, "MR", "test"))  # the optional extra domain: \x96, \xe9, NEL
    assert len(mr.reviews) == 400 and mr.non_utf8_lines > 0
    assert any("pokémon" in r.tokens for r in mr.reviews)


@pytest.mark.parametrize("content, message", [
    (b"1\tgood\n0 bad because no tab\n", "line 2: no TAB"),
    (b"1\tgood\n\n2\tthree stars\n", "line 3: the label must be 0 or 1, got '2'"),
    (b"positive\tgreat\n", "line 1: the label must be 0 or 1"),
])
def test_reading_errors_name_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "books.task.train"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_reviews(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_domain_file_names_it_and_the_key(tmp_path):
    (tmp_path / "books.task.train").write_text("1\tgood\n")
    with pytest.raises(InputError, match=r"bookz\.task\.train.*'data\.domains'.*did you mean 'books'"):
        domain_file(tmp_path, "bookz", "train")
    with pytest.raises(InputError, match=r"books\.task\.test.*no test file for domain 'books'"):
        domain_file(tmp_path, "books", "test")
    with pytest.raises(InputError, match="'data.root'"):
        domain_file(tmp_path / "nowhere", "books", "train")


def test_vocabulary_counts_caps_and_unknown_words():
    vocab = Vocabulary.fit([["b", "a", "b"], ["c", "b", "a", "d"]], min_count=2)
    assert vocab.words == ("<pad>", "<unk>", "b", "a")
    assert vocab.encode(["a", "zz", "b", "c"], max_length=3) == [3, UNK_ID, 2]
    assert Vocabulary.fit([["b", "a", "b", "c"]], max_size=3).words == ("<pad>", "<unk>", "b")
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab


def test_validation_is_a_fixed_tenth_of_each_training_file(amazon):
    a, b = held_out("books", 1600, 0.1), held_out("books", 1600, 0.1)
    assert len(a) == 160 and (a == b).all() and not (a == held_out("dvd", 1600, 0.1)).all()
    cfg = TextDataConfig(root=str(amazon), domains=["baby", "books"], max_length=16, max_train_per_task=100)
    data = prepare(cfg, ("baby", "books"))
    assert [len(data.splits[s]["baby"]) for s in ("train", "val", "test")] == [100, 150, 400]
    assert data.report["domains"]["books"]["val"]["reviews"] == 160
    enc = data.splits["test"]["books"]
    assert enc.tokens.shape == (400, 16) and int(enc.lengths.max()) == 16 and enc.labels.sum() == 202
    assert int(enc.tokens[0, int(enc.lengths[0]):].ne(PAD_ID).sum()) == 0  # PAD after the review
    # the vocabulary is the training reviews' words only: a test-only word maps to UNK
    train_words = {w for s in ("baby", "books") for w in data.vocab.words}
    assert len(data.vocab) == len(train_words) and data.report["domains"]["books"]["test"]["unk_rate"] > 0


def test_accuracy_against_a_hand_computed_case():
    counts = AccuracyCounts(["books", "dvd", "music"])
    counts.add("books", torch.tensor([1, 0, 1, 1]), torch.tensor([1, 0, 0, 1]))   # 3 of 4
    counts.add("books", torch.tensor([0]), torch.tensor([1]))                     # 3 of 5
    counts.add("dvd", torch.tensor([0, 0]), torch.tensor([0, 0]))                 # 2 of 2
    report = counts.report()
    assert report["tasks"]["books"] == {"accuracy": 0.6, "correct": 3, "reviews": 5}
    assert report["tasks"]["dvd"]["accuracy"] == 1.0
    assert report["tasks"]["music"] == {"accuracy": None, "correct": 0, "reviews": 0}
    assert report["avg_accuracy"] == pytest.approx(0.8)  # mean of 0.6 and 1.0; music has no reviews
