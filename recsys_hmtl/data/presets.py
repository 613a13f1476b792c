"""Dataset presets: the published layouts of KuaiRand, TikTok and QK-Video as default configs.

A named dataset fills every field of :class:`DataConfig` that the user left at its default (files,
separator, header, column names, side tables, features, split, user column, rare-id threshold) and
the task list when the config has none; whatever the user set wins. ``custom`` fills nothing: a
user's own CSV/Parquet logs are described entirely by the config. A field equal to its dataclass
default counts as "left empty" (for ``split``, field by field).

Feature choices (DATASETS.md):

- KuaiRand: ids ``user_id, video_id, author_id, music_id``; context ``tab`` and ``hour`` (the
  ``hourmin`` column read as a category: KuaiRand rounds it to the hour, ``1800``, so its values are
  the 24 hours of the day); the user side table's categorical columns (``user_active_degree``, the
  ``is_*`` flags, the ``*_range`` strings, ``onehot_feat0..17``); the video side table's
  ``video_type, upload_type, music_type`` and ``tag`` (multi-valued, ``"12,65"``); dense
  ``video_duration``, ``register_days``, ``follow/fans/friend_user_num`` (log-normalised). Columns
  measured during or after the view (``play_time_ms``, ``profile_stay_time``, ``comment_stay_time``)
  and the labels are never features. ``use_statistic_features`` adds the month-averaged counters of
  ``video_features_statistic_*`` (they leak the future under a date split, hence off by default).
  Date split; the logs cover 2022-04-08 .. 2022-05-08 (``split.date_range``: rows dated outside it
  are refused, or dropped with ``data.out_of_range: drop``).
- TikTok: ids ``uid, user_city, item_id, author_id, item_city, channel, music_id, device_id``
  (``-1`` = missing), dense ``video_duration``; random 81/9/10 split; ids seen < 10 times folded.
- QK-Video: ``user_id, item_id, video_category, gender, age`` and ``hist_1..hist_10`` as one
  multi-valued ``hist`` feature (``0`` = padding); random 80/10/10 split. ``watching_times`` is an
  outcome of the view, not a feature. The 10-column ``QK-video.csv`` (``variant: raw``) has no history.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Callable, Mapping

from ..errors import InputError, did_you_mean
from .config import (
    DataConfig, DenseFeatureConfig, SideTableConfig, SparseFeatureConfig, SplitConfig, TaskConfig,
)
from .dates import OUT_OF_RANGE, date_range
from .schema import (
    KUAIRAND_LOG, KUAIRAND_STATISTIC, KUAIRAND_USER, KUAIRAND_VIDEO, QK_VIDEO, TIKTOK, TIKTOK_COLUMNS,
    FileSchema,
)

Defaults = Callable[[str, DataConfig], DataConfig]


@dataclass(frozen=True)
class DatasetPreset:
    """One named dataset: ``defaults(variant, user_config)`` is its complete default config."""

    name: str
    title: str
    defaults: Defaults
    tasks: tuple[str, ...] = ()  # default task list, in priority order
    variants: tuple[str, ...] = ()  # first = default
    id_columns: tuple[str, ...] = ()  # must never be missing in the logs
    aliases: Mapping[str, str] = field(default_factory=dict)  # other tools' column names -> ours
    leaky_columns: frozenset[str] = frozenset()  # measured after the exposure: never features
    schemas: tuple[tuple[str, FileSchema], ...] = ()  # (file-name pattern, schema); first match wins
    log_schema: FileSchema = field(default_factory=FileSchema)  # logs whose name matches no pattern

    def schema_for(self, path: Path, *, log: bool) -> FileSchema:
        for pattern, schema in self.schemas:
            if fnmatch(path.name.lower(), pattern.lower()):
                return schema
        return self.log_schema if log else FileSchema()

    def canonical(self, column: str) -> str:
        return self.aliases.get(column, column)


PRESETS: dict[str, DatasetPreset] = {}


def register_preset(preset: DatasetPreset) -> DatasetPreset:
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> DatasetPreset:
    if name not in PRESETS:
        raise InputError(f"unknown dataset '{name}'", key="data.dataset", hint=did_you_mean(name, PRESETS))
    return PRESETS[name]


def resolve(cfg: DataConfig, tasks: list[TaskConfig]) -> tuple[DataConfig, list[TaskConfig]]:
    """Apply the preset of ``cfg.dataset``: a new DataConfig and task list (the inputs are untouched)."""
    preset = get_preset(cfg.dataset)
    variant = _variant(preset, cfg.variant)
    defaults = preset.defaults(variant, cfg)
    out = _fill(cfg, defaults)
    out.variant = defaults.variant if preset.variants else cfg.variant  # QK: raw when files say so
    _canonicalise(out, preset)
    resolved = [dataclasses.replace(t, column=preset.canonical(t.label_column)) for t in tasks] or [
        TaskConfig(name, name) for name in preset.tasks
    ]
    _check(out, resolved, preset)
    return out, resolved


def _variant(preset: DatasetPreset, asked: str) -> str:
    if not preset.variants:
        return asked
    if asked == DataConfig.variant and asked not in preset.variants:  # the KuaiRand-centric default
        return preset.variants[0]
    by_lower = {v.lower(): v for v in preset.variants}
    if asked.lower() not in by_lower:
        raise InputError(f"unknown {preset.title} variant '{asked}'", key="data.variant",
                         hint=did_you_mean(asked, preset.variants))
    return by_lower[asked.lower()]


def _fill(user: DataConfig, preset: DataConfig) -> DataConfig:
    """The user's config with every field left at its default taken from the preset's config."""
    blank, blank_split = DataConfig(), SplitConfig()
    out = copy.deepcopy(user)
    for f in dataclasses.fields(DataConfig):
        if f.name in ("dataset", "root", "variant", "use_random_log", "use_statistic_features", "cache_dir",
                      "reader", "block_rows", "window_blocks"):
            continue
        if f.name == "split":
            for s in dataclasses.fields(SplitConfig):
                if getattr(user.split, s.name) == getattr(blank_split, s.name):
                    setattr(out.split, s.name, copy.deepcopy(getattr(preset.split, s.name)))
        elif getattr(user, f.name) == getattr(blank, f.name):
            setattr(out, f.name, copy.deepcopy(getattr(preset, f.name)))
    return out


def _canonicalise(cfg: DataConfig, preset: DatasetPreset) -> None:
    """Accept other tools' names (TikTok ``did``, ``creat_time``) wherever a column is named."""
    name = preset.canonical
    cfg.columns = [name(c) for c in cfg.columns]
    cfg.user_column = name(cfg.user_column) if cfg.user_column is not None else None
    cfg.split.column = name(cfg.split.column)
    for side in cfg.side_tables:
        side.key = name(side.key)
    for feature in [*cfg.sparse, *cfg.dense]:
        column = feature.column or feature.name
        if name(column) != column:
            feature.column = name(column)
    for sparse in cfg.sparse:
        sparse.columns = [name(c) for c in sparse.columns] if sparse.columns else None


