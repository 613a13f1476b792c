"""Prometheus metrics: ``/metrics`` of a training process and Pushgateway pushes of batch jobs (SPEC §8).

``TrainingMetrics`` serves live per-task loss, stage diagnostics, AUC, throughput and step time;
``push_run`` / ``push_evaluation`` push a finished job's status and numbers; ``check.metrics_check``
asks Prometheus whether the Grafana dashboard in ``deploy/`` has data.
"""

from .labels import RunLabels
from .push import EVALUATE_JOB, TRAIN_JOB, PushError, push_evaluation, push_run
from .trainer_metrics import TrainingMetrics

__all__ = ["RunLabels", "TrainingMetrics", "push_run", "push_evaluation", "PushError",
           "TRAIN_JOB", "EVALUATE_JOB"]
