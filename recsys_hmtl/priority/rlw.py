"""Random loss weighting (Lin et al., "Reasonable effectiveness of random weighting", TMLR 2022;
arXiv 2021).

Every step draws z ~ N(0, I_K) and weighs the losses with w = softmax(z) (the normal-softmax
variant of the paper and of LibMTL's RLW): objective Σ_i w_i L_i. The draws come from a private
generator seeded by ``seed`` whose state is a buffer, so a resumed run draws the same weights as an
uninterrupted one and the global RNG is never touched.

Diagnostics: ``weight`` w_i.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .base import LossStage
from .support import StageProfile
from .registry import register_stage


@register_stage("rlw")
class RandomLossWeightingStage(LossStage):
    """RLW (Lin et al. 2021). Hyper-parameter: ``seed`` (0) of the stage's own generator."""
    profile = StageProfile("random", "O(K)", "O(K)")

    def __init__(self, tasks: Sequence[str], seed: int = 0) -> None:
        super().__init__(tasks)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"stage '{self.name}': seed must be an integer, got {seed!r}")
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("rng_state", generator.get_state())

    def objective(self, losses: Tensor) -> Tensor:
        generator = torch.Generator()
        generator.set_state(self.rng_state.cpu())
        draws = torch.randn(self.num_tasks, generator=generator)
        self.rng_state.copy_(generator.get_state().to(self.rng_state.device))
        weights = torch.softmax(draws, dim=0).to(losses)
        self.record("weight", weights)
        return (weights * losses).sum()
