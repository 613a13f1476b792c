"""The text adapter's data: each domain's files read once, split, encoded with one vocabulary.

Splits: FDU-MTL has a training and a test file per domain. The validation split of a domain is
``data.val_fraction`` of its training file (10 % by default), a fixed draw per domain (NumPy's
generator seeded with the domain name's CRC-32: the same reviews for every run seed and machine),
which is then not trained on; test is the domain's ``.task.test`` file (400 reviews per Amazon
domain, 5,600 over the 14). The vocabulary is fitted on the reviews trained on (after the hold-out
and ``data.max_train_per_task``), over every domain of the run.

``model.embeddings: minilm`` tokenises with all-MiniLM-L6-v2's WordPiece tokenizer instead
(:mod:`.minilm`): the vocabulary is MiniLM's 30,522 pieces (``data.min_count`` and
``data.max_vocab`` do not apply, there is no per-domain vocabulary), ``data.max_length`` counts
pieces, and :class:`TextData` carries MiniLM's token embedding table. ``TextData.embeddings`` says
which tokenisation the ids are of; the model refuses data tokenised for the other option.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import InputError
from .config import TextDataConfig
from .minilm import EMBEDDINGS, load_minilm
from .readers import DomainFile, Review, domain_file, read_reviews
from .vocab import PAD_ID, UNK_ID, Vocabulary

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Encoded:
    """One domain's reviews of one split: ``tokens`` [N, L] (PAD-padded to the longest review,
    at most ``data.max_length``), ``lengths`` [N] (tokens kept, at least 1 counted for an empty
    review), ``labels`` [N] (0/1)."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.numel())


@dataclass
class TextData:
    """``splits[split][domain]``; ``domains`` in priority order; the vocabulary of every domain's
    training reviews together (the ids of ``splits``), each domain's own (fitted on its training
    reviews alone, with the same rules: the vocabulary a single-task run of it has), and what was
    read (:attr:`report`). ``embeddings``: the tokenisation of the ids (``scratch``: the word
    vocabulary; ``minilm``: MiniLM's pieces, with their embedding table ``pretrained``, and no
    per-domain vocabularies)."""

    domains: tuple[str, ...]
    vocab: Vocabulary
    splits: dict[str, dict[str, Encoded]]
    report: dict
    domain_vocabs: dict[str, Vocabulary]
    embeddings: str = "scratch"
    pretrained: torch.Tensor | None = None

    def remap(self, domain: str) -> torch.Tensor:
        """[len(vocab)] ids of the shared vocabulary's words in ``domain``'s own (UNK when it lacks one)."""
        own = self.domain_vocabs[domain]
        return torch.tensor(own.encode(self.vocab.words, len(self.vocab)), dtype=torch.long)


def input_paths(cfg: TextDataConfig, domains: tuple[str, ...]) -> list[Path]:
    """The training and test file of every domain (InputError naming a missing one)."""
    return [domain_file(cfg.root, d, split) for d in domains for split in ("train", "test")]


def held_out(domain: str, n: int, fraction: float) -> np.ndarray:
    """The indices (file order) of the ``round(n · fraction)`` training reviews of ``domain`` held
    out for validation (at least one): a fixed draw, independent of the run seed."""
    count = min(n - 1, max(1, round(n * fraction)))
    rng = np.random.default_rng(zlib.crc32(domain.encode()))
    return np.sort(rng.permutation(n)[:count])


def split_domain(domain: str, train: DomainFile, cfg: TextDataConfig) -> tuple[list[Review], list[Review]]:
    """(training reviews, validation reviews) of one domain's training file."""
    n = len(train.reviews)
    if n < 2:
        raise InputError(f"{n} review(s): too few to hold out a validation split", file=str(train.path))
    val_idx = set(held_out(domain, n, cfg.val_fraction).tolist())
    kept = [r for i, r in enumerate(train.reviews) if i not in val_idx]
    val = [train.reviews[i] for i in sorted(val_idx)]
    if cfg.max_train_per_task:
        kept = kept[: cfg.max_train_per_task]
    return kept, val


def encode(reviews: list[Review], vocab: Vocabulary, max_length: int) -> Encoded:
    return encode_ids([vocab.encode(r.tokens, max_length) for r in reviews], reviews, max_length)


