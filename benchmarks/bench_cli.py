"""The product path beside its peer and the GEMM bound, in one run (issue 13, target 1).

``recsys-hmtl train`` (``benchmarks/configs/mmoe_cli.yaml``: the demo logs read with the four sparse
features user_id, video_id, tab, hour; embeddings 16, 8 experts [128, 64], linear softmax gates,
towers [32], batch 4096, one process, Adam lr 1e-3) on 2M demo rows (``--quick``: 100k) for
``STEPS`` steps; ``samples_per_second`` from its ``run_summary.json`` (training steps only).

Beside it, on the very rows the CLI trained on (its encoded training split, same vocabularies):
- ``peer``: torch-rechub ``MMOE`` trained by torch-rechub's own ``MTLTrainer.train_one_epoch``
  (its DataLoader of feature dicts, its BCE losses, Adam) over the same number of batches;
- ``bound``: the model's GEMMs as plain ``torch.mm``/``bmm`` calls on contiguous operands: no
  framework, no elementwise work. Two figures: the forward shapes ×3 (as ``bench_models`` and the
  issue measure it), and every GEMM of forward and backward at its own shape (C = AB also needs
  ∂A = ∂C Bᵀ and ∂B = Aᵀ ∂C, whose inner dimensions differ: on CPU these run at other speeds).
The bound is measured just before and just after each of three CLI runs (the host's speed drifts:
on a shared 2-core VM the same GEMMs took 36-65 ms a step within minutes) and each run is set against
the mean of its two; the ratio printed is the median over the runs.
Targets: CLI ≥ 0.8 of the bound's samples/s; CLI ≥ 1.5x the peer. Run it on a quiet machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_models import BATCH, EMB, EXPERT_DIMS, EXPERTS, TOWER_DIM, dense_seconds, gemm_shapes, our_model

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "configs" / "mmoe_cli.yaml"
FEATURES = ("user_id", "video_id", "tab", "hour")
TARGET_BOUND, TARGET_PEER = 0.8, 1.5


def cli_run(data_root: str, out: Path, steps: int) -> dict:
    env = {**os.environ, "RECSYS_HMTL_PROGRESS": "0"}
    subprocess.run([sys.executable, "-m", "recsys_hmtl.cli", "train", "--config", str(CONFIG), "--out", str(out),
                    "--set", f"data.root={data_root}", "--set", f"trainer.max_steps={steps}"],
                   check=True, env=env, capture_output=True)
    return json.loads((out / "run_summary.json").read_text())


def encoded_train_rows(data_root: str, rows: int):
    """The CLI's encoded training split (read from its cache), the first ``rows`` rows."""
    from recsys_hmtl.config import load_config
    from recsys_hmtl.training.run_plan import resolve_run

    plan = resolve_run(load_config(str(CONFIG), [f"data.root={data_root}"]))
    prepared = plan.adapter.prepare(plan.resolved)
    frame = prepared.splits["train"].head(rows)
    vocab = {f.name: f.num_embeddings for f in prepared.features.sparse}
    labels = np.stack([frame.get_column(f"label:{t}").to_numpy() for t in prepared.tasks], axis=1)
    return frame, vocab, labels.astype(np.float32), len(prepared.tasks)


def peer_seconds(frame, vocab: dict, labels: np.ndarray, tasks: int) -> float | None:
    """Wall time of torch-rechub's own trainer over the rows, in batches of ``BATCH``."""
    try:
        from torch_rechub.basic.features import SparseFeature
        from torch_rechub.models.multi_task import MMOE
        from torch_rechub.trainers import MTLTrainer
    except ImportError:
        return None
    torch.manual_seed(0)
    features = [SparseFeature(n, vocab[n], embed_dim=EMB) for n in FEATURES]
    model = MMOE(features, ["classification"] * tasks, EXPERTS, expert_params={"dims": list(EXPERT_DIMS)},
                 tower_params_list=[{"dims": [TOWER_DIM]}] * tasks)
    trainer = MTLTrainer(model, ["classification"] * tasks, optimizer_params={"lr": 1e-3, "weight_decay": 0},
                         n_epoch=1, device="cpu", model_path=tempfile.mkdtemp(prefix="bench_cli_peer_"))
    x = {n: torch.from_numpy(frame.get_column(n).to_numpy().astype(np.int64)) for n in FEATURES}
    dataset = torch.utils.data.TensorDataset(*x.values(), torch.from_numpy(labels))
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, drop_last=True,
                                         collate_fn=lambda rows: _peer_batch(rows))
    began = time.perf_counter()
    trainer.train_one_epoch(loader)
    return time.perf_counter() - began


