"""Multi-task towers on TorchRec embeddings (SPEC §4).

``build_model(name, features, tasks, **hparams)`` → a :class:`MultiTaskModel` whose forward
returns a :class:`MultiTaskOutput` (``{task: logit [B]}`` in priority order, ``.stacked [T, B]``,
``.shared``).
See :mod:`recsys_hmtl.models.base` for how the training step uses it (ESMM, AITM, rep-grad).
"""

from __future__ import annotations

from .base import ModelParams, MultiTaskModel, MultiTaskOutput
from .embeddings import FeatureEmbedding, table_configs
from .registry import available_models, build_model, model_class, register_model

__all__ = [
    "FeatureEmbedding",
    "ModelParams",
    "MultiTaskModel",
    "MultiTaskOutput",
    "available_models",
    "build_model",
    "model_class",
    "register_model",
    "table_configs",
]
