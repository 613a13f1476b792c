"""Dense building blocks shared by the towers: MLP, grouped (batched) MLPs, gates, expert mixing.

Layout convention: a *group* axis comes first. ``GroupedMLP`` evaluates G independent MLPs (the
experts of one layer, the gates of all tasks, the towers of all tasks) as one matmul per layer and
returns ``[G, B, out]``; gates are ``[N, B, E]`` (softmax over E); expert outputs ``[E, B, H]``.
Results may be strided views (a transposed ``[B, G, out]``): every consumer here goes through
``bmm``/``baddbmm``, which take such strides without a copy.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MLP(nn.Sequential):
    """Linear → ReLU → Dropout per entry of ``dims``; the last layer is activated too (a bottom).

    ``SharedBottom``'s bottom and plain single-group stacks use it; ``[B, in] → [B, dims[-1]]``.
    """

    def __init__(self, in_dim: int, dims: Sequence[int], dropout: float = 0.0) -> None:
        layers: list[nn.Module] = []
        for out_dim in dims:
            layers += [nn.Linear(in_dim, out_dim), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_dim = out_dim
        super().__init__(*layers)
        self.out_dim = in_dim


class GroupedMLP(nn.Module):
    """G independent MLPs with equal shapes, computed together (never a loop over groups).

    With ``shared_input=True`` every group reads the same ``x [B, in]``: the first layer is ONE
    ``addmm`` against the groups' weights laid side by side (``[in, G, out]`` viewed as
    ``[in, G*out]``). Otherwise ``x`` is ``[G, B, in]`` and the first layer is one ``baddbmm``.
    Later layers are one ``baddbmm`` over stacked weights ``[G, in, out]``. Hidden layers use
    ReLU and dropout; the last one too only when ``activate_last`` (experts: yes; logits: no).
    Initialisation per group equals ``nn.Linear``'s: U(-1/sqrt(in), 1/sqrt(in)).
    """

    def __init__(
        self,
        num_groups: int,
        in_dim: int,
        dims: Sequence[int],
        *,
        shared_input: bool,
        dropout: float = 0.0,
        activate_last: bool = True,
    ) -> None:
        super().__init__()
        if not dims:
            raise ValueError("GroupedMLP needs at least one layer")
        self.num_groups, self.in_dim, self.out_dim = num_groups, in_dim, int(dims[-1])
        self.shared_input, self.dropout, self.activate_last = shared_input, dropout, activate_last
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, out_dim in enumerate(dims):
            first_shared = i == 0 and shared_input
            shape = (in_dim, num_groups, out_dim) if first_shared else (num_groups, in_dim, out_dim)
            bound = 1.0 / math.sqrt(in_dim)
            self.weights.append(nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))
            bias_shape = (num_groups * out_dim,) if first_shared else (num_groups, 1, out_dim)
            self.biases.append(nn.Parameter(torch.empty(bias_shape).uniform_(-bound, bound)))
            in_dim = out_dim

    def layer_params(self, group: int, layer: int) -> tuple[Tensor, Tensor]:
        """Weight ``[in, out]`` and bias ``[out]`` of one group's layer (views into the stacks)."""
        weight, bias = self.weights[layer], self.biases[layer]
        if layer == 0 and self.shared_input:
            out = weight.shape[2]
            return weight[:, group], bias[group * out : (group + 1) * out]
        return weight[group], bias[group, 0]

    def group_sq_norms(self, tensors: Sequence[Tensor]) -> Tensor:
        """``[G]`` squared norms of each group's slice of tensors shaped like the parameters
        (weights of every layer, then biases: ``[*weights, *biases]``, or a prefix of the layers)."""
        layers = len(tensors) // 2
        total = tensors[0].new_zeros(self.num_groups)
        for layer, (w, b) in enumerate(zip(tensors[:layers], tensors[layers:])):
            if layer == 0 and self.shared_input:
                w, b = w.transpose(0, 1), b.reshape(self.num_groups, -1)   # [G, in, out], [G, out]
            total = total + (w * w).reshape(self.num_groups, -1).sum(1) + (b * b).reshape(self.num_groups, -1).sum(1)
        return total

    @contextmanager
    def inputs_detached(self) -> Iterator[None]:
        """While open, the groups read their input detached (no gradient flows below them)."""
        handle = self.register_forward_pre_hook(
            lambda _, args: tuple(a.detach() if torch.is_tensor(a) else a for a in args))
        try:
            yield
        finally:
            handle.remove()

    def forward(self, x: Tensor, per_group: bool = False) -> Tensor:
        """``x``: ``[B, in]`` (shared input) or ``[G, B, in]``; returns ``[G, B, out]``. A
        shared-input MLP also takes ``[G, B, in]`` with ``per_group``: each group its own view of
        the input (task views), one ``baddbmm`` against the same weights."""
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            one_input = i == 0 and self.shared_input and not per_group
            if one_input:
                h = torch.addmm(bias, x, weight.flatten(1))  # [B, G*out]: all groups in one GEMM
            elif i == 0 and self.shared_input:  # per-group views: weights [in, G, out] as [G, in, out]
                h = torch.baddbmm(bias.view(self.num_groups, 1, -1), x, weight.transpose(0, 1))
            else:
                h = torch.baddbmm(bias, x, weight)  # [G, B, out]
            if i < last or self.activate_last:
                h = torch.relu_(h)  # addmm/baddbmm keep their inputs, not their output
                if self.dropout > 0:
                    h = F.dropout(h, self.dropout, self.training)
            if one_input:
                h = h.unflatten(1, (self.num_groups, -1)).transpose(0, 1)
            x = h
        return x


