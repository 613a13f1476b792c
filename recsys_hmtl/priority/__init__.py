"""Priority loss stages (SPEC §5). Imports only torch.

    from recsys_hmtl.priority import build_stage, available_stages
    stage = build_stage("scd_vio", tasks=["is_click", "is_like"], alpha=1.0)
"""

from .base import LossStage, NonFiniteLossError
from .registry import available_stages, build_stage, register_stage
from .task_views import ExpandedView, MixtureView, TaskViews

__all__ = ["ExpandedView", "LossStage", "MixtureView", "NonFiniteLossError", "TaskViews",
           "available_stages", "build_stage", "register_stage"]
