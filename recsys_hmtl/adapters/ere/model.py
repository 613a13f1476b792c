"""The joint entity-relation extraction model of Appendix E.1.

    H = encoder(D)                                   (PLM: all-MiniLM-L6-v2 or the scratch encoder)
    Z = TransformerLayer_k(... TransformerLayer_1(P H))   (k = 3 pre-norm layers, SwiGLU FFN)
    p^pos = Softmax(W_e tanh(W_s Z + W_o H))         (Eq. 32, pos ∈ the 4 boundary types)
    p^r   = Softmax(W_r r_pair(Z))                   (Eq. 33)
    L_ent = Σ_pos mean_i -log p^pos(y_i^pos)        (Eq. 34, over the real tokens)
    L_rel = mean_i -log p^r(r_i)                     (Eq. 35, over the candidate pairs)

``P`` is a linear projection when the encoder's width differs from ``hidden`` (identity otherwise).
``Z`` is the output of the last layer after the stack's final LayerNorm (standard pre-norm); both
heads read it and it is :attr:`TaskOutputs.shared`, so rep-grad stages differentiate both losses
with respect to it. Eq. 33's ``W_r Z`` is applied to the candidate pair's representation
``r_pair = [Z_s_start; Z_s_end; Z_o_start; Z_o_end]`` (the four boundary token states
concatenated, ``4·hidden``) and has ``R + 1`` classes, the last one "no relation".
Eq. 34/35 are sums in the paper; here they are means (over tokens, over pairs) so the two losses
keep their scale whatever the batch size, which the priority stages' thresholds rely on.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...training.outputs import TaskOutputs
from .decode import DecodeConfig, candidate_pairs, select_relations, to_triples
from .document import Triple
from .features import BOUNDARIES, EreBatch

TASKS = ("entity", "relation")


class SwiGLU(nn.Module):
    """``W2 (silu(W1 x) ⊙ W3 x)`` (Shazeer, 2020), bias-free."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(self.dropout(F.silu(self.w1(x)) * self.w3(x)))


