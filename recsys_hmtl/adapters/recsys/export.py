"""``recsys-hmtl export``: a run's tower as a program that needs only torch, with what feeds it.

The export folder (``--out``) holds:

``model.pt``
    TorchScript (``torch.jit.load``; traced, see below). ``program(indices, offsets, dense)`` →
    ``[B, T]`` float32 probabilities, column t = task t of ``metadata.json`` ``tasks`` (priority
    order; ESMM's are the chained products, as ``evaluate`` scores them). ``indices`` and
    ``offsets`` are lists with one int64 tensor per sparse feature, in ``metadata.json``
    ``sparse`` order: row b's indices are ``indices[f][offsets[f][b]:offsets[f][b + 1]]``
    (``offsets[f]`` has B + 1 entries, the first 0: CSR, as TorchRec's ``KeyedJaggedTensor``);
    ``dense`` is float32 ``[B, D]`` with the encoded dense features in ``metadata.json`` ``dense``
    order (``[B, 0]`` when there are none).
``metadata.json``
    The input contract: the tasks, each sparse feature (its raw column(s), pooling, table size and
    vocabulary file, or the bucket edges of a bucketised number), each dense feature with its
    normalisation, the id rule (0 missing or unseen, 1 rare, 2.. the vocabulary), the data set's
    reading options (separator, header, side tables) and the run and checkpoint it came from.
``model.onnx`` (+ ``model.onnx.data``, the weights), with ``--onnx``
    The same tower as ONNX, same inputs (named ``indices__<feature>``, ``offsets__<feature>``,
    ``dense``) and output (``probabilities``), exported through ``torch.export`` by PyTorch's
    dynamo ONNX exporter: it needs the ``onnx`` and ``onnxscript`` packages (not dependencies of
    recsys-hmtl) and is checked with ``onnxruntime`` when that is installed.
``vocabularies/<feature>.parquet``
    ``value`` (the raw id, Int64 or String as training read it) → ``index`` (Int64): the
    training ids (index 2..) and the rare ones (index 1). Any other value is index 0.

The tower is the run's model with every TorchRec ``EmbeddingBagCollection`` replaced by plain
``nn.EmbeddingBag`` tables holding the trained rows (same pooling; the dense layers are the
model's own), traced with ``torch.jit.trace``: the towers' Python (task loops, dataclass batches)
is not TorchScript-scriptable, and tracing records the same tensor operations. Before anything is
written, the program is checked against the TorchRec model on rows of the run's data in two batch
sizes (a trace that baked a batch size in would fail there) to :data:`CHECK_TOLERANCE`.

An export folder is written to a temporary folder beside it and renamed into place; ``--out`` may
be new, empty or a previous export (replaced whole), anything else is refused.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import logging
import json
import os
import re
import shutil
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import polars as pl
import torch
from torch import Tensor, nn

from ...config import from_dict
from ...data.batch import Batch
from ...data.config import DataConfig, DenseFeatureConfig, SparseFeatureConfig
from ...data.encode import FIRST_ID, MISSING, RARE, DenseStats, Encoder, Vocabulary
from ...data.presets import get_preset
from ...data.spec import FeatureSpec
from ...errors import InputError
from ...models import FeatureEmbedding, MultiTaskModel
from .staging import staging_folder
from .trained import TrainedRun, load_trained_run

FORMAT = "recsys-hmtl-export"
VERSION = 1
PROGRAM_FILE = "model.pt"
ONNX_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
VOCABULARY_DIR = "vocabularies"
CHECK_ROWS = 512  # rows of the run's data the program is checked on before it is written
CHECK_TOLERANCE = 1e-5  # max |p_program - p_tower|

ID_RULE = (
    f"index {MISSING}: the id is missing (null, empty, or one of the feature's missing_values) or was "
    f"never seen in the training split; {RARE}: seen in training fewer than min_count times (rare); "
    f"{FIRST_ID}, {FIRST_ID + 1}, ...: the training ids by descending count, then by value (the "
    "feature's vocabulary file, which lists the rare ids too). A single-valued feature has exactly one "
    "index per row (0 when missing); a multi-valued one has one per value, missing values dropped "
    "(an empty bag pools to zeros), unseen values kept as 0. Text ids are compared as written, "
    "integer ids as integers (vocabulary value_type)."
)
DENSE_RULE = {
    "normalize": "z = (x - mean) / std",
    "log_normalize": "z = (log1p(max(x, 0)) - mean) / std",
}


# --- the plain-torch tower ------------------------------------------------------------------------
class PlainInputs(NamedTuple):
    """What the program reads, passed to the tower in place of a :class:`Batch`."""

    indices: list[Tensor]
    offsets: list[Tensor]
    dense: Tensor


def plain_inputs(batch: Batch) -> PlainInputs:
    """The program's inputs of ``batch``: per key of its KJT (feature order), values and offsets."""
    jagged = batch.sparse.to_dict()
    keys = batch.sparse.keys()
    return PlainInputs([jagged[k].values().long() for k in keys], [jagged[k].offsets().long() for k in keys],
                       batch.dense.float())


