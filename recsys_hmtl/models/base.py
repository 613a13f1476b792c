"""The base class of every tower and the value its ``forward`` returns.

Contract for the training step (SPEC §4):

* ``model(batch)`` returns a :class:`MultiTaskOutput`: a ``dict`` ``{task: logit [B]}`` in task
  priority order, plus ``.stacked`` (the same logits as one ``[T, B]`` tensor; the dict values are
  its rows) and ``.shared`` (the shared representation, below).
* Per-task loss: ``binary_cross_entropy_with_logits(outputs[task], labels[:, t])`` for EVERY tower.
  ESMM (``chained_probabilities = True``) returns logit(p_k) of the chained products
  p_k = p_{k-1}·σ(z_k), so that same BCE is the ESMM loss on the products; σ(output) is p_k.
* ``model.auxiliary_losses(outputs, labels)``: extra terms the training step adds to the combined
  objective with weight 1 (already scaled), e.g. AITM's ``{"calibrator": α·Σ_k mean(max(p_k −
  p_{k−1}, 0))}``; empty for the other towers. They are not task losses, so loss stages never
  re-weight them. Call it on the unwrapped model (``dmp.module``) under DMP.
* ``outputs.shared``: a tensor every task's logit depends on and that depends only on shared
  parameters (embeddings and, where the tower has them, shared dense layers): the target of
  rep-grad gradient stages (``torch.autograd.grad(loss_t, outputs.shared)``). Which tensor it is
  for each tower is in the tower's docstring: the embedding concat for MMoE/PLE/ESMM/AITM, the
  shared-embedding concat for STEM, the bottom output for SharedBottom, the mixture for OMoE.
* Task views (``model.task_views = True``, where ``model.supports_task_views``): the model also
  gives the shared tensors at the point where the task paths separate and each task's own view of
  them (``outputs.views``: ``("expand", source, view [T, *source.shape])`` or ``("mixture", experts,
  gates, mixed)``, see ``priority/task_views.py``), of which task t's path reads row t only, so one
  backward of Σ L_t to the views yields every task's gradient (gradient stages). SharedBottom: the
  bottom output; OMoE: the mixture (its gate is shared); MMoE, PLE and STEM (one level): the shared
  experts' outputs, each task's gate mixing its own view of them. Gates and task experts are
  task-specific: the embedding rows they read get Σ h_t ∂L_t/∂x through them (a per-task view of
  the [B, F·dim] concat costs T copies of its gradient, about 60 % of the step at 581 inputs), the
  combined direction through the shared experts.
  ESMM and AITM chain their heads (no views); multi-level PLE/STEM have none either.
* ``model.shared_parameters()``: the dense parameters every task depends on (parameter-gradient
  mode); embedding tables are excluded (under DMP the fused sparse optimizer updates them in
  backward and they are not plain parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..data.batch import Batch
from ..data.spec import FeatureSpec
from ..errors import InputError
from .embeddings import FeatureEmbedding
from .layers import GroupedMLP, mix_experts


@dataclass(frozen=True)
class ModelParams:
    """Hyper-parameters every tower has (SPEC §4 names); towers subclass it with their own."""

    # Layer-size lists that must have at least one entry (the others may be empty).
    NON_EMPTY: ClassVar[tuple[str, ...]] = ()

    embedding_dim: int = 16
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}", key="model.dropout")
        for name in self.NON_EMPTY:
            if not getattr(self, name):
                raise InputError("needs at least one layer size", key=f"model.{name}")


class MultiTaskOutput(dict):
    """``{task: logit [B]}`` in priority order, with ``stacked [T, B]``, ``shared`` and the task
    ``views`` (:class:`TaskViewRecorder` records, empty without task views) attached."""

    def __init__(self, tasks: Sequence[str], stacked: Tensor, shared: Tensor,
                 views: Sequence[tuple] = ()) -> None:
        # Indexing (not unbind/zip) keeps forward FX-traceable for TorchRec's train pipelines.
        super().__init__((task, stacked[t]) for t, task in enumerate(tasks))
        self.stacked = stacked
        self.shared = shared
        self.views = tuple(views)


class TaskViewRecorder:
    """Gives the tasks their views of shared tensors during one forward and records them as
    ``(kind, *tensors)`` (the kinds of ``priority/task_views.py``)."""

    def __init__(self, num_tasks: int) -> None:
        self.num_tasks = num_tasks
        self.records: list[tuple] = []

    def __call__(self, source: Tensor) -> Tensor:
        """``source`` expanded over the tasks, ``[T, *source.shape]`` (no copy)."""
        view = source.unsqueeze(0).expand(self.num_tasks, *source.shape)
        self.records.append(("expand", source, view))
        return view

    def mixture(self, gates: Tensor, experts: Tensor) -> Tensor:
        """Shared ``experts [E, B, H]`` mixed by each task's gate ``[T, B, E]`` → ``[T, B, H]``."""
        mixed = mix_experts(gates, experts)
        self.records.append(("mixture", experts, gates, mixed))
        return mixed


