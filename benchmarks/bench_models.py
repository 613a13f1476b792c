"""Training samples/s of our MMoE beside torch-rechub's ``MMOE``; our dense FLOP/s vs ``torch.mm``.

Data: 2M rows (``--quick``: 100k) of a planted funnel generated here with NumPy: 4 sparse features
(vocabularies 200k users, 500k items, 20k authors, 100 categories), 8 funnel tasks (task k is
positive only where task k-1 is, and where a planted user/item/author/category score clears its
threshold). Same sizes for both models: embeddings 16, 8 experts [128, 64], 8 linear softmax gates,
8 towers [32] → 1, batch 4096, one process, ``torch.set_num_threads(2)``.

A training step = forward, BCE summed over tasks, backward, optimizer step (Adam, lr 1e-3):
- ``peer``: torch-rechub ``MMOE`` (``nn.Embedding`` tables, BatchNorm in its MLPs, sigmoid outputs
  and ``BCELoss`` as its trainer does), Adam over all parameters;
- ``ours``: ``build_model("mmoe")``, unsharded (EBC tables with dense gradients), Adam over all;
- ``ours_dmp``: the same model through ``shard_model`` at world size 1 (FBGEMM row-wise Adagrad
  fused in backward for the tables, Adam for the dense layers) — the production path.
The variants take turns on chunks of batches (a fresh random order each round) after a warm-up,
so load changes on the machine hit all of them alike; samples/s = rows of a chunk / the median
time of a chunk over the rounds (one pass over the data in all).

Dense FLOPs per step: the matmuls of experts, gates, expert mixing and towers (forward = 2·m·k·n
each), times 3 for forward + backward. They are divided by the whole step's time and by the time
of the towers alone (forward + backward of the dense part on fixed embeddings), and compared with
plain ``torch.mm`` on the model's GEMM shapes measured in the same run: its best FLOP/s ("mm
peak") and the time the same GEMMs take as plain ``mm``/``bmm`` calls ("plain-mm GEMMs").
Targets (issue 3): ours ≥ 3x the peer; ≥ 0.5 of ``torch.mm`` FLOP/s in the towers.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recsys_hmtl.data.batch import Batch
from recsys_hmtl.data.spec import FeatureSpec, SparseFeature
from recsys_hmtl.models import build_model
from recsys_hmtl.adapters.recsys.sharding import ShardingConfig, dense_optimizer, shard_model

VOCABS = {"user": 200_000, "item": 500_000, "author": 20_000, "category": 100}
TASKS = [f"t{k}" for k in range(8)]
EMB, EXPERTS, EXPERT_DIMS, TOWER_DIM = 16, 8, (128, 64), 32
BATCH, LR = 4096, 1e-3
TARGET_RATIO, TARGET_FLOPS = 3.0, 0.5


def funnel_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(ids [rows, 4] int64 in 2..vocab-1, labels [rows, 8] float32) with a planted funnel."""
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.integers(2, v, rows) for v in VOCABS.values()], axis=1)
    weights = [rng.normal(0, 1, (v, len(TASKS))).astype(np.float32) for v in VOCABS.values()]
    score = sum(w[ids[:, f]] for f, w in enumerate(weights)) / 2.0  # [rows, 8]
    score += rng.normal(0, 0.5, score.shape).astype(np.float32)
    thresholds = np.linspace(-1.0, 1.0, len(TASKS), dtype=np.float32)  # deeper tasks rarer
    labels = np.logical_and.accumulate(score > thresholds, axis=1)
    return ids, labels.astype(np.float32)


def our_batches(ids: np.ndarray, labels: np.ndarray) -> list[Batch]:
    out = []
    for start in range(0, len(ids) - BATCH + 1, BATCH):
        chunk = torch.from_numpy(ids[start : start + BATCH])
        out.append(Batch(
            sparse=KeyedJaggedTensor.from_lengths_sync(
                keys=list(VOCABS), values=chunk.T.reshape(-1),
                lengths=torch.ones(chunk.numel(), dtype=torch.int32),
            ),
            dense=torch.zeros(BATCH, 0),
            labels=torch.from_numpy(labels[start : start + BATCH]),
            groups=chunk[:, 0].clone(),
        ))
    return out


