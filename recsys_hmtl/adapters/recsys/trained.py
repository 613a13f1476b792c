"""The trained tower of a recommendation run: its last checkpoint in the unsharded model.

What ``evaluate`` does before it scores (:func:`~recsys_hmtl.training.evaluate.evaluate_checkpoint`),
for the commands that serve a run (``export``, ``predict --run``): the run's resolved config, the
input files checked against those the checkpoint was trained on (the ids are encoded with
vocabularies fitted on them: other files would silently move every id to another embedding row),
the prepared data (its encoder and feature spec) and the tower with every rank's shards stitched
into one state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...data.pipeline import PreparedData
from ...errors import InputError
from ...models import MultiTaskModel, build_model
from ...training.checkpoint import CheckpointStore, assemble_full_state
from ...training.files import read_run_config
from ...training.run_plan import RunPlan, resolve_run
from ...training.setup import check_inputs_unchanged
from .adapter import RecsysAdapter


@dataclass
class TrainedRun:
    """A run folder's last checkpoint, ready to score: ``model`` in eval mode on the CPU."""

    run_dir: Path
    plan: RunPlan
    prepared: PreparedData
    model: MultiTaskModel
    checkpoint: dict  # CheckpointStore.latest(): step, path, world_size, inputs, ...

    @property
    def tasks(self) -> list[str]:
        return list(self.prepared.tasks)


def load_trained_run(run_dir: str | Path, why: str) -> TrainedRun:
    """The run in ``run_dir`` with its last checkpoint loaded; ``why`` ends the message that refuses
    changed input files. InputError (exit 2) for a folder that is not a recommendation run or has
    no checkpoint yet."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("run folder not found", file=str(run_dir), key="--run")
    plan = resolve_run(read_run_config(run_dir))
    if not isinstance(plan.adapter, RecsysAdapter):
        raise InputError(f"is a run of the '{plan.config.adapter}' adapter; export and predict serve "
                         "recommendation runs (adapter: recsys)", file=str(run_dir), key="--run")
    latest = CheckpointStore(run_dir).latest()
    if latest is None:
        raise InputError("the run has no checkpoint yet (train it first, or wait for its first checkpoint)",
                         file=str(run_dir / "checkpoints"))
    check_inputs_unchanged(plan.fingerprint(), latest, why)
    prepared = plan.adapter.prepare(plan.resolved)
    resolved = plan.resolved
    model = build_model(resolved.model_name, prepared.features, prepared.tasks, **resolved.model_hparams)
    model.load_state_dict(assemble_full_state(Path(latest["path"]), int(latest["world_size"])))
    return TrainedRun(run_dir, plan, prepared, model.eval(), latest)