READERS = ("memory", "blocks")


def _check(cfg: DataConfig, tasks: list[TaskConfig], preset: DatasetPreset) -> None:
    if not cfg.files:
        raise InputError(f"no log files: dataset '{cfg.dataset}' needs data.files", key="data.files")
    if not tasks:
        raise InputError(f"no tasks: dataset '{cfg.dataset}' needs a tasks list", key="tasks")
    if not cfg.sparse and not cfg.dense:
        raise InputError("no features: list data.sparse and/or data.dense", key="data.sparse")
    if cfg.format not in ("csv", "parquet"):
        raise InputError(f"unknown format '{cfg.format}'", key="data.format",
                         hint=did_you_mean(cfg.format, ["csv", "parquet"]))
    if cfg.separator is not None and len(cfg.separator) != 1:
        raise InputError(f"the separator must be one character, got {cfg.separator!r}", key="data.separator")
    if cfg.has_header is False and not cfg.columns:
        raise InputError("a file without a header needs data.columns (the column names)", key="data.columns")
    if cfg.split.kind not in ("date", "random"):
        raise InputError(f"unknown split kind '{cfg.split.kind}'", key="data.split.kind",
                         hint=did_you_mean(cfg.split.kind, ["date", "random"]))
    if cfg.out_of_range not in OUT_OF_RANGE:
        raise InputError(f"unknown value '{cfg.out_of_range}'", key="data.out_of_range",
                         hint=did_you_mean(str(cfg.out_of_range), OUT_OF_RANGE))
    if cfg.reader not in READERS:
        raise InputError(f"unknown reader '{cfg.reader}'", key="data.reader", hint=did_you_mean(cfg.reader, READERS))
    for key in ("block_rows", "window_blocks"):
        if getattr(cfg, key) < 1:
            raise InputError(f"must be at least 1, got {getattr(cfg, key)}", key=f"data.{key}")
    date_range(cfg.split)  # a malformed range is refused here, before any file is read
    _unique([t.name for t in tasks], "tasks")
    for i, task in enumerate(tasks):
        if task.positive is not None and task.threshold is not None:
            raise InputError("give either positive (values) or threshold (numbers), not both",
                             key=f"tasks[{i}]")
        if task.positive is not None and not task.positive:
            raise InputError("positive needs at least one value", key=f"tasks[{i}].positive")
    _unique([f.name for f in [*cfg.sparse, *cfg.dense]], "data.sparse/data.dense")
    labels = {t.label_column: t.name for t in tasks}
    for feature, columns in _feature_columns(cfg):
        for column in columns:
            if column in labels:
                raise InputError(f"feature '{feature}' reads column '{column}', the label of task "
                                 f"'{labels[column]}': a label cannot also be an input", key="data")
            if column in preset.leaky_columns:
                raise InputError(f"feature '{feature}' reads column '{column}', which {preset.title} "
                                 "measures during or after the view and so leaks the labels", key="data")


