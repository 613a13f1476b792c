"""Accuracy per task and its mean over the tasks (seed 002 Tables 2-3: "Avg")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch


@dataclass
class AccuracyCounts:
    """Correct predictions and reviews per task, accumulated over batches."""

    tasks: Sequence[str]
    correct: dict[str, int] = field(default_factory=dict)
    reviews: dict[str, int] = field(default_factory=dict)

    def add(self, task: str, predicted: torch.Tensor, labels: torch.Tensor) -> None:
        self.correct[task] = self.correct.get(task, 0) + int((predicted == labels).sum())
        self.reviews[task] = self.reviews.get(task, 0) + int(labels.numel())

    def report(self) -> dict:
        """``{"tasks": {task: {"accuracy", "correct", "reviews"}}, "avg_accuracy"}``: accuracy as a
        fraction (changes in points are ×100), the average the unweighted mean over the tasks
        (each task's 400 test reviews count alike); a task without reviews has accuracy None and
        is left out of the mean."""
        tasks = {}
        for t in self.tasks:
            n = self.reviews.get(t, 0)
            tasks[t] = {"accuracy": self.correct.get(t, 0) / n if n else None,
                        "correct": self.correct.get(t, 0), "reviews": n}
        defined = [e["accuracy"] for e in tasks.values() if e["accuracy"] is not None]
        return {"tasks": tasks, "avg_accuracy": sum(defined) / len(defined) if defined else None}
