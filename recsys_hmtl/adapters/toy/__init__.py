"""The toy adapter (seed 003 App. A.3, SPEC §9): the two-task toy problem, x ∈ R² trained on
(L1, L2) by any loss stage; the report gives both losses and the distance to the Pareto front."""

from .adapter import ToyAdapter

__all__ = ["ToyAdapter"]
