"""A reproduction suite: a grid of runs and the seed-shaped tables drawn from it (``configs/suites/``).

A suite file (YAML, safe loader) names a base run config and the grid's axes::

    config: ../kuairand_demo.yaml        # base run config, relative to the suite file
    set: {model.embedding_dim: 8}        # --set values every cell gets
    seeds: 2                             # seeds 0..N-1 (run seed = base seed + i); --seeds overrides
    lrs: [0.0005, 0.001, 0.002]          # trainer.lr grid, the same for every variant (sum included)
    datasets:                            # name -> its own config / values / generated demo rows
      demo: {demo_rows: 20000}
      kuairand: {config: ../kuairand_1k.yaml, set: {data.root: data/KuaiRand-1K}}
    backbones: [mmoe, ple]
    variants:                            # name -> the --set values that make it
      sum: {stage.name: sum}
      scd_vio_auto: {stage.name: scd_vio, stage.alpha: auto}
    tables:
      - title: "Table 3 shape"
        baseline: sum
        rows: [scd_vio, {variant: scd_vio_d2, baseline: sum_d2, label: "depth 2"}]
        published: {mmoe: {scd_vio: 2.52}}   # the seed's Δ Avg. AUC % beside ours
        columns: [feasibility_gap]           # run-level figures shown as extra columns
        min_positives: 30                    # tasks with fewer test positives are left out
    plots: [scd_vio, scd_vio_auto]           # gates/weights over training for these variants
    metric: {task: auc, primary: avg_auc, change: relative, direction: max}   # the default; ERE: f1, triple_f1, points; the toy: loss, avg_loss, direction: min

The cells are datasets × backbones × (variants the tables use) × lrs × seeds; every cell is an
ordinary run folder ``OUT/runs/<dataset>/<backbone>/<variant>/lr<lr>/seed<i>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError, did_you_mean

SUITES_DIR = Path(__file__).resolve().parents[2] / "configs" / "suites"
DEFAULT_LRS = (5e-4, 1e-3, 2e-3)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    config: Path  # the run config of this dataset's cells
    values: dict[str, Any] = field(default_factory=dict)
    demo_rows: int | None = None  # generate demo data under OUT/data/<name> unless data.root is set


@dataclass(frozen=True)
class TableRow:
    variant: str
    baseline: str
    label: str


@dataclass(frozen=True)
class TableSpec:
    title: str
    baseline: str
    rows: tuple[TableRow, ...]
    datasets: tuple[str, ...]
    backbones: tuple[str, ...]
    published: dict[str, dict[str, float]] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    min_positives: int = 0


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    dataset: str
    backbone: str
    variant: str
    lr: float
    seed: int

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.backbone}/{self.variant}/lr{self.lr:g}/seed{self.seed}"

    def run_dir(self, out: Path) -> Path:
        return Path(out) / "runs" / self.key


@dataclass(frozen=True)
class SuiteMetric:
    """What the tables show and rank by (the adapter's report, SPEC §9): ``task`` per task,
    ``primary`` for model selection (validation) and the average column, ``change`` of a row
    against its baseline: ``relative`` % (seed 001 §4.2) or ``points`` (seed 000 Table 2). An
    ``avg_auc`` primary is recomputed over the tasks shown (``min_positives``); others are read."""

    task: str = "auc"
    primary: str = "avg_auc"
    change: str = "relative"
    direction: str = "max"  # max: higher is better (AUC, F1, accuracy); min: a loss (the toy adapter)


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    config: Path
    values: dict[str, Any]
    seeds: int
    lrs: tuple[float, ...]
    datasets: dict[str, DatasetSpec]
    backbones: tuple[str, ...]
    variants: dict[str, dict[str, Any]]
    tables: tuple[TableSpec, ...]
    plots: tuple[str, ...]
    metric: SuiteMetric = SuiteMetric()

    def cells(self) -> list[Cell]:
        """Every run the tables need, in a stable order (grouped so that lrs and seeds of one
        configuration run together)."""
        used: dict[tuple[str, str, str], None] = {}
        for table in self.tables:
            for dataset in table.datasets:
                for backbone in table.backbones:
                    for row in table.rows:
                        used[(dataset, backbone, row.baseline)] = None
                        used[(dataset, backbone, row.variant)] = None
        return [Cell(d, b, v, lr, s) for d, b, v in used for lr in self.lrs for s in range(self.seeds)]

    def overrides(self, cell: Cell, user: list[str]) -> tuple[Path, list[str]]:
        """(run config file, ``--set`` items) of ``cell``: suite, dataset, backbone, variant, lr,
        seed, then the user's own (``DATASET:key=value`` items apply to that dataset only)."""
        dataset = self.datasets[cell.dataset]
        values = {**self.values, **dataset.values, "model.name": cell.backbone,
                  **self.variants[cell.variant], "trainer.lr": cell.lr,
                  "metrics.group": f"{self.name}/{cell.key}"}  # its own Pushgateway group
        items = [f"{k}={json.dumps(v)}" for k, v in values.items()]
        for item in user:
            prefix, sep, rest = item.partition(":")
            if sep and "=" not in prefix and "." not in prefix:
                if prefix == cell.dataset:
                    items.append(rest)
            else:
                items.append(item)
        return dataset.config, items


def suite_path(name: str) -> Path:
    """``configs/suites/<name>.yaml``, or ``name`` itself when it is a file."""
    given = Path(name)
    if given.suffix in (".yaml", ".yml") and given.is_file():
        return given
    path = SUITES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
        raise InputError(f"unknown suite '{name}'", key="--suite", hint=did_you_mean(name, known))
    return path


def load_suite(name: str, seeds: int | None = None, datasets: list[str] | None = None,
               min_positives: int | None = None) -> Suite:
    """Read and check a suite (every reference resolved; errors name the file and the key).

    ``datasets``: ``NAME`` or ``NAME=CONFIG`` items: only these datasets' cells (and tables), each
    optionally with another run config (e.g. the KuaiRand tables on demo data with small models).
    ``min_positives``: overrides every table's."""
    path, datasets_arg = suite_path(name), datasets
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML ({exc})", file=str(path)) from None
    where = str(path)
    keys = ["config", "set", "seeds", "lrs", "datasets", "backbones", "variants", "tables", "plots", "metric"]
    unknown = set(raw) - {"description", *keys}
    if unknown:
        key = sorted(unknown)[0]
        raise InputError("unknown key", file=where, key=key, hint=did_you_mean(key, keys))
    base = _config_path(path, raw.get("config"), "config")
    n_seeds = int(seeds if seeds is not None else raw.get("seeds", 1))
    if n_seeds < 1:
        raise InputError(f"must be at least 1, got {n_seeds}", file=where, key="seeds")
    lrs = tuple(float(x) for x in raw.get("lrs", DEFAULT_LRS))
    if not lrs or min(lrs) <= 0:
        raise InputError("must be a non-empty list of positive learning rates", file=where, key="lrs")
    datasets = {}
    for dname, spec in _mapping(raw.get("datasets"), where, "datasets").items():
        spec = spec or {}
        datasets[dname] = DatasetSpec(
            name=dname, config=_config_path(path, spec.get("config"), f"datasets.{dname}.config", base),
            values=dict(_mapping(spec.get("set", {}), where, f"datasets.{dname}.set")),
            demo_rows=spec.get("demo_rows"))
    backbones = tuple(raw.get("backbones") or ())
    variants = {v: dict(_mapping(s, where, f"variants.{v}")) for v, s in _mapping(raw.get("variants"), where,
                                                                                    "variants").items()}
    tables = tuple(_table(t, i, where, datasets, backbones, variants)
                   for i, t in enumerate(raw.get("tables") or []))
    if datasets_filter := datasets_only(datasets_arg, datasets):
        datasets = {n: datasets_filter.get(n) or spec for n, spec in datasets.items() if n in datasets_filter}
        tables = tuple(replace(t, datasets=tuple(d for d in t.datasets if d in datasets)) for t in tables)
        tables = tuple(t for t in tables if t.datasets)
    if min_positives is not None:
        tables = tuple(replace(t, min_positives=min_positives) for t in tables)
    if not tables:
        raise InputError("a suite needs at least one table", file=where, key="tables")
    plots = tuple(raw.get("plots") or ())
    for v in plots:
        _known(v, variants, where, "plots")
    return Suite(name=path.stem, path=path, description=str(raw.get("description", "")).strip(), config=base,
                 values=dict(_mapping(raw.get("set", {}), where, "set")), seeds=n_seeds, lrs=lrs,
                 datasets=datasets, backbones=backbones, variants=variants, tables=tables, plots=plots,
                 metric=_metric(raw.get("metric", {}), where))


def _metric(value: Any, where: str) -> SuiteMetric:
    raw = _mapping(value or {}, where, "metric")
    fields = ("task", "primary", "change")
    for key in raw:
        if key not in fields:
            raise InputError("unknown key", file=where, key=f"metric.{key}", hint=did_you_mean(key, fields))
    metric = SuiteMetric(**{k: str(v) for k, v in raw.items()})
    if metric.change not in ("relative", "points"):
        raise InputError(f"must be relative or points, got {metric.change!r}", file=where, key="metric.change")
    if metric.direction not in ("max", "min"):
        raise InputError(f"must be max or min, got {metric.direction!r}", file=where, key="metric.direction")
    return metric


def datasets_only(items: list[str] | None, known: dict[str, DatasetSpec]) -> dict[str, DatasetSpec | None]:
    """``{name: replacement spec or None}`` from ``--datasets NAME[=CONFIG]`` items."""
    out: dict[str, DatasetSpec | None] = {}
    for item in items or ():
        name, sep, config = item.partition("=")
        if name not in known:
            raise InputError(f"the suite has no dataset '{name}'", key="--datasets", hint=did_you_mean(name, known))
        if sep:
            path = Path(config).expanduser().resolve()
            if not path.is_file():
                raise InputError("run config not found", file=str(path), key="--datasets")
            out[name] = replace(known[name], config=path, demo_rows=None)
        else:
            out[name] = None
    return out


def _table(raw: Any, index: int, where: str, datasets: dict, backbones: tuple, variants: dict) -> TableSpec:
    key = f"tables[{index}]"
    raw = _mapping(raw, where, key)
    baseline = _known(raw.get("baseline", "sum"), variants, where, f"{key}.baseline")
    rows = []
    for j, row in enumerate(raw.get("rows") or []):
        row = {"variant": row} if isinstance(row, str) else _mapping(row, where, f"{key}.rows[{j}]")
        variant = _known(row.get("variant"), variants, where, f"{key}.rows[{j}].variant")
        base = _known(row.get("baseline", baseline), variants, where, f"{key}.rows[{j}].baseline")
        rows.append(TableRow(variant, base, str(row.get("label", variant))))
    if not rows:
        raise InputError("a table needs rows (the variants compared with the baseline)", file=where, key=f"{key}.rows")
    table_datasets = tuple(raw.get("datasets") or datasets)
    table_backbones = tuple(raw.get("backbones") or backbones)
    for d in table_datasets:
        _known(d, datasets, where, f"{key}.datasets")
    if not table_backbones:
        raise InputError("no backbones: list them in the suite or the table", file=where, key=f"{key}.backbones")
    return TableSpec(title=str(raw.get("title", f"Table {index + 1}")), baseline=baseline, rows=tuple(rows),
                     datasets=table_datasets, backbones=table_backbones,
                     published={str(b): {str(v): float(x) for v, x in _mapping(m, where, f"{key}.published").items()}
                                for b, m in _mapping(raw.get("published", {}), where, f"{key}.published").items()},
                     columns=tuple(raw.get("columns") or ()), min_positives=int(raw.get("min_positives", 0)))


def _config_path(suite: Path, value: Any, key: str, default: Path | None = None) -> Path:
    if value is None:
        if default is None:
            raise InputError("missing: the base run config of the suite", file=str(suite), key=key)
        return default
    path = (suite.parent / str(value)).resolve()
    if not path.is_file():
        raise InputError(f"run config not found: {path}", file=str(suite), key=key)
    return path


def _mapping(value: Any, where: str, key: str) -> dict:
    if value is None:
        raise InputError("missing", file=where, key=key)
    if not isinstance(value, dict):
        raise InputError(f"expected a mapping, got {value!r}", file=where, key=key)
    return value


def _known(name: Any, known: dict, where: str, key: str) -> str:
    if name not in known:
        raise InputError(f"unknown name {name!r}", file=where, key=key, hint=did_you_mean(str(name), known))
    return str(name)