def encode_ids(ids: list[list[int]], reviews: list[Review], max_length: int) -> Encoded:
    """The tensors of the reviews' token ids, each cut to its first ``max_length``."""
    ids = [x[:max_length] for x in ids]
    width = max([len(x) for x in ids] + [1])
    tokens = torch.full((len(ids), width), PAD_ID, dtype=torch.long)
    for row, x in enumerate(ids):
        tokens[row, : len(x)] = torch.tensor(x, dtype=torch.long)
    lengths = torch.tensor([max(1, len(x)) for x in ids], dtype=torch.long)
    labels = torch.tensor([r.label for r in reviews], dtype=torch.long)
    return Encoded(tokens, lengths, labels)


def prepare(cfg: TextDataConfig, domains: tuple[str, ...], embeddings: str = "scratch") -> TextData:
    """Read, split and encode every domain of the run, tokenised for ``model.embeddings``."""
    if embeddings not in EMBEDDINGS:
        raise ValueError(f"embeddings must be one of {EMBEDDINGS}, got {embeddings!r}")
    raw: dict[str, dict[str, list[Review]]] = {s: {} for s in SPLITS}
    report: dict = {"domains": {}, "non_utf8_lines": 0}
    for d in domains:
        train_file = read_reviews(domain_file(cfg.root, d, "train"))
        test_file = read_reviews(domain_file(cfg.root, d, "test"))
        for f in (train_file, test_file):
            if not f.reviews:
                raise InputError("no reviews", file=str(f.path), key="data.domains")
        raw["train"][d], raw["val"][d] = split_domain(d, train_file, cfg)
        raw["test"][d] = test_file.reviews
        report["non_utf8_lines"] += train_file.non_utf8_lines + test_file.non_utf8_lines
    if embeddings == "minilm":
        return _prepare_minilm(cfg, domains, raw, report)
    vocab = Vocabulary.fit((r.tokens for d in domains for r in raw["train"][d]), cfg.min_count, cfg.max_vocab)
    own = {d: Vocabulary.fit((r.tokens for r in raw["train"][d]), cfg.min_count, cfg.max_vocab) for d in domains}
    splits = {s: {d: encode(raw[s][d], vocab, cfg.max_length) for d in domains} for s in SPLITS}
    for d in domains:
        report["domains"][d] = {s: _counts(raw[s][d], splits[s][d], [len(r.tokens) for r in raw[s][d]],
                                           cfg.max_length, UNK_ID) for s in SPLITS}
    report["vocabulary"] = len(vocab)
    report["rows"] = {s: sum(len(splits[s][d]) for d in domains) for s in SPLITS}
    report["domain_vocabularies"] = {d: len(v) for d, v in own.items()}
    return TextData(tuple(domains), vocab, splits, report, own)


def _prepare_minilm(cfg: TextDataConfig, domains: tuple[str, ...], raw: dict, report: dict) -> TextData:
    """Every split as MiniLM WordPiece ids (the vocabulary is MiniLM's, fixed)."""
    minilm = load_minilm()
    splits: dict[str, dict[str, Encoded]] = {s: {} for s in SPLITS}
    for d in domains:
        report["domains"][d] = {}
        for s in SPLITS:
            ids = minilm.encode([r.tokens for r in raw[s][d]])
            splits[s][d] = encode_ids(ids, raw[s][d], cfg.max_length)
            report["domains"][d][s] = _counts(raw[s][d], splits[s][d], [len(x) for x in ids], cfg.max_length,
                                              minilm.unk_id)
    report.update(embeddings="minilm", tokenizer="all-MiniLM-L6-v2 WordPiece", vocabulary=len(minilm.pieces),
                  rows={s: sum(len(splits[s][d]) for d in domains) for s in SPLITS})
    return TextData(tuple(domains), Vocabulary(minilm.pieces), splits, report, {}, embeddings="minilm",
                    pretrained=minilm.embeddings)


def _counts(reviews: list[Review], encoded: Encoded, full_lengths: list[int], max_length: int, unk_id: int) -> dict:
    real = encoded.tokens != PAD_ID
    return {"reviews": len(reviews), "positives": sum(r.label for r in reviews),
            "truncated": sum(n > max_length for n in full_lengths),
            "unk_rate": round(float((encoded.tokens == unk_id).sum()) / max(1, int(real.sum())), 4)}
