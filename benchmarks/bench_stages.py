"""Per-step cost of every loss stage on an 8-task MMoE-sized model, relative to ``sum``.

The model is built here in plain torch (it must not depend on recsys_hmtl.models): 8 sparse
features through ``nn.EmbeddingBag`` (16-d) plus 16 dense features, 8 experts [128, 64] computed
as one batched matmul, 8 softmax gates, 8 towers [32] -> 1, BCE losses; batch 4096. A step is
forward + ``stage.backward`` + SGD step. Gradient stages run in rep-grad mode (``shared`` = the
expert outputs [B, 8, 64]) and in parameter mode (``shared`` = the expert weights); the stages that
learn their weights from a held-out batch (Auto-Lambda, MOML) take the training job's meta step
(``MetaStep``, on a second batch) before it, as in bilevel mode. All stages are
timed side by side: each repetition runs every variant once in a fresh random order, and the
median over repetitions is reported.
Targets (issue 4): O(1) stages <= 1.05x sum; gradient stages in rep-grad mode <= 1.5x sum and
well below their parameter mode.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import Tensor, nn

from recsys_hmtl.priority import available_stages, build_stage
from recsys_hmtl.training.adapter import Trainable
from recsys_hmtl.training.bilevel import PairedBatch
from recsys_hmtl.training.meta_step import MetaStep
from recsys_hmtl.training.outputs import TaskOutputs

NUM_TASKS = 8
NUM_EXPERTS = 8
SPARSE, VOCAB, EMB_DIM, DENSE = 8, 10_000, 16, 16
EXPERT_DIMS = (128, 64)
TOWER_DIM = 32
O1_STAGES = ("scd_vio", "hb_aho", "ldc_mtl", "uw", "dwa", "famo", "wc_penalty")
O1_TARGET, GRAD_TARGET = 1.05, 1.5


class BenchMMoE(nn.Module):
    """MMoE (Ma et al. 2018) with experts, gates and towers each evaluated as one batched matmul."""

    def __init__(self, tasks: int = NUM_TASKS, experts: int = NUM_EXPERTS) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.EmbeddingBag(VOCAB, EMB_DIM, mode="sum") for _ in range(SPARSE)
        )
        d_in, (h1, h2) = SPARSE * EMB_DIM + DENSE, EXPERT_DIMS
        self.w1 = nn.Parameter(torch.randn(experts, d_in, h1) / d_in**0.5)
        self.b1 = nn.Parameter(torch.zeros(experts, 1, h1))
        self.w2 = nn.Parameter(torch.randn(experts, h1, h2) / h1**0.5)
        self.b2 = nn.Parameter(torch.zeros(experts, 1, h2))
        self.gates = nn.Linear(d_in, tasks * experts)
        self.t1 = nn.Parameter(torch.randn(tasks, h2, TOWER_DIM) / h2**0.5)
        self.tb1 = nn.Parameter(torch.zeros(tasks, 1, TOWER_DIM))
        self.t2 = nn.Parameter(torch.randn(tasks, TOWER_DIM, 1) / TOWER_DIM**0.5)
        self.tasks, self.experts = tasks, experts

    def expert_parameters(self) -> list[nn.Parameter]:
        return [self.w1, self.b1, self.w2, self.b2]

    def forward(self, ids: Tensor, dense: Tensor) -> tuple[Tensor, Tensor]:
        """(logits [B, T], expert outputs [B, E, h2] = the shared representation)."""
        emb = [bag(ids[:, i : i + 1]) for i, bag in enumerate(self.embeddings)]
        x = torch.cat(emb + [dense], dim=1)
        h = torch.relu(torch.baddbmm(self.b1, x.expand(self.experts, -1, -1), self.w1))
        rep = torch.relu(torch.baddbmm(self.b2, h, self.w2)).transpose(0, 1)  # [B, E, h2]
        gate = torch.softmax(self.gates(x).view(-1, self.tasks, self.experts), dim=-1)
        mixed = torch.bmm(gate, rep).transpose(0, 1)  # [T, B, h2]
        hidden = torch.relu(torch.baddbmm(self.tb1, mixed, self.t1))
        return torch.bmm(hidden, self.t2).squeeze(-1).T, rep


class BenchTrainable(Trainable):
    """The model as the training job sees it (for the meta step): a batch (ids, dense, labels) →
    per-task BCE losses and the expert outputs."""

    def __init__(self, model: BenchMMoE, tasks: list[str]) -> None:
        super().__init__(model)
        self.tasks = tasks

    def forward(self, batch: tuple[Tensor, Tensor, Tensor]) -> TaskOutputs:
        ids, dense, labels = batch
        logits, rep = self.module(ids, dense)
        per_task = nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(0)
        return TaskOutputs(losses=dict(zip(self.tasks, per_task)), shared=rep, extra=None, batch_size=len(ids))


def _variants() -> list[tuple[str, str]]:
    """(stage, mode) pairs: scalarising stages once, gradient stages in each mode they support
    (``grad_modes``: moco and db_mtl combine parameter gradients only), meta-learned ones with
    their meta step."""
    out = []
    for name in available_stages():
        stage = build_stage(name, tasks=[f"t{i}" for i in range(NUM_TASKS)])
        if stage.needs_meta_batch:
            out.append((name, "meta"))
        elif stage.needs_task_grads:
            out += [(name, mode) for mode, key in (("rep", "rep"), ("param", "params")) if key in stage.grad_modes]
        else:
            out.append((name, "-"))
    return out


def main(quick: bool = False) -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    batch, reps = (1024, 5) if quick else (4096, 15)
    tasks = [f"t{i}" for i in range(NUM_TASKS)]
    model = BenchMMoE()
    trainable = BenchTrainable(model, tasks)
    train_batch, held_out = [(torch.randint(0, VOCAB, (batch, SPARSE)), torch.randn(batch, DENSE),
                              (torch.rand(batch, NUM_TASKS) < 0.3).float()) for _ in range(2)]
    variants = _variants()
    stages = {v: build_stage(v[0], tasks=tasks) for v in variants}
    meta_steps = {v: MetaStep(trainable, stages[v]) for v in variants if v[1] == "meta"}
    optimizers = {
        v: torch.optim.SGD(list(model.parameters()) + list(s.parameters()), lr=1e-3)
        for v, s in stages.items()
    }

    def step(variant: tuple[str, str]) -> float:
        stage, optimizer = stages[variant], optimizers[variant]
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        if variant in meta_steps:
            rule = meta_steps[variant]
            out = rule.forward(PairedBatch(train_batch, held_out))
            rule.backward(out, out.losses, None)
        else:
            out = trainable.forward(train_batch)
            shared = out.shared if variant[1] == "rep" else model.expert_parameters()
            stage.backward(out.losses, shared=shared)
        optimizer.step()
        return time.perf_counter() - start

    print(f"batch {batch}, {NUM_TASKS} tasks, {NUM_EXPERTS} experts {list(EXPERT_DIMS)}, towers "
          f"[{TOWER_DIM}], torch threads {torch.get_num_threads()}, median of {reps} repetitions")
    for variant in variants:  # warm-up (and a first statistic for stateful stages)
        step(variant)
    times: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    order = torch.Generator().manual_seed(0)
    for _ in range(reps):  # a fresh random order each repetition: no stage always follows another
        for i in torch.randperm(len(variants), generator=order).tolist():
            times[variants[i]].append(step(variants[i]))
    base = statistics.median(times[("sum", "-")])
    medians = {v: statistics.median(t) for v, t in times.items()}
    print(f"{'stage':<12} {'mode':<6} {'ms/step':>8} {'x sum':>6}  target")
    for (name, mode), ms in sorted(medians.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        ratio = ms / base
        if name in O1_STAGES:
            verdict = f"<= {O1_TARGET} {'ok' if ratio <= O1_TARGET else 'MISSED'}"
        elif mode == "rep" and (name, "param") in medians:
            below = ratio < medians[(name, "param")] / base
            verdict = (f"<= {GRAD_TARGET} {'ok' if ratio <= GRAD_TARGET else 'MISSED'}; "
                       f"{'below' if below else 'NOT below'} param mode")
        else:
            verdict = ""
        print(f"{name:<12} {mode:<6} {ms * 1e3:8.1f} {ratio:6.2f}  {verdict}")


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