def _feature_columns(cfg: DataConfig) -> list[tuple[str, list[str]]]:
    return [(f.name, f.source_columns) for f in cfg.sparse] + [(f.name, [f.source_column]) for f in cfg.dense]


def _unique(names: list[str], key: str) -> None:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise InputError(f"names repeat: {', '.join(sorted(seen))}", key=key)


# --- KuaiRand -------------------------------------------------------------------------------------
KUAIRAND_TASKS = ("is_click", "long_view", "is_like", "is_follow", "is_comment", "is_forward",
                  "is_profile_enter", "is_hate")
KUAIRAND_LOGS = {
    "1k": ["log_standard_4_08_to_4_21_1k.csv", "log_standard_4_22_to_5_08_1k.csv"],
    "pure": ["log_standard_4_08_to_4_21_pure.csv", "log_standard_4_22_to_5_08_pure.csv"],
    "27k": [f"log_standard_{days}_27k_part{k}.csv"  # each period in two parts
            for days in ("4_08_to_4_21", "4_22_to_5_08") for k in (1, 2)],
}
KUAIRAND_DATES = ("20220408", "20220508")  # the published span of the standard and random logs
KUAIRAND_STATISTIC_FILES = {
    "1k": "video_features_statistic_1k.csv", "pure": "video_features_statistic_pure.csv",
    "27k": "video_features_statistic_27k_part[123].csv",  # three parts, read as one table
}
KUAIRAND_USER_SPARSE = (
    "user_active_degree", "is_lowactive_period", "is_live_streamer", "is_video_author",
    "follow_user_num_range", "fans_user_num_range", "friend_user_num_range", "register_days_range",
    *(f"onehot_feat{k}" for k in range(18)),
)
KUAIRAND_STATISTIC_DENSE = ("show_cnt", "play_cnt", "complete_play_cnt", "valid_play_cnt", "like_cnt",
                            "comment_cnt", "follow_cnt", "share_cnt")


