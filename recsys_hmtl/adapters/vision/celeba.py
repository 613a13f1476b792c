"""CelebA's official files (Liu et al., 2015; DATASETS.md "Vision adapter formats").

* ``list_attr_celeba.txt``: line 1 the image count, line 2 the 40 attribute names, then one line per
  image ``000001.jpg -1  1 ...`` (values separated by one or more spaces; -1/1 → 0/1; CRLF allowed).
  A file holding fewer rows than its first line says (the shared sample: 20,000 of 202,599) is
  read with a warning giving both counts; more rows than it says is an error.
* ``list_eval_partition.txt``: ``000001.jpg 0`` per image, 0 train / 1 valid / 2 test.
* ``img_align_celeba/000001.jpg``: the aligned 178x218 images, read with Pillow, resized to
  ``size`` x ``size`` (bilinear) and scaled to [0, 1] as FAMO's and FairGrad's loaders do.

Every mistake is an :class:`~recsys_hmtl.errors.InputError` naming the file and line (``row``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError, did_you_mean

log = logging.getLogger(__name__)
PARTITIONS = {0: "train", 1: "val", 2: "test"}
# The 40 attribute names of line 2 of the official list_attr_celeba.txt, in its order: the tasks are
# known from the config alone (the training core needs them before any data is read).
ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
NUM_ATTRIBUTES = len(ATTRIBUTES)
_VALUES = frozenset(("1", "-1"))


@dataclass
class Attributes:
    """``names``: the attribute names (file order); ``files``: image file names; ``labels``: uint8
    ``[N, len(names)]`` (0/1); ``declared``: the count on line 1."""

    names: list[str]
    files: list[str]
    labels: np.ndarray
    declared: int


def _lines(path: Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"not a text file (byte {exc.start + 1} is not UTF-8)", file=str(path)) from None


def read_attributes(path: Path, attributes: list[str] | None = None) -> Attributes:
    """The attribute file, keeping ``attributes`` (names, in that order; default all, file order)."""
    where = str(path)
    lines = _lines(path)
    if len(lines) < 2:
        raise InputError("expected the image count on line 1 and the attribute names on line 2", file=where)
    try:
        declared = int(lines[0].strip())
    except ValueError:
        raise InputError(f"line 1 must be the image count, got {lines[0].strip()[:40]!r}", file=where, row=1) from None
    names = lines[1].split()
    if len(names) != NUM_ATTRIBUTES:
        raise InputError(f"line 2 names {len(names)} attributes, CelebA has {NUM_ATTRIBUTES}", file=where, row=2)
    if tuple(names) != ATTRIBUTES:
        i = next(i for i, (a, b) in enumerate(zip(names, ATTRIBUTES)) if a != b)
        raise InputError(f"attribute {i + 1} on line 2 is {names[i]!r}, CelebA's is {ATTRIBUTES[i]!r}",
                         file=where, row=2)
    keep = list(range(len(names)))
    if attributes is not None:
        for name in attributes:
            if name not in names:
                raise InputError(f"'{name}' is not a CelebA attribute of {where}", key="data.attributes",
                                 hint=did_you_mean(name, names))
        keep = [names.index(name) for name in attributes]
    files, rows, seen = [], [], {}
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != NUM_ATTRIBUTES + 1:
            raise InputError(f"{len(parts) - 1} attribute values for {parts[0]}, expected {NUM_ATTRIBUTES}",
                             file=where, row=number)
        if parts[0] in seen:
            raise InputError(f"image {parts[0]} is listed again (first on line {seen[parts[0]]})", file=where, row=number)
        seen[parts[0]] = number
        values = parts[1:]
        if not _VALUES.issuperset(values):
            i, value = next((i, v) for i, v in enumerate(values) if v not in _VALUES)
            raise InputError(f"attribute {names[i]} of {parts[0]} is {value!r}, expected 1 or -1",
                             file=where, row=number)
        files.append(parts[0])
        rows.append([values[i] == "1" for i in keep])
    if len(files) > declared:
        raise InputError(f"line 1 says {declared} images, the file holds {len(files)} rows", file=where, row=1)
    if len(files) < declared:
        log.warning("%s: line 1 says %d images but the file holds %d rows: a truncated attribute file; "
                    "only those %d images are used", where, declared, len(files), len(files))
    labels = np.array(rows, dtype=np.uint8).reshape(len(files), len(keep))
    return Attributes([names[i] for i in keep], files, labels, declared)


def read_partition(path: Path) -> dict[str, str]:
    """``{image file: "train" | "val" | "test"}`` of the partition file."""
    where, out = str(path), {}
    for number, line in enumerate(_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise InputError(f"expected '<image> <0|1|2>', got {line.strip()[:60]!r}", file=where, row=number)
        if parts[0] in out:
            raise InputError(f"image {parts[0]} is listed twice", file=where, row=number)
        out[parts[0]] = PARTITIONS[int(parts[1])]
    return out


def split_rows(attrs: Attributes, partition: dict[str, str], partition_path: Path) -> dict[str, np.ndarray]:
    """Row indices of ``attrs`` per split; an image without a partition line is an error."""
    splits: dict[str, list[int]] = {s: [] for s in PARTITIONS.values()}
    for i, name in enumerate(attrs.files):
        split = partition.get(name)
        if split is None:
            raise InputError(f"image {name} (attribute file row {i + 3}) has no line in the partition file",
                             file=str(partition_path))
        splits[split].append(i)
    return {s: np.array(rows, dtype=np.int64) for s, rows in splits.items()}


def load_image(path: Path, size: int) -> np.ndarray:
    """One image as uint8 ``[3, size, size]`` (RGB, bilinear resize); missing or unreadable → InputError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((size, size), Image.BILINEAR)
    except FileNotFoundError:
        raise InputError("image file not found", file=str(path)) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot be read as an image ({exc})", file=str(path)) from None
    return np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1)


def load_images(folder: Path, files: list[str], size: int) -> np.ndarray:
    """uint8 ``[N, 3, size, size]`` of ``files`` under ``folder``."""
    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    for i, name in enumerate(files):
        out[i] = load_image(Path(folder) / name, size)
    return out


def check_images(folder: Path, files: list[str]) -> None:
    """Every image of ``files`` exists under ``folder`` (the first missing one named)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("image folder not found (CelebA's aligned images: img_align_celeba/)",
                         file=str(folder), key="data.image_dir")
    for name in files:
        if not (folder / name).is_file():
            raise InputError(f"image file not found ({len(files)} images are listed for this run)",
                             file=str(folder / name))
