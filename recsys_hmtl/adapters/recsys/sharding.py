"""Wrap a model with TorchRec's ``DistributedModelParallel`` (SPEC §6).

* The embedding tables get TorchRec's fused sparse optimizer (row-wise Adagrad or Adam), attached
  with ``apply_optimizer_in_backward`` before sharding: FBGEMM updates the rows a batch touched
  inside ``backward()``; no optimizer step is called for them.
* The plan comes from :func:`~recsys_hmtl.adapters.recsys.plan.build_plan` (TorchRec's planner, tables
  optionally forced to ``table_wise`` / ``column_wise`` / ``data_parallel`` / ...).
* DMP wraps the dense parts in DDP itself: do not add Lightning's DDP strategy or another DDP.

Sparse gradients are summed over ranks (TorchRec's all-to-all), dense ones averaged (DDP): with a
per-rank mean loss, embedding gradients are ``world_size`` times those of the global mean. Adagrad
and Adam are invariant to that scale (up to ``eps``), so nothing is rescaled here.
Tables forced to ``data_parallel`` are replicated DDP parameters: the dense optimizer
(:func:`dense_optimizer`) trains them, not the fused one (the planner never picks that type).

Typical use (every rank runs the same lines; torchrun sets RANK/WORLD_SIZE/MASTER_ADDR/PORT)::

    model = build_model("mmoe", features, tasks, embedding_device="meta")
    dmp = shard_model(model, config=ShardingConfig(plan={"user_id": "table_wise"}))
    dense_opt = dense_optimizer(dmp, lr=1e-3)
    loss = loss_fn(dmp(batch), batch.labels); loss.backward()  # rows updated here
    dense_opt.step(); dense_opt.zero_grad()
    checkpoint = {"model": dmp.state_dict(), "dense_optimizer": dense_opt.state_dict(),
                  "fused_optimizer": fused_optimizer_state(dmp)}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
import torch.distributed as dist
from fbgemm_gpu.split_table_batched_embeddings_ops_training import WeightDecayMode
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor
from torchrec.distributed.model_parallel import (
    DefaultDataParallelWrapper,
    DistributedModelParallel,
)
from torchrec.distributed.types import ShardingEnv
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.optim import Adam as FusedAdam
from torchrec.optim import RowWiseAdagrad
from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from torchrec.optim.keyed import KeyedOptimizerWrapper
from torchrec.optim.optimizers import in_backward_optimizer_filter

from ...errors import InputError, did_you_mean
from ...training.distributed import ensure_process_group
from .plan import build_plan, embedding_tables


@dataclass(frozen=True)
class ShardingConfig:
    """Fused sparse optimizer and plan. ``plan``: ``{table: sharding type}`` forced per table
    (``table_wise``, ``column_wise``, ``data_parallel``; ``row_wise`` on CUDA only); tables not
    named are placed by TorchRec's planner. ``weight_decay`` is L2 for Adagrad, decoupled (AdamW)
    for Adam. ``planner_batch_size``: per-rank batch size the planner's cost model assumes."""

    optimizer: str = "adagrad"  # row-wise adagrad | adam
    lr: float = 0.05
    eps: float = 1e-8
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # adam only
    plan: Mapping[str, str] = field(default_factory=dict)
    planner_batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in SPARSE_OPTIMIZERS:
            raise InputError(
                f"unknown sparse optimizer '{self.optimizer}'",
                key="trainer.sparse_optimizer",
                hint=did_you_mean(self.optimizer, SPARSE_OPTIMIZERS),
            )
        for name in ("lr", "eps", "weight_decay"):
            value = getattr(self, name)
            if not value >= 0 or (name == "lr" and value == 0):
                raise InputError(f"must be positive, got {value}", key=f"trainer.sparse_{name}")
        if not all(0.0 <= b < 1.0 for b in self.betas) or len(self.betas) != 2:
            raise InputError(
                f"expected two values in [0, 1), got {self.betas}", key="trainer.sparse_betas"
            )


def _adagrad(config: ShardingConfig) -> tuple[type, dict[str, Any]]:
    """Row-wise Adagrad: one accumulator per row, s += mean(g²); w -= lr·g/(√s + eps)."""
    kwargs: dict[str, Any] = {"lr": config.lr, "eps": config.eps}
    if config.weight_decay > 0:
        kwargs.update(weight_decay=config.weight_decay, weight_decay_mode=WeightDecayMode.L2)
    return RowWiseAdagrad, kwargs


def _adam(config: ShardingConfig) -> tuple[type, dict[str, Any]]:
    """Adam on the rows a batch touches (FBGEMM's fused ADAM); decoupled weight decay."""
    beta1, beta2 = config.betas
    kwargs: dict[str, Any] = {"lr": config.lr, "eps": config.eps, "beta1": beta1, "beta2": beta2}
    if config.weight_decay > 0:
        kwargs.update(weight_decay=config.weight_decay, weight_decay_mode=WeightDecayMode.DECOUPLE)
    return FusedAdam, kwargs