def peer_batches(ids: np.ndarray, labels: np.ndarray) -> list[tuple[dict, torch.Tensor]]:
    out = []
    for start in range(0, len(ids) - BATCH + 1, BATCH):
        chunk = torch.from_numpy(ids[start : start + BATCH])
        x = {name: chunk[:, f].contiguous() for f, name in enumerate(VOCABS)}
        out.append((x, torch.from_numpy(labels[start : start + BATCH])))
    return out


def our_model(sharded: bool):
    features = FeatureSpec(sparse=tuple(SparseFeature(n, v) for n, v in VOCABS.items()))
    torch.manual_seed(0)
    model = build_model(
        "mmoe", features, TASKS, embedding_dim=EMB, num_experts=EXPERTS,
        expert_dims=list(EXPERT_DIMS), gate_dims=[], tower_dims=[TOWER_DIM],
        embedding_device="meta" if sharded else None,
    )
    if not sharded:
        return model, torch.optim.Adam(model.parameters(), lr=LR)
    dmp = shard_model(model, config=ShardingConfig(optimizer="adagrad", lr=0.05))
    return dmp, dense_optimizer(dmp, lr=LR)


def our_step(model, optimizer) -> Callable[[Batch], None]:
    def step(batch: Batch) -> None:
        logits = model(batch).stacked  # [T, B]
        loss = F.binary_cross_entropy_with_logits(logits, batch.labels.T, reduction="none")
        optimizer.zero_grad(set_to_none=True)
        loss.mean(dim=1).sum().backward()
        optimizer.step()
    return step