class PlainFeatureEmbedding(nn.Module):
    """:class:`~recsys_hmtl.models.FeatureEmbedding` on plain ``nn.EmbeddingBag`` tables (the
    trained rows, the feature's pooling): ``PlainInputs`` → ``[B, F*dim + D]``, pooled embeddings
    in feature order, then the dense features."""

    def __init__(self, source: FeatureEmbedding) -> None:
        super().__init__()
        tables = source.ebc.embedding_bags
        self.bags = nn.ModuleList(
            nn.EmbeddingBag.from_pretrained(tables[name].weight.detach(), freeze=True,
                                            mode=str(feature.pooling).lower(), include_last_offset=True)
            for name, feature in zip(source.table_names, source.features.sparse)
        )
        self.has_dense = source.features.dense_dim > 0

    def forward(self, inputs: PlainInputs) -> Tensor:
        pooled = [bag(values, offsets) for bag, values, offsets in zip(self.bags, inputs.indices, inputs.offsets)]
        if self.has_dense:
            pooled.append(inputs.dense)
        return torch.cat(pooled, dim=1)


class PlainTower(nn.Module):
    """The run's tower without TorchRec: ``(indices, offsets, dense)`` → ``[B, T]`` probabilities.

    A copy of ``model`` (the dense layers copied, the embedding rows shared) whose feature
    embeddings are :class:`PlainFeatureEmbedding`; ``model`` itself is left as it was."""

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__()
        embeddings = [m for m in model.modules() if isinstance(m, FeatureEmbedding)]
        shared = {id(p): p for m in embeddings for p in m.parameters()}  # deepcopy keeps these as they are
        tower = copy.deepcopy(model, memo=dict(shared))
        for name, module in list(tower.named_modules()):
            if isinstance(module, FeatureEmbedding):
                parent, _, child = name.rpartition(".")
                setattr(tower.get_submodule(parent), child, PlainFeatureEmbedding(module))
        self.tower = tower.eval()
        self.tower.requires_grad_(False)

    def forward(self, indices: list[Tensor], offsets: list[Tensor], dense: Tensor) -> Tensor:
        outputs = self.tower(PlainInputs(indices, offsets, dense))
        return torch.sigmoid(outputs.stacked).transpose(0, 1)


def tower_probabilities(model: MultiTaskModel, batch: Batch) -> Tensor:
    """``[B, T]`` probabilities of the TorchRec tower, exactly as ``evaluate`` scores them."""
    with torch.no_grad():
        return torch.sigmoid(model.eval()(batch).stacked.T)


def trace_program(model: MultiTaskModel, example: PlainInputs) -> torch.jit.ScriptModule:
    """:class:`PlainTower` of ``model`` traced on ``example``."""
    tower = PlainTower(model)
    with torch.no_grad(), warnings.catch_warnings():
        # Shape reads become constants in a trace; check_program proves the batch size is not one.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(tower, tuple(example), check_trace=False)


