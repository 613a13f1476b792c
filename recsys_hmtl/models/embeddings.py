"""Sparse features → pooled embeddings through a TorchRec ``EmbeddingBagCollection`` (SPEC §4).

One ``EmbeddingBagConfig`` per sparse feature (table name = ``table_prefix + feature name``), pooled
with the feature's SUM or MEAN, so ``DistributedModelParallel`` can shard every table. STEM builds
T+1 of these (prefixes ``shared__`` and ``<task>__``) so each task's tables are distinct and
shardable on their own.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedTensor

from ..data.batch import Batch
from ..data.spec import FeatureSpec
from ..errors import InputError, did_you_mean

_POOLING = {"sum": PoolingType.SUM, "mean": PoolingType.MEAN}


def table_configs(
    features: FeatureSpec, embedding_dim: int, table_prefix: str = ""
) -> list[EmbeddingBagConfig]:
    """One table per sparse feature, in ``features.sparse`` order (the batches' KJT key order)."""
    if not features.sparse:
        raise InputError("a model needs at least one sparse feature", key="data.sparse")
    configs = []
    for feature in features.sparse:
        pooling = _POOLING.get(str(feature.pooling).lower())
        if pooling is None:
            raise InputError(
                f"unknown pooling '{feature.pooling}' for feature '{feature.name}'",
                key="pooling",
                hint=did_you_mean(str(feature.pooling), _POOLING),
            )
        if feature.num_embeddings < 1:
            raise InputError(
                f"feature '{feature.name}' has num_embeddings={feature.num_embeddings}; need >= 1",
                key="num_embeddings",
            )
        configs.append(
            EmbeddingBagConfig(
                name=f"{table_prefix}{feature.name}",
                num_embeddings=feature.num_embeddings,
                embedding_dim=embedding_dim,
                feature_names=[feature.name],
                pooling=pooling,
            )
        )
    return configs


class FeatureEmbedding(nn.Module):
    """``Batch`` → ``[B, F*embedding_dim + D]``: pooled embeddings (``KeyedTensor.values()``,
    feature order of the spec) followed by the dense features.

    ``device=torch.device("meta")`` builds the tables without memory; ``DistributedModelParallel``
    materialises the shards (from the configs' init) on their ranks.
    """

    def __init__(
        self,
        features: FeatureSpec,
        embedding_dim: int,
        *,
        table_prefix: str = "",
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.features = features
        self.embedding_dim = embedding_dim
        self.ebc = EmbeddingBagCollection(
            tables=table_configs(features, embedding_dim, table_prefix),
            device=torch.device(device) if device is not None else None,
        )
        self.out_dim = len(features.sparse) * embedding_dim + features.dense_dim

    @property
    def table_names(self) -> list[str]:
        return [config.name for config in self.ebc.embedding_bag_configs()]

    def forward(self, batch: Batch) -> Tensor:
        # A sharded EBC returns its keys grouped by sharding type (e.g. table-wise ones before
        # data-parallel ones), so regroup into the spec's feature order instead of ``.values()``.
        pooled = KeyedTensor.regroup([self.ebc(batch.sparse)], [self.features.sparse_names])[0]
        if self.features.dense_dim == 0:
            return pooled
        return torch.cat([pooled, batch.dense], dim=1)