def peer_step() -> Callable[[tuple[dict, torch.Tensor]], None] | None:
    try:
        from torch_rechub.basic.features import SparseFeature as PeerSparse
        from torch_rechub.models.multi_task import MMOE
    except ImportError:
        return None
    torch.manual_seed(0)
    features = [PeerSparse(n, v, embed_dim=EMB) for n, v in VOCABS.items()]
    model = MMOE(
        features, ["classification"] * len(TASKS), EXPERTS,
        expert_params={"dims": list(EXPERT_DIMS)},
        tower_params_list=[{"dims": [TOWER_DIM]}] * len(TASKS),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    def step(batch: tuple[dict, torch.Tensor]) -> None:
        x, labels = batch
        loss = F.binary_cross_entropy(model(x), labels, reduction="none").mean(dim=0).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def gemm_shapes() -> list[tuple[int, int, int, int]]:
    """(groups, m, k, n) of every forward matmul of the dense part, per batch of BATCH rows."""
    d_in, (h1, h2), t = len(VOCABS) * EMB, EXPERT_DIMS, len(TASKS)
    return [
        (1, BATCH, d_in, EXPERTS * h1),  # all experts' first layer: one GEMM
        (EXPERTS, BATCH, h1, h2),  # experts' second layer: one bmm
        (1, BATCH, d_in, t * EXPERTS),  # all gates: one GEMM
        (BATCH, t, EXPERTS, h2),  # mixing: per row, [T, E] @ [E, h2]
        (t, BATCH, h2, TOWER_DIM),  # towers' hidden layer
        (t, BATCH, TOWER_DIM, 1),  # towers' logit
    ]


def dense_flops_per_step() -> float:
    """Forward + backward ≈ 3 × the forward matmul FLOPs (2·m·k·n per matmul)."""
    return 3.0 * sum(2.0 * g * m * k * n for g, m, k, n in gemm_shapes())


def dense_seconds(model, reps: int) -> tuple[float, float, float]:
    """(towers alone: forward + backward of experts, gates, mixing and towers on fixed embeddings;
    the same forward + backward GEMMs as plain ``torch.mm``/``bmm`` calls; best ``torch.mm``
    FLOP/s over those shapes). Medians over ``reps`` rounds that take turns, like the steps."""
    from recsys_hmtl.models.layers import mix_experts

    x = torch.randn(BATCH, len(VOCABS) * EMB, requires_grad=True)
    operands = [(torch.randn(g, m, k), torch.randn(g, k, n)) for g, m, k, n in gemm_shapes()]

    def towers() -> None:
        model.towers(mix_experts(model.gates(x), model.experts(x))).sum().backward()

    def gemm(i: int) -> None:
        a, b = operands[i]
        torch.mm(a[0], b[0]) if a.shape[0] == 1 else torch.bmm(a, b)

    fns = [towers] + [lambda i=i: gemm(i) for i in range(len(operands))]
    times: list[list[float]] = [[] for _ in fns]
    for round_ in range(reps + 1):
        for fn, spent in zip(fns, times):
            began = time.perf_counter()
            fn()
            if round_:  # round 0 is the warm-up
                spent.append(time.perf_counter() - began)
    medians = [statistics.median(t) for t in times]
    flops = [2.0 * g * m * k * n for g, m, k, n in gemm_shapes()]
    # Backward of each GEMM: two more of the same size (gradients of both operands).
    return medians[0], 3 * sum(medians[1:]), max(f / t for f, t in zip(flops, medians[1:]))


def main(quick: bool = False) -> None:
    torch.set_num_threads(2)
    rows, chunk, warmup = (100_000, 2, 2) if quick else (2_000_000, 8, 3)
    ids, labels = funnel_data(rows)
    ours_plain, ours_opt = our_model(sharded=False)
    variants: dict[str, tuple[Callable, list]] = {
        "ours": (our_step(ours_plain, ours_opt), our_batches(ids, labels)),
    }
    dmp, dmp_opt = our_model(sharded=True)
    variants["ours_dmp"] = (our_step(dmp, dmp_opt), variants["ours"][1])
    peer = peer_step()
    if peer is None:
        print("torch-rechub is not installed (pip install torch-rechub): peer skipped")
    else:
        variants["peer"] = (peer, peer_batches(ids, labels))
    n_batches = len(variants["ours"][1])
    print(f"{rows} rows, {n_batches} batches of {BATCH}, {len(TASKS)} tasks, torch threads "
          f"{torch.get_num_threads()}, funnel positives per task: "
          f"{[round(float(x), 3) for x in labels.mean(axis=0)]}")

    for step, batches in variants.values():  # warm-up
        for batch in batches[:warmup]:
            step(batch)
    spent: dict[str, list[float]] = {name: [] for name in variants}
    order = np.random.default_rng(0)
    for start in range(warmup, n_batches - chunk + 1, chunk):
        for name in order.permutation(list(variants)):
            step, batches = variants[name]
            began = time.perf_counter()
            for batch in batches[start : start + chunk]:
                step(batch)
            spent[name].append(time.perf_counter() - began)
    # Median over rounds: a burst of load from other processes spoils a round, not the figure.
    rate = {name: chunk * BATCH / statistics.median(times) for name, times in spent.items()}
    for name in variants:
        print(f"{name:<9} {rate[name]:>10,.0f} samples/s")
    if "peer" in rate:
        for name in ("ours", "ours_dmp"):
            ratio = rate[name] / rate["peer"]
            verdict = "ok" if ratio >= TARGET_RATIO else "MISSED"
            print(f"{name} / peer: {ratio:.2f}x (target >= {TARGET_RATIO}x {verdict})")

    flops = dense_flops_per_step()
    towers, mm_time, mm_peak = dense_seconds(ours_plain, reps=5 if quick else 30)
    print(f"dense FLOPs per step (fwd+bwd): {flops / 1e9:.2f} GFLOP; torch.mm peak on these "
          f"shapes {mm_peak / 1e9:.1f} GFLOP/s; same GEMMs as plain mm: {mm_time * 1e3:.1f} ms")
    for label, seconds in (
        ("towers alone (fwd+bwd)", towers),
        ("whole step, ours", BATCH / rate["ours"]),
        ("whole step, ours_dmp", BATCH / rate["ours_dmp"]),
    ):
        achieved = flops / seconds
        fraction, note = achieved / mm_peak, ""
        if label.startswith("towers"):
            note = f" (target >= {TARGET_FLOPS} {'ok' if fraction >= TARGET_FLOPS else 'MISSED'})"
        print(f"{label:<24} {seconds * 1e3:7.1f} ms  {achieved / 1e9:6.1f} GFLOP/s = "
              f"{fraction:.2f} of mm peak, {mm_time / seconds:.2f} of plain-mm GEMMs{note}")


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
