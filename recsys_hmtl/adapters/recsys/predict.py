"""``recsys-hmtl predict``: score a file of rows in batches, with a run or with its export.

``--run RUN_DIR`` scores with the run's last checkpoint in the TorchRec tower, exactly as
``evaluate`` does (same encoder, same batches, same model); ``--model EXPORT_DIR`` with the
exported TorchScript program and the encoder rebuilt from its ``metadata.json`` and vocabularies
(no run folder, no data cache needed). Both read the input as training read its logs
(:mod:`~recsys_hmtl.adapters.recsys.raw_rows`), encode it with the run's vocabularies and dense
statistics (:mod:`recsys_hmtl.data.encode`: unseen ids → index 0) and score ``--batch-size`` rows at
a time, so memory stays bounded whatever the file's size.

The output Parquet file has the data set's id columns (``data.user_column`` and the preset's item
id, e.g. KuaiRand's ``user_id``, ``video_id``: the values as the input holds them, for joining),
any ``--keep`` columns, then ``p_<task>`` (Float32, probability) per task in priority order, one
row per input row in input order. It is written as parts in a temporary folder beside it and
assembled and renamed into place at the end: an error leaves no output (nor the folders it made
for it), and an existing file is replaced only by a complete one.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import polars as pl
import torch
from tqdm import tqdm

from ...data.batch import Batch
from ...data.batches import EncodedArrays
from ...data.config import DataConfig
from ...data.encode import GROUP_COLUMN, Encoder
from ...data.presets import get_preset
from ...data.spec import FeatureSpec
from ...errors import InputError
from .export import plain_inputs, read_export, tower_probabilities
from .raw_rows import RawRows
from .staging import staging_folder
from .trained import load_trained_run

DEFAULT_BATCH_SIZE = 65536
SCORE_PREFIX = "p_"


class Scorer:
    """What scoring needs: the encoder and reading options of a run, its tasks and features, and
    ``probabilities(batch)`` → ``[B, T]``."""

    def __init__(self, source: str, encoder: Encoder, data: DataConfig, tasks: Sequence[str],
                 probabilities: Callable[[Batch], torch.Tensor]) -> None:
        self.source, self.encoder, self.data, self.tasks = source, encoder, data, list(tasks)
        self.features: FeatureSpec = encoder.spec
        self.probabilities = probabilities

    @classmethod
    def from_run(cls, run_dir: str | Path) -> "Scorer":
        trained = load_trained_run(run_dir, "predict encodes ids with the vocabularies of the files the run "
                                            "was trained on")
        model = trained.model
        return cls(f"run {run_dir}", trained.prepared.encoder(), trained.plan.data, trained.tasks,
                   lambda batch: tower_probabilities(model, batch))

    @classmethod
    def from_export(cls, folder: str | Path) -> "Scorer":
        exported = read_export(folder)
        return cls(f"export {folder}", exported.encoder, exported.data, exported.tasks,
                   lambda batch: exported.probabilities(plain_inputs(batch)))

    def id_columns(self) -> list[str]:
        """The user id column and the data set's item id column(s)."""
        return list(dict.fromkeys([self.data.user_column, *get_preset(self.data.dataset).id_columns]))

    def score(self, features: pl.DataFrame) -> np.ndarray:
        """``[B, T]`` float32 probabilities of the typed rows ``features``."""
        encoded = self.encoder.transform(features).with_columns(pl.lit(0, pl.Int64).alias(GROUP_COLUMN))
        arrays = EncodedArrays(encoded, self.features, [])
        return self.probabilities(arrays.batch(np.arange(len(arrays)))).numpy().astype(np.float32, copy=False)


def progress_enabled() -> bool:
    return os.environ.get("RECSYS_HMTL_PROGRESS", "1") != "0"


def predict(*, input: str | Path, out: str | Path, run: str | Path | None = None, model: str | Path | None = None,
            batch_size: int = DEFAULT_BATCH_SIZE, keep: Sequence[str] = ()) -> dict:
    """Score every row of ``input`` with ``run`` or the export ``model``; write ``out`` (Parquet).
    Returns a summary (rows, columns, seconds)."""
    if (run is None) == (model is None):
        raise InputError("give either --run RUN_DIR or --model EXPORT_DIR")
    if batch_size < 1:
        raise InputError(f"must be at least 1, got {batch_size}", key="--batch-size")
    input, out = Path(input), Path(out)
    if out.is_dir():
        raise InputError("is a folder; --out is the Parquet file to write", file=str(out), key="--out")
    if out.exists() and input.exists() and out.resolve() == input.resolve():
        raise InputError("is the input file; write the scores to another file", file=str(out), key="--out")
    started = time.perf_counter()
    scorer = Scorer.from_run(run) if run is not None else Scorer.from_export(model)
    rows = RawRows(input, scorer.data, scorer.encoder, batch_size=batch_size, id_columns=scorer.id_columns(),
                   keep=keep)
    clash = [c for c in rows.id_columns if c.startswith(SCORE_PREFIX) and c[len(SCORE_PREFIX):] in scorer.tasks]
    if clash:
        raise InputError(f"a kept column is named like a score column ({clash[0]})", column=clash[0], key="--keep")
    score_columns = [f"{SCORE_PREFIX}{task}" for task in scorer.tasks]

    total = 0
    with staging_folder(out) as tmp:
        parts = []
        bar = tqdm(total=rows.row_count(), unit="rows", unit_scale=True, desc="predict", file=sys.stderr,
                   disable=not progress_enabled(), dynamic_ncols=True)
        with bar:
            for batch in rows.batches():
                scores = scorer.score(batch.features)
                frame = batch.ids.with_columns(pl.Series(name, scores[:, t]) for t, name in enumerate(score_columns))
                parts.append(tmp / f"part-{len(parts):08d}.parquet")
                frame.write_parquet(parts[-1])
                total += frame.height
                bar.update(frame.height)
        assembled = tmp / "scores.parquet"
        pl.scan_parquet(parts).sink_parquet(assembled)
        os.replace(assembled, out)
    return {"rows": total, "out": str(out), "input": str(input), "scored_with": scorer.source,
            "columns": [*rows.id_columns, *score_columns], "seconds": round(time.perf_counter() - started, 3)}
