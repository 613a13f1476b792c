"""Seed 002 §5.2's model: hard parameter sharing, a shared TextCNN, one softmax head per task.

    E = Embedding(review)                         (words of the training vocabulary, trained from scratch)
    h = [max_t ReLU(Conv_k(E))]_{k ∈ 3, 5, 7}     (Kim 2014: ``filters`` maps per kernel size,
                                                   max-over-time pooling, concatenated)
    z = Dropout(h)                                (the shared representation)
    p_i = Softmax(W_i z + b_i)                    (task i's fully connected head, 2 classes)
    L_i = mean over task i's reviews of −log p_i(y)

Task-specific inputs: the rows of a batch are grouped by task (:class:`~.sampler.TextBatch`); the
encoder runs on each task's group separately (trimmed to that group's longest review), so the
gradient of L_i with respect to the shared filters traverses task i's group only. Max-over-time
pools only the windows that lie inside the review (a review shorter than the kernel has one,
padded), so a review's features do not depend on the padding of its batch.

What :attr:`TaskOutputs.shared` is (``model.shared``), i.e. what gradient stages differentiate:

* ``filters`` (default): the shared TextCNN's convolution filters and biases, as parameters: task
  gradients g_i = ∂L_i/∂θ^sh as GetMTL's Algorithm 1 and MGDA define them. The embedding table
  below the filters receives the gradient of Σ h_i L_i (the stage's head weights), as embeddings
  below a dense trunk do in the recommendation adapter.
* ``encoder``: the embedding table too (every parameter of θ^sh; K dense copies of the table per step).
* ``features``: z, the pooled features (rep-grad; one tensor per task's group of rows). With
  task-specific inputs, L_i depends only on task i's rows of z, so the task gradients have
  disjoint supports and their Gram matrix is diagonal: gradient stages then see no conflict
  between tasks (MGDA weights ∝ 1/‖g_i‖², PCGrad never projects). Offered for comparison, not for
  reproducing seed 002.

``sharing: none`` gives every task its own TextCNN and head, trained side by side: the parameters
are disjoint and Adam is per-parameter, so with ``stage: sum`` each task trains as it would alone
with a batch of ``per_task_batch`` reviews (the paper's STL column, in one run; only the epoch is
the largest task's). Each task's embedding covers its own vocabulary (the
words of its training reviews, as a ``single_task`` run fits it), mapped from the shared ids.

``model.embeddings: minilm``: E starts as all-MiniLM-L6-v2's token embeddings (``pretrained``,
30,522 WordPiece pieces × 384; the [PAD] row zeroed, as scratch's is) and is trained on, or kept
fixed with ``freeze_embeddings`` (then it is no shared parameter either). With ``sharing: none``
every task's encoder starts from its own copy of the whole table.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...training.outputs import TaskOutputs
from .sampler import TextBatch
from .vocab import PAD_ID

SHARED = ("filters", "encoder", "features")
SHARING = ("hard", "none")


class TextCNN(nn.Module):
    """Embedding → one Conv1d per kernel size (``filters`` maps) → ReLU → max over time → concat.
    ``remap`` (optional, [V] ids): the input ids are first mapped through it, into a vocabulary of
    ``vocab_size`` words of this encoder's own (a buffer derived from the data, not checkpointed).
    ``pretrained`` (optional, [vocab_size, embedding_dim]): the embedding table's initial values
    (row PAD_ID zeroed); ``freeze``: the table is not trained."""

    def __init__(self, vocab_size: int, embedding_dim: int, filters: int, kernel_sizes: Sequence[int],
                 remap: Tensor | None = None, pretrained: Tensor | None = None, freeze: bool = False) -> None:
        super().__init__()
        self.register_buffer("remap", remap, persistent=False)
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, filters, k) for k in self.kernel_sizes)
        self.out_dim = filters * len(self.kernel_sizes)
        nn.init.uniform_(self.embedding.weight, -0.25, 0.25)  # Kim (2014)'s random word vectors
        with torch.no_grad():
            if pretrained is not None:
                if tuple(pretrained.shape) != (vocab_size, embedding_dim):
                    raise ValueError(f"pretrained embeddings of shape {list(pretrained.shape)}, expected "
                                     f"[{vocab_size}, {embedding_dim}]")
                self.embedding.weight.copy_(pretrained)
            self.embedding.weight[PAD_ID].zero_()
        self.embedding.weight.requires_grad_(not freeze)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """``tokens`` [n, L], ``lengths`` [n] → pooled features [n, filters · kernels]."""
        width = max(self.kernel_sizes)
        if tokens.shape[1] < width:
            tokens = F.pad(tokens, (0, width - tokens.shape[1]), value=PAD_ID)
        if self.remap is not None:
            tokens = self.remap[tokens]
        x = self.embedding(tokens).transpose(1, 2)                        # [n, E, L]
        pooled = []
        for conv, k in zip(self.convs, self.kernel_sizes):
            h = conv(x)                                                    # [n, filters, L - k + 1]
            windows = lengths.clamp(min=k) - k + 1                         # windows inside the review
            outside = torch.arange(h.shape[2], device=h.device)[None, :] >= windows[:, None]
            pooled.append(F.relu(h.masked_fill(outside[:, None, :], float("-inf")).amax(dim=2)))
        return torch.cat(pooled, dim=1)


class TextMTLModel(nn.Module):
    """The shared TextCNN (one, or one per task with ``sharing="none"``) and a 2-class head per
    task; ``forward`` returns the tasks' losses in ``tasks`` order (the priority order).
    ``own_vocabularies`` (``sharing="none"`` only): ``{task: (size, remap)}``, each task's encoder
    embeds its own vocabulary (:meth:`~.data.TextData.remap`), as a single-task run of it would.
    ``pretrained`` and ``freeze_embeddings``: every encoder's initial table and whether it trains."""

    def __init__(self, tasks: Sequence[str], vocab_size: int, embedding_dim: int = 128, filters: int = 100,
                 kernel_sizes: Sequence[int] = (3, 5, 7), dropout: float = 0.5, sharing: str = "hard",
                 shared: str = "filters", own_vocabularies: dict[str, tuple[int, Tensor]] | None = None,
                 pretrained: Tensor | None = None, freeze_embeddings: bool = False) -> None:
        super().__init__()
        if sharing not in SHARING:
            raise ValueError(f"sharing must be one of {SHARING}, got {sharing!r}")
        if shared not in SHARED:
            raise ValueError(f"shared must be one of {SHARED}, got {shared!r}")
        self.tasks = tuple(tasks)
        self.sharing, self.shared = sharing, shared
        if pretrained is not None and own_vocabularies:
            raise ValueError("pretrained embeddings cover the shared vocabulary: no own_vocabularies with them")
        emb = {"pretrained": pretrained, "freeze": freeze_embeddings}
        if sharing == "hard":
            if own_vocabularies:
                raise ValueError("own_vocabularies is for sharing='none' (one encoder per task)")
            self.encoders = nn.ModuleList([TextCNN(vocab_size, embedding_dim, filters, kernel_sizes, **emb)])
        else:
            own = {t: (own_vocabularies or {}).get(t, (vocab_size, None)) for t in self.tasks}
            self.encoders = nn.ModuleList(TextCNN(own[t][0], embedding_dim, filters, kernel_sizes, remap=own[t][1],
                                                  **emb) for t in self.tasks)
        width = self.encoders[0].out_dim
        self.heads = nn.ModuleDict({t: nn.Linear(width, 2) for t in self.tasks})
        self.dropout = nn.Dropout(dropout)
        self._index = {t: i for i, t in enumerate(self.tasks)}

    def encoder_of(self, task: str) -> TextCNN:
        return self.encoders[0 if self.sharing == "hard" else self._index[task]]

    def shared_parameters(self) -> list[nn.Parameter]:
        """θ^sh as ``model.shared`` selects it (``filters``: the convolutions; ``encoder``: all trained ones)."""
        if self.shared == "encoder":
            return [p for e in self.encoders for p in e.parameters() if p.requires_grad]
        return [p for e in self.encoders for p in e.convs.parameters()]

    def features(self, batch: TextBatch) -> dict[str, Tensor]:
        """z of every task's group of rows, each through its encoder (kept apart, so the gradient
        of one task's loss never traverses another task's group)."""
        parts = {}
        for task, rows in batch.slices():
            lengths = batch.lengths[rows]
            tokens = batch.tokens[rows, : int(lengths.max())]
            parts[task] = self.dropout(self.encoder_of(task)(tokens, lengths))
        return parts

    def forward(self, batch: TextBatch) -> TaskOutputs:
        z = self.features(batch)
        missing = [t for t in self.tasks if t not in z]
        if missing:
            raise ValueError(f"the batch has no reviews of task(s) {missing}")
        rows = dict(batch.slices())
        losses = {t: F.cross_entropy(self.heads[t](z[t]), batch.labels[rows[t]]) for t in self.tasks}
        shared = [z[t] for t in self.tasks] if self.shared == "features" else self.shared_parameters()
        return TaskOutputs(losses=losses, shared=shared, extra=None, batch_size=batch.batch_size)

    @torch.no_grad()
    def predict(self, batch: TextBatch) -> Tensor:
        """The predicted class (0/1) of every row, each by its own task's head, in eval mode."""
        was_training = self.training
        self.eval()
        try:
            z = self.features(batch)
            out = torch.empty_like(batch.labels)
            for task, rows in batch.slices():
                out[rows] = self.heads[task](z[task]).argmax(dim=1)
            return out
        finally:
            self.train(was_training)
