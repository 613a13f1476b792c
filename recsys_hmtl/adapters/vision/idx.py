"""MNIST's IDX files (LeCun et al.; DATASETS.md "Vision adapter formats"), read with numpy.

An IDX file is big-endian: a uint32 magic number (0x08 = unsigned bytes in its third byte, the
number of dimensions in its fourth: images 2051, labels 2049), one uint32 size per dimension, then
the values. Files may be gzip-compressed (recognised by their first two bytes, not their name).
Every mistake is an :class:`~recsys_hmtl.errors.InputError` naming the file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ...errors import InputError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_KIND = {IMAGES_MAGIC: "images (idx3-ubyte)", LABELS_MAGIC: "labels (idx1-ubyte)"}


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip; a missing, truncated or corrupt file → InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError(f"the gzip stream is truncated or corrupt ({exc})", file=str(path)) from None
    return data


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The array of an IDX file whose magic number must be ``magic`` (uint8, shape from its header)."""
    data = read_bytes(path)
    where = str(path)
    if len(data) < 4:
        raise InputError(f"truncated: {len(data)} bytes, not even the 4-byte magic number", file=where)
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise InputError(f"bad magic number {found} (0x{found:08x}); an MNIST {_KIND[magic]} file starts "
                         f"with {magic} (0x{magic:08x})", file=where,
                         hint="images and labels swapped?" if found in _KIND else None)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(f"truncated: {len(data)} bytes, the header alone has {header}", file=where)
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    body = len(data) - header
    if body != expected:
        what = "truncated" if body < expected else "wrong size"
        raise InputError(f"{what}: the header says {shape[0]} items of shape {shape[1:]} ({expected} bytes), "
                         f"the file holds {body} bytes after it", file=where)
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_mnist(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images ``uint8 [N, rows, cols]``, labels ``int64 [N]``) of an MNIST images/labels pair."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC).astype(np.int64)
    if len(images) != len(labels):
        raise InputError(f"wrong count: {len(labels)} labels for the {len(images)} images of {images_path}",
                         file=str(labels_path))
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise InputError(f"label {labels[bad[0]]} is not a digit 0-9", file=str(labels_path), row=int(bad[0]) + 1)
    return images, labels