class Gates(nn.Module):
    """``num_gates`` softmax gates over ``num_experts`` experts (the MMoE gate of Ma et al., 2018a).

    Each gate is a linear map, or an MLP with hidden ``hidden_dims`` (ReLU) then a linear map,
    followed by a softmax over experts; all gates are one :class:`GroupedMLP`.
    Returns ``[N, B, E]``.
    """

    def __init__(
        self,
        num_gates: int,
        in_dim: int,
        num_experts: int,
        hidden_dims: Sequence[int] = (),
        *,
        shared_input: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_gates, self.num_experts = num_gates, num_experts
        self.net = GroupedMLP(
            num_gates,
            in_dim,
            [*hidden_dims, num_experts],
            shared_input=shared_input,
            dropout=dropout,
            activate_last=False,
        )

    def forward(self, x: Tensor) -> Tensor:
        logits = self.net(x)
        if self.num_experts < SHORT_SOFTMAX:
            return short_softmax(logits)
        return torch.softmax(logits, dim=-1)


# torch's fused CPU softmax is ~3x slower than the explicit form on rows shorter than this
# (e.g. 8 experts: 4.8 ms vs 1.4 ms on [32768, 8], torch 2.13, one thread); on GPUs the two cost
# about the same at these sizes. Decided from Python ints, so forward stays FX-traceable.
SHORT_SOFTMAX = 16


def short_softmax(logits: Tensor) -> Tensor:
    """Softmax over the last dim as exp(x − max) / Σ exp(x − max) (the max is a constant shift)."""
    shifted = (logits - logits.detach().amax(dim=-1, keepdim=True)).exp()
    return shifted / shifted.sum(dim=-1, keepdim=True)


def mix_experts(gates: Tensor, experts: Tensor) -> Tensor:
    """``out[n, b] = Σ_e gates[n, b, e] · experts[e, b]`` (MMoE mixture), one ``bmm`` over B.

    ``gates [N, B, E]``, ``experts [E, B, H]`` → ``[N, B, H]``.
    """
    return torch.bmm(gates.transpose(0, 1), experts.transpose(0, 1)).transpose(0, 1)


def mix_task_experts(gates: Tensor, experts: Tensor, experts_per_task: int) -> Tensor:
    """Each task mixes only its own K experts (PLE/STEM task-specific part).

    ``gates [T, B, K]``, ``experts [T*K, B, H]`` (task-major: task t owns rows t*K..t*K+K-1)
    → ``out[t, b] = Σ_k gates[t, b, k] · experts[t*K + k, b]``, ``[T, B, H]``.
    """
    if experts_per_task == 1:
        return gates * experts
    per_task = experts.unflatten(0, (-1, experts_per_task))  # [T, K, B, H]
    return (gates.permute(0, 2, 1).unsqueeze(-1) * per_task).sum(1)


def repeat_per_expert(x: Tensor, experts_per_input: int) -> Tensor:
    """``[T, B, d]`` → ``[T*K, B, d]``: task t's input for each of its K experts (K=1: as is)."""
    return x if experts_per_input == 1 else x.repeat_interleave(experts_per_input, dim=0)


def level_shared_modules(levels: Sequence[nn.Module]) -> list[nn.Module]:
    """The modules every task depends on in CGC-style levels (PLE, STEM): each level's shared
    experts and, where the level has one, its shared gate."""
    shared = [level.shared_experts for level in levels]
    return shared + [level.shared_gate for level in levels if level.shared_gate is not None]