class TransformerLayer(nn.Module):
    """Pre-norm block: ``x + MHA(LN(x))`` then ``x + SwiGLU(LN(x))``; padding keys are masked."""

    def __init__(self, dim: int, heads: int, ffn_hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = SwiGLU(dim, ffn_hidden, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, padding: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.dropout(self.attn(h, h, h, key_padding_mask=padding, need_weights=False)[0])
        return x + self.dropout(self.ffn(self.norm2(x)))


class EreModel(nn.Module):
    """Encoder + ``num_layers`` Transformer layers + the boundary (Eq. 32) and relation (Eq. 33)
    heads; ``forward`` returns the ``entity`` and ``relation`` losses (tasks in that priority).

    ``encoder``: a module ``(input_ids, attention_mask) → H`` with a ``hidden_size`` attribute;
    ``hidden``: width of the Transformer layers and heads; ``num_relations``: R (the relation
    head has R + 1 classes); ``heads``: attention heads (must divide ``hidden``); ``ffn_hidden``:
    SwiGLU width (default ``8/3·hidden`` rounded up to a multiple of 8, the parameter count of a
    4× GELU FFN); ``relations``: the relation names (index = id), for :meth:`predict`."""

    tasks = TASKS

    def __init__(
        self, encoder: nn.Module, hidden: int, num_relations: int, num_layers: int = 3,
        heads: int = 8, dropout: float = 0.1, ffn_hidden: int | None = None,
        relations: Sequence[str] | None = None, decode: DecodeConfig | None = None,
    ) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"heads={heads} must divide hidden={hidden}")
        if num_relations < 1:
            raise ValueError(f"num_relations must be at least 1, got {num_relations}")
        if relations is not None and len(relations) != num_relations:
            raise ValueError(f"{len(relations)} relation names for num_relations={num_relations}")
        enc_dim = int(encoder.hidden_size)
        ffn_hidden = ffn_hidden or -(-int(8 * hidden / 3) // 8) * 8
        self.encoder = encoder
        self.project = nn.Identity() if enc_dim == hidden else nn.Linear(enc_dim, hidden)
        self.layers = nn.ModuleList(
            TransformerLayer(hidden, heads, ffn_hidden, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)
        # Eq. 32: W_s (on Z), W_o (on H), W_e (→ 4 boundary types × 2 tags)
        self.w_s = nn.Linear(hidden, hidden)
        self.w_o = nn.Linear(enc_dim, hidden, bias=False)
        self.w_e = nn.Linear(hidden, 2 * len(BOUNDARIES))
        # Eq. 33: W_r on the pair representation, R relations + "no relation"
        self.w_r = nn.Linear(4 * hidden, num_relations + 1)
        self.num_relations = num_relations
        self.relations = list(relations) if relations is not None else None
        self.decode_config = decode or DecodeConfig()

    def shared_parameters(self) -> list[nn.Parameter]:
        """Encoder, projection, Transformer layers and norm: what both tasks read (``stage.grad_mode:
        params``); frozen encoder layers are left out."""
        parts = (self.encoder, self.project, self.layers, self.norm)
        return [p for part in parts for p in part.parameters() if p.requires_grad]

    # ------------------------------------------------------------------------------ pieces
    def encode(self, batch: EreBatch) -> tuple[Tensor, Tensor]:
        """``(H, Z)``: encoder states ``[B, L, d_enc]`` and last-layer states ``[B, L, hidden]``."""
        h = self.encoder(batch.input_ids, batch.attention_mask)
        padding = ~batch.attention_mask.bool()
        z = self.dropout(self.project(h))
        for layer in self.layers:
            z = layer(z, padding)
        return h, self.norm(z)

    def boundary_logits(self, z: Tensor, h: Tensor) -> Tensor:
        """Eq. 32 before the softmax: ``W_e tanh(W_s Z + W_o H)`` as ``[B, L, 4, 2]``."""
        logits = self.w_e(torch.tanh(self.w_s(z) + self.w_o(h)))
        return logits.unflatten(-1, (len(BOUNDARIES), 2))

    def relation_logits(self, z: Tensor, pairs: Sequence[Tensor]) -> Tensor:
        """Eq. 33 before the softmax for candidates ``(pair_doc, s_start, s_end, o_start, o_end)``:
        ``W_r [Z_s_start; Z_s_end; Z_o_start; Z_o_end]`` as ``[P, R + 1]``."""
        doc, *positions = pairs
        r_pair = torch.cat([z[doc, pos] for pos in positions], dim=-1)
        return self.w_r(self.dropout(r_pair))

    # ------------------------------------------------------------------------------ training
    def forward(self, batch: EreBatch) -> TaskOutputs:
        h, z = self.encode(batch)
        mask = batch.attention_mask.bool()
        logits = self.boundary_logits(z, h)                           # [B, L, 4, 2]
        token_ce = F.cross_entropy(logits[mask].reshape(-1, 2), batch.boundary[mask].reshape(-1),
                                   reduction="none").view(-1, len(BOUNDARIES))
        entity = token_ce.mean(dim=0).sum()                            # Eq. 34
        pairs = (batch.pair_doc, batch.s_start, batch.s_end, batch.o_start, batch.o_end)
        if batch.pair_label.numel():
            relation = F.cross_entropy(self.relation_logits(z, pairs), batch.pair_label)  # Eq. 35
        else:  # no candidates: a zero that still depends on Z (rep-grad stages need a gradient)
            relation = 0.0 * z.sum()
        return TaskOutputs(
            losses={"entity": entity, "relation": relation}, shared=z, extra=None,
            batch_size=batch.batch_size,
        )

    def parameter_groups(self, lr: float, encoder_lr: float | None = None) -> list[dict]:
        """Optimizer groups: the encoder's trainable parameters at ``encoder_lr`` (default ``lr``;
        E.2 fine-tunes the PLM at 2e-5), everything new (layers, heads) at ``lr``. Frozen
        parameters are left out; empty groups are dropped."""
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        encoder = [p for p in self.encoder.parameters() if p.requires_grad]
        new = [p for p in self.parameters() if p.requires_grad and id(p) not in encoder_ids]
        groups = [
            {"name": "encoder", "params": encoder, "lr": lr if encoder_lr is None else encoder_lr},
            {"name": "new", "params": new, "lr": lr},
        ]
        return [g for g in groups if g["params"]]

    def freeze_encoder_layers(self, n: int) -> None:
        """Freeze the encoder's embeddings and its first ``n`` layers (cheaper steps on CPU;
        ``n >= encoder.num_layers`` freezes the whole encoder). Call before building the
        optimizer: :meth:`parameter_groups` leaves frozen parameters out."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.encoder.freeze_layers(n)

    # ----------------------------------------------------------------------------- inference
    @torch.no_grad()
    def predict(
        self, batch: EreBatch, relations: Sequence[str] | None = None,
        config: DecodeConfig | None = None,
    ) -> list[set[Triple]]:
        """Decoded triples per document (:mod:`.decode`), in eval mode (restored afterwards)."""
        relations = relations if relations is not None else self.relations
        if relations is None or len(relations) != self.num_relations:
            raise ValueError(f"predict needs the {self.num_relations} relation names")
        config = config or self.decode_config
        was_training = self.training
        self.eval()
        try:
            h, z = self.encode(batch)
            boundary = self.boundary_logits(z, h).softmax(dim=-1)[..., 1]   # [B, L, 4]
            pairs = candidate_pairs(boundary, batch.examples, config)
            if pairs[0].numel():
                chosen = select_relations(self.relation_logits(z, pairs).softmax(dim=-1), config)
            else:
                chosen = []
            return to_triples(batch.examples, pairs, chosen, relations)
        finally:
            self.train(was_training)
