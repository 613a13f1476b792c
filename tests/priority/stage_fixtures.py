"""Small problems several stage tests share (imported as ``stage_fixtures``: a unique module name)."""

from __future__ import annotations

import torch
from torch import nn

F64 = torch.float64

# Per-task gradients [K, D] and losses of the log_ variants' golden problems (LOG_MGDA, LOG_CAGrad,
# LOG_IMTLG of the FAMO code were run on these; see each test's docstring).
LOG_PROBLEMS = {
    "P2": (torch.tensor([
        [-1.4135131348736631, 0.23363075389153515, 0.03403318414312811],
        [0.34991725416350133, -0.014521554280266614, -0.6123619822872842],
    ], dtype=F64), [0.7, 0.2]),
    "P3": (torch.tensor([
        [-1.1835467384762002, -1.4830545941372606, 1.8004360883421553, 0.009574053403183548],
        [0.15344739309453567, -2.663087663100214, -1.4311441654862587, -0.5483032284032923],
        [0.3231804016508869, -0.47796881088083604, 1.561822332787565, -0.12975446077824895],
    ], dtype=F64), [1.5, 0.05, 0.3]),
    "P4": (torch.tensor([
        [0.7376934232964427, 0.8514419108604585, -1.5945281557811837, -1.3358975990189317,
         0.8045159808132863],
        [-0.5725518775090397, 0.06876439456454579, 0.19004510142912112, -1.329083523214165,
         -0.07471059995330116],
        [-0.3302154092541443, -1.9293275111452608, 0.4693549140615821, 1.2023919694026675,
         1.804909689178127],
        [0.6796620867780097, 0.7729215905768857, -0.32030560720855544, 0.027114014123420904,
         0.09622489929503156],
    ], dtype=F64), [0.9, 2.0, 0.4, 1.1]),
    "E3": (torch.tensor([
        [0.04472753863654923, 1.911239043445692, -0.2310308923435549, 0.34592815167069546,
         1.3180282301962654],
        [0.3696370193668759, 0.3841115513396856, 0.2970382679874422, 0.7472865483738005,
         1.087374714923387],
        [-0.7717572142106248, -0.2942127168900991, -0.8386619778120175, -0.422899085186749,
         0.021453841892195888],
    ], dtype=F64), [0.3185894660982987, 1.0090882066760818, 1.1717819943693575]),
    "I4": (torch.tensor([
        [-0.7841626376894061, 1.031542476501908, -1.1703302447997717, -1.2035228540482565,
         2.0482166315372354, 0.9659131826669699],
        [0.020171291246402833, -1.2386031551625076, 1.7394039188582255, 0.5600493250800885,
         -0.043399292895969374, 1.094615463659783],
        [-0.15292359256972535, 1.4685480480128987, 0.43512139985825465, -0.5909519410700234,
         -1.0596591858988702, -1.9047460114060284],
        [0.6415838564721199, -1.8854037372423973, 0.06057419031876408, 1.7604563537019107,
         0.12245807226522568, -0.6795715740691607],
    ], dtype=F64), [0.656436982981979, 1.0997774785911865, 0.6445613703155735, 1.0294095191906767]),
}


class TinyMultiTask(nn.Module):
    """rep = rows Wᵀ with orthonormal rows, so the parameter-mode Gram of W equals the rep-grad one
    (as tests/priority/test_gradient_stages.py's model); the losses are mean squared errors."""

    def __init__(self, seed: int = 0, num_tasks: int = 3, batch: int = 4, dim: int = 6) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(dim, batch, generator=gen, dtype=F64))
        self.rows = q.T.contiguous()
        self.shared = nn.Parameter(torch.randn(5, dim, generator=gen, dtype=F64))
        self.heads = nn.Parameter(torch.randn(num_tasks, 5, generator=gen, dtype=F64))
        self.targets = torch.randn(num_tasks, batch, generator=gen, dtype=F64)

    def forward(self):
        rep = self.rows @ self.shared.T
        losses = ((torch.tanh(rep) @ self.heads.T - self.targets.T) ** 2).mean(0)
        return rep, {f"t{i}": losses[i] for i in range(losses.numel())}
