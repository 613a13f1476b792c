"""What a test must give a loss stage beyond its name: the gradient mode it supports, bilevel mode
for stages that learn from held-out batches (imported as ``stage_modes``, a unique module name)."""

from __future__ import annotations

from recsys_hmtl.priority.registry import STAGES


def needs_params(stage: str) -> bool:
    """The stage combines gradients of shared parameters only (``grad_modes``: no ``rep``)."""
    cls = STAGES.get(stage)
    return cls.needs_task_grads and "rep" not in cls.grad_modes


def needs_bilevel(stage: str) -> bool:
    """The stage learns from a held-out batch each step (bilevel mode: the recommendation and vision
    adapters have held-out slices)."""
    return STAGES.get(stage).needs_meta_batch


def cli_settings(stage: str) -> list[str]:
    """``--set`` items a CLI run of ``stage`` needs besides ``stage.name``."""
    return [f"stage.name={stage}", *(["stage.grad_mode=params"] if needs_params(stage) else []),
            *(["bilevel.holdout=0.2"] if needs_bilevel(stage) else [])]


def shared_for(stage: str, out, model):
    """What ``stage.backward`` differentiates against in an in-process test: the model's shared
    parameters for parameter-only stages, else the output's shared representation."""
    return model.shared_parameters() if needs_params(stage) else out.shared
