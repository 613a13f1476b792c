"""The entity-relation-extraction adapter (seed 000, SPEC §9): readers, the Appendix E.1 model,
triple / entity / relation F1."""

from .adapter import EreAdapter

__all__ = ["EreAdapter"]