def check_program(program: torch.jit.ScriptModule, model: MultiTaskModel, batches: list[Batch]) -> float:
    """The largest |program − tower| over ``batches``; RuntimeError above :data:`CHECK_TOLERANCE`."""
    worst = 0.0
    with torch.no_grad():
        for batch in batches:
            expected = tower_probabilities(model, batch)
            got = program(*plain_inputs(batch))
            if got.shape != expected.shape:
                raise RuntimeError(f"the traced program returned {tuple(got.shape)} for a batch of "
                                   f"{batch.batch_size} rows, the tower {tuple(expected.shape)}")
            worst = max(worst, float((got - expected).abs().max()))
    if not worst <= CHECK_TOLERANCE:
        raise RuntimeError(f"the traced program differs from the tower by {worst:.3g} (> {CHECK_TOLERANCE}); "
                           "nothing was written")
    return worst


def check_batches(trained: TrainedRun) -> list[Batch]:
    """Rows of the run's data to check a program on: up to :data:`CHECK_ROWS` of the first split
    that has rows (test, val, train), then its first 3 rows and its first row (other batch sizes)."""
    for split in ("test", "val", "train"):
        if len(trained.prepared.sources[split]):  # the row count, without reading the split
            return [next(iter(trained.prepared.stream(split, size))) for size in (CHECK_ROWS, 3, 1)]
    raise InputError("the run's data has no rows to check the exported program on", file=str(trained.run_dir))


def onnx_input_names(features: FeatureSpec) -> list[str]:
    names = features.sparse_names
    return [f"indices__{name}" for name in names] + [f"offsets__{name}" for name in names] + ["dense"]


def require_onnx() -> None:
    """InputError (exit 2) before any work when the ONNX exporter's packages are missing."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise InputError("writing ONNX needs the packages onnx and onnxscript (pip install onnx onnxscript; "
                         "onnxruntime to check the file)", key="--onnx") from None


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """The exporter's progress lines (stdout), warnings and log chatter, silenced."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def write_onnx(model: MultiTaskModel, example: PlainInputs, path: Path, batches: list[Batch]) -> dict:
    """:class:`PlainTower` of ``model`` as ONNX at ``path`` (dynamic batch size and bag sizes); its
    largest difference from the tower on ``batches`` when onnxruntime is installed."""
    features = model.features
    batch = torch.export.Dim("batch")
    dynamic = ([{0: torch.export.Dim(f"values_{i}")} for i in range(len(example.indices))],
               [{0: batch + 1} for _ in example.offsets], {0: batch})
    names = onnx_input_names(features)
    try:
        with _quiet("torch.onnx", "torch.export", "onnxscript", "onnx_ir"):
            torch.onnx.export(PlainTower(model), tuple(example), str(path), dynamo=True, input_names=names,
                              output_names=["probabilities"], dynamic_shapes=dynamic, report=False)
    except Exception as exc:  # the exporter's own errors: say which step failed
        raise RuntimeError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    entry = {"file": path.name, "inputs": names, "output": "probabilities", "exporter": "torch.onnx (dynamo)",
             "max_abs_difference": None}
    try:
        import onnxruntime
    except ImportError:
        return entry | {"checked": "no (onnxruntime is not installed)"}
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for b in batches:
        feed = plain_inputs(b)
        arrays = [t.numpy() for t in (*feed.indices, *feed.offsets, feed.dense)]
        got = session.run(None, dict(zip(names, arrays)))[0]
        worst = max(worst, float(np.abs(got - tower_probabilities(model, b).numpy()).max()))
    if not worst <= CHECK_TOLERANCE:
        raise RuntimeError(f"the ONNX program differs from the tower by {worst:.3g} (> {CHECK_TOLERANCE}); "
                           "nothing was written")
    return entry | {"checked": f"onnxruntime {onnxruntime.__version__}", "max_abs_difference": worst}