class MultiTaskModel(nn.Module):
    """A multi-task tower: embeddings (TorchRec EBC) + plain dense ``nn.Module`` parts."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[ModelParams]] = ModelParams
    # True for ESMM: the logits are those of chained products (σ(output_k) = Π_{j≤k} σ(z_j)).
    chained_probabilities: ClassVar[bool] = False

    def __init__(
        self,
        features: FeatureSpec,
        tasks: Sequence[str],
        params: ModelParams,
        *,
        embedding_device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        tasks = tuple(tasks)
        if not tasks:
            raise InputError("a model needs at least one task", key="tasks")
        if len(set(tasks)) != len(tasks):
            raise InputError(f"duplicate task names in {list(tasks)}", key="tasks")
        self.features = features
        self.tasks: tuple[str, ...] = tasks
        self.params = params
        self.embedding_device = embedding_device
        self._task_views = False

    @property
    def supports_task_views(self) -> bool:
        """Whether :attr:`task_views` may be set (see the module docstring)."""
        return False

    @property
    def task_views(self) -> bool:
        """Set by a trainer whose loss stage differentiates per task (off by default)."""
        return self._task_views

    @task_views.setter
    def task_views(self, on: bool) -> None:
        if on and not self.supports_task_views:
            raise ValueError(f"model '{self.name}' cannot give task views (see models/base.py)")
        self._task_views = bool(on)

    def view_recorder(self) -> TaskViewRecorder | None:
        """A recorder for this forward when task views are on, else None."""
        return TaskViewRecorder(self.num_tasks) if self._task_views else None

    def feature_embedding(self, table_prefix: str = "") -> FeatureEmbedding:
        """The TorchRec embeddings of this model's features (``[B, F*dim + D]``)."""
        return FeatureEmbedding(
            self.features,
            self.params.embedding_dim,
            table_prefix=table_prefix,
            device=self.embedding_device,
        )

    def task_towers(self, in_dim: int, *, shared_input: bool) -> GroupedMLP:
        """One tower per task, ``params.tower_dims`` then a logit, computed as one grouped MLP
        (``shared_input``: every tower reads the same ``[B, in_dim]``, else ``[T, B, in_dim]``)."""
        return GroupedMLP(self.num_tasks, in_dim, [*self.params.tower_dims, 1], shared_input=shared_input,
                          dropout=self.params.dropout, activate_last=False)

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def forward(self, batch: Batch) -> MultiTaskOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def auxiliary_losses(
        self, outputs: Mapping[str, Tensor], labels: Tensor
    ) -> dict[str, Tensor]:
        """Extra scalar loss terms (already weighted) the training step adds; none by default."""
        return {}

    def shared_modules(self) -> list[nn.Module]:
        """Dense modules every task depends on; towers override it."""
        return []

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for module in self.shared_modules() for p in module.parameters()]

    def output(self, logits: Tensor, shared: Tensor, views: TaskViewRecorder | None = None) -> MultiTaskOutput:
        """Wrap ``[T, B]`` logits (priority order), the shared representation and the task views."""
        return MultiTaskOutput(self.tasks, logits, shared, views.records if views is not None else ())