def _kuairand(variant: str, user: DataConfig) -> DataConfig:
    files = list(KUAIRAND_LOGS[variant])
    if user.use_random_log:
        files.append(f"log_random_4_22_to_5_08_{variant}.csv")
    sides = [SideTableConfig(f"user_features_{variant}.csv", "user_id"),
             SideTableConfig(f"video_features_basic_{variant}.csv", "video_id")]
    sparse = [
        *(SparseFeatureConfig(c) for c in ("user_id", "video_id", "author_id", "music_id", "tab")),
        SparseFeatureConfig("hour", column="hourmin"),
        *(SparseFeatureConfig(c) for c in KUAIRAND_USER_SPARSE),
        *(SparseFeatureConfig(c) for c in ("video_type", "upload_type", "music_type")),
        SparseFeatureConfig("tag", separator=","),
    ]
    dense = [DenseFeatureConfig(c, transform="log_normalize") for c in
             ("video_duration", "register_days", "follow_user_num", "fans_user_num", "friend_user_num")]
    if user.use_statistic_features:
        sides.append(SideTableConfig(KUAIRAND_STATISTIC_FILES[variant], "video_id"))
        dense += [DenseFeatureConfig(c, transform="log_normalize") for c in KUAIRAND_STATISTIC_DENSE]
    return DataConfig(
        dataset="kuairand", variant=variant, files=files, format="csv", separator=",", has_header=True,
        side_tables=sides, sparse=sparse, dense=dense, user_column="user_id",
        split=SplitConfig(kind="date", column="date", date_range=list(KUAIRAND_DATES)), min_count=1,
    )


register_preset(DatasetPreset(
    name="kuairand", title="KuaiRand", defaults=_kuairand, tasks=KUAIRAND_TASKS,
    variants=("1k", "pure", "27k"), id_columns=("user_id", "video_id"),
    leaky_columns=frozenset({*KUAIRAND_TASKS, "play_time_ms", "profile_stay_time", "comment_stay_time"}),
    schemas=(("log_*", KUAIRAND_LOG), ("user_features_*", KUAIRAND_USER),
             ("video_features_basic_*", KUAIRAND_VIDEO), ("video_features_statistic_*", KUAIRAND_STATISTIC)),
    log_schema=KUAIRAND_LOG,
))


# --- TikTok ---------------------------------------------------------------------------------------
TIKTOK_IDS = ("uid", "user_city", "item_id", "author_id", "item_city", "channel", "music_id", "device_id")


def _tiktok(variant: str, user: DataConfig) -> DataConfig:
    return DataConfig(
        dataset="tiktok", variant=variant, files=[f"final_{variant}_train.txt"], format="csv",
        separator="\t", has_header=False, columns=list(TIKTOK_COLUMNS),
        sparse=[SparseFeatureConfig(c, missing_values=["-1"]) for c in TIKTOK_IDS],
        dense=[DenseFeatureConfig("video_duration", transform="log_normalize")],
        user_column="uid", split=SplitConfig(kind="random", fractions=[0.81, 0.09, 0.10]), min_count=10,
    )


register_preset(DatasetPreset(
    name="tiktok", title="TikTok", defaults=_tiktok, tasks=("like", "finish"), variants=("track2", "track1"),
    id_columns=("uid", "item_id"), aliases={"did": "device_id", "creat_time": "create_time"},
    leaky_columns=frozenset({"finish", "like"}), log_schema=TIKTOK,
))


# --- QK-Video -------------------------------------------------------------------------------------
QK_FILES = {"ctr": "ctr_data_1M.csv", "raw": "QK-video.csv"}


def _qk_video(variant: str, user: DataConfig) -> DataConfig:
    files = user.files or [QK_FILES[variant]]
    raw = variant == "raw" or any(Path(f).name.lower().startswith("qk-video") for f in files)
    sparse = [SparseFeatureConfig(c) for c in ("user_id", "item_id", "video_category", "gender", "age")]
    if not raw:
        history = [f"hist_{k}" for k in range(1, 11)]
        sparse.append(SparseFeatureConfig("hist", columns=history, missing_values=["0"]))
    return DataConfig(
        dataset="qk_video", variant="raw" if raw else variant, files=[QK_FILES[variant]], format="csv",
        separator=",", has_header=True, sparse=sparse, user_column="user_id",
        split=SplitConfig(kind="random", fractions=[0.8, 0.1, 0.1]), min_count=1,
    )


register_preset(DatasetPreset(
    name="qk_video", title="QK-Video", defaults=_qk_video, tasks=("like", "click"), variants=("ctr", "raw"),
    id_columns=("user_id", "item_id"),
    leaky_columns=frozenset({"click", "follow", "like", "share", "watching_times"}), log_schema=QK_VIDEO,
))


# --- a user's own logs ----------------------------------------------------------------------------
def _custom(variant: str, user: DataConfig) -> DataConfig:
    return DataConfig(dataset="custom", separator=",", has_header=not user.columns)


register_preset(DatasetPreset(name="custom", title="custom", defaults=_custom))