# --- metadata --------------------------------------------------------------------------------------
def _file_name(feature: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", feature)
    return f"{VOCABULARY_DIR}/{safe}.parquet"


def _absolute(data: DataConfig) -> dict:
    """The resolved data config as JSON (how the logs are read; the features are the encoder's), with
    the folders made absolute (predict --model reads side tables under ``root`` when the input lacks
    their columns)."""
    out = dataclasses.asdict(data)
    del out["sparse"], out["dense"]
    out["root"] = str(Path(data.root).expanduser().absolute())
    if data.cache_dir:
        out["cache_dir"] = str(Path(data.cache_dir).expanduser().absolute())
    return out


def vocabulary_frame(vocabulary: Vocabulary) -> pl.DataFrame:
    """``value`` → ``index``: the training ids (2..), then the rare ones (1)."""
    dtype = pl.Int64 if vocabulary.values.dtype.is_integer() else pl.String
    values = pl.concat([vocabulary.values.cast(dtype), vocabulary.rare.cast(dtype)]).alias("value")
    index = np.concatenate([np.arange(FIRST_ID, vocabulary.num_embeddings, dtype=np.int64),
                            np.full(len(vocabulary.rare), RARE, dtype=np.int64)])
    return pl.DataFrame([values, pl.Series("index", index)])


def metadata(trained: TrainedRun, encoder: Encoder, check: dict) -> dict:
    """``metadata.json`` of ``trained`` (see the module docstring)."""
    features: FeatureSpec = trained.prepared.features
    model, plan = trained.model, trained.plan
    sparse_configs = {f.name: f for f in encoder.sparse}
    dense_configs = {f.name: f for f in encoder.dense}
    sparse = []
    for position, feature in enumerate(features.sparse):
        entry = {"name": feature.name, "position": position, "num_embeddings": feature.num_embeddings,
                 "embedding_dim": model.params.embedding_dim, "pooling": feature.pooling,
                 "multi_valued": feature.multi_valued}
        if feature.name in sparse_configs:
            config, vocabulary = sparse_configs[feature.name], encoder.vocabularies[feature.name]
            entry.update(encoding="vocabulary", columns=config.source_columns, separator=config.separator,
                         missing_values=list(config.missing_values), min_count=vocabulary.min_count,
                         value_type="Int64" if vocabulary.values.dtype.is_integer() else "String",
                         vocabulary=_file_name(feature.name), ids=len(vocabulary.values), rare_ids=len(vocabulary.rare))
        else:  # a bucketised number
            config, stats = dense_configs[feature.name], encoder.dense_stats[feature.name]
            entry.update(encoding="bucketize", columns=[config.source_column], edges=list(stats.edges),
                         rule=f"index {FIRST_ID} + (number of edges <= x); missing or NaN x: {MISSING}")
        sparse.append(entry)
    dense = []
    for position, name in enumerate(features.dense):
        config, stats = dense_configs[name], encoder.dense_stats[name]
        dense.append({"name": name, "position": position, "column": config.source_column,
                      "transform": config.transform, "mean": stats.mean, "std": stats.std,
                      "rule": DENSE_RULE[config.transform] + ", in float64, then float32; a missing or "
                              "NaN x gives z = 0"})
    data = plan.data
    preset = get_preset(data.dataset)
    return {
        "format": FORMAT,
        "version": VERSION,
        "program": {
            "file": PROGRAM_FILE, "format": "torchscript", "torch": torch.__version__,
            "load": f"torch.jit.load('{PROGRAM_FILE}')",
            "call": "program(indices, offsets, dense) -> probabilities",
            "indices": "list of int64 1-D tensors, one per entry of 'sparse' in order: the B rows' indices "
                       "concatenated",
            "offsets": "list of int64 1-D tensors of B + 1 entries, one per entry of 'sparse': row b's "
                       "indices are indices[f][offsets[f][b]:offsets[f][b + 1]]; offsets[f][0] = 0 "
                       "(a single-valued feature: 0, 1, ..., B)",
            "dense": "float32 [B, D], columns in the order of 'dense' (D = 0: a [B, 0] tensor)",
            "output": "float32 [B, T], column t the probability of tasks[t]",
        },
        "model": plan.resolved.model_name,
        "tasks": list(trained.tasks),
        "sparse": sparse,
        "dense": dense,
        "id_rule": ID_RULE,
        "id_columns": list(dict.fromkeys([data.user_column, *preset.id_columns])),
        "encoder": {
            "sparse": [dataclasses.asdict(f) for f in encoder.sparse],
            "dense": [dataclasses.asdict(f) for f in encoder.dense],
            "dense_stats": {n: dataclasses.asdict(s) for n, s in encoder.dense_stats.items()},
            "vocabularies": {n: {"file": _file_name(n), "min_count": v.min_count}
                             for n, v in encoder.vocabularies.items()},
        },
        "data": _absolute(data),
        "run": {"dir": str(trained.run_dir.absolute()), "checkpoint": str(trained.checkpoint["path"]),
                "batch": trained.checkpoint.get("step"), "config_digest": plan.config.digest()},
        "check": check,
    }


# --- writing ---------------------------------------------------------------------------------------
def is_export(folder: Path) -> bool:
    """Whether ``folder`` holds an export (its ``metadata.json`` says so)."""
    try:
        return json.loads((folder / METADATA_FILE).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_export_folder(out: Path) -> None:
    """``--out`` must be new, empty, or a previous export (replaced whole); else exit 2, untouched."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError("exists and is not a folder", file=str(out), key="--out")
    if any(out.iterdir()) and not is_export(out):
        raise InputError(f"is a non-empty folder that is not an export (no {METADATA_FILE} of "
                         "recsys-hmtl export); nothing in it was changed", file=str(out), key="--out",
                         hint="choose a new or empty folder, or a previous export to replace")


def export_run(run_dir: str | Path, out: str | Path, *, onnx: bool = False) -> dict:
    """Export the last checkpoint of ``run_dir`` to the folder ``out`` (``onnx``: also
    ``model.onnx``); returns ``metadata.json``."""
    out = Path(out)
    check_export_folder(out)
    if onnx:
        require_onnx()
    trained = load_trained_run(run_dir, "export writes the vocabularies of the files the run was trained on")
    encoder = trained.prepared.encoder()
    batches = check_batches(trained)
    program = trace_program(trained.model, plain_inputs(batches[0]))
    worst = check_program(program, trained.model, batches)
    check = {"rows": sum(b.batch_size for b in batches), "batch_sizes": [b.batch_size for b in batches],
             "max_abs_difference": worst, "tolerance": CHECK_TOLERANCE}
    meta = metadata(trained, encoder, check)

    with staging_folder(out) as tmp:
        (tmp / VOCABULARY_DIR).mkdir()
        torch.jit.save(program, str(tmp / PROGRAM_FILE))
        if onnx:
            meta["program"]["onnx"] = write_onnx(trained.model, plain_inputs(batches[0]), tmp / ONNX_FILE, batches)
        for name, vocabulary in encoder.vocabularies.items():
            vocabulary_frame(vocabulary).write_parquet(tmp / _file_name(name))
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        _replace(tmp, out)
    return meta


def _replace(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an empty folder or a previous export there is swapped out first."""
    aside = None
    if out.exists():
        aside = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(out, aside)
    try:
        os.rename(tmp, out)
    except OSError:
        if aside is not None:
            os.rename(aside, out)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


# --- reading ---------------------------------------------------------------------------------------
@dataclass
class Export:
    """An export folder read back: the program, the encoder that feeds it, the reading options."""

    folder: Path
    metadata: dict
    encoder: Encoder
    data: DataConfig
    program: torch.jit.ScriptModule = field(repr=False)

    @property
    def tasks(self) -> list[str]:
        return list(self.metadata["tasks"])

    def probabilities(self, inputs: PlainInputs) -> Tensor:
        with torch.no_grad():
            return self.program(*inputs)


def read_export(folder: str | Path) -> Export:
    """The export in ``folder``; InputError naming the file for anything missing or unreadable."""
    folder = Path(folder)
    path = folder / METADATA_FILE
    if not folder.is_dir():
        raise InputError("export folder not found", file=str(folder), key="--model")
    if not path.is_file():
        raise InputError(f"not an export folder (no {METADATA_FILE}; was it written by recsys-hmtl export?)",
                         file=str(folder), key="--model")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"not readable JSON ({exc})", file=str(path)) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"not the metadata of recsys-hmtl export (format is not '{FORMAT}')", file=str(path))
    if meta.get("version") != VERSION:
        raise InputError(f"export format version {meta.get('version')}; this recsys-hmtl reads version {VERSION}",
                         file=str(path))
    try:
        encoder = _read_encoder(folder, meta["encoder"])
        data = from_dict(DataConfig, meta["data"], str(path), "data.")
        data = dataclasses.replace(data, sparse=list(encoder.sparse), dense=list(encoder.dense))
        tasks = list(meta["tasks"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"incomplete export metadata (missing {exc})", file=str(path)) from None
    program_path = folder / meta.get("program", {}).get("file", PROGRAM_FILE)
    try:
        program = torch.jit.load(str(program_path), map_location="cpu").eval()
    except (OSError, RuntimeError, ValueError) as exc:
        raise InputError(f"not a loadable TorchScript program ({str(exc).splitlines()[0]})",
                         file=str(program_path)) from None
    if [f.name for f in encoder.spec.sparse] != [f["name"] for f in meta.get("sparse", [])] or not tasks:
        raise InputError("the metadata's features and encoder disagree", file=str(path))
    return Export(folder, meta, encoder, data, program)


def _read_encoder(folder: Path, section: dict) -> Encoder:
    vocabularies = {}
    for name, entry in section["vocabularies"].items():
        path = folder / entry["file"]
        try:
            frame = pl.read_parquet(path)
            values = frame.filter(pl.col("index") >= FIRST_ID).sort("index").get_column("value")
            rare = frame.filter(pl.col("index") == RARE).get_column("value")
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InputError(f"not a readable vocabulary ({str(exc).splitlines()[0]})", file=str(path)) from None
        if values.len() and not np.array_equal(frame.filter(pl.col("index") >= FIRST_ID).get_column("index")
                                               .sort().to_numpy(), np.arange(FIRST_ID, FIRST_ID + values.len())):
            raise InputError("the vocabulary's indices are not 2, 3, ... without gaps", file=str(path))
        vocabularies[name] = Vocabulary(values.alias("value"), rare.alias("value"), int(entry["min_count"]))
    return Encoder(
        sparse=[SparseFeatureConfig(**f) for f in section["sparse"]],
        dense=[DenseFeatureConfig(**f) for f in section["dense"]],
        vocabularies=vocabularies,
        dense_stats={n: DenseStats(**s) for n, s in section["dense_stats"].items()},
    )


def describe(meta: dict, out: Path) -> str:
    """One paragraph for stdout after an export."""
    check, onnx = meta["check"], meta["program"].get("onnx")
    text = (f"exported {meta['model']} ({len(meta['tasks'])} tasks: {', '.join(meta['tasks'])}; "
            f"{len(meta['sparse'])} sparse, {len(meta['dense'])} dense features) from batch {meta['run']['batch']} "
            f"to {out}: {PROGRAM_FILE} (TorchScript, torch {meta['program']['torch']}), {METADATA_FILE}, "
            f"{VOCABULARY_DIR}/; checked against the tower on {check['rows']} rows: max |diff| "
            f"{check['max_abs_difference']:.2g}")
    if onnx:
        checked = onnx["max_abs_difference"]
        text += f"; {onnx['file']}: " + (f"max |diff| {checked:.2g} ({onnx['checked']})" if checked is not None
                                         else f"not checked: {onnx['checked']}")
    return text
