"""What every loss stage supports and costs: one :class:`StageProfile` per stage class, and the
support table generated from the registry (``recsys-hmtl stages``; the README's copy is checked
against it by a test). Imports only torch (through the registry)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

# What each rank uses under `train --nproc N` (DMP: each rank sees its own rows of the global batch).
RANKS = {
    "fixed": "same weights on every rank",
    "random": "same draws on every rank (its own seeded generator)",
    "learned": "its parameters' gradients averaged over the ranks: same on every rank",
    "losses": "the global batch's losses (all-reduced before the stage): same on every rank",
    "gradients": "Gram matrix all-reduced over the ranks: same coefficients on every rank",
}


@dataclass(frozen=True)
class StageProfile:
    """``weights``: what the task weights follow (a key of :data:`RANKS`, which also says what
    each rank uses under ``--nproc``); ``time`` / ``memory``: extra cost per step beyond the
    model's forward and backward, in K (tasks), D (elements of the shared representation's
    gradient, for a batch) and n (solver iterations)."""

    weights: str
    time: str
    memory: str

    def __post_init__(self) -> None:
        if self.weights not in RANKS:
            raise ValueError(f"StageProfile.weights must be one of {sorted(RANKS)}, not {self.weights!r}")


COLUMNS = ("stage", "weights follow", "rep-grad", "parameter mode", "`--nproc`", "AITM's calibrator",
           "time / step", "memory")


def support_rows() -> list[tuple[str, ...]]:
    """One row per registered stage, in name order (see :data:`COLUMNS`)."""
    from .registry import STAGES

    rows = []
    for name in STAGES.names():
        cls = STAGES.get(name)
        profile: StageProfile | None = getattr(cls, "profile", None)
        if profile is None:
            raise TypeError(f"loss stage '{name}' ({cls.__name__}) declares no profile")
        modes = cls.grad_modes if cls.needs_task_grads else ()  # where the job may take gradients
        rep = "training (task views)" if "rep" in modes else "—"
        params = "training (`grad_mode: params`)" if "params" in modes else "—"
        extra = "joins unweighted" if "extra" in inspect.signature(cls.backward).parameters else "refused"
        ranks = "one process only (bilevel mode's meta step)" if cls.needs_meta_batch else RANKS[profile.weights]
        rows.append((f"`{name}`", profile.weights, rep, params, ranks, extra,
                     profile.time, profile.memory))
    return rows


def support_table() -> str:
    """The support table as Markdown."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in support_rows()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m recsys_hmtl.priority.support
    print(support_table(), end="")
