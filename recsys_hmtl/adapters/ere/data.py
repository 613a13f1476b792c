"""The ERE adapter's data: the splits read once, tokenized, encoded, and batched per epoch.

The validation split is the data set's own (``data.val_split``) or, where a data set has none to
spare (NYT here trains on its val split), the last ``data.val_fraction`` of the training documents,
which are then not trained on.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ...errors import InputError
from .config import EreDataConfig
from .document import Corpus
from .encoders import build_encoder
from .features import EreBatch, EreExample, collate, encode_document
from .readers import read_split, split_file

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass
class EreData:
    """Encoded examples per split, the relation names (index = id), the tokenizer's state (for a
    scratch encoder: its vocabulary, fitted on the training texts), and the read counts."""

    examples: dict[str, list[EreExample]]
    relations: list[str]
    tokenizer_state: dict | None
    pad_id: int
    report: dict


def split_paths(cfg: EreDataConfig) -> dict[str, Path]:
    """The file of every split the config reads (InputError naming a missing one)."""
    names = {"train": cfg.train_split, "val": cfg.val_split, "test": cfg.test_split}
    return {split: split_file(cfg.format, cfg.root, name) for split, name in names.items() if name}


def read_corpora(cfg: EreDataConfig) -> dict[str, Corpus]:
    """Every split as a :class:`Corpus`; a held-out tail of train when ``val_split`` is empty."""
    names = {"train": cfg.train_split, "val": cfg.val_split, "test": cfg.test_split}
    corpora = {split: read_split(cfg.format, cfg.root, name, relations_path=cfg.relations)
               for split, name in names.items() if name}
    if not cfg.val_split:
        train = corpora["train"]
        held = max(1, int(len(train.documents) * cfg.val_fraction))
        if held >= len(train.documents):
            raise InputError(f"holding out {held} of {len(train.documents)} training documents leaves none "
                             "to train on", key="data.val_fraction")
        corpora["val"] = Corpus(train.documents[-held:], train.relations, train.source + " (held-out tail)")
        corpora["train"] = Corpus(train.documents[:-held], train.relations, train.source, train.dropped,
                                  train.dropped_examples)
    if cfg.max_train_documents:
        train = corpora["train"]
        corpora["train"] = Corpus(train.documents[: cfg.max_train_documents], train.relations, train.source,
                                  train.dropped, train.dropped_examples)
    for split, corpus in corpora.items():
        if corpus.dropped:
            log.warning("%s: %d gold triple(s) dropped: an entity's text does not occur in its sentence "
                        "(e.g. %s)", corpus.source, corpus.dropped, "; ".join(corpus.dropped_examples[:2]))
    return corpora


def prepare(cfg: EreDataConfig, encoder: str, encoder_options: dict) -> EreData:
    """Read, tokenize and encode every split; the relation inventory is the training split's."""
    corpora = read_corpora(cfg)
    relations = corpora["train"].relations
    known = set(relations)
    for split, corpus in corpora.items():
        extra = sorted({t.relation for d in corpus.documents for t in d.triples} - known)
        if extra:
            raise InputError(f"the {split} split has relation(s) {extra[:3]} that the training split's "
                             "inventory lacks", file=corpus.source, key="data.relations")
    _, tokenizer = build_encoder(encoder, texts=[d.text for d in corpora["train"].documents], **encoder_options)
    ids = {name: i for i, name in enumerate(relations)}
    examples = {split: [encode_document(d, tokenizer, ids, cfg.max_length) for d in corpus.documents]
                for split, corpus in corpora.items()}
    report = {split: {"documents": len(corpus.documents), "source": corpus.source,
                      "dropped_triples": corpus.dropped,
                      "triples": sum(len(d.triples) for d in corpus.documents),
                      "truncated_triples": sum(e.truncated for e in examples[split]),
                      "unaligned_triples": sum(e.unaligned for e in examples[split])}
              for split, corpus in corpora.items()}
    return EreData(examples, list(relations), tokenizer.to_dict(), tokenizer.pad_id, report)


class ExampleStream:
    """Batches of ``examples``: shuffled per epoch from ``seed`` (the same order on a resume)."""

    def __init__(self, examples: list[EreExample], batch_size: int, *, shuffle: bool, seed: int = 0,
                 pad_id: int = 0) -> None:
        self.examples, self.batch_size, self.shuffle, self.seed = examples, batch_size, shuffle, seed
        self.pad_id, self.epoch = pad_id, 0

    def __len__(self) -> int:
        return -(-len(self.examples) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, start: int = 0) -> Iterator[EreBatch]:
        order = list(range(len(self.examples)))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        for b in range(start, len(self)):
            chosen = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield collate([self.examples[i] for i in chosen], pad_id=self.pad_id)

    def __iter__(self) -> Iterator[EreBatch]:
        return self.batches()
