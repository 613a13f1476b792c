"""Typed configuration of the data layer (the ``data:`` and ``tasks:`` sections of a run config).

A named dataset (``kuairand``, ``tiktok``, ``qk_video``) is a *preset*: it fills whatever the user
left empty here (files, separator, header, columns, features, split). ``dataset: custom`` is the
generic reader for a user's own CSV/Parquet logs, configured entirely by these fields.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class TaskConfig:
    """One task; the list order in the config is the priority order (index 0 = highest). A config
    may give a task by its name alone (``tasks: [is_click, long_view]``)."""

    name_shorthand: ClassVar[bool] = True
    name: str
    column: str | None = None  # label column in the log; defaults to ``name``
    positive: list[str] | None = None  # label 1 where the (trimmed) value is one of these
    threshold: float | None = None     # label 1 where the numeric value is ≥ this

    @property
    def label_column(self) -> str:
        return self.column or self.name


@dataclass
class SparseFeatureConfig:
    """An id feature. Single-valued: ``column``. Multi-valued: a ``separator``-joined string
    column (KuaiRand ``tag`` = "12,65") or several ``columns`` (QK-Video ``hist_1..hist_10``)."""

    name: str
    column: str | None = None
    columns: list[str] | None = None
    separator: str | None = None
    pooling: str = "sum"  # sum | mean
    min_count: int | None = None  # ids seen fewer times in train fold into the rare bucket
    missing_values: list[str] = field(default_factory=list)  # e.g. ["0"] for QK hist padding, ["-1"]

    @property
    def multi_valued(self) -> bool:
        return bool(self.columns) or self.separator is not None

    @property
    def source_columns(self) -> list[str]:
        return list(self.columns) if self.columns else [self.column or self.name]


@dataclass
class DenseFeatureConfig:
    """A numeric feature, ``normalize``d (train mean/std, optionally after log1p) or
    ``bucketize``d into train quantiles (it then becomes a sparse id feature)."""

    name: str
    column: str | None = None
    transform: str = "normalize"  # normalize | log_normalize | bucketize
    num_buckets: int = 16

    @property
    def source_column(self) -> str:
        return self.column or self.name


@dataclass
class SideTableConfig:
    """A side file left-joined onto the log on ``key`` (missing rows filled and counted)."""

    file: str
    key: str
    separator: str | None = None  # default: the log's


@dataclass
class SplitConfig:
    """``date``: rows with ``column`` ≥ ``test_start`` are test, ≥ ``val_start`` validation (YYYYMMDD;
    empty → the last ``test_days`` days are test and the ``val_days`` before them validation).
    ``date_range`` ([first, last], inclusive, YYYYMMDD or YYYY-MM-DD) is the span the data should
    cover (a preset's published span, else none); rows outside it are refused or dropped
    (``data.out_of_range``). It applies to date splits only.
    ``random``: ``fractions`` (train, val, test) with ``seed``."""

    kind: str = "date"  # date | random
    column: str = "date"
    val_start: str | None = None
    test_start: str | None = None
    val_days: int = 1
    test_days: int = 2
    fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    seed: int = 2024
    # [first, last]; None: the preset's (KuaiRand), else none; [] none. YAML's unquoted 2022-04-08 is
    # a date: any of these forms is accepted and kept as text (YYYYMMDD / YYYY-MM-DD), checked on resolve.
    date_range: list[Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.date_range, (list, tuple)):
            self.date_range = [v.strftime("%Y%m%d") if isinstance(v, datetime.date)
                               else str(v) if isinstance(v, int) and not isinstance(v, bool) else v
                               for v in self.date_range]


@dataclass
class DataConfig:
    dataset: str = "kuairand"  # kuairand | tiktok | qk_video | custom
    root: str = "data"
    variant: str = "1k"  # KuaiRand file suffix: 1k | pure | 27k
    files: list[str] = field(default_factory=list)  # log files relative to root (preset default)
    format: str = "csv"  # csv | parquet
    separator: str | None = None
    has_header: bool | None = None
    columns: list[str] = field(default_factory=list)  # column names of header-less files
    side_tables: list[SideTableConfig] = field(default_factory=list)
    sparse: list[SparseFeatureConfig] = field(default_factory=list)
    dense: list[DenseFeatureConfig] = field(default_factory=list)
    user_column: str | None = "user_id"  # GAUC groups; null: no user column (GAUC not applicable)
    split: SplitConfig = field(default_factory=SplitConfig)
    out_of_range: str = "error"  # rows of a date split outside split.date_range: error | drop
    min_count: int = 1  # default rare-id threshold for every sparse feature
    use_random_log: bool = False  # KuaiRand: add log_random_* to the input
    use_statistic_features: bool = False  # KuaiRand video_features_statistic_*: leaks the future
    cache_dir: str | None = None  # default: <root>/.recsys_hmtl_cache
    # memory: each split read whole, rows shuffled globally; blocks: read from the cache a window of
    # window_blocks blocks of block_rows rows at a time, blocks shuffled, rows within a window
    reader: str = "memory"
    block_rows: int = 65_536  # the cache's Parquet row group: one block is one row group to decode
    window_blocks: int = 4
