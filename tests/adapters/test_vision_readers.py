"""The vision adapter's readers: MNIST IDX (the genuine test set in ../shared/data/vision/mnist),
MultiMNIST's construction, CelebA's attribute / partition files and images (generated JPEGs in the
official layout, and the genuine truncated attribute file)."""

from __future__ import annotations

import gzip
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recsys_hmtl.adapters.vision import celeba
from recsys_hmtl.adapters.vision.config import VisionDataConfig, resolve_data
from recsys_hmtl.adapters.vision.data import prepare
from recsys_hmtl.adapters.vision.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx, read_mnist
from recsys_hmtl.adapters.vision.multimnist import build_multimnist, nearest_indices, overlay
from recsys_hmtl.adapters.vision.sample import write_celeba_sample
from recsys_hmtl.errors import InputError

MD5 = {"t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
       "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}


@pytest.fixture(scope="module")
def mnist(request) -> tuple[np.ndarray, np.ndarray]:
    root = Path(request.config.rootpath).parent / "shared" / "data" / "vision" / "mnist"
    if not root.is_dir():
        pytest.skip(f"genuine MNIST test set not found at {root}")
    for name, md5 in MD5.items():
        assert hashlib.md5((root / name).read_bytes()).hexdigest() == md5, name
    return read_mnist(root / "t10k-images-idx3-ubyte.gz", root / "t10k-labels-idx1-ubyte.gz")


def idx_bytes(magic: int, shape: tuple[int, ...], body: bytes) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in shape) + body


# ------------------------------------------------------------------------------------ IDX
def test_genuine_mnist_test_set(mnist):
    images, labels = mnist
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8 and labels.shape == (10_000,)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9] and images.max() == 255


