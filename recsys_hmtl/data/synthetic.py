"""Synthetic logs with a planted funnel, in the published formats of DATASETS.md.

Shared building blocks of the KuaiRand demo writer (:mod:`recsys_hmtl.data.demo`) and the test-fixture
writers for TikTok (ICME 2019 track data) and QK-Video (Tenrec). Every behaviour is a Bernoulli draw
whose logit is ``intercept + score + lifts from the shallower behaviours``; the intercept is calibrated
so that the positive rate hits a target, which keeps rates of the real data's order whatever the score
variances are. Generation is vectorised (no loop over rows) and deterministic given the seed; files are
written to a temporary name and renamed, so an interrupted run leaves no partial file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

TIKTOK_COLUMNS = [
    "uid", "user_city", "item_id", "author_id", "item_city", "channel", "finish", "like",
    "music_id", "device_id", "create_time", "video_duration",
]
QK_VIDEO_COLUMNS = [
    "user_id", "item_id", "click", "follow", "like", "share", "video_category", "watching_times",
    "gender", "age", *[f"hist_{k}" for k in range(1, 11)],
]
QK_VARIANTS = {"ctr_data_1M": QK_VIDEO_COLUMNS, "QK-video": QK_VIDEO_COLUMNS[:10]}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def calibrate_intercept(logit: np.ndarray, target: float, allowed: np.ndarray | None = None) -> float:
    """The intercept ``a`` with mean(allowed · sigmoid(a + logit)) = target (Newton's method).

    ``allowed`` marks rows where the behaviour can happen at all (e.g. ``long_view`` needs a click).
    """
    mask = np.ones(logit.shape, dtype=np.float64) if allowed is None else allowed.astype(np.float64)
    a = float(np.log(target / (1.0 - target)))
    for _ in range(50):
        p = mask * sigmoid(a + logit)
        gap = p.mean() - target
        if abs(gap) < 1e-7 * target:
            break
        a -= gap / max(float((p * (1.0 - p)).mean()), 1e-12)
    return a


def skewed_codes(rng: np.random.Generator, n: int, k: int, alpha: float = 1.0) -> np.ndarray:
    """``n`` codes in ``0..k-1`` with Zipf-like frequencies (weight ∝ 1/(rank+1)^alpha, ranks shuffled)."""
    weights = 1.0 / np.arange(1, k + 1) ** alpha
    weights = weights[rng.permutation(k)]
    cdf = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n)), k - 1)


def choose(rng: np.random.Generator, n: int, weights: dict) -> np.ndarray:
    """``n`` draws from the keys of ``weights`` (probabilities ∝ values), as a numpy array."""
    keys = list(weights)
    p = np.asarray(list(weights.values()), dtype=np.float64)
    idx = np.minimum(np.searchsorted(np.cumsum(p / p.sum()), rng.random(n)), len(keys) - 1)
    return np.asarray(keys)[idx]


def bernoulli(rng: np.random.Generator, logit: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    hit = rng.random(logit.shape) < sigmoid(logit)
    return (hit if allowed is None else hit & allowed.astype(bool)).astype(np.int64)


def atomic_write_csv(frame: pl.DataFrame, path: str | Path, **write_options) -> Path:
    """Write ``frame`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            frame.write_csv(fh, **write_options)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _check_rows(rows: int) -> None:
    if int(rows) < 1:
        raise ValueError(f"rows must be a positive integer, got {rows}")


def write_tiktok(path: str | Path, rows: int, seed: int = 0) -> Path:
    """A TikTok ICME 2019 track file: tab-separated, no header, the 12 columns of ``TIKTOK_COLUMNS``,
    ``-1`` for missing ``user_city``/``item_city``/``music_id``. Funnel: ``finish`` (~38%) then ``like``
    (~3.5%, far likelier after a finish); both depend on user, item, channel and duration."""
    _check_rows(rows)
    rng = np.random.default_rng(seed)
    n_users, n_items = max(10, rows // 20), max(10, rows // 5)
    n_authors = max(5, n_items // 3)

    user_city = np.where(rng.random(n_users) < 0.15, -1, skewed_codes(rng, n_users, 396))
    device_id = rng.permutation(n_users * 2)[:n_users]
    user_bias, user_lat = rng.normal(0, 0.5, n_users), rng.normal(0, 0.5, (n_users, 4))
    item_author = rng.integers(0, n_authors, n_items)
    item_city = np.where(rng.random(n_items) < 0.04, -1, skewed_codes(rng, n_items, 456))
    music_id = np.where(rng.random(n_items) < 0.6, -1, skewed_codes(rng, n_items, max(2, n_items // 4)))
    duration = np.clip(np.round(rng.lognormal(np.log(10), 0.5, n_items)), 2, 60).astype(np.int64)
    item_bias, item_lat = rng.normal(0, 0.5, n_items), rng.normal(0, 0.5, (n_items, 4))

    uid = skewed_codes(rng, rows, n_users, 0.6)
    item = skewed_codes(rng, rows, n_items, 0.9)
    channel = choose(rng, rows, {0: 0.78, 1: 0.16, 2: 0.04, 3: 0.015, 4: 0.005}).astype(np.int64)
    shared = (user_bias[uid] + item_bias[item] + np.einsum("ij,ij->i", user_lat[uid], item_lat[item])
              + np.array([0.0, 0.3, -0.2, 0.1, -0.4])[channel])
    finish_score = shared - 0.8 * np.log(duration[item] / 10.0)
    finish = bernoulli(rng, calibrate_intercept(finish_score, 0.38) + finish_score)
    like_score = 0.8 * shared + rng.normal(0, 0.3, n_items)[item] + 2.0 * finish
    like = bernoulli(rng, calibrate_intercept(like_score, 0.035) + like_score)

    frame = pl.DataFrame({
        "uid": uid, "user_city": user_city[uid], "item_id": item, "author_id": item_author[item],
        "item_city": item_city[item], "channel": channel, "finish": finish, "like": like,
        "music_id": music_id[item], "device_id": device_id[uid],
        "create_time": 53_056_000_000 + rng.integers(0, 30_000_000, rows), "video_duration": duration[item],
    })
    return atomic_write_csv(frame.select(TIKTOK_COLUMNS), path, separator="\t", include_header=False)


def write_qk_video(path: str | Path, rows: int, seed: int = 0, variant: str = "ctr_data_1M") -> Path:
    """A QK-Video (Tenrec) file with a header: ``ctr_data_1M`` (``QK_VIDEO_COLUMNS``: ``hist_1..hist_10``
    are each user's first clicked items, 0-padded) or the 10-column ``QK-video``. ``video_category`` is
    0, 1 or ``\\N`` (missing). Rows are grouped by user in time order. Funnel: ``click`` (~24%), then
    ``like`` (~1.9%), ``share`` (~0.2%), ``follow`` (~0.15%), only on clicked rows and likelier after
    a like."""
    if variant not in QK_VARIANTS:
        raise ValueError(f"unknown QK-Video variant '{variant}'; valid: {', '.join(QK_VARIANTS)}")
    _check_rows(rows)
    rng = np.random.default_rng(seed)
    n_users, n_items = max(10, rows // 20), max(10, rows // 5)

    gender, age = rng.integers(0, 3, n_users), skewed_codes(rng, n_users, 8, 0.5)
    user_bias = rng.normal(0, 0.5, n_users) + np.array([0.0, 0.2, -0.2])[gender]
    user_lat = rng.normal(0, 0.5, (n_users, 4))
    category = rng.integers(0, 2, n_items).astype(float)
    category[rng.random(n_items) < 0.05] = np.nan
    item_bias, item_lat = rng.normal(0, 0.5, n_items) + 0.3 * np.nan_to_num(category), rng.normal(0, 0.5, (n_items, 4))

    user = np.sort(skewed_codes(rng, rows, n_users, 0.6))  # grouped by user; within a user: time order
    item = skewed_codes(rng, rows, n_items, 0.9) + 1  # item ids start at 1: 0 pads the history
    shared = user_bias[user] + item_bias[item - 1] + np.einsum("ij,ij->i", user_lat[user], item_lat[item - 1])
    click = bernoulli(rng, calibrate_intercept(shared, 0.24) + shared)
    like_score = 0.8 * shared + rng.normal(0, 0.4, n_users)[user]
    like = bernoulli(rng, calibrate_intercept(like_score, 0.0189, click) + like_score, click)
    labels = {"like": like}
    for name, target in (("share", 0.00208), ("follow", 0.00149)):
        score = 0.6 * shared + rng.normal(0, 0.4, n_users)[user] + 2.5 * like
        labels[name] = bernoulli(rng, calibrate_intercept(score, target, click) + score, click)
    watching = click * (1 + rng.poisson(0.3, rows))

    columns = {
        "user_id": user, "item_id": item, "click": click, "follow": labels["follow"], "like": like,
        "share": labels["share"], "video_category": pl.Series(category[item - 1]).fill_nan(None).cast(pl.Int64),
        "watching_times": watching, "gender": gender[user], "age": age[user],
    }
    if variant == "ctr_data_1M":
        columns.update(_first_clicks(user, item, click, n_users))
    frame = pl.DataFrame(columns).select(QK_VARIANTS[variant])
    return atomic_write_csv(frame, path, null_value="\\N")


def _first_clicks(user: np.ndarray, item: np.ndarray, click: np.ndarray, n_users: int) -> dict[str, np.ndarray]:
    """``hist_1..hist_10``: each user's first 10 clicked items in row order, 0-padded (rows sorted by user)."""
    rows = np.flatnonzero(click)
    clicked_user = user[rows]
    starts = np.searchsorted(clicked_user, np.arange(n_users))  # first clicked row of each user
    position = np.arange(rows.size) - starts[clicked_user]
    keep = position < 10
    history = np.zeros((n_users, 10), dtype=np.int64)
    history[clicked_user[keep], position[keep]] = item[rows[keep]]
    return {f"hist_{k + 1}": history[user, k] for k in range(10)}
