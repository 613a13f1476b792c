"""What the encoded data looks like to a model: the contract between ``data`` and ``models``.

Pure dataclasses (no torch), so configs, caches and models can share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SparseFeature:
    """One id feature: one TorchRec embedding table (``EmbeddingBagConfig``) per feature.

    ``num_embeddings`` counts every index the encoder can emit, reserved ones included
    (see :mod:`recsys_hmtl.data.encode`: 0 = missing/unseen, 1 = rare bucket).
    """

    name: str
    num_embeddings: int
    multi_valued: bool = False
    pooling: str = "sum"  # sum | mean (TorchRec PoolingType)


@dataclass(frozen=True)
class FeatureSpec:
    """The features of one encoded data set, in the key order of the batches' KJT."""

    sparse: tuple[SparseFeature, ...]
    dense: tuple[str, ...] = field(default_factory=tuple)

    @property
    def sparse_names(self) -> list[str]:
        return [f.name for f in self.sparse]

    @property
    def dense_dim(self) -> int:
        return len(self.dense)

    def to_dict(self) -> dict:
        return {
            "sparse": [vars(f).copy() for f in self.sparse],
            "dense": list(self.dense),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSpec":
        return cls(
            sparse=tuple(SparseFeature(**f) for f in data["sparse"]),
            dense=tuple(data.get("dense", ())),
        )
