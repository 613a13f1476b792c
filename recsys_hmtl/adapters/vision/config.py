"""The ``data:`` section of a vision run config (``adapter: vision``) and its checks.

One dataclass for both data sets; the keys of the other data set stay unset (``None``) and a key set
for the wrong data set is refused (naming it), so a config cannot silently mean something else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...errors import InputError, did_you_mean
from .celeba import ATTRIBUTES

DATASETS = ("multimnist", "celeba")
MULTIMNIST_KEYS = ("images_file", "labels_file", "split_sizes", "pairs_per_image")
CELEBA_KEYS = ("attributes", "attr_file", "partition_file", "image_dir", "preload")


@dataclass
class VisionDataConfig:
    """``dataset``: multimnist | celeba; ``root``: the folder of its files.

    Both: ``image_size`` (side of the square network input; multimnist 28, celeba 64),
    ``max_train_images`` / ``max_eval_images`` (0 = all; quick runs), ``seed`` (the data's own
    randomness: MultiMNIST's source split and pairing; independent of the run seed, so every run
    seed sees the same images).

    MultiMNIST (built from MNIST IDX files, DATASETS.md): ``images_file`` / ``labels_file`` (under
    ``root``; gzip or plain), ``split_sizes`` ([train, val, test] SOURCE images, drawn without
    overlap from the file before any pairing), ``pairs_per_image`` (partners drawn per left image,
    the multiplier of Sener & Koltun's loader; 1 there).

    CelebA (official text files, DATASETS.md): ``attributes`` (the tasks, a subset of the 40 names
    in the order given; default all 40 in file order), ``attr_file``, ``partition_file``,
    ``image_dir`` (under ``root``), ``preload`` (decode every used image once into memory instead of
    per batch: 64x64 images of all of CelebA take about 2 GB)."""

    dataset: str = "multimnist"
    root: str = "../shared/data/vision/mnist"
    image_size: int | None = None
    max_train_images: int = 0
    max_eval_images: int = 0
    seed: int = 0
    # MultiMNIST
    images_file: str | None = None
    labels_file: str | None = None
    split_sizes: list[int] | None = None
    pairs_per_image: int | None = None
    # CelebA
    attributes: list[str] | None = None
    attr_file: str | None = None
    partition_file: str | None = None
    image_dir: str | None = None
    preload: bool | None = None


MULTIMNIST_DEFAULTS = {"image_size": 28, "images_file": "t10k-images-idx3-ubyte.gz",
                       "labels_file": "t10k-labels-idx1-ubyte.gz", "split_sizes": [8000, 1000, 1000],
                       "pairs_per_image": 1}
CELEBA_DEFAULTS = {"image_size": 64, "attr_file": "list_attr_celeba.txt",
                   "partition_file": "list_eval_partition.txt", "image_dir": "img_align_celeba",
                   "preload": False}


def resolve_data(cfg: VisionDataConfig) -> VisionDataConfig:
    """``cfg`` with the data set's defaults filled in; every mistake names its ``data.<key>``."""
    if cfg.dataset not in DATASETS:
        raise InputError(f"unknown vision dataset '{cfg.dataset}'", key="data.dataset",
                         hint=did_you_mean(cfg.dataset, DATASETS))
    own, other = ((MULTIMNIST_KEYS, CELEBA_KEYS) if cfg.dataset == "multimnist" else (CELEBA_KEYS, MULTIMNIST_KEYS))
    for key in other:
        if getattr(cfg, key) is not None:
            raise InputError(f"is a key of the other vision dataset, not of '{cfg.dataset}'", key=f"data.{key}")
    defaults = MULTIMNIST_DEFAULTS if cfg.dataset == "multimnist" else CELEBA_DEFAULTS
    out = replace(cfg, **{k: v for k, v in defaults.items() if getattr(cfg, k) is None})
    for key in ("max_train_images", "max_eval_images"):
        if getattr(out, key) < 0:
            raise InputError(f"must be 0 (all) or positive, got {getattr(out, key)}", key=f"data.{key}")
    minimum = 12 if out.dataset == "multimnist" else 8  # LeNet: two 5x5 convs and two 2x2 pools
    if out.image_size < minimum:
        raise InputError(f"must be at least {minimum} pixels, got {out.image_size}", key="data.image_size")
    if out.dataset == "multimnist":
        sizes = out.split_sizes
        if len(sizes) != 3 or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in sizes):
            raise InputError(f"expected [train, val, test] positive image counts, got {sizes}", key="data.split_sizes")
        if out.pairs_per_image < 1:
            raise InputError(f"must be at least 1, got {out.pairs_per_image}", key="data.pairs_per_image")
    else:
        if out.attributes is None:
            out = replace(out, attributes=list(ATTRIBUTES))
        if not out.attributes:
            raise InputError("an empty list: leave the key out for all 40 attributes", key="data.attributes")
        seen = set()
        for name in out.attributes:
            if name not in ATTRIBUTES:
                raise InputError(f"'{name}' is not a CelebA attribute", key="data.attributes",
                                 hint=did_you_mean(str(name), ATTRIBUTES))
            if name in seen:
                raise InputError(f"'{name}' is listed twice", key="data.attributes")
            seen.add(name)
    return out
