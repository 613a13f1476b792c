"""DB-MTL (Lin, Jiang, Ye, Zhang, Chen, Chen, Liu, Tsang & Kwok, "Dual-Balancing for Multi-Task
Learning", arXiv 2308.12029, 2023), as LibMTL's ``weighting/DB_MTL.py`` (by the paper's authors).

Two balancing steps (the paper's Algorithm 1): **loss-scale balancing** trains on log L_i instead of
L_i; **gradient-magnitude balancing** keeps an exponential moving average ĝ_i of each task's
gradient of log L_i and scales every ĝ_i to the largest norm. As LibMTL (t = 1, 2, ... the step):

    g_i = ∇ log(L_i + 1e-8) = ∇L_i / (L_i + 1e-8)           (shared parameters)
    ĝ_i ← g_i + β_t (ĝ_i − g_i),       β_t = β / t^σ          (= β_t ĝ_i + (1 − β_t) g_i; ĝ starts at 0)
    α_i = max_j ‖ĝ_j‖ / (‖ĝ_i‖ + 1e-8)
    d = Σ_i α_i ĝ_i

Task-specific parameters get ∂ log(L_i + 1e-8)/∂θ_i = ∂L_i/∂θ_i / (L_i + 1e-8) (LibMTL
back-propagates every log loss with weight 1 and only replaces the shared parameters' gradient).
The losses must satisfy L_i + 1e-8 > 0 (LibMTL would turn the step into NaN): others are refused
before the state moves.

**Parameter mode only** (``grad_modes = ("params",)``, ``stage.grad_mode: params``; LibMTL refuses
rep_grad too): ĝ averages gradients over steps, so its coordinates must mean the same thing at every
step; a representation's rows are the batch's samples, which change every batch. Under ``--nproc``
the gradient matrix is averaged over the ranks first (DDP), so every rank keeps the same ĝ.

State (buffers, exact ``state_dict`` round trips): ``grad_ema`` (ĝ, K x D float64, D = the shared
parameters' entries, sized at the first step; a checkpoint's shape is adopted on load) and
``steps`` (t).

Hyper-parameters (LibMTL's ``--DB_*`` defaults): ``beta`` (0.9, in [0, 1)), ``beta_sigma`` (0).
Diagnostics: ``weight`` α_i, ``grad_norm`` ‖g_i‖ (of log L_i), ``ema_grad_norm`` ‖ĝ_i‖,
``direction_norm`` ‖d‖.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

from ._hparams import positive, unit_interval
from .registry import register_stage
from .support import StageProfile
from .task_grads import GradientStage, backward_direction, parameter_gradient_matrix

_F64 = torch.float64
LOG_EPS = 1e-8   # LibMTL: log(L + 1e-8)
NORM_EPS = 1e-8  # LibMTL: max norm / (norm + 1e-8)


@register_stage("db_mtl")
class DBMTLStage(GradientStage):
    """DB-MTL (Lin et al. 2023), shared parameters only (module docstring)."""
    profile = StageProfile("gradients", "O(K·D) moving average and norms",
                           "O(K·D) + K·D moving average (state, float64); D = shared parameters")
    grad_modes = ("params",)

    def __init__(self, tasks: Sequence[str], beta: float = 0.9, beta_sigma: float = 0.0) -> None:
        super().__init__(tasks)
        self.beta = unit_interval(self.name, "beta", beta)
        self.beta_sigma = positive(self.name, "beta_sigma", beta_sigma, allow_zero=True)
        self.register_buffer("grad_ema", torch.zeros(0, dtype=_F64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    # ------------------------------------------------------------------------------ the method
    def log_scales(self, losses: Tensor) -> Tensor:
        """1 / (L_i + 1e-8) (float64, CPU): the chain factor of log; refuses L_i + 1e-8 <= 0."""
        shifted = losses.detach().to("cpu", _F64) + LOG_EPS
        bad = shifted <= 0
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise ValueError(f"stage '{self.name}' balances log-losses: the loss of task "
                             f"'{self.tasks[i]}' is {float(losses[i].detach())}, and log(L + 1e-8) "
                             "needs L > -1e-8")
        return 1.0 / shifted

    def update(self, matrix: Tensor, scales: Tensor) -> tuple[Tensor, Tensor]:
        """One DB-MTL step from the K x D gradient matrix of the losses and the log factors;
        returns the direction d (float64, [D]) and α (module docstring)."""
        g = matrix.detach().to(_F64) * scales.to(matrix.device).unsqueeze(1)
        ema = self.grad_ema
        if ema.numel() and tuple(ema.shape) != tuple(g.shape):
            raise ValueError(
                f"stage '{self.name}': the task gradients have {tuple(g.shape)} coordinates but the "
                f"moving average {tuple(ema.shape)}; the shared parameters changed size"
            )
        ema = ema.to(g.device) if ema.numel() else torch.zeros_like(g)
        t = int(self.steps) + 1
        ema = g + (self.beta / t ** self.beta_sigma) * (ema - g)
        norms = ema.norm(dim=-1)
        alpha = norms.max() / (norms + NORM_EPS)
        direction = sum(alpha[i] * ema[i] for i in range(self.num_tasks))  # LibMTL's order
        self.grad_ema = ema
        self.steps += 1
        self.record("grad_norm", g.norm(dim=-1).cpu())
        self.record("ema_grad_norm", norms.cpu())
        return direction, alpha.cpu()

    def combine(self, gram: Tensor, losses: Tensor) -> Tensor:  # pragma: no cover - not used
        raise TypeError(f"stage '{self.name}' steps along a moving average of gradients: use backward()")

    # -------------------------------------------------------------------------- the single pass
    def backward(
        self, losses: Mapping[str, Tensor], shared=None, extra: Tensor | None = None
    ) -> Tensor:
        """The shared parameters get d = Σ α_i ĝ_i, the heads Σ_i ∂ log(L_i + 1e-8)/∂θ_i, in one
        backward; returns the detached Σ_i log(L_i + 1e-8)."""
        stacked = self.stack(losses)
        scales = self.log_scales(stacked)
        per_task = [losses[t].reshape(()) for t in self.tasks]
        tensors, matrix = parameter_gradient_matrix(self, per_task, shared)
        direction, alpha = self.update(matrix, scales)
        parts = direction.split([t.numel() for t in tensors])
        backward_direction(stacked, tensors, False, None, parts, scales, extra)
        self.record("weight", alpha)
        self._diagnostics["direction_norm"] = float(direction.norm())
        return torch.log(stacked.detach() + LOG_EPS).sum()

    # ---------------------------------------------------------------------------------- state
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        """Adopt the checkpoint's moving-average shape (sized lazily at the first step)."""
        incoming = state_dict.get(prefix + "grad_ema")
        if torch.is_tensor(incoming) and tuple(incoming.shape) != tuple(self.grad_ema.shape):
            self.grad_ema = torch.zeros(incoming.shape, dtype=_F64, device=self.grad_ema.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta={self.beta}, beta_sigma={self.beta_sigma}"