def test_idx_mistakes_name_the_file(tmp_path):
    good = idx_bytes(IMAGES_MAGIC, (2, 2, 2), bytes(range(8)))
    (tmp_path / "plain").write_bytes(good)
    (tmp_path / "zipped.gz").write_bytes(gzip.compress(good))
    assert np.array_equal(read_idx(tmp_path / "plain", IMAGES_MAGIC), read_idx(tmp_path / "zipped.gz", IMAGES_MAGIC))
    cases = {
        "swapped": (idx_bytes(LABELS_MAGIC, (2,), b"\x01\x02"), "bad magic number 2049.*swapped"),
        "short": (good[:-1], "truncated: the header says 2 items"),
        "long": (good + b"\x00", "wrong size"),
        "header": (good[:10], "truncated.*header alone"),
        "cut.gz": (gzip.compress(good)[:-6], "gzip stream is truncated or corrupt"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError, match=message) as err:
            read_idx(tmp_path / name, IMAGES_MAGIC)
        assert str(tmp_path / name) in str(err.value)
    with pytest.raises(InputError, match="file not found"):
        read_idx(tmp_path / "absent", IMAGES_MAGIC)
    (tmp_path / "labels").write_bytes(idx_bytes(LABELS_MAGIC, (3,), b"\x01\x02\x03"))
    with pytest.raises(InputError, match="wrong count: 3 labels for the 2 images"):
        read_mnist(tmp_path / "plain", tmp_path / "labels")
    (tmp_path / "labels").write_bytes(idx_bytes(LABELS_MAGIC, (2,), b"\x01\x0c"))
    with pytest.raises(InputError, match="row 2.*label 12 is not a digit"):
        read_mnist(tmp_path / "plain", tmp_path / "labels")


# ----------------------------------------------------------------------------- MultiMNIST
def test_overlay_matches_the_loader_rule():
    rng = np.random.default_rng(0)
    left, right = rng.integers(0, 256, (2, 1, 28, 28), dtype=np.uint8)
    canvas = np.zeros((36, 36), dtype=np.uint8)
    canvas[0:28, 0:28] = left[0]
    canvas[6:34, 6:34] = right[0]
    canvas[6:28, 6:28] = np.maximum(left[0, 6:28, 6:28], right[0, 0:22, 0:22])  # Sener & Koltun's code
    expected = np.asarray(Image.fromarray(canvas).resize((28, 28), Image.NEAREST))
    assert np.array_equal(overlay(left, right)[0], expected)
    assert nearest_indices(36, 28).tolist()[:4] == [0, 1, 3, 4]


def test_multimnist_splits_sources_first(mnist):
    images, labels = mnist
    built = build_multimnist(images, labels, [8000, 1000, 1000], pairs_per_image=2, seed=0)
    assert [len(built[s].labels) for s in ("train", "val", "test")] == [16000, 2000, 2000]
    assert built["train"].images.shape == (16000, 28, 28) and built["train"].images.dtype == np.uint8
    sources = {s: set(np.unique(b.sources).tolist()) for s, b in built.items()}
    assert not sources["train"] & sources["test"] and not sources["train"] & sources["val"]
    assert not sources["val"] & sources["test"] and len(sources["test"]) <= 1000
    for split in built.values():
        assert np.array_equal(split.labels, labels[split.sources])  # left / right labels of the sources
        i = 7
        assert np.array_equal(split.images[i], overlay(images[split.sources[i, :1]], images[split.sources[i, 1:]])[0])
    again = build_multimnist(images, labels, [8000, 1000, 1000], pairs_per_image=2, seed=0)
    assert np.array_equal(again["test"].images, built["test"].images)  # deterministic
    with pytest.raises(InputError, match="data.split_sizes.*10000"):
        build_multimnist(images, labels, [9000, 1000, 1000], pairs_per_image=1, seed=0)


def test_multimnist_prepare_limits_and_normalises(mnist, shared_data):
    cfg = resolve_data(VisionDataConfig(root=str(shared_data / "vision" / "mnist"), max_train_images=300,
                                        max_eval_images=50))
    data = prepare(cfg)
    assert data.tasks == ("left", "right") and data.classes == 10
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [300, 50, 50]
    assert data.splits["train"].images.array.shape == (300, 1, 28, 28)


# --------------------------------------------------------------------------------- CelebA
def test_celeba_files_in_the_official_layout(tmp_path):
    root = write_celeba_sample(tmp_path, (6, 2, 2))
    attrs = celeba.read_attributes(root / "list_attr_celeba.txt", ["Smiling", "5_o_Clock_Shadow"])
    assert attrs.names == ["Smiling", "5_o_Clock_Shadow"] and attrs.files[0] == "000001.jpg"
    assert attrs.labels.shape == (10, 2) and set(np.unique(attrs.labels)) <= {0, 1}
    line = (root / "list_attr_celeba.txt").read_text().splitlines()[2].split()
    assert attrs.labels[0].tolist() == [int(line[1 + 31] == "1"), int(line[1] == "1")]
    rows = celeba.split_rows(attrs, celeba.read_partition(root / "list_eval_partition.txt"), root)
    assert [len(rows[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    image = celeba.load_image(root / "img_align_celeba" / "000001.jpg", 16)
    assert image.shape == (3, 16, 16) and image.dtype == np.uint8


def test_celeba_mistakes_name_file_and_line(tmp_path):
    root = write_celeba_sample(tmp_path, (3, 1, 1))
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3] + [lines[3].rsplit(" ", 1)[0]] + lines[4:]))
    with pytest.raises(InputError, match=r"row 4.*39 attribute values for 000002.jpg, expected 40"):
        celeba.read_attributes(path)
    path.write_text("\n".join(lines[:4] + [lines[4].replace(" 1", " 2", 1).replace("-1", " 2", 1)] + lines[5:]))
    with pytest.raises(InputError, match=r"row 5.*expected 1 or -1"):
        celeba.read_attributes(path)
    path.write_text("\n".join(lines + [lines[2]]))
    with pytest.raises(InputError, match="row 8.*000001.jpg is listed again"):
        celeba.read_attributes(path)
    path.write_text("\n".join(lines))
    with pytest.raises(InputError, match="data.attributes.*did you mean 'Smiling'"):
        celeba.read_attributes(path, ["Smilling"])
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(InputError, match="list_eval_partition.txt, row 2"):
        celeba.read_partition(root / "list_eval_partition.txt")
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n")
    attrs = celeba.read_attributes(path)
    with pytest.raises(InputError, match="000002.jpg.*no line in the partition file"):
        celeba.split_rows(attrs, celeba.read_partition(root / "list_eval_partition.txt"), root / "p")
    (root / "img_align_celeba" / "000005.jpg").unlink()
    with pytest.raises(InputError, match="000005.jpg: image file not found"):
        celeba.check_images(root / "img_align_celeba", attrs.files)
    with pytest.raises(InputError, match="000005.jpg: image file not found"):
        celeba.load_image(root / "img_align_celeba" / "000005.jpg", 8)
    (root / "img_align_celeba" / "000004.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="000004.jpg: cannot be read as an image"):
        celeba.load_image(root / "img_align_celeba" / "000004.jpg", 8)


def test_genuine_truncated_attribute_file_warns_with_both_counts(shared_data, caplog):
    path = shared_data / "vision" / "celeba" / "list_attr_celeba.first20000.txt"
    if not path.is_file():
        pytest.skip(f"genuine CelebA attribute file not found at {path}")
    with caplog.at_level(logging.WARNING, logger="recsys_hmtl.adapters.vision.celeba"):
        attrs = celeba.read_attributes(path)
    assert attrs.declared == 202_599 and len(attrs.files) == 20_000 and attrs.labels.shape == (20_000, 40)
    assert tuple(attrs.names) == celeba.ATTRIBUTES and attrs.files[-1] == "020000.jpg"
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "202599" in warning and "20000" in warning and "truncated" in warning
    # 000001.jpg: 5_o_Clock_Shadow -1, Arched_Eyebrows 1, Attractive 1 (the file's first row)
    assert attrs.labels[0, :3].tolist() == [0, 1, 1]


def test_celeba_prepare_checks_every_split(tmp_path):
    root = write_celeba_sample(tmp_path, (4, 0, 2))
    cfg = resolve_data(VisionDataConfig(dataset="celeba", root=str(root), image_size=16))
    with pytest.raises(InputError, match="no image of the val split"):
        prepare(cfg)
    root = write_celeba_sample(tmp_path / "b", (4, 2, 2))
    data = prepare(resolve_data(VisionDataConfig(dataset="celeba", root=str(root), image_size=16,
                                                 attributes=["Young", "Male"], preload=True)))
    assert data.tasks == ("Young", "Male") and data.splits["train"].images.array.shape == (4, 3, 16, 16)
