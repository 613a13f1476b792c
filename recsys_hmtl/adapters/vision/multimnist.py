"""MultiMNIST (Sener & Koltun, 2018) built from MNIST images as their loader builds it (DATASETS.md).

For every left image of a split, ``pairs_per_image`` partners are drawn uniformly at random from the
same split (with replacement; a partner may be the image itself, as in their loader). On a 36x36
canvas the left digit lies at rows/cols [0:28, 0:28] and the right one at [6:34, 6:34], the overlap
taking the pixel-wise maximum; the canvas is resized to ``size`` x ``size`` by nearest neighbour
(PIL's rule: source index ⌊(i + ½)·36/size⌋). Tasks: ``left`` and ``right`` digit, 10 classes each.

The SOURCE images are split first (train / val / test, disjoint, a seeded permutation of the file)
and pairs are formed within each split only, so no test digit image is ever seen in training.
Only the MNIST test set (10,000 images) is available here; configs split it 8,000 / 1,000 / 1,000.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError

TASKS = ("left", "right")
CANVAS = 36
OFFSET = 6
SPLITS = ("train", "val", "test")


@dataclass
class MultiMnistSplit:
    """``images`` uint8 ``[N, size, size]``; ``labels`` int64 ``[N, 2]`` (left, right); ``sources``
    int64 ``[N, 2]``: the indices in the MNIST file of the left and right images."""

    images: np.ndarray
    labels: np.ndarray
    sources: np.ndarray


def nearest_indices(source: int, size: int) -> np.ndarray:
    """The source row (or column) PIL's nearest-neighbour resize reads for each target pixel."""
    return np.minimum(((np.arange(size) + 0.5) * source / size).astype(np.int64), source - 1)


def overlay(left: np.ndarray, right: np.ndarray, size: int = 28) -> np.ndarray:
    """The MultiMNIST images of pairs ``left[i]``, ``right[i]`` (uint8 ``[N, 28, 28]`` each)."""
    n, h, w = left.shape
    if (h, w) != (28, 28) or right.shape != left.shape:
        raise ValueError(f"MultiMNIST pairs 28x28 digits, got {left.shape} and {right.shape}")
    canvas = np.zeros((n, CANVAS, CANVAS), dtype=np.uint8)
    canvas[:, :28, :28] = left
    placed = canvas[:, OFFSET:OFFSET + 28, OFFSET:OFFSET + 28]
    np.maximum(placed, right, out=placed)
    idx = nearest_indices(CANVAS, size)
    return canvas[:, idx][:, :, idx]


def split_sources(count: int, sizes: list[int], seed: int) -> dict[str, np.ndarray]:
    """Disjoint source-image indices per split: the first ``sizes`` of a seeded permutation."""
    if sum(sizes) > count:
        raise InputError(f"the splits ask for {sum(sizes)} source images, the MNIST file has {count}",
                         key="data.split_sizes")
    order = np.random.default_rng([seed, 0]).permutation(count)
    bounds = np.cumsum([0, *sizes])
    return {split: np.sort(order[bounds[i]:bounds[i + 1]]) for i, split in enumerate(SPLITS)}


def build_split(images: np.ndarray, labels: np.ndarray, sources: np.ndarray, pairs_per_image: int,
                seed: int, size: int = 28) -> MultiMnistSplit:
    """The pairs of one split: each source image left of ``pairs_per_image`` partners of the split."""
    rng = np.random.default_rng(seed)
    left = np.repeat(sources, pairs_per_image)
    right = sources[rng.integers(0, len(sources), size=len(left))]
    pairs = np.stack([left, right], axis=1)
    return MultiMnistSplit(images=overlay(images[left], images[right], size),
                           labels=np.stack([labels[left], labels[right]], axis=1), sources=pairs)


def build_multimnist(images: np.ndarray, labels: np.ndarray, sizes: list[int], pairs_per_image: int,
                     seed: int, size: int = 28) -> dict[str, MultiMnistSplit]:
    """Every split of MultiMNIST from one MNIST file (sources split first, then paired within)."""
    parts = split_sources(len(images), sizes, seed)
    return {split: build_split(images, labels, parts[split], pairs_per_image, seed=(seed, 1 + i), size=size)
            for i, (split, src) in enumerate(parts.items())}
