"""The one small base class every loss stage derives from (LibMTL style: the trainer never knows
which method runs). Imports only torch (SPEC §2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from .support import StageProfile


class NonFiniteLossError(FloatingPointError):
    """A task loss is NaN or infinite; raised before any running statistic changes."""

    def __init__(self, task: str, value: float) -> None:
        self.task, self.value = task, value
        super().__init__(f"non-finite loss for task '{task}': {value}")




def with_extra(objective: Tensor, extra: Tensor | None) -> Tensor:
    """``objective + extra`` (``extra`` a scalar tensor or None)."""
    return objective if extra is None else objective + extra.reshape(())


class LossStage(nn.Module):
    """Combines per-task losses, given in priority order (``tasks[0]`` = highest priority).

    Scalarising stages implement :meth:`objective`; ``forward(losses)`` returns it and
    ``backward(losses, shared)`` is ``forward(losses).backward()``.
    Gradient stages set ``needs_task_grads = True`` and implement :meth:`backward` (per-task
    gradients with respect to ``shared``: a list of shared parameters, or the shared representation
    tensor for rep-grad); their ``forward`` raises.

    Running statistics live in buffers (``state_dict`` round trips resume exactly); learnable stage
    parameters (routers, log-variances) are ``parameters()`` and go to the dense optimizer.
    Diagnostics keys are ``"<quantity>/<task>"`` (e.g. ``"weight/is_click"``, ``"gate/is_like"``,
    ``"threshold/is_like"``, ``"residual/is_like"``) or plain ``"<quantity>"`` (``"feasibility_gap"``).
    """

    name: ClassVar[str] = ""
    needs_task_grads: ClassVar[bool] = False
    profile: ClassVar["StageProfile | None"] = None  # what it supports and costs (support.py)
    # Takes equality constraints h: ``backward(losses, ..., constraints=h)`` (bilevel mode passes the
    # lower level's stationarity residuals there; seed 004).
    accepts_constraints: ClassVar[bool] = False
    # Learns from a second (held-out) batch each step through a virtual step (Auto-Lambda): the
    # training job runs its meta step in bilevel mode.
    needs_meta_batch: ClassVar[bool] = False
    exact_hypergradient: ClassVar[bool] = False  # the meta step's H from the task gradients, not a difference
    # Gradient stages: where the training job may take the per-task gradients (``stage.grad_mode``):
    # at the shared representation (``rep``, the default) and/or at the shared dense parameters.
    grad_modes: ClassVar[tuple[str, ...]] = ("rep", "params")

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        tasks = tuple(tasks)
        if not tasks:
            raise ValueError(f"stage '{self.name}': 'tasks' must name at least one task")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"stage '{self.name}': duplicate task names in {list(tasks)}")
        self.tasks: tuple[str, ...] = tasks
        self._diagnostics: dict[str, float] = {}

    @property
    def needs_lower_level(self) -> bool:
        """True when the trainer must run an inner loop on the lower level before each step and
        hand its losses to the stage (LDC-MTL's double loop); see ``ldc_mtl``."""
        return False

    # ----------------------------------------------------------------- helpers for subclasses
    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def stack(self, losses: Mapping[str, Tensor]) -> Tensor:
        """Scalar losses as a ``[K]`` tensor in priority order; checks keys and finiteness first."""
        if set(losses) != set(self.tasks):
            missing = [t for t in self.tasks if t not in losses]
            extra = [t for t in losses if t not in self.tasks]
            raise KeyError(
                f"stage '{self.name}' expects losses for tasks {list(self.tasks)}; "
                f"missing {missing}, unexpected {extra}"
            )
        out = []
        for task in self.tasks:
            value = losses[task]
            if not torch.is_tensor(value) or value.numel() != 1:
                raise ValueError(f"loss for task '{task}' must be a scalar tensor")
            out.append(value.reshape(()))
        stacked = torch.stack(out)
        finite = torch.isfinite(stacked.detach())
        if not bool(finite.all()):
            i = int((~finite).nonzero()[0])
            raise NonFiniteLossError(self.tasks[i], float(stacked[i].detach()))
        return stacked

    def record(self, quantity: str, values: Tensor | Sequence[float] | float | None = None) -> None:
        """Store diagnostics: per task when ``values`` has K entries, else one number."""
        if values is None:
            return
        if torch.is_tensor(values):
            values = values.detach().reshape(-1).tolist()
        elif isinstance(values, (int, float)):
            values = [float(values)]
        values = list(values)
        if len(values) == 1 and self.num_tasks != 1:
            self._diagnostics[quantity] = float(values[0])
        else:
            for task, v in zip(self.tasks, values):
                self._diagnostics[f"{quantity}/{task}"] = float(v)

    # ----------------------------------------------------------------------------- public API
    def objective(self, losses: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Scalar objective from the ``[K]`` loss vector (scalarising stages)."""
        raise NotImplementedError

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        if self.needs_task_grads:
            raise TypeError(
                f"stage '{self.name}' combines per-task gradients and has no scalar objective: "
                "call stage.backward(losses, shared=...) instead of stage(losses)"
            )
        return self.objective(self.stack(losses))

    def backward(
        self, losses: Mapping[str, Tensor], shared=None, extra: Tensor | None = None
    ) -> Tensor:
        """Back-propagate the combined loss once; returns the (detached) objective or loss sum.

        ``extra``: a scalar added to the objective with weight 1 inside the same single backward
        (auxiliary terms that are not task losses, e.g. AITM's calibrator); never re-weighted."""
        objective = self(losses)
        with_extra(objective, extra).backward()
        return objective.detach()

    def diagnostics(self) -> dict[str, float]:
        """What the stage decided at its last step (weights, gates, thresholds, residuals, ...)."""
        return dict(self._diagnostics)

    def end_epoch(self) -> None:
        """Epoch-granular updates (HB-AHO thresholds in 'epoch' mode, DWA); default: nothing."""

    def extra_repr(self) -> str:
        return f"tasks={list(self.tasks)}"
