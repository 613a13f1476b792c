"""What one training step computes between the batch and the optimizer (SPEC §6): a step rule.

:class:`~recsys_hmtl.training.module.MultiTaskTraining` owns the loop's bookkeeping (the
non-finite guard, the stop agreement, counters, checkpoints); the rule owns the arithmetic:
``forward(batch)`` → :class:`~.outputs.TaskOutputs` (the losses the guard checks and the stage
weighs), ``backward(out, losses, extra)`` → gradients in ``.grad`` for the dense optimizer.

* :class:`PlainStep`: one forward, the stage's backward (every stage, ordinary training).
* :class:`~.inner_loop.DoubleLoopStep`: LDC-MTL's Algorithm 2 (the stage needs the lower level).
* :class:`~.bilevel.BilevelStep`: seed 004's bilevel mode (``bilevel:`` in the config).
* :class:`~.meta_step.MetaStep`: Auto-Lambda's meta-gradient (bilevel mode, ``needs_meta_batch``).
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ..errors import InputError
from ..priority import LossStage
from .adapter import Trainable
from .outputs import TaskOutputs


GRAD_MODES = ("rep", "params")


class PlainStep:
    """One forward of the batch, one backward through the loss stage. A gradient stage combines
    the tasks' gradients at the shared representation (``grad_mode`` rep, the default) or at the
    model's shared dense parameters (``params``: :meth:`Trainable.shared_parameters`)."""

    def __init__(self, trainable: Trainable, stage: LossStage, grad_mode: str | None = None) -> None:
        self.trainable, self.stage = trainable, stage
        self.shared_parameters = None
        if grad_mode == "params":
            self.shared_parameters = [p for p in (trainable.shared_parameters() or []) if p.requires_grad]
            if not self.shared_parameters:
                raise InputError("the model has no shared dense parameters to combine gradients at",
                                 key="stage.grad_mode", hint="use grad_mode: rep")

    def forward(self, batch: Any) -> TaskOutputs:
        return self.trainable.forward(batch)

    def backward(self, out: TaskOutputs, losses: Mapping[str, Tensor], extra: Tensor | None, *,
                 step: int = 0) -> None:
        """``step``: the run's number of this step if it succeeds (rules measure costly things every
        so many steps)."""
        shared = out.shared if self.shared_parameters is None else self.shared_parameters
        self.stage.backward(losses, shared=shared, extra=extra)

    def diagnostics(self) -> dict[str, float]:
        """What the rule measured at its last step (merged into the stage's diagnostics)."""
        return {}

    def summary(self) -> dict:
        """What ``run_summary.json`` says about the rule (nothing for the plain step)."""
        return {}


def check_grad_mode(mode: str | None, stage: LossStage) -> None:
    """``stage.grad_mode`` names a mode the stage supports (InputError otherwise; None = rep)."""
    if mode is None:
        if stage.needs_task_grads and "rep" not in stage.grad_modes:
            raise InputError(f"stage '{stage.name}' combines gradients of the shared parameters only",
                             key="stage.grad_mode", hint="set stage.grad_mode=params")
        return
    if mode not in GRAD_MODES:
        raise InputError(f"unknown gradient mode '{mode}'", key="stage.grad_mode", hint="rep or params")
    if not stage.needs_task_grads:
        raise InputError(f"stage '{stage.name}' weighs the losses, not their gradients: grad_mode has no effect",
                         key="stage.grad_mode")
    if mode not in stage.grad_modes:
        raise InputError(f"stage '{stage.name}' supports grad_mode {' or '.join(stage.grad_modes)}, not {mode}",
                         key="stage.grad_mode")


def step_rule_for(trainable: Trainable, stage: LossStage, bilevel: Any = None, log_every: int = 1,
                  grad_mode: str | None = None) -> PlainStep:
    """The rule a run needs: bilevel mode when ``bilevel`` (the config's section) is on, LDC-MTL's
    double loop when the stage needs the lower level, else the plain step."""
    if bilevel is not None and bilevel.enabled and stage.needs_meta_batch:
        from .meta_step import MetaStep

        return MetaStep(trainable, stage)
    if bilevel is not None and bilevel.enabled:
        from .bilevel import BilevelStep

        return BilevelStep(trainable, stage, kkt_every=bilevel.kkt_every or log_every,
                           penalty_grad=bilevel.penalty_grad)
    if stage.needs_lower_level:
        from .inner_loop import DoubleLoopStep

        return DoubleLoopStep(trainable, stage)
    return PlainStep(trainable, stage, grad_mode)
