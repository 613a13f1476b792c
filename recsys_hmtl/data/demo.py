"""KuaiRand-1K-format demo data with a planted funnel (``recsys-hmtl demo-data``, SPEC §3).

Writes ``OUT/data/`` with the two standard logs, ``user_features_1k.csv`` and
``video_features_basic_1k.csv``: the real file names, headers, column order and value formats of
DATASETS.md (checked against the genuine samples in ``../shared/data/kuairand``).

The planted funnel. Every interaction gets a shared score

    s = user effect + video effect + <user latent, video latent> + tab effect + hour effect

where the user effect comes from ``user_active_degree``, ``onehot_feat0``, ``onehot_feat9`` and the user
id, and the video effect from ``upload_type``, ``video_type``, ``tag`` and the video id. Behaviour ``b``
then fires with probability ``sigmoid(a_b + w_b·s + user_b + video_b + duration_b + Σ lift_bj·y_j)``,
summing over the shallower behaviours ``y_j`` of :data:`FUNNEL` (``long_view`` needs a click, ``is_hate``
is pushed down by clicks and long views); ``a_b`` is calibrated on a pilot sample to the target rate.
Play time is drawn after ``long_view`` so that ``long_view`` = (play ≥ duration if duration ≤ 18 s, else
play ≥ 18 s) holds on every row. Rows are sorted by user then time, as in the real logs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import InputError
from .synthetic import calibrate_intercept, choose, sigmoid, skewed_codes

DEFAULT_ROWS = 200_000  # trains in about a minute on 2 CPU cores
DEFAULT_USERS = 1_000  # as KuaiRand-1K
ROWS_PER_VIDEO = 20  # default number of videos: rows // 20 (the real 1K has ~2.7; ids must be learnable)
BLOCK_ROWS = 2_000_000  # rows generated at once (bounds memory at the 11.7M-row scale)
PILOT_ROWS = 200_000  # rows on which the intercepts are calibrated
LATENT_DIM = 8

LOG_COLUMNS = [
    "user_id", "video_id", "date", "hourmin", "time_ms", "is_click", "is_like", "is_follow", "is_comment",
    "is_forward", "is_hate", "long_view", "play_time_ms", "duration_ms", "profile_stay_time",
    "comment_stay_time", "is_profile_enter", "is_rand", "tab",
]
USER_COLUMNS = [
    "user_id", "user_active_degree", "is_lowactive_period", "is_live_streamer", "is_video_author",
    "follow_user_num", "follow_user_num_range", "fans_user_num", "fans_user_num_range", "friend_user_num",
    "friend_user_num_range", "register_days", "register_days_range", *[f"onehot_feat{k}" for k in range(18)],
]
VIDEO_COLUMNS = [
    "video_id", "author_id", "video_type", "upload_dt", "upload_type", "visible_status", "video_duration",
    "server_width", "server_height", "music_id", "music_type", "tag",
]
FIRST_DAY, N_DAYS = date(2022, 4, 8), 31
LOG_FILES = {"log_standard_4_08_to_4_21_1k.csv": range(0, 14), "log_standard_4_22_to_5_08_1k.csv": range(14, 31)}
USER_FILE, VIDEO_FILE = "user_features_1k.csv", "video_features_basic_1k.csv"
DAY0_MS = int(datetime(2022, 4, 8, tzinfo=timezone(timedelta(hours=8))).timestamp() * 1000)  # Beijing time
DATES = np.array([int((FIRST_DAY + timedelta(days=d)).strftime("%Y%m%d")) for d in range(N_DAYS)])
# Interactions per hour of day in the genuine random-log sample (../shared/data/kuairand).
HOUR_WEIGHTS = dict(enumerate([404, 232, 159, 121, 118, 176, 390, 547, 559, 526, 671, 682, 777, 671, 681,
                               720, 760, 726, 784, 882, 857, 867, 872, 689]))
TAB_WEIGHTS = {0: 0.12, 1: 0.45, 2: 0.15, 3: 0.06, 4: 0.05, 5: 0.04, **{t: 0.13 / 9 for t in range(6, 15)}}


@dataclass(frozen=True)
class Behaviour:
    """One label of the funnel: overall positive rate ``target``; ``weight`` on the shared score;
    logit ``lifts`` when a shallower behaviour happened; ``requires``: impossible without it."""

    name: str
    target: float
    weight: float
    lifts: dict[str, float] = field(default_factory=dict)
    requires: str | None = None


FUNNEL = (
    Behaviour("is_click", 0.33, 1.0),
    Behaviour("long_view", 0.17, 0.8, requires="is_click"),
    Behaviour("is_like", 0.02, 0.8, {"is_click": 1.0, "long_view": 1.5}),
    Behaviour("is_follow", 0.003, 0.6, {"is_click": 1.0, "long_view": 0.8, "is_like": 2.0}),
    Behaviour("is_comment", 0.0025, 0.6, {"is_click": 1.0, "long_view": 0.8, "is_like": 1.5, "is_follow": 1.0}),
    Behaviour("is_forward", 0.0015, 0.6, {"is_click": 1.0, "long_view": 0.8, "is_like": 1.5, "is_comment": 1.0}),
    Behaviour("is_profile_enter", 0.006, 0.6, {"is_click": 1.0, "long_view": 0.5, "is_like": 1.0,
                                               "is_follow": 2.0, "is_comment": 0.5}),
    Behaviour("is_hate", 0.002, -0.8, {"is_click": -2.0, "long_view": -2.0, "is_like": -4.0}),
)


@dataclass(frozen=True)
class _Population:
    """Per-user and per-video parts of the planted scores."""

    user_effect: np.ndarray  # [U]
    user_latent: np.ndarray  # [U, K]
    user_task: np.ndarray  # [U, len(FUNNEL)]
    video_effect: np.ndarray  # [V]
    video_latent: np.ndarray  # [V, K]
    video_task: np.ndarray  # [V, len(FUNNEL)]
    duration: np.ndarray  # [V] ms
    video_by_rank: np.ndarray  # [V] video ids, most popular first
    tab_effect: np.ndarray  # [15]
    hour_effect: np.ndarray  # [24]


def write_demo_data(out: str | Path, rows: int | None = None, seed: int = 0, *,
                    users: int = DEFAULT_USERS, videos: int | None = None) -> str:
    """Write the demo data set to ``out/data/`` and return a one-paragraph report.

    ``rows`` interactions (default :data:`DEFAULT_ROWS`) of ``users`` users on ``videos`` videos
    (default ``rows // 20``), deterministic given ``seed``. The files are written to a temporary
    folder inside ``out`` and renamed into place, so an interrupted run leaves no partial data set.
    """
    started = time.perf_counter()
    rows = DEFAULT_ROWS if rows is None else int(rows)
    if rows < 1:
        raise InputError(f"the number of interactions must be positive, got {rows}", key="--rows")
    videos = int(videos) if videos else max(100, rows // ROWS_PER_VIDEO)
    if users < 1 or videos < 1:
        raise InputError(f"need at least one user and one video, got {users} and {videos}", key="users/videos")
    rng = np.random.default_rng(seed)
    user_frame, user_effect, activity = _user_table(rng, users)
    video_frame, video_effect, duration = _video_table(rng, videos)
    pop = _population(rng, user_effect, video_effect, duration)
    counts = rng.multinomial(rows, activity / activity.sum())
    intercepts: dict[str, float] = {}
    pilot_users = np.minimum(np.searchsorted(np.cumsum(counts) / rows, rng.random(PILOT_ROWS), side="right"),
                             users - 1)
    _simulate(rng, pop, pilot_users, intercepts)  # fills the calibrated intercepts

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".demo-data-", dir=out))
    try:
        positives, per_file = _write_logs(tmp, rng, pop, counts, intercepts)
        user_frame.write_csv(tmp / USER_FILE)
        video_frame.write_csv(tmp / VIDEO_FILE)
        _publish(tmp, out / "data")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rates = ", ".join(f"{b.name} {100 * positives[b.name] / rows:.2f}%" for b in FUNNEL)
    files = " + ".join(f"{n:,} rows in {name}" for name, n in per_file.items())
    return (f"wrote a KuaiRand-1K-format demo data set to {out / 'data'} in {time.perf_counter() - started:.1f}s "
            f"(seed {seed}): {rows:,} interactions of {users:,} users on {videos:,} videos, "
            f"{DATES[0]}..{DATES[-1]} ({files}), with {USER_FILE} and {VIDEO_FILE}; "
            f"planted funnel positive rates: {rates}.")


def _publish(tmp: Path, data_dir: Path) -> None:
    """Move the finished files into ``data_dir`` (one rename when it does not exist yet)."""
    os.chmod(tmp, 0o755)
    if not data_dir.exists():
        os.rename(tmp, data_dir)
        return
    for file in tmp.iterdir():
        os.replace(file, data_dir / file.name)


def _write_logs(tmp: Path, rng: np.random.Generator, pop: _Population, counts: np.ndarray,
                intercepts: dict[str, float]) -> tuple[dict[str, int], dict[str, int]]:
    """Generate blocks of consecutive users and append each to the log file of its dates."""
    positives = {b.name: 0 for b in FUNNEL}
    per_file = dict.fromkeys(LOG_FILES, 0)
    handles = {name: open(tmp / name, "wb") for name in LOG_FILES}
    try:
        for fh in handles.values():
            fh.write((",".join(LOG_COLUMNS) + "\n").encode())
        block_of_user = (np.cumsum(counts) - counts) // BLOCK_ROWS
        for block in np.unique(block_of_user):
            members = np.flatnonzero(block_of_user == block)
            frame = _simulate(rng, pop, np.repeat(members, counts[members]), intercepts)
            for b in FUNNEL:
                positives[b.name] += int(frame[b.name].sum())
            for name, days in LOG_FILES.items():
                part = frame.filter(pl.col("date").is_between(int(DATES[days[0]]), int(DATES[days[-1]])))
                part.write_csv(handles[name], include_header=False)
                per_file[name] += part.height
    finally:
        for fh in handles.values():
            fh.close()
    return positives, per_file


def _simulate(rng: np.random.Generator, pop: _Population, user: np.ndarray,
              intercepts: dict[str, float]) -> pl.DataFrame:
    """Interactions of the given users (one row per entry of ``user``), sorted by user and time.
    Intercepts missing from ``intercepts`` are calibrated on these rows and stored there."""
    n = user.size
    video = pop.video_by_rank[_zipf_ranks(rng, n, pop.video_by_rank.size)]
    day = rng.integers(0, N_DAYS, n)
    hour = choose(rng, n, HOUR_WEIGHTS).astype(np.int64)
    tab = choose(rng, n, TAB_WEIGHTS).astype(np.int64)
    time_ms = DAY0_MS + day * 86_400_000 + hour * 3_600_000 + rng.integers(0, 3_600_000, n)
    duration = pop.duration[video]
    affinity = np.einsum("ij,ij->i", pop.user_latent[user], pop.video_latent[video])
    shared = pop.user_effect[user] + pop.video_effect[video] + affinity + pop.tab_effect[tab] + pop.hour_effect[hour]
    log_duration = np.log(duration / 60_000.0)
    duration_terms = {
        "is_click": -0.2 * log_duration,
        "long_view": np.where(duration <= 18_000, 1.0, 0.0) - 0.4 * np.log(np.maximum(duration, 18_000) / 18_000),
    }
    labels: dict[str, np.ndarray] = {}
    for i, b in enumerate(FUNNEL):
        logit = b.weight * shared + pop.user_task[user, i] + pop.video_task[video, i]
        logit = logit + duration_terms.get(b.name, 0.0) + sum(w * labels[j] for j, w in b.lifts.items())
        allowed = labels[b.requires] if b.requires else None
        if b.name not in intercepts:
            intercepts[b.name] = calibrate_intercept(logit, b.target, allowed)
        hit = rng.random(n) < sigmoid(intercepts[b.name] + logit)
        labels[b.name] = (hit if allowed is None else hit & (allowed == 1)).astype(np.int64)
    play = _play_time(rng, duration, labels["is_click"], labels["long_view"])
    comment_stay = np.where(labels["is_comment"] == 1, rng.lognormal(np.log(8_000), 0.7, n),
                            np.where((labels["is_click"] == 1) & (rng.random(n) < 0.05),
                                     rng.lognormal(np.log(3_000), 0.8, n), 0.0))
    profile_stay = np.where(labels["is_profile_enter"] == 1, rng.lognormal(np.log(6_000), 0.8, n), 0.0)
    frame = pl.DataFrame({
        "user_id": user, "video_id": video, "date": DATES[day], "hourmin": hour * 100, "time_ms": time_ms,
        **labels, "play_time_ms": play, "duration_ms": duration,
        "profile_stay_time": profile_stay.astype(np.int64), "comment_stay_time": comment_stay.astype(np.int64),
        "is_rand": np.zeros(n, dtype=np.int64), "tab": tab,
    })
    return frame.select(LOG_COLUMNS).sort(["user_id", "time_ms"], maintain_order=True)


def _play_time(rng: np.random.Generator, duration: np.ndarray, click: np.ndarray, long_view: np.ndarray) -> np.ndarray:
    """Play time (ms) consistent with ``long_view``: whole video (with replays) if ≤ 18 s, else ≥ 18 s;
    short of that threshold otherwise; a preview of a second or two when not clicked."""
    n = duration.size
    threshold = np.minimum(duration, 18_000)
    u = rng.random(n)
    long_play = np.where(duration <= 18_000, duration * (1.0 + 1.5 * u), 18_000 + u * (duration - 18_000))
    short_play = threshold * (0.05 + 0.93 * u)
    preview = np.minimum(rng.lognormal(np.log(1_800), 0.6, n), threshold - 1)
    play = np.where(long_view == 1, np.ceil(long_play), np.where(click == 1, np.floor(short_play), np.floor(preview)))
    return play.astype(np.int64)


def _zipf_ranks(rng: np.random.Generator, n: int, size: int, alpha: float = 0.9) -> np.ndarray:
    """Popularity ranks in ``0..size-1`` with P(rank r) ∝ (r+1)^-alpha: the inverse of the continuous
    CDF (x^(1-alpha) - 1) / (size^(1-alpha) - 1) on [1, size + 1), O(1) per draw."""
    x = (1.0 + rng.random(n) * ((size + 1.0) ** (1.0 - alpha) - 1.0)) ** (1.0 / (1.0 - alpha))
    return np.minimum(x.astype(np.int64) - 1, size - 1)


def _population(rng: np.random.Generator, user_effect: np.ndarray, video_effect: np.ndarray,
                duration: np.ndarray) -> _Population:
    n_users, n_videos, n_tasks = user_effect.size, video_effect.size, len(FUNNEL)
    scale = np.sqrt(0.6 / np.sqrt(LATENT_DIM))  # <u, v> has std 0.6
    hours = np.arange(24)
    return _Population(
        user_effect=user_effect,
        user_latent=rng.normal(0, scale, (n_users, LATENT_DIM)).astype(np.float32),
        user_task=rng.normal(0, 0.3, (n_users, n_tasks)).astype(np.float32),
        video_effect=video_effect,
        video_latent=rng.normal(0, scale, (n_videos, LATENT_DIM)).astype(np.float32),
        video_task=rng.normal(0, 0.3, (n_videos, n_tasks)).astype(np.float32),
        duration=duration,
        video_by_rank=rng.permutation(n_videos),
        tab_effect=rng.normal(0, 0.3, 15),
        hour_effect=0.25 * np.cos(2 * np.pi * (hours - 21) / 24),  # evenings click more
    )


_DEGREES = {"full_active": 17959, "high_active": 6158, "middle_active": 2133, "2_14_day_new": 635,
            "low_active": 300, "single_low_active": 68, "30day_retention": 15, "day_new": 11, "UNKNOWN": 6}
_DEGREE_EFFECT = {"high_active": 0.35, "full_active": 0.15, "middle_active": -0.1, "UNKNOWN": 0.0}
_DEGREE_ACTIVITY = {"high_active": 2.0, "full_active": 1.0, "middle_active": 0.5}
_RANGES = {  # column: (bin edges, labels, side of np.searchsorted) as in the real user features
    "follow_user_num": ([0, 10, 50, 100, 150, 250, 500], ["0", "(0,10]", "(10,50]", "(50,100]", "(100,150]",
                                                          "(150,250]", "(250,500]", "500+"], "left"),
    "fans_user_num": ([1, 10, 100, 1_000, 5_000, 10_000, 100_000, 1_000_000],
                      ["0", "[1,10)", "[10,100)", "[100,1k)", "[1k,5k)", "[5k,1w)", "[1w,10w)", "[10w,100w)",
                       "[100w,1000w)"], "right"),
    "friend_user_num": ([1, 5, 30, 60, 120, 250], ["0", "[1,5)", "[5,30)", "[30,60)", "[60,120)", "[120,250)",
                                                   "250+"], "right"),
    "register_days": ([14, 30, 60, 90, 180, 365, 730], ["8-14", "15-30", "31-60", "61-90", "91-180", "181-365",
                                                        "366-730", "730+"], "left"),
}
# onehot_feat k: number of codes in the real user features; None: a 0/1 float column with blanks.
_ONEHOT_CODES = [2, 7, 50, 1471, 16, 34, 3, 118, 454, 7, 5, 5, None, None, None, None, None, None]


def _user_table(rng: np.random.Generator, n: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """``user_features_1k.csv`` rows, the planted user effect and the relative activity (rows per user)."""
    degree = choose(rng, n, _DEGREES)
    low = np.isin(degree, ["low_active", "single_low_active"])
    counts = {
        "follow_user_num": np.where(rng.random(n) < 0.01, 0, rng.lognormal(np.log(150), 1.3, n).astype(np.int64) + 1),
        "fans_user_num": np.where(rng.random(n) < 0.04, 0, rng.lognormal(np.log(30), 1.8, n).astype(np.int64) + 1),
        "friend_user_num": np.where(rng.random(n) < 0.12, 0, rng.lognormal(np.log(8), 1.3, n).astype(np.int64) + 1),
        "register_days": 8 + (2_200 * rng.random(n) ** 0.7).astype(np.int64),
    }
    columns: dict[str, object] = {
        "user_id": np.arange(n), "user_active_degree": degree, "is_lowactive_period": low.astype(np.int64),
        "is_live_streamer": np.where(rng.random(n) < 0.23, 1, -124), "is_video_author": (rng.random(n) < 0.82) * 1,
    }
    for name, values in counts.items():
        edges, labels, side = _RANGES[name]
        columns[name] = values
        columns[f"{name}_range"] = np.asarray(labels)[np.searchsorted(edges, values, side=side)]
    blank = rng.random(n) < 0.026
    for k, codes in enumerate(_ONEHOT_CODES):
        if codes is None:
            columns[f"onehot_feat{k}"] = pl.Series(np.where(blank, np.nan, (rng.random(n) < 0.1) * 1.0)).fill_nan(None)
        elif k == 4:
            values = skewed_codes(rng, n, codes, 1.5).astype(np.float64)
            columns[f"onehot_feat{k}"] = pl.Series(np.where(rng.random(n) < 0.03, np.nan, values)).fill_nan(None)
        else:
            columns[f"onehot_feat{k}"] = skewed_codes(rng, n, codes, 1.0 if codes < 100 else 0.7)
    frame = pl.DataFrame(columns).select(USER_COLUMNS)
    effect = (np.vectorize(lambda d: _DEGREE_EFFECT.get(d, -0.3))(degree)
              + 0.3 * (np.asarray(columns["onehot_feat0"]) - 0.5)
              + rng.normal(0, 0.2, 7)[np.asarray(columns["onehot_feat9"])] + rng.normal(0, 0.35, n))
    activity = np.vectorize(lambda d: _DEGREE_ACTIVITY.get(d, 0.3))(degree) * rng.lognormal(0, 0.6, n)
    return frame, effect, activity


_UPLOAD_TYPES = {"LongImport": 2925, "Web": 2416, "ShortImport": 917, "Kmovie": 879, "LongPicture": 143,
                 "UNKNOWN": 80, "PictureSet": 73, "LongCamera": 64, "ShortCamera": 43, "ShareFromOtherApp": 29,
                 "FollowShoot": 10, "AiCutVideo": 2}
_SCREENS = {(720.0, 1280.0): 0.68, (1280.0, 720.0): 0.18, (960.0, 720.0): 0.04, (720.0, 960.0): 0.04,
            (1080.0, 1920.0): 0.03, (1440.0, 1080.0): 0.03}
N_TAGS = 70


def _video_table(rng: np.random.Generator, n: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """``video_features_basic_1k.csv`` rows, the planted video effect and the true duration (ms)."""
    video_type = choose(rng, n, {"NORMAL": 0.989, "AD": 0.01, "UNKNOWN": 0.001})
    upload_codes = choose(rng, n, dict(enumerate(_UPLOAD_TYPES.values())))
    upload_dates = pl.Series([(date(2022, 2, 6) + timedelta(days=d)).isoformat() for d in range(61)])  # before the logs
    duration = np.clip(np.round(rng.lognormal(np.log(60_000), 0.9, n)), 5_000, 1_200_000).astype(np.int64)
    screen = choose(rng, n, dict(enumerate(_SCREENS.values())))
    first = skewed_codes(rng, n, N_TAGS)
    second = np.where(rng.random(n) < 0.3, (first + 1 + skewed_codes(rng, n, N_TAGS - 1)) % N_TAGS, -1)
    tags = pl.DataFrame({"first": first + 1, "second": second + 1, "blank": rng.random(n) < 0.013}).select(
        pl.when("blank").then(None)
        .when(pl.col("second") > 0).then(pl.concat_str(["first", "second"], separator=","))
        .otherwise(pl.col("first").cast(pl.String)).alias("tag")).to_series()
    authors = rng.integers(0, 8_733_984, max(1, n * 8 // 10))

    def blanked(values: np.ndarray, share: float) -> pl.Series:
        return pl.Series(np.where(rng.random(n) < share, np.nan, values.astype(np.float64))).fill_nan(None)

    frame = pl.DataFrame({
        "video_id": np.arange(n), "author_id": authors[rng.integers(0, authors.size, n)],
        "video_type": video_type, "upload_dt": upload_dates.gather(rng.integers(0, 61, n)),
        "upload_type": pl.Series(list(_UPLOAD_TYPES)).gather(upload_codes), "visible_status": np.zeros(n),
        "video_duration": blanked(duration, 0.03),
        "server_width": np.array([s[0] for s in _SCREENS])[screen],
        "server_height": np.array([s[1] for s in _SCREENS])[screen],
        "music_id": np.where(rng.random(n) < 0.03, 0, rng.integers(4_000_000_000, 9_170_000_000, n)),
        "music_type": blanked(choose(rng, n, {9.0: 0.91, 4.0: 0.08, 8.0: 0.006, 7.0: 0.003, 11.0: 0.001}), 0.03),
        "tag": tags,
    }).select(VIDEO_COLUMNS)
    tag_effect = rng.normal(0, 0.3, N_TAGS)
    effect = (rng.normal(0, 0.25, len(_UPLOAD_TYPES))[upload_codes] - 0.7 * (video_type == "AD")
              + tag_effect[first] + np.where(second >= 0, 0.5 * tag_effect[second], 0.0) + rng.normal(0, 0.35, n))
    return frame, effect, duration
