"""Data layer: load + encode + split + cache of a KuaiRand-1K-scale log, ours (Polars) beside pandas.

Generates the demo data set once at the scale of KuaiRand-1K (11.7M standard-log rows, 4.37M videos;
``--quick``: 300k rows), then runs each implementation in its own freshly spawned process, so that its
peak RSS (``ru_maxrss``) is its own:

- ours: ``recsys_hmtl.data.pipeline.prepare`` on ``configs/kuairand_demo.yaml`` with a cold cache
  (load, left-join the side tables, date split, vocabularies, encoding, cache write);
- pandas: the same steps on the same resolved configuration, written the straightforward pandas way
  (:func:`pandas_prepare`: ``read_csv`` of the needed columns, ``merge(how="left")``, ``value_counts``
  vocabularies from the training split with rare ids folded, ``map``, train mean/std normalisation,
  ``str.split().explode()`` for the tag multi-value, ``to_parquet`` and ``json.dump``).

Wall time covers the steps only (imports excluded); peak RSS includes the interpreter and imports,
shown separately. Targets (issue 2): pandas/ours ≥ 3x on time, ours/pandas ≤ 0.5 on memory.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "kuairand_demo.yaml"
FULL_ROWS, FULL_VIDEOS = 11_713_045, 4_369_953  # KuaiRand-1K standard logs and videos
QUICK_ROWS = 300_000


def main(quick: bool = False) -> None:
    from recsys_hmtl.data.demo import write_demo_data

    rows = QUICK_ROWS if quick else FULL_ROWS
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        started = time.perf_counter()
        write_demo_data(tmp, rows=rows, seed=0, videos=max(100, rows * FULL_VIDEOS // FULL_ROWS))
        size = sum(p.stat().st_size for p in (Path(tmp) / "data").iterdir()) / 2**20
        print(f"generated {rows:,} rows ({size:,.0f} MiB of CSV) in {time.perf_counter() - started:.1f}s",
              flush=True)
        results = {name: _in_fresh_process(name, tmp) for name in ("ours", "pandas")}
    ours, pandas = results["ours"], results["pandas"]
    print(f"{'':8} {'wall s':>8} {'peak RSS MiB':>13} {'of which imports':>17} {'rows train/val/test':>28}")
    for name, r in results.items():
        split = "/".join(f"{n:,}" for n in r["rows"])
        print(f"{name:8} {r['wall_s']:8.1f} {r['peak_mib']:13.0f} {r['import_mib']:17.0f} {split:>28}")
    speed, memory = pandas["wall_s"] / ours["wall_s"], ours["peak_mib"] / pandas["peak_mib"]
    print(f"pandas/ours time: {speed:.2f}x (target >= 3x); ours/pandas peak memory: {memory:.2f} "
          f"(target <= 0.5){'  [quick: sizes too small for the targets]' if quick else ''}")


def _in_fresh_process(name: str, root: str) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, root, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if "error" in result:
        raise RuntimeError(f"{name} failed: {result['error']}")
    return result


def _child(name: str, root: str, queue) -> None:
    try:
        data, tasks = _resolved_config(root, cache=f"{root}/cache_{name}")
        import pandas  # noqa: F401  both sides import both stacks: the RSS difference is the work
        import pyarrow  # noqa: F401
        import recsys_hmtl.data.pipeline  # noqa: F401

        run = _run_ours if name == "ours" else pandas_prepare
        import_mib = _rss_mib()
        started = time.perf_counter()
        rows = run(data, tasks, Path(root) / f"cache_{name}")
        wall = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        queue.put({"wall_s": wall, "peak_mib": peak, "import_mib": import_mib, "rows": rows})
    except BaseException as exc:  # reported by the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _resolved_config(root: str, cache: str):
    """The demo config pointed at ``root``, with the kuairand preset filled in, and its tasks."""
    from recsys_hmtl.config import load_config
    from recsys_hmtl.data.presets import resolve

    cfg = load_config(CONFIG, [f"data.root={root}", f"data.cache_dir={cache}"])
    return resolve(cfg.data, cfg.tasks)


def _run_ours(data, tasks, cache: Path) -> list[int]:
    from recsys_hmtl.data.pipeline import prepare

    prepared = prepare(data, tasks, use_cache=True)
    return [prepared.splits[s].height for s in ("train", "val", "test")]


def pandas_prepare(data, tasks, out: Path) -> list[int]:
    """Load, left-join, date-split, encode and cache with pandas; returns rows per split."""
    import numpy as np
    import pandas as pd

    def locate(name: str) -> Path:  # under data.root or data.root/data, as our reader looks
        return next((p for p in (Path(data.root) / name, Path(data.root) / "data" / name) if p.is_file()),
                    Path(data.root) / name)

    labels = [t.label_column for t in tasks]
    wanted = {data.user_column, data.split.column, *labels}
    for f in data.sparse:
        wanted.update(f.source_columns)
    wanted.update(f.source_column for f in data.dense)

    log_header = pd.read_csv(locate(data.files[0]), nrows=0).columns
    keys = {side.key for side in data.side_tables}
    log = pd.concat([pd.read_csv(locate(f), usecols=[c for c in log_header if c in wanted | keys])
                     for f in data.files], ignore_index=True)
    missing_side = {}
    for side in data.side_tables:
        header = pd.read_csv(locate(side.file), nrows=0).columns
        columns = [side.key] + [c for c in header if c in wanted and c not in log.columns and c != side.key]
        table = pd.read_csv(locate(side.file), usecols=columns)
        log = log.merge(table, on=side.key, how="left", indicator=True)
        missing_side[side.file] = int((log.pop("_merge") == "left_only").sum())

    split = data.split
    dates = np.sort(log[split.column].unique())
    test_start = int(split.test_start) if split.test_start else dates[-split.test_days]
    val_start = int(split.val_start) if split.val_start else dates[-split.test_days - split.val_days]
    part = np.where(log[split.column] >= test_start, 2, np.where(log[split.column] >= val_start, 1, 0))
    train = part == 0

    encoded = pd.DataFrame({c: log[c].astype("float32") for c in labels})
    vocabularies = {}
    for f in data.sparse:
        min_count = f.min_count or data.min_count
        if f.multi_valued:  # one string of ids ("12,65") or several id columns (QK history)
            if f.separator is not None:
                tokens = log[f.source_columns[0]].str.split(f.separator).explode()
            else:
                tokens = log[f.columns].stack().droplevel(1)
            tokens = tokens[tokens.notna() & ~tokens.astype(str).isin(f.missing_values)]
            codes, vocab = _encode(tokens, train[tokens.index], min_count)
            encoded[f.name] = _jagged(codes, len(log))
        else:
            values = log[f.source_columns[0]]
            if f.missing_values:
                values = values.where(~values.astype("string").isin(f.missing_values))
            codes, vocab = _encode(values, train, min_count)
            encoded[f.name] = codes
        vocabularies[f.name] = vocab
    stats = {}
    for f in data.dense:
        x = log[f.source_column].astype("float64")
        if f.transform == "bucketize":
            edges = np.unique(np.nanquantile(x[train], np.linspace(0, 1, f.num_buckets + 1)[1:-1]))
            encoded[f.name] = np.where(x.isna(), 0, np.searchsorted(edges, x) + 1)
            stats[f.name] = edges.tolist()
            continue
        if f.transform == "log_normalize":
            x = np.log1p(x.clip(lower=0))
        mean, std = x[train].mean(), x[train].std()
        encoded[f.name] = ((x - mean) / (std if std > 0 else 1.0)).fillna(0.0).astype("float32")
        stats[f.name] = [mean, std]

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, name in enumerate(("train", "val", "test")):
        chunk = encoded[part == index]
        chunk.to_parquet(out / f"{name}.parquet", index=False)
        rows.append(len(chunk))
    with open(out / "vocabularies.json", "w") as fh:
        json.dump({"vocabularies": vocabularies, "dense": stats, "missing_side_rows": missing_side}, fh)
    return rows


def _jagged(codes, n_rows: int):
    """Regroup exploded codes (index = row, in row order) into a list column from offsets.

    pandas' own ``codes.groupby(level=0).agg(list)`` costs ~40 µs a row (minutes at 11.7M rows) and
    would swamp the comparison, so the lists are built vectorised as an Arrow list array."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(codes.index.to_numpy(), minlength=n_rows), out=offsets[1:])
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(codes.to_numpy()))
    return pd.Series(pd.arrays.ArrowExtensionArray(lists))


def _encode(values, train, min_count: int):
    """Index 0 = missing or unseen, 1 = rare in train (< ``min_count``), 2.. = vocabulary (SPEC §3)."""
    import numpy as np
    import pandas as pd

    counts = values[np.asarray(train)].value_counts()
    vocab = sorted(counts.index[counts >= min_count])
    index = pd.Series(np.arange(2, len(vocab) + 2), index=vocab)
    codes = values.map(index)
    rare = values.isin(counts.index[counts < min_count])
    codes = codes.fillna(0).astype("int64")
    codes[rare.to_numpy()] = 1
    return codes, [str(v) for v in vocab]
