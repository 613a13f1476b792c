"""The text-classification adapter (seed 002, SPEC §9): FDU-MTL's review domains as binary tasks
with task-specific inputs, seed 002 §5.2's shared TextCNN with a softmax head per task, accuracy
per task and its average."""

from .adapter import TextAdapter

__all__ = ["TextAdapter"]
