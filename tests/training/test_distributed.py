"""``--nproc 2``: two gloo ranks under torchrun, DMP-sharded tables, each rank reading its own data
shard (SPEC §6). The checkpoint holds shards from both ranks and evaluates in one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

from mainjob import ROOT, read_json, run_cli, run_cli_process, train_args

SCHEDULE = ["trainer.max_epochs=3", "trainer.max_steps=-1", "trainer.ckpt_every=20"]


@pytest.fixture(scope="module")
def one_process_run(demo_root, tmp_path_factory):
    """The single-process reference run of SCHEDULE."""
    one = tmp_path_factory.mktemp("one") / "run"
    assert run_cli(*train_args(demo_root, one, *SCHEDULE)) == 0
    return one


def check_two_ranks_match_one(two, one) -> None:
    """Both ranks hold table shards in the checkpoint; the AUCs are the single process's."""
    latest = read_json(two / "checkpoints" / "latest.json")
    assert latest["world_size"] == 2
    shards_per_rank = []
    for rank in (0, 1):
        payload = torch.load(two / "checkpoints" / latest["dir"] / f"rank{rank}.pt", weights_only=True)
        shards_per_rank.append(sum(len(v["__shards__"]) for v in payload["model"].values()
                                   if isinstance(v, dict) and "__shards__" in v))
    assert all(n > 0 for n in shards_per_rank), f"embedding shards per rank: {shards_per_rank}"

    a, b = read_json(one / "run_summary.json"), read_json(two / "run_summary.json")
    assert b["world_size"] == 2 and b["steps"] == a["steps"]  # global batch: same steps per epoch
    for task in ("is_click", "long_view"):
        assert abs(a["val"][task]["auc"] - b["val"][task]["auc"]) < 0.03, (task, a["val"][task], b["val"][task])

    assert run_cli("evaluate", "--run", two) == 0  # one process evaluates the two-rank checkpoint
    assert read_json(two / "eval_report.json")["tasks"]["is_click"]["auc"] > 0.5


def test_two_process_run_shards_tables_on_both_ranks_and_reaches_the_single_process_auc(
        demo_root, tmp_path, one_process_run):
    two = tmp_path / "two"
    result = run_cli_process(*train_args(demo_root, two, *SCHEDULE), "--nproc", "2", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    check_two_ranks_match_one(two, one_process_run)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_nodes_through_the_multi_host_path_match_one_process(demo_root, tmp_path, one_process_run):
    """Two "hosts" on this machine: one torchrun per node (--nnodes 2, --node-rank 0/1, one process
    each, a static rendezvous on 127.0.0.1), sharing the run folder and the data cache as a
    cluster's shared filesystem would."""
    two = tmp_path / "two_nodes"
    port = free_port()
    env = {**os.environ, "RECSYS_HMTL_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(rank),
         "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", str(port),
         "-m", "recsys_hmtl.cli", *train_args(demo_root, two, *SCHEDULE)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    errors = [node.communicate(timeout=600)[1] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
    check_two_ranks_match_one(two, one_process_run)


def test_bad_model_key_with_nproc_exits_2_before_any_rank_starts(demo_root, tmp_path):
    result = run_cli_process(*train_args(demo_root, tmp_path / "run", "model.num_expert=3"), "--nproc", "2")
    assert result.returncode == 2 and "model.num_expert" in result.stderr and "num_experts" in result.stderr
    assert "torch.distributed" not in result.stderr and not (tmp_path / "run").exists()


def test_sigterm_stops_both_ranks_after_the_same_step_with_a_checkpoint(demo_root, tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from mainjob import ROOT

    run = tmp_path / "run"
    schedule = ["trainer.max_epochs=20", "trainer.max_steps=-1", "trainer.ckpt_every=5"]
    env = {**os.environ, "RECSYS_HMTL_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "recsys_hmtl.cli", *train_args(demo_root, run, *schedule),
                             "--nproc", "2"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    pointer = run / "checkpoints" / "latest.json"
    while not pointer.exists() and proc.poll() is None:
        time.sleep(0.01)
    first = json.loads(pointer.read_text())["step"]
    proc.send_signal(signal.SIGTERM)  # as systemd or Kubernetes stop the job: to the main process
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert err.count("stopped by SIGTERM after batch") == 2, err[-3000:]  # both ranks, same batch
    latest = json.loads(pointer.read_text())
    assert latest["step"] > first and f"stopped by SIGTERM after batch {latest['step']};" in err
    assert sorted(p.name for p in (run / "checkpoints" / latest["dir"]).iterdir()) == [
        "checkpoint.json", "rank0.pt", "rank0.pt.sha256", "rank1.pt", "rank1.pt.sha256"]

    resumed = run_cli_process(*train_args(demo_root, run, *schedule, "trainer.max_epochs=1"), "--nproc", "2",
                              "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]


@pytest.mark.parametrize("stage", ["uw", "famo"])
def test_stage_state_stays_equal_on_every_rank(demo_root, tmp_path, stage):
    """UW's log-variances (not DDP parameters: their gradients are averaged over the ranks) and
    FAMO's loss statistics (the stage sees the global batch's losses on every rank) stay equal."""
    run = tmp_path / stage
    result = run_cli_process(*train_args(demo_root, run, f"stage.name={stage}", "trainer.max_steps=8"),
                             "--nproc", "2", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    latest = read_json(run / "checkpoints" / "latest.json")
    stages = [torch.load(run / "checkpoints" / latest["dir"] / f"rank{r}.pt", weights_only=True)["stage"]
              for r in (0, 1)]
    state = [k for k, v in stages[0].items() if torch.is_tensor(v) and v.is_floating_point()]
    assert any(not torch.equal(stages[0][k], torch.zeros_like(stages[0][k])) for k in state)  # it moved
    for key in state:
        assert torch.equal(stages[0][key], stages[1][key]), key
