"""Sharding plans for a model's embedding tables: TorchRec's planner, optionally forced per table.

``build_plan`` runs TorchRec's ``EmbeddingShardingPlanner`` over a ``Topology`` of the process
group (on rank 0, broadcast to the others). A table named in ``forced`` gets that sharding type as
its only allowed choice (``ParameterConstraints(sharding_types=[...])``); the planner still picks
its rank(s). A forced ``column_wise`` table is cut into the narrowest column blocks (multiples of
4, dividing the embedding dim) that need no more shards than there are ranks, so it really spans
the ranks. Every other table is left to the planner, among the sharded types TorchRec's sharder
supports on the compute device (on CPU: table-wise, column-wise, table-column-wise; row-wise
needs CUDA: it reduce-scatters, which gloo lacks); ``data_parallel`` only when forced.

``plan_summary`` turns a plan into plain data (tables → sharding type, kernel, shards per rank)
for logs, the run summary and tests.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import torch
import torch.distributed as dist
from torch import nn
from torchrec.distributed.planner import EmbeddingShardingPlanner, ParameterConstraints, Topology
from torchrec.distributed.sharding_plan import get_default_sharders
from torchrec.distributed.types import ModuleSharder, ShardingPlan, ShardingType
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from ...errors import InputError, did_you_mean

# Names a config may use (ShardingType values); the device decides which of them are possible.
SHARDING_TYPES = (
    ShardingType.TABLE_WISE.value,
    ShardingType.COLUMN_WISE.value,
    ShardingType.TABLE_COLUMN_WISE.value,
    ShardingType.ROW_WISE.value,
    ShardingType.TABLE_ROW_WISE.value,
    ShardingType.DATA_PARALLEL.value,
)
# Column blocks must be multiples of this (FBGEMM's alignment for column-wise shards).
_CW_ALIGN = 4


def embedding_tables(model: nn.Module) -> Iterator[tuple[str, EmbeddingBagConfig]]:
    """``(module path, table config)`` for every table of every ``EmbeddingBagCollection``."""
    for path, module in model.named_modules():
        if isinstance(module, EmbeddingBagCollection):
            for config in module.embedding_bag_configs():
                yield path, config


def check_forced(
    model: nn.Module, forced: Mapping[str, str], device_type: str, key: str = "sharding.plan"
) -> None:
    """Every forced table exists, and its sharding type is one the device supports."""
    tables = [config.name for _, config in embedding_tables(model)]
    duplicates = sorted({name for name in tables if tables.count(name) > 1} & set(forced))
    if duplicates:
        raise InputError(
            f"table name(s) {duplicates} appear in several embedding collections; "
            "a plan cannot be forced for them by name",
            key=key,
        )
    supported = _supported_types(device_type)
    for table, sharding_type in forced.items():
        if table not in tables:
            raise InputError(
                f"the model has no embedding table '{table}'",
                key=f"{key}.{table}",
                hint=did_you_mean(table, tables),
            )
        if sharding_type not in SHARDING_TYPES:
            raise InputError(
                f"unknown sharding type '{sharding_type}'",
                key=f"{key}.{table}",
                hint=did_you_mean(sharding_type, SHARDING_TYPES),
            )
        if sharding_type not in supported:
            raise InputError(
                f"sharding type '{sharding_type}' is not available on {device_type}",
                key=f"{key}.{table}",
                hint=f"use one of {', '.join(supported)}",
            )


def column_block(embedding_dim: int, world_size: int) -> int:
    """Narrowest column-shard width (a multiple of 4 dividing ``embedding_dim``) giving at most
    ``world_size`` shards; the whole dim when no such width exists (e.g. dim 16, 2 ranks → 8)."""
    for width in range(_CW_ALIGN, embedding_dim + 1, _CW_ALIGN):
        if embedding_dim % width == 0 and embedding_dim // width <= world_size:
            return width
    return embedding_dim


def constraints_for(
    model: nn.Module, forced: Mapping[str, str], world_size: int, device_type: str
) -> dict[str, ParameterConstraints]:
    """Planner constraints: forced tables get exactly their type; the planner may give the others
    any sharded type but not data-parallel (a replicated table would be trained by the dense
    optimizer, so the planner's choice would change the training semantics)."""
    planned = [t for t in _supported_types(device_type) if t != ShardingType.DATA_PARALLEL.value]
    constraints: dict[str, ParameterConstraints] = {}
    for _, config in embedding_tables(model):
        sharding_type = forced.get(config.name)
        if sharding_type is None:
            constraints[config.name] = ParameterConstraints(sharding_types=list(planned))
            continue
        min_partition = None
        if sharding_type in (ShardingType.COLUMN_WISE.value, ShardingType.TABLE_COLUMN_WISE.value):
            min_partition = column_block(config.embedding_dim, world_size)
        constraints[config.name] = ParameterConstraints(
            sharding_types=[sharding_type], min_partition=min_partition
        )
    return constraints


def build_plan(
    model: nn.Module,
    *,
    forced: Mapping[str, str] | None = None,
    device: torch.device,
    process_group: dist.ProcessGroup,
    batch_size: int | None = None,
    sharders: list[ModuleSharder[nn.Module]] | None = None,
) -> ShardingPlan:
    """The plan TorchRec's planner finds for ``model`` on ``process_group`` (same on every rank).

    ``forced``: ``{table: sharding type}``; ``batch_size``: per-rank batch the planner's cost
    model assumes (TorchRec's default when None).
    """
    forced = dict(forced or {})
    check_forced(model, forced, device.type)
    world_size = dist.get_world_size(process_group)
    planner = EmbeddingShardingPlanner(
        topology=Topology(
            world_size=world_size, local_world_size=world_size, compute_device=device.type
        ),
        batch_size=batch_size,
        constraints=constraints_for(model, forced, world_size, device.type),
        debug=False,
    )
    return planner.collective_plan(model, sharders or get_default_sharders(), process_group)


def plan_summary(plan: ShardingPlan) -> dict[str, Any]:
    """Plain data for logs and tests.

    ``{"tables": {table: {"module", "sharding_type", "compute_kernel", "ranks",
    "shards": [{"rank", "offsets", "sizes"}]}}, "by_rank": {rank: [table, ...]}}``.
    Data-parallel tables are replicated: their ``ranks`` are all ranks and ``shards`` is empty.
    """
    tables: dict[str, dict[str, Any]] = {}
    by_rank: dict[int, list[str]] = {}
    for module_path, module_plan in plan.plan.items():
        for table, sharding in module_plan.items():  # type: ignore[attr-defined]
            shards = []
            if sharding.sharding_spec is not None:
                for meta in sharding.sharding_spec.shards:
                    shards.append(
                        {
                            "rank": int(meta.placement.rank()),
                            "offsets": list(meta.shard_offsets),
                            "sizes": list(meta.shard_sizes),
                        }
                    )
            ranks = sorted({int(r) for r in sharding.ranks or []})
            tables[table] = {
                "module": module_path,
                "sharding_type": sharding.sharding_type,
                "compute_kernel": sharding.compute_kernel,
                "ranks": ranks,
                "shards": shards,
            }
            for rank in ranks:
                by_rank.setdefault(rank, []).append(table)
    return {"tables": tables, "by_rank": {r: sorted(t) for r, t in sorted(by_rank.items())}}


def _supported_types(device_type: str) -> list[str]:
    """Sharding types TorchRec's EBC sharder offers on ``device_type`` (its own device rules)."""
    for sharder in get_default_sharders():
        if sharder.module_type is EmbeddingBagCollection:
            return [t for t in sharder.sharding_types(device_type) if t in SHARDING_TYPES]
    return list(SHARDING_TYPES)  # pragma: no cover - TorchRec always ships an EBC sharder
