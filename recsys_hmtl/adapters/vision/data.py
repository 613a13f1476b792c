"""The vision adapter's data: every split read once (:func:`prepare`), batched per epoch.

MultiMNIST's images are built in memory (10,000 28x28 images: under 10 MB). CelebA's are decoded
from their JPEG files batch by batch (``data.preload: true`` decodes every used image once); only
the attribute and partition files are read up front, and every image file the run will use is
checked to exist so that a missing one fails before training, named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from ...errors import InputError
from . import celeba, multimnist
from .config import VisionDataConfig
from .idx import read_mnist

SPLITS = ("train", "val", "test")
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the normalisation of the MGDA MultiMNIST loader


class ArrayImages:
    """Images held in memory, uint8 ``[N, C, H, W]``."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.array[rows]


class FileImages:
    """Images decoded from ``folder/files[i]`` when a batch asks for them."""

    def __init__(self, folder: Path, files: list[str], size: int) -> None:
        self.folder, self.files, self.size = Path(folder), files, size

    def __len__(self) -> int:
        return len(self.files)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return celeba.load_images(self.folder, [self.files[i] for i in rows], self.size)


@dataclass
class SplitData:
    """One split: its images and labels int64 ``[N, len(VisionData.tasks)]``."""

    images: ArrayImages | FileImages
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class VisionData:
    """Every split, the data set's tasks (label columns, in data order), the classes of each task,
    and how images are scaled: ``(uint8 / 255 − mean) / std``."""

    dataset: str
    tasks: tuple[str, ...]
    classes: int
    splits: dict[str, SplitData]
    mean: float = 0.0
    std: float = 1.0
    report: dict = field(default_factory=dict)


@dataclass
class ImageBatch:
    """``images`` float ``[B, C, H, W]``; ``labels`` int64 ``[B, T]`` (every task of the data set)."""

    images: Tensor
    labels: Tensor

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])

    def to(self, device) -> "ImageBatch":
        return ImageBatch(self.images.to(device), self.labels.to(device))


def make_batch(data: VisionData, split: SplitData, rows: np.ndarray) -> ImageBatch:
    pixels = torch.from_numpy(np.ascontiguousarray(split.images.take(rows))).float().div_(255.0)
    if data.mean or data.std != 1.0:
        pixels = pixels.sub_(data.mean).div_(data.std)
    return ImageBatch(pixels, torch.from_numpy(split.labels[rows]))


class ImageStream:
    """Batches of one split: shuffled per epoch from ``seed`` (the same order on a resume). A
    training stream leaves out a last batch of a single image (BatchNorm cannot train on it)."""

    def __init__(self, data: VisionData, split: str, batch_size: int, *, shuffle: bool, seed: int = 0,
                 rows: np.ndarray | None = None) -> None:
        self.data, self.split, self.part = data, split, data.splits[split]
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0
        self.rows = np.arange(len(self.part)) if rows is None else np.asarray(rows, dtype=np.int64)  # a slice

    def __len__(self) -> int:
        n = len(self.rows)
        full, rest = divmod(n, self.batch_size)
        return full + (1 if rest > 1 or (rest == 1 and not self.shuffle) else 0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, start: int = 0) -> Iterator[ImageBatch]:
        n = len(self.rows)
        order = self.rows[np.random.default_rng([self.seed, self.epoch]).permutation(n)] if self.shuffle else self.rows
        for b in range(start, len(self)):
            yield make_batch(self.data, self.part, order[b * self.batch_size:(b + 1) * self.batch_size])

    def __iter__(self) -> Iterator[ImageBatch]:
        return self.batches()


def _limit(rows: np.ndarray, limit: int) -> np.ndarray:
    return rows[:limit] if limit else rows


def prepare_multimnist(cfg: VisionDataConfig) -> VisionData:
    images, labels = read_mnist(Path(cfg.root) / cfg.images_file, Path(cfg.root) / cfg.labels_file)
    if images.shape[1:] != (28, 28):
        raise InputError(f"MNIST images are 28x28, these are {images.shape[1]}x{images.shape[2]}",
                         file=str(Path(cfg.root) / cfg.images_file))
    built = multimnist.build_multimnist(images, labels, cfg.split_sizes, cfg.pairs_per_image, cfg.seed, cfg.image_size)
    splits, report = {}, {}
    for split, part in built.items():
        rows = _limit(np.arange(len(part.labels)), cfg.max_train_images if split == "train" else cfg.max_eval_images)
        splits[split] = SplitData(ArrayImages(part.images[rows][:, None]), part.labels[rows])
        report[split] = {"images": int(len(rows)), "source_images": int(len(np.unique(part.sources[rows]))),
                         "source": str(Path(cfg.root) / cfg.images_file)}
    return VisionData("multimnist", multimnist.TASKS, 10, splits, MNIST_MEAN, MNIST_STD, report)


def prepare_celeba(cfg: VisionDataConfig) -> VisionData:
    root = Path(cfg.root)
    attrs = celeba.read_attributes(root / cfg.attr_file, cfg.attributes)
    partition_path = root / cfg.partition_file
    rows = celeba.split_rows(attrs, celeba.read_partition(partition_path), partition_path)
    folder = root / cfg.image_dir
    splits, report = {}, {}
    for split in SPLITS:
        chosen = _limit(rows[split], cfg.max_train_images if split == "train" else cfg.max_eval_images)
        if not len(chosen):
            hint = (f" ({root / cfg.attr_file} holds {len(attrs.files)} of its {attrs.declared} images)"
                    if len(attrs.files) < attrs.declared else "")
            raise InputError(f"no image of the {split} split has attributes{hint}", file=str(partition_path))
        files = [attrs.files[i] for i in chosen]
        celeba.check_images(folder, files)
        images = FileImages(folder, files, cfg.image_size)
        if cfg.preload:
            images = ArrayImages(images.take(np.arange(len(files))))
        splits[split] = SplitData(images, attrs.labels[chosen].astype(np.int64))
        report[split] = {"images": int(len(chosen)), "source": str(folder)}
    return VisionData("celeba", tuple(attrs.names), 2, splits, 0.0, 1.0, report)


def prepare(cfg: VisionDataConfig) -> VisionData:
    """Every split of the configured data set (``cfg`` resolved by :func:`~.config.resolve_data`)."""
    return prepare_multimnist(cfg) if cfg.dataset == "multimnist" else prepare_celeba(cfg)


def input_files(cfg: VisionDataConfig) -> list[Path]:
    """The files a run reads and fingerprints (CelebA: the two text files, not the 202,599 images)."""
    keys = ("images_file", "labels_file") if cfg.dataset == "multimnist" else ("attr_file", "partition_file")
    paths = []
    for key in keys:
        path = Path(cfg.root) / getattr(cfg, key)
        if not path.is_file():
            raise InputError("file not found", file=str(path), key=f"data.{key}")
        paths.append(path)
    return paths
