"""The vision adapter (seed 003's image benchmarks, SPEC §9): MultiMNIST built from MNIST IDX files
with a LeNet trunk, CelebA's 40 attributes with seed 003's 9-layer CNN; accuracy, F1 and Δm%."""

from .adapter import VisionAdapter

__all__ = ["VisionAdapter"]
