"""DistributedModelParallel wrapping (recsys_hmtl.adapters.recsys.sharding): fused sparse optimizer, forced
and planned plans, world size 1 in this process and 2 gloo ranks in child processes."""

from __future__ import annotations

import copy
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from synthetic import FEATURES, TASKS, TINY, make_batch, task_losses
from recsys_hmtl.data.batch import Batch
from recsys_hmtl.errors import InputError
from recsys_hmtl.models import build_model
from recsys_hmtl.adapters.recsys.plan import column_block, plan_summary
from recsys_hmtl.adapters.recsys.sharding import (
    ShardingConfig,
    dense_optimizer,
    ensure_process_group,
    fused_optimizer_state,
    load_unsharded_state,
    shard_model,
)
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

HERE = Path(__file__).resolve().parent
# Embedding dim 8 so a column-wise table splits into two 4-wide shards on two ranks.
HPARAMS = {name: {**TINY[name], "embedding_dim": 8} for name in ("mmoe", "stem")}
# One table of each kind the CPU supports; the planner must keep these exactly. A sharded EBC
# returns its keys grouped by sharding type, so these orders also check the features' order.
MMOE_PLAN = {"user": "data_parallel", "item": "column_wise", "tags": "table_wise"}
STEM_PLAN = {
    "shared__user": "column_wise", "like__item": "table_wise", "follow__tags": "data_parallel"
}
# (model, forced plan): STEM's other 9 tables, and all of MMoE's in the planner case, are planned.
CASES = {"mmoe": ("mmoe", MMOE_PLAN), "stem": ("stem", STEM_PLAN), "mmoe_planned": ("mmoe", {})}
BATCH, STEPS, LR = 256, 3, 0.05


@pytest.fixture(scope="module", autouse=True)
def single_rank_group():
    """World size 1 in this process; torn down afterwards unless someone else created it."""
    created = not dist.is_initialized()
    ensure_process_group(torch.device("cpu"))
    yield
    if created:
        dist.destroy_process_group()


def initial_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, FEATURES, TASKS, **HPARAMS[name])


def sharded(case: str, process_group=None):
    """(DMP with the unsharded seed-0 model's weights, that model) for one case."""
    name, plan = CASES[case]
    reference = initial_model(name)
    state = copy.deepcopy(reference.state_dict())
    dmp = shard_model(
        initial_model(name), config=ShardingConfig(lr=LR, plan=plan), process_group=process_group
    )
    load_unsharded_state(dmp, state)
    return dmp, reference


def rows(batch: Batch, start: int, stop: int) -> Batch:
    """Rows ``start:stop`` of a batch (each rank's slice of the global batch)."""
    values, lengths = [], []
    for key in batch.sparse.keys():
        jagged = batch.sparse[key]
        offsets = jagged.offsets()
        values.append(jagged.values()[offsets[start] : offsets[stop]])
        lengths.append(jagged.lengths()[start:stop])
    sparse = KeyedJaggedTensor.from_lengths_sync(
        keys=batch.sparse.keys(), values=torch.cat(values), lengths=torch.cat(lengths)
    )
    return Batch(
        sparse=sparse,
        dense=batch.dense[start:stop],
        labels=batch.labels[start:stop],
        groups=batch.groups[start:stop],
    )


def train_losses(dmp, batch: Batch, steps: int = STEPS) -> list[float]:
    """Global mean loss before each of ``steps`` steps (embedding rows: fused; dense: Adam)."""
    optimizer = dense_optimizer(dmp, lr=LR)
    world = dist.get_world_size()
    losses = []
    for _ in range(steps):
        loss = task_losses(dmp(batch), batch.labels).sum()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        losses.append(float(mean) / world)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return losses


# ------------------------------------------------------------------------------ world size 1
def embedding_weight(dmp, table: str, module: str = "embedding") -> torch.Tensor:
    tensor = dmp.state_dict()[f"{module}.ebc.embedding_bags.{table}.weight"]
    return tensor.local_shards()[0].tensor if hasattr(tensor, "local_shards") else tensor


