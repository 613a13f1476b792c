"""The shipped configs load, resolve and (for the demo) read the demo data; presets name real columns."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from recsys_hmtl.config import RunConfig, load_config
from recsys_hmtl.data.config import DataConfig
from recsys_hmtl.data.demo import write_demo_data
from recsys_hmtl.data.presets import KUAIRAND_TASKS, PRESETS
from recsys_hmtl.data.schema import (
    KUAIRAND_LOG_COLUMNS, KUAIRAND_USER_COLUMNS, KUAIRAND_VIDEO_COLUMNS, QK_VIDEO_COLUMNS, TIKTOK_COLUMNS,
)
from recsys_hmtl.data.sources import input_files, load, resolve

# The recommendation adapter's configs (the ERE ones are tests/adapters/test_ere_cli.py's).
CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")
                 if yaml.safe_load(p.read_text()).get("adapter", "recsys") == "recsys")
DATASET_CONFIGS = {"kuairand_1k.yaml": "kuairand", "tiktok.yaml": "tiktok", "qk_video.yaml": "qk_video",
                   "kuairand_demo.yaml": "kuairand"}
# Counters of video_features_statistic_* (KuaiRand's published header, first columns).
KUAIRAND_STATISTIC_COLUMNS = ("show_cnt", "play_cnt", "complete_play_cnt", "valid_play_cnt", "like_cnt",
                              "comment_cnt", "follow_cnt", "share_cnt")
PUBLISHED_COLUMNS = {
    "kuairand": {*KUAIRAND_LOG_COLUMNS, *KUAIRAND_USER_COLUMNS, *KUAIRAND_VIDEO_COLUMNS,
                 *KUAIRAND_STATISTIC_COLUMNS},
    "tiktok": set(TIKTOK_COLUMNS),
    "qk_video": set(QK_VIDEO_COLUMNS),
}


def test_every_dataset_config_is_shipped():
    assert {p.name for p in CONFIGS} >= set(DATASET_CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_resolves(path):
    raw = yaml.safe_load(path.read_text())
    optional = {"bilevel"}  # a mode that is off unless its section is given
    assert set(raw) - optional == {f.name for f in dataclasses.fields(RunConfig)} - optional  # spelled out
    cfg = load_config(path)
    data, tasks = resolve(cfg.data, cfg.tasks)
    assert [t.name for t in tasks] == [t["name"] for t in raw["tasks"]]  # the file's priority order
    assert data.files and (data.sparse or data.dense)
    if path.name in DATASET_CONFIGS:
        assert data.dataset == DATASET_CONFIGS[path.name]


def test_kuairand_configs_keep_the_funnel_order():
    for name in ("kuairand_1k.yaml", "kuairand_demo.yaml"):
        cfg = load_config(next(p for p in CONFIGS if p.name == name))
        assert tuple(cfg.task_names) == KUAIRAND_TASKS
        assert (cfg.data.split.kind, cfg.model.name, cfg.stage.name) == ("date", "mmoe", "sum")


def test_demo_config_reads_the_demo_data(tmp_path):
    """`make demo`: demo-data writes DIR/data/; the config gets --set data.root=DIR."""
    write_demo_data(tmp_path, rows=3_000, seed=5)
    cfg = load_config(next(p for p in CONFIGS if p.name == "kuairand_demo.yaml"), [f"data.root={tmp_path}"])
    data, tasks = resolve(cfg.data, cfg.tasks)
    assert all(p.parent == tmp_path / "data" for p in input_files(data))
    loaded = load(data, tasks)
    assert loaded.frame.height == 3_000 == sum(loaded.report["files"].values())
    for side in loaded.report["side_tables"].values():
        assert side["missing"] == 0  # the demo writes a side row for every id it logs
    assert set(loaded.frame.columns) >= {t.label_column for t in tasks} | {"date", "user_id"}


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {"custom"}))
def test_presets_name_published_columns_and_never_labels(name):
    preset = PRESETS[name]
    for variant in preset.variants:
        for flags in ({}, {"use_random_log": True, "use_statistic_features": True}):
            data, tasks = resolve(DataConfig(dataset=name, variant=variant, **flags), [])
            labels = {t.label_column for t in tasks}
            features = [c for f in data.sparse for c in f.source_columns]
            features += [f.source_column for f in data.dense]
            assert set(features) <= PUBLISHED_COLUMNS[name]
            assert not set(features) & (labels | preset.leaky_columns)
            assert labels <= PUBLISHED_COLUMNS[name] and data.user_column in PUBLISHED_COLUMNS[name]
