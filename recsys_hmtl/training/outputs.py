"""What a model hands the training core for one batch (SPEC §9): per-task losses and the shared
representation. Every adapter's model returns this; the core never looks inside a batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ContextManager, Mapping, Sequence

from torch import Tensor


@dataclass
class TaskOutputs:
    """``losses``: ``{task: scalar loss}`` in priority order (mean over the batch's samples);
    ``shared``: the shared representation the task heads read (non-leaf tensor(s), what rep-grad
    gradient stages differentiate against), or :class:`~recsys_hmtl.priority.TaskViews` (each
    task's own view of it at the task split: every task's gradient from one backward); ``extra``: an auxiliary loss added to every stage's
    objective (already weighted), or None; ``batch_size``: samples in the batch; ``task_counts``:
    for binary tasks, ``[T, 2]`` = per task (Σ predicted probability, Σ positive labels) of the
    batch (detached): the live windowed calibration and NE on ``/metrics``; None otherwise."""

    losses: Mapping[str, Tensor]
    shared: Tensor | Sequence[Tensor] | None
    extra: Tensor | None
    batch_size: int
    task_counts: Tensor | None = None


@dataclass
class TaskHeads:
    """The task heads y_i of a model whose heads are independent and linear (bilevel mode, seed 004):
    ``parameters`` hold every task's head (stacked over tasks is fine); ``per_task_sq_norms(grads)``
    gives ``[T]`` = ‖slice of task i‖² of tensors shaped like ``parameters`` (e.g. ∇_y Σ_i f_i, whose
    slice i is h_i = ∇_{y_i} f_i, since f_i reads only its own head); ``detached_inputs()``: a context
    in which the heads read their inputs detached (f_i then depends on y_i only)."""

    parameters: Sequence[Tensor]
    per_task_sq_norms: Callable[[Sequence[Tensor]], Tensor]
    detached_inputs: Callable[[], ContextManager]