def test_world_size_one_updates_rows_in_backward_and_trains():
    batch = make_batch(BATCH, seed=3)
    dmp, _ = sharded("mmoe")
    item_before = embedding_weight(dmp, "item").clone()  # column-wise: fused
    user_before = embedding_weight(dmp, "user").clone()  # data-parallel: a dense parameter
    dense_before = dmp.module.towers.weights[0].detach().clone()
    task_losses(dmp(batch), batch.labels).sum().backward()

    # Fused update: the rows the batch looked up moved in backward, without any optimizer step.
    seen = torch.zeros(item_before.shape[0], dtype=torch.bool)
    seen[batch.sparse["item"].values()] = True
    moved = (embedding_weight(dmp, "item") != item_before).any(dim=1)
    assert seen.any() and not seen.all() and torch.equal(moved, seen)
    # Dense layers and the data-parallel table wait for the dense optimizer.
    assert torch.equal(dmp.module.towers.weights[0], dense_before)
    assert torch.equal(embedding_weight(dmp, "user"), user_before)
    optimizer = dense_optimizer(dmp, lr=LR)
    assert "embedding.ebc.embedding_bags.user.weight" in optimizer.params
    assert not any(".item." in key or ".tags." in key for key in optimizer.params)
    optimizer.step()
    assert not torch.equal(dmp.module.towers.weights[0], dense_before)
    assert not torch.equal(embedding_weight(dmp, "user"), user_before)

    # Row-wise Adagrad keeps one accumulator per row, non-zero for the touched rows only.
    state = fused_optimizer_state(dmp)["state"]["embedding.ebc.embedding_bags.item.weight"]
    (accumulator,) = [v for k, v in state.items() if "momentum1" in k]
    local = accumulator.local_shards()[0].tensor
    assert local.shape == (item_before.shape[0],) and torch.equal(local > 0, seen)

    losses = train_losses(sharded("mmoe")[0], batch, steps=8)
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.parametrize("case", ["mmoe", "stem"])
def test_forced_plan_is_honoured_and_the_sharded_model_matches_the_unsharded_one(case):
    dmp, reference = sharded(case)
    summary = plan_summary(dmp.plan)
    for table, sharding_type in CASES[case][1].items():
        assert summary["tables"][table]["sharding_type"] == sharding_type
    expected_tables = {cfg.name for m in reference.modules() if hasattr(m, "embedding_bag_configs")
                       for cfg in m.embedding_bag_configs()}
    assert set(summary["tables"]) == expected_tables
    batch = make_batch(BATCH, seed=4)
    want = task_losses(reference(batch), batch.labels)
    torch.testing.assert_close(task_losses(dmp(batch), batch.labels), want, rtol=0, atol=1e-6)


def test_planner_leaves_every_table_to_the_fused_optimizer():
    """Unforced tables are never data-parallel, so the fused optimizer owns every embedding."""
    dmp = shard_model(initial_model("stem"), config=ShardingConfig(lr=LR, weight_decay=0.1))
    summary = plan_summary(dmp.plan)["tables"]
    assert len(summary) == 12 and all(t["compute_kernel"] == "fused" for t in summary.values())
    assert not any(".ebc." in key for key in dense_optimizer(dmp, lr=LR).params)
    before = embedding_weight(dmp, "like__item", "task_embeddings.1").clone()
    batch = make_batch(BATCH, seed=5)
    task_losses(dmp(batch), batch.labels).sum().backward()
    assert not torch.equal(embedding_weight(dmp, "like__item", "task_embeddings.1"), before)
    assert len(fused_optimizer_state(dmp)["state"]) == 12


@pytest.mark.parametrize(
    "config, match",
    [
        (dict(plan={"usr": "table_wise"}), r"sharding\.plan\.usr.*did you mean 'user'"),
        (dict(plan={"user": "table_wide"}), r"unknown sharding type.*did you mean 'table_wise'"),
        (dict(plan={"user": "row_wise"}), r"'row_wise' is not available on cpu"),
    ],
)
def test_bad_plans_are_clear_errors(config, match):
    with pytest.raises(InputError, match=match):
        shard_model(initial_model("mmoe"), config=ShardingConfig(**config))


