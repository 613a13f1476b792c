"""The shared trunks and task heads of the vision benchmarks (trunk → shared representation → heads).

**LeNet** (MultiMNIST; the MGDA code of Sener & Koltun, 2018, ``MultiLeNetR`` / ``MultiLeNetO``,
also used by Nash-MTL)::

    trunk: conv 1→10 (5x5) → maxpool 2 → ReLU → conv 10→20 (5x5) → Dropout2d → maxpool 2 → ReLU
           → flatten (20·4·4 = 320 at 28x28) → linear 320→50 → ReLU          = the 50-d representation
    head:  linear 50→50 → ReLU → Dropout → linear 50→10                         (one per digit)

**CelebA CNN** (seed 003 App. A.1: "a 9-layer convolutional neural network (CNN) as the shared model,
with multiple linear layers serving as task-specific heads"; the network of FAMO's and FairGrad's
CelebA code, which seed 003 follows)::

    trunk: 7 conv 3x3 units (bias-free conv → BatchNorm → ReLU) with channels w, 2w, 2w, 4w, 4w, 8w, 8w
           and a 2x2 maxpool after the 1st, 3rd and 5th → global average pool → 2 linear units
           (bias-free linear 8w→8w → BatchNorm1d → ReLU)                       = the 8w-d representation
    head:  linear 8w→``logits`` per attribute

With w = 64 the trunk has 5,176,640 parameters. ``logits: 1`` (sigmoid + binary cross-entropy, as
FAMO/FairGrad and seed 003's text say) adds 40 x 513; ``logits: 2`` (softmax cross-entropy over
{0, 1}) adds 40 x 1,026, which with LDC-MTL's 40-weight router gives exactly the 5,217,720
parameters seed 003 App. A.1 reports for its CelebA model.
"""

from __future__ import annotations

from torch import Tensor, nn


class LeNetTrunk(nn.Module):
    """The LeNet trunk of ``image_size`` x ``image_size`` single-channel images → ``representation``."""

    def __init__(self, image_size: int = 28, representation: int = 50, dropout: float = 0.5,
                 in_channels: int = 1) -> None:
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"LeNet needs images of at least 12x12, got {image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 10, kernel_size=5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(10, 20, kernel_size=5), nn.Dropout2d(dropout), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(),
        )
        self.fc = nn.Linear(20 * side * side, representation)
        self.out_features = representation

    def forward(self, images: Tensor) -> Tensor:
        return nn.functional.relu(self.fc(self.features(images)))


class LeNetHead(nn.Module):
    """linear → ReLU → Dropout → linear (``classes`` logits)."""

    def __init__(self, representation: int = 50, hidden: int = 50, classes: int = 10, dropout: float = 0.5) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(representation, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, classes))

    def forward(self, shared: Tensor) -> Tensor:
        return self.net(shared)


def _conv_unit(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def _linear_unit(fin: int, fout: int) -> list[nn.Module]:
    return [nn.Linear(fin, fout, bias=False), nn.BatchNorm1d(fout), nn.ReLU()]


class CelebaTrunk(nn.Module):
    """Seed 003's 9-layer CelebA trunk (7 conv + 2 linear units) of width ``width`` (w)."""

    def __init__(self, width: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_conv_unit(in_channels, w), nn.MaxPool2d(2),
            *_conv_unit(w, 2 * w), *_conv_unit(2 * w, 2 * w), nn.MaxPool2d(2),
            *_conv_unit(2 * w, 4 * w), *_conv_unit(4 * w, 4 * w), nn.MaxPool2d(2),
            *_conv_unit(4 * w, 8 * w), *_conv_unit(8 * w, 8 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            *_linear_unit(8 * w, 8 * w), *_linear_unit(8 * w, 8 * w),
        )
        self.out_features = 8 * w

    def forward(self, images: Tensor) -> Tensor:
        return self.features(images)
