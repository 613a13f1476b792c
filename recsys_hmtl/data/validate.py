"""``recsys-hmtl validate --config CFG``: prepare the data a config points at and summarise it.

Bad input raises :class:`~recsys_hmtl.errors.InputError` (the CLI prints it and exits with 2); good
input is encoded and cached like a training run would, so a later run starts from the cache.
"""

from __future__ import annotations

from .config import DataConfig, TaskConfig
from .pipeline import PreparedData, prepare
from .split import SPLITS

DATES_SHOWN = 31  # a date split with more dates shows the first and the last DATES_SHOWN


def validate(data_cfg: DataConfig, tasks: list[TaskConfig]) -> str:
    """Rows per split (and per date, for a date split), rows dropped outside the date range, positive
    rate per task, vocabulary sizes, side-feature coverage, cache hit/miss."""
    return summary(prepare(data_cfg, tasks))


def summary(prepared: PreparedData) -> str:
    """The printable summary of :func:`validate`."""
    report = prepared.report
    lines = [f"dataset: {report.get('dataset')} ({report.get('variant')})", "input files:"]
    lines += [f"  {path}: {rows:,} rows" for path, rows in report.get("files", {}).items()]
    split = report.get("split", {})
    lines.append(_split_line(split))
    lines.append("rows: " + ", ".join(f"{name} {report['rows'][name]:,}" for name in SPLITS))
    lines += _date_lines(split)

    width = max(len(t) for t in [*prepared.tasks, "task"])
    lines.append("positive rate per task, in priority order:")
    lines.append(f"  {'task':<{width}}" + "".join(f"{name:>20}" for name in SPLITS))
    for task in prepared.tasks:
        cells = [report["tasks"][task][name] for name in SPLITS]
        lines.append(f"  {task:<{width}}" + "".join(f"{c['rate']:>9.2%} ({c['positives']:>8,})" for c in cells))

    unseen = report.get("missing_or_unseen", {})
    vocabulary = report.get("vocabulary", {})
    width = max([len(n) for n in vocabulary] + [7])
    lines.append("sparse features (indices incl. 0 = missing/unseen and 1 = rare):")
    lines.append(f"  {'feature':<{width}}{'indices':>12}{'rare ids':>10}  missing or unseen in val / test")
    for name, v in vocabulary.items():
        shares = unseen.get(name)
        share = f"{shares['val']:.1%} / {shares['test']:.1%}" if shares else "(multi-valued)"
        lines.append(f"  {name:<{width}}{v['num_embeddings']:>12,}{v.get('rare_ids', 0):>10,}  {share}")
    dense = [f"{name} ({stats['transform']})" for name, stats in report.get("dense", {}).items()]
    if dense:
        lines.append("dense features: " + ", ".join(dense))

    sides = report.get("side_tables", {})
    if sides:
        lines.append("side tables (share of log rows with a side row):")
    for file, side in sides.items():
        if not side.get("used"):
            lines.append(f"  {file}: not used by the configured features")
        else:
            lines.append(f"  {file}: {side['coverage']:.2%} ({side['matched']:,} matched, "
                         f"{side['missing']:,} without a side row; {side['rows']:,} side rows)")
    lines.append(f"cache: {report.get('cache')}")
    return "\n".join(lines)


def _date_lines(split: dict) -> list[str]:
    """Rows dropped outside the date range, and the table date -> rows -> split of a date split."""
    lines = []
    if split.get("dropped_out_of_range"):
        first, last = split["date_range"]
        lines.append(f"dropped: {split['dropped_out_of_range']:,} rows dated outside {first}..{last} "
                     "(data.out_of_range: drop)")
    per_date = split.get("rows_per_date") or []
    if not per_date:
        return lines
    lines.append(f"rows per date ({len(per_date)} dates):")
    shown = per_date if len(per_date) <= 2 * DATES_SHOWN else per_date[:DATES_SHOWN] + [None] + per_date[-DATES_SHOWN:]
    for item in shown:
        if item is None:
            lines.append(f"  ... {len(per_date) - 2 * DATES_SHOWN} more dates ...")
            continue
        day, rows = item
        name = "test" if day >= split["test_start"] else "val" if day >= split["val_start"] else "train"
        lines.append(f"  {day}  {rows:>12,}  {name}")
    return lines


def _split_line(split: dict) -> str:
    if split.get("kind") == "date":
        return (f"split: by {split['column']}: val from {split['val_start']}, test from {split['test_start']} "
                f"(dates {split['first_date']}..{split['last_date']})")
    return f"split: random {'/'.join(f'{f:g}' for f in split['fractions'])} with seed {split['seed']}"