# Name → (optimizer class TorchRec maps to an FBGEMM EmbOptimType, its fused kwargs).
SPARSE_OPTIMIZERS: dict[str, Callable[[ShardingConfig], tuple[type, dict[str, Any]]]] = {
    "adagrad": _adagrad,
    "adam": _adam,
}
# FBGEMM's CPU kernels update rows with (row-wise) Adagrad or SGD only; Adam needs CUDA.
_DEVICES = {"adagrad": ("cpu", "cuda"), "adam": ("cuda",)}


def attach_fused_optimizer(
    model: nn.Module, config: ShardingConfig, device: torch.device | str = "cpu"
) -> None:
    """Mark every ``EmbeddingBagCollection`` weight for the fused sparse optimizer (before DMP)."""
    device_type = torch.device(device).type
    if device_type not in _DEVICES[config.optimizer]:
        raise InputError(
            f"the fused sparse optimizer '{config.optimizer}' is not available on {device_type} "
            "(FBGEMM's CPU kernels offer row-wise Adagrad only)",
            key="trainer.sparse_optimizer",
            hint="use 'adagrad' on CPU",
        )
    optimizer_class, kwargs = SPARSE_OPTIMIZERS[config.optimizer](config)
    for path, module in model.named_modules():
        if not isinstance(module, EmbeddingBagCollection):
            continue
        params = list(module.parameters())
        if any(hasattr(p, "_optimizer_classes") for p in params):
            raise ValueError(f"'{path}' already has an optimizer applied in backward")
        apply_optimizer_in_backward(optimizer_class, params, dict(kwargs))


def shard_model(
    model: nn.Module,
    *,
    config: ShardingConfig | None = None,
    device: torch.device | str = "cpu",
    process_group: dist.ProcessGroup | None = None,
) -> DistributedModelParallel:
    """``model`` wrapped in DMP: fused sparse optimizer attached, tables placed by the plan.

    ``process_group``: the group to shard over (default: the world group, see
    :func:`ensure_process_group`). Build the model with ``embedding_device="meta"`` to skip
    allocating full tables (DMP initialises the shards from each table's init function);
    a model built on CPU keeps its dense weights, but its tables are re-initialised by the
    shards as well: use :func:`load_unsharded_state` to copy full weights in.
    """
    config = config or ShardingConfig()
    device = torch.device(device)
    group = process_group or ensure_process_group(device)
    if not any(True for _ in embedding_tables(model)):
        raise ValueError("the model has no EmbeddingBagCollection to shard")
    attach_fused_optimizer(model, config, device)
    plan = build_plan(
        model,
        forced=config.plan,
        device=device,
        process_group=group,
        batch_size=config.planner_batch_size,
    )
    return DistributedModelParallel(
        module=model,
        env=ShardingEnv.from_process_group(group),
        device=device,
        plan=plan,
        # TorchRec's default DDP uses static_graph=True, whose first-iteration all-reduce hangs
        # off the tensors DDP finds in forward's output; a MultiTaskOutput (a dict subclass
        # pytree does not know) hides them and the dense gradients silently stay rank-local.
        # Plain DDP reduces from the parameters' gradient hooks, whatever forward returns.
        data_parallel_wrapper=DefaultDataParallelWrapper(static_graph=False),
    )


def dense_optimizer(
    dmp: DistributedModelParallel,
    lr: float,
    optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
    **kwargs: Any,
) -> KeyedOptimizerWrapper:
    """An optimizer over every parameter the fused optimizer does not own (dense layers and
    data-parallel tables), keyed by parameter name so its ``state_dict`` is checkpointable."""
    params = dict(in_backward_optimizer_filter(dmp.named_parameters()))
    return KeyedOptimizerWrapper(params, lambda ps: optimizer_class(ps, lr=lr, **kwargs))


def fused_optimizer_state(dmp: DistributedModelParallel) -> dict[str, Any]:
    """The fused sparse optimizer's state (per-row accumulators, Adam moments; sharded tensors,
    one rank's shards each), for checkpoints. Restore: ``dmp.fused_optimizer.load_state_dict``."""
    return dmp.fused_optimizer.state_dict()


@torch.no_grad()
def load_unsharded_state(dmp: DistributedModelParallel, state: Mapping[str, torch.Tensor]) -> None:
    """Copy a full (unsharded) ``state_dict`` into ``dmp``: every rank copies the slices of its
    own shards. Keys must match ``dmp.state_dict()`` exactly (the unwrapped model's keys)."""
    target = dmp.state_dict()
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    if missing or unexpected:
        raise KeyError(f"state keys differ: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, tensor in target.items():
        full = state[name]
        if isinstance(tensor, ShardedTensor):
            for shard in tensor.local_shards():
                rows, cols = shard.metadata.shard_offsets
                height, width = shard.metadata.shard_sizes
                shard.tensor.copy_(full[rows : rows + height, cols : cols + width])
        else:
            tensor.copy_(full)
