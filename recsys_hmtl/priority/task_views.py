"""Task views: each task's own view of the shared tensors where the task paths separate, so that
ONE backward of Σ_i L_i yields every per-task gradient g_i (task_grads.py, step 1).

A model gives, per shared source tensor S of its trunk, either

* :class:`ExpandedView`: ``view [K, *S.shape]``, S expanded over the K tasks (no copy), of which
  task i's path reads row i only: ``∂ΣL/∂view[i] = ∂L_i/∂S``, a K x |S| gradient block; or
* :class:`MixtureView`: an MMoE-style mixture ``mixed[i, b] = Σ_e w[i, b, e] · S[e, b]`` of shared
  experts ``S [E, B, H]`` by task i's gate ``w [K, B, E]``, of which task i reads ``mixed[i]``
  only: ``∂L_i/∂S[e, b] = w[i, b, e] · δ_i[b]`` with ``δ = ∂ΣL/∂mixed [K, B, H]``. The block stays
  factored: its Gram matrix is ``Σ_b (W_b W_bᵀ) ∘ (Δ_b Δ_bᵀ)`` and a combination ``Σ_i v_i g_i`` is
  one batched matmul, never the K x E·B·H matrix.

Models that chain their heads (one task's output feeds another's: ESMM, AITM) cannot give views:
there ``∂ΣL/∂view[i] ≠ ∂L_i/∂S``. Imports only torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


def gram_matrix(matrix: Tensor, chunks: int = 64) -> Tensor:
    """``matrix @ matrix.T`` for a wide K x D matrix, as a batched matmul over column chunks (a
    single GEMM with a tiny K x K output uses the cores poorly; about 2x faster on CPU)."""
    k, d = matrix.shape
    if d < chunks * 1024:
        return matrix @ matrix.T
    head = d - d % chunks
    blocks = matrix[:, :head].reshape(k, chunks, -1).transpose(0, 1)
    gram = torch.bmm(blocks, blocks.transpose(1, 2)).sum(0)
    return gram + matrix[:, head:] @ matrix[:, head:].T


class MatrixBlock:
    """A K x n block of the gradient matrix (row i: ∂L_i/∂ a tensor of n elements, flattened)."""

    def __init__(self, matrix: Tensor) -> None:
        self.matrix = matrix

    def gram(self) -> Tensor:
        return gram_matrix(self.matrix)

    def combine(self, coeffs: Tensor) -> Tensor:
        """``Σ_i coeffs_i · row_i`` (flat)."""
        return torch.mv(self.matrix.T, coeffs.to(self.matrix))


class MixtureBlock:
    """The factored block of a :class:`MixtureView`: row i is ``w[i, b, e] · δ_i[b]``."""

    def __init__(self, weights: Tensor, delta: Tensor) -> None:
        self.weights, self.delta = weights, delta  # [K, B, E], [K, B, H]

    def gram(self) -> Tensor:
        w, d = self.weights.transpose(0, 1), self.delta.transpose(0, 1)  # [B, K, E], [B, K, H]
        return (torch.bmm(w, w.transpose(1, 2)) * torch.bmm(d, d.transpose(1, 2))).sum(0)

    def combine(self, coeffs: Tensor) -> Tensor:
        """``[E, B, H]``: ``Σ_i coeffs_i · w[i, b, e] · δ_i[b]``."""
        w = self.weights * coeffs.to(self.weights).view(-1, 1, 1)  # [K, B, E]
        return torch.bmm(w.permute(1, 2, 0), self.delta.transpose(0, 1)).transpose(0, 1)


@dataclass(frozen=True)
class ExpandedView:
    """``view [K, *source.shape]``: ``source`` expanded over the tasks; task i reads row i only."""

    source: Tensor
    view: Tensor

    def __post_init__(self) -> None:
        if tuple(self.view.shape[1:]) != tuple(self.source.shape):
            raise ValueError(f"a task view {tuple(self.view.shape)} is not [K, *{tuple(self.source.shape)}]")

    @property
    def target(self) -> Tensor:
        return self.view

    def block(self, grad: Tensor | None) -> MatrixBlock:
        k = self.view.shape[0]
        return MatrixBlock(self.view.new_zeros(k, self.source.numel()) if grad is None else grad.reshape(k, -1))


@dataclass(frozen=True)
class MixtureView:
    """``mixed[i, b] = Σ_e weights[i, b, e] · source[e, b]``; task i reads ``mixed[i]`` only."""

    source: Tensor   # [E, B, H]
    weights: Tensor  # [K, B, E]
    mixed: Tensor    # [K, B, H]

    def __post_init__(self) -> None:
        (e, b, h), (k, b2, e2), shape = self.source.shape, self.weights.shape, tuple(self.mixed.shape)
        if (b2, e2) != (b, e) or shape != (k, b, h):
            raise ValueError(f"a mixture of experts {tuple(self.source.shape)} by weights "
                             f"{tuple(self.weights.shape)} cannot be {shape}")

    @property
    def target(self) -> Tensor:
        return self.mixed

    def block(self, grad: Tensor | None) -> MixtureBlock:
        delta = torch.zeros_like(self.mixed) if grad is None else grad
        return MixtureBlock(self.weights.detach(), delta)


@dataclass(frozen=True)
class TaskViews:
    """Every view a model gives for one forward (see the module docstring)."""

    views: tuple[ExpandedView | MixtureView, ...]

    def __post_init__(self) -> None:
        if not self.views:
            raise ValueError("TaskViews needs at least one view")

    @property
    def sources(self) -> list[Tensor]:
        return [v.source for v in self.views]


def view_gradient_blocks(losses: Sequence[Tensor], views: TaskViews) -> list[MatrixBlock | MixtureBlock]:
    """Per view, the gradient block whose row i is ∂L_i/∂source: one backward of Σ_i L_i that
    stops at the views (the graph is retained for the one later backward)."""
    if not all(loss.requires_grad for loss in losses):
        raise ValueError("task losses do not require grad: nothing to back-propagate")
    k = len(losses)
    if any(v.target.shape[0] != k for v in views.views):
        raise ValueError(f"task views have {views.views[0].target.shape[0]} rows, not one per task ({k})")
    grads = torch.autograd.grad(torch.stack(list(losses)).sum(), [v.target for v in views.views],
                                retain_graph=True, allow_unused=True)
    return [view.block(grad) for view, grad in zip(views.views, grads)]