def backward_gemm_seconds(reps: int) -> float:
    """Median time of every forward and backward GEMM of a step as plain bmm: for C[m,n] = A[m,k] B[k,n],
    also ∂A[m,k] = ∂C[m,n] Bᵀ[n,k] and ∂B[k,n] = Aᵀ[k,m] ∂C[m,n]."""
    shapes = [s for g, m, k, n in gemm_shapes() for s in ((g, m, k, n), (g, m, n, k), (g, k, m, n))]
    operands = [(torch.randn(g, m, k), torch.randn(g, k, n)) for g, m, k, n in shapes]
    times: list[list[float]] = [[] for _ in operands]
    for round_ in range(reps + 1):
        for (a, b), spent in zip(operands, times):
            began = time.perf_counter()
            torch.mm(a[0], b[0]) if a.shape[0] == 1 else torch.bmm(a, b)
            if round_:
                spent.append(time.perf_counter() - began)
    return sum(statistics.median(t) for t in times)


def _peer_batch(rows: list) -> tuple[dict, torch.Tensor]:
    columns = [torch.stack(c) for c in zip(*rows)]
    return dict(zip(FEATURES, columns[:-1])), columns[-1]


def main(quick: bool = False) -> None:
    torch.set_num_threads(2)
    rows, steps, pairs = (100_000, 15, 1) if quick else (2_000_000, 150, 3)
    reps = 5 if quick else 20
    model = our_model(sharded=False)[0]

    def bound_seconds() -> tuple[float, float]:
        return dense_seconds(model, reps=reps)[1], backward_gemm_seconds(reps=reps)

    runs = []  # (CLI samples/s, bound seconds, fwd+bwd bound seconds): the bound measured just before
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:  # and just after each CLI run, averaged
        subprocess.run([sys.executable, "-m", "recsys_hmtl.cli", "demo-data", "--out", tmp, "--rows", str(rows)],
                       check=True, capture_output=True)
        for pair in range(pairs):
            before = bound_seconds()
            summary = cli_run(tmp, Path(tmp) / f"run{pair}", steps)
            after = bound_seconds()
            runs.append((summary["samples_per_second"], (before[0] + after[0]) / 2, (before[1] + after[1]) / 2))
        frame, vocab, labels, tasks = encoded_train_rows(tmp, summary["steps"] * BATCH)
        peer = peer_seconds(frame, vocab, labels, tasks)
    print(f"{rows:,} demo rows, features {', '.join(FEATURES)}, MMoE 8 experts {list(EXPERT_DIMS)}, "
          f"8 tasks, batch {BATCH}, {summary['steps']} steps, torch threads {torch.get_num_threads()}; "
          f"{pairs} CLI run(s), the bound measured just before and after each")
    for cli, mm_seconds, full_seconds in runs:
        print(f"recsys-hmtl train  {cli:>10,.0f} samples/s  ({BATCH / cli * 1e3:.1f} ms a step); GEMM bound "
              f"{BATCH / mm_seconds:,.0f} ({mm_seconds * 1e3:.1f} ms: the same GEMMs as plain mm), "
              f"forward-and-backward shapes {BATCH / full_seconds:,.0f} ({full_seconds * 1e3:.1f} ms)")
    ratio = statistics.median(cli * mm / BATCH for cli, mm, _ in runs)
    full = statistics.median(cli * f / BATCH for cli, _, f in runs)
    print(f"CLI / bound: {ratio:.2f} (median of the runs; target >= {TARGET_BOUND} "
          f"{'ok' if ratio >= TARGET_BOUND else 'MISSED'}); against the forward-and-backward bound {full:.2f}")
    if peer is None:
        print("torch-rechub is not installed (pip install torch-rechub): peer skipped")
        return
    peer_rate = summary["steps"] * BATCH / peer
    cli = statistics.median(c for c, _, _ in runs)
    print(f"torch-rechub       {peer_rate:>10,.0f} samples/s  (MTLTrainer.train_one_epoch, same rows)")
    print(f"CLI / peer: {cli / peer_rate:.2f}x (median CLI run; target >= {TARGET_PEER}x "
          f"{'ok' if cli / peer_rate >= TARGET_PEER else 'MISSED'})")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
