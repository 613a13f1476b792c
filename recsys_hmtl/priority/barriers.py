"""HB-AHO barrier functions φ(x), x = L − ε (seed 000, Eq. 3 and the variants of Table 5).

The hyperbolic barrier is φ(x) = tanh(s·x + 1) (Eq. 3 with s = 3; Eq. 8 of App. B for any s > 0),
whose derivative s·sech²(s·x + 1) is positive and at most s (Eq. 11-12). The other entries are the
Table 5 ablations exactly as printed there, as functions of x; the sharpness s applies to ``tanh``
only (HB-AHO rejects a non-default sharpness with another barrier).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Barrier = Callable[[Tensor, float], Tensor]


def hyperbolic(x: Tensor, sharpness: float) -> Tensor:
    """φ(x) = tanh(s·x + 1), Eq. 3 / Eq. 8 of seed 000."""
    return torch.tanh(sharpness * x + 1.0)


def sigmoid(x: Tensor, sharpness: float) -> Tensor:
    """φ(x) = (1 + e^{−x})^{−1} (Table 5)."""
    return torch.sigmoid(x)


def gaussian(x: Tensor, sharpness: float) -> Tensor:
    """φ(x) = 1 − e^{−x²} (Table 5)."""
    return 1.0 - torch.exp(-x * x)


def softplus(x: Tensor, sharpness: float) -> Tensor:
    """φ(x) = log(1 + e^x) (Table 5)."""
    return F.softplus(x)


def exponential(x: Tensor, sharpness: float) -> Tensor:
    """φ(x) = e^x − 1 (Table 5)."""
    return torch.expm1(x)


def quadratic(x: Tensor, sharpness: float) -> Tensor:
    """φ(x) = x² (Table 5)."""
    return x * x


def cubic(x: Tensor, sharpness: float) -> Tensor:
    """φ(x) = x³ (Table 5); 1 + φ can reach 0 when ε > 1, which HB-AHO reports as an error."""
    return x * x * x


BARRIERS: dict[str, Barrier] = {
    "tanh": hyperbolic,
    "sigmoid": sigmoid,
    "gaussian": gaussian,
    "softplus": softplus,
    "exp": exponential,
    "quadratic": quadratic,
    "cubic": cubic,
}
