"""A generated folder in CelebA's exact layout (tests and demos: the real images are not available here).

``root/list_attr_celeba.txt`` (count, the 40 names, ``000001.jpg -1  1 ...`` rows with the
official double spaces and CRLF line ends), ``root/list_eval_partition.txt`` and
``root/img_align_celeba/000001.jpg ...`` (small random JPEGs; ``Smiling`` images are brighter in
their lower half, so a model has something to learn). Not data: never report figures from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .celeba import ATTRIBUTES


def write_celeba_sample(root: Path, splits: tuple[int, int, int] = (24, 8, 8), *, size: tuple[int, int] = (20, 24),
                        declared: int | None = None, seed: int = 0) -> Path:
    """Write ``splits`` = (train, val, test) images; ``declared``: the count on line 1 (default the
    real number of rows; larger imitates a truncated file). Returns ``root``."""
    from PIL import Image

    root = Path(root)
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    total = sum(splits)
    labels = rng.random((total, len(ATTRIBUTES))) < 0.4
    smiling = ATTRIBUTES.index("Smiling")
    rows, partition = [], []
    for i in range(total):
        name = f"{i + 1:06d}.jpg"
        pixels = rng.integers(0, 120, (size[1], size[0], 3), dtype=np.uint8)
        if labels[i, smiling]:
            pixels[size[1] // 2:] += 120
        Image.fromarray(pixels).save(folder / name, quality=90)
        rows.append(name + " " + " ".join(f"{1 if v else -1:>2}" for v in labels[i]))
        partition.append(f"{name} {0 if i < splits[0] else 1 if i < splits[0] + splits[1] else 2}")
    head = [str(total if declared is None else declared), " ".join(ATTRIBUTES) + " "]
    (root / "list_attr_celeba.txt").write_bytes(("\r\n".join(head + rows) + "\r\n").encode())
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return root
