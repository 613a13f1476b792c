"""The two-task toy problem of seed 003, App. A.3: defined in :mod:`recsys_hmtl.adapters.toy.problem`
(the toy adapter trains it through the training job); re-exported here for the benchmarks."""

from recsys_hmtl.adapters.toy.problem import (  # noqa: F401
    FRONT_X2,
    L1_SCALE,
    LOWER,
    PUBLISHED_SIGN,
    PUBLISHED_STARTS,
    SEED_SIGN,
    SEED_STARTS,
    numerical_front,
    pareto_front,
    toy_losses,
)