def test_bad_optimizer_settings_are_clear_errors():
    with pytest.raises(InputError, match=r"trainer\.sparse_optimizer.*did you mean 'adagrad'"):
        ShardingConfig(optimizer="adagard")
    with pytest.raises(InputError, match=r"trainer\.sparse_lr"):
        ShardingConfig(lr=0.0)
    with pytest.raises(InputError, match=r"'adam' is not available on cpu"):
        shard_model(initial_model("mmoe"), config=ShardingConfig(optimizer="adam"))


def test_column_blocks_span_the_ranks():
    # dim 8 over 2 ranks: two 4-wide blocks; dim 16 over 8 ranks: 4-wide (4 shards, the
    # narrowest FBGEMM allows); dim 12 over 2 ranks: 12 = 2·6 but 6 is not a multiple of 4 → 12.
    assert [column_block(8, 2), column_block(16, 8), column_block(12, 2), column_block(8, 1)] == [
        4, 4, 12, 8
    ]


# ------------------------------------------------------------------------------ two gloo ranks
def run_rank(rank: int, world_size: int, store: str, out: str) -> None:
    """Child process body: shard every case over ``world_size`` gloo ranks, train this rank's
    slice of the global batch, write the losses and plan to ``out``."""
    dist.init_process_group("gloo", rank=rank, world_size=world_size, init_method=f"file://{store}")
    batch = make_batch(BATCH, seed=7)
    local = rows(batch, rank * BATCH // world_size, (rank + 1) * BATCH // world_size)
    results = {}
    for case in CASES:
        dmp, _ = sharded(case)
        results[case] = {"losses": train_losses(dmp, local), "plan": plan_summary(dmp.plan)}
    Path(out).write_text(json.dumps(results))
    del dmp  # free the sharded modules (their DDP/gloo state) before the group they use
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def test_two_gloo_ranks_match_the_single_process_model(tmp_path):
    world_size = 2
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    for var in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(var, None)
    code = "import sys, test_sharding as t; a = sys.argv; t.run_rank(int(a[1]), int(a[2]), *a[3:])"
    store = tmp_path / "store"
    outs = [tmp_path / f"rank{r}.json" for r in range(world_size)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(r), str(world_size), str(store), str(outs[r])],
            cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for r in range(world_size)
    ]
    logs = []
    try:
        for child in children:
            logs.append(child.communicate(timeout=240)[0])
    finally:
        for child in children:
            child.kill()
    for child, log in zip(children, logs):
        assert child.returncode == 0, log[-3000:]
    ranks = [json.loads(out.read_text()) for out in outs]

    batch = make_batch(BATCH, seed=7)
    for case in CASES:
        dmp, reference = sharded(case)
        single = train_losses(dmp, batch)
        unsharded = float(task_losses(reference(batch), batch.labels).sum())
        # Row-wise Adagrad keeps one accumulator per row of each column shard, so a table cut
        # into two column shards takes (slightly) different steps than the whole table does;
        # every other sharding type must train exactly like the single process.
        column_wise = "column_wise" in CASES[case][1].values()
        for rank in ranks:  # every rank reports the all-reduced global mean
            losses = rank[case]["losses"]
            assert losses[0] == pytest.approx(unsharded, abs=1e-5), case
            assert losses == pytest.approx(single, abs=1e-3 if column_wise else 1e-5), case

    plan = ranks[0]["mmoe"]
    assert ranks[1]["mmoe"]["plan"] == plan["plan"]
    tables = plan["plan"]["tables"]
    assert {s["rank"] for s in tables["item"]["shards"]} == {0, 1}  # column-wise over both
    assert [s["sizes"] for s in tables["item"]["shards"]] == [[60, 4], [60, 4]]
    assert [s["sizes"] for s in tables["tags"]["shards"]] == [[25, 8]]  # table-wise: one rank
    assert tables["user"]["ranks"] == [0, 1] and tables["user"]["shards"] == []  # replicated
    planned = ranks[0]["mmoe_planned"]["plan"]
    assert set(planned["by_rank"]) == {"0", "1"}  # the planner spreads the tables too
