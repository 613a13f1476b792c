"""The ``data:`` section of an ERE run config (``adapter: ere``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EreDataConfig:
    """``format``: casrel | tplinker | docred | pubtator (the readers' file naming rules find each
    split under ``root``); ``val_split`` empty: the last ``val_fraction`` of the training documents
    are the validation split (NYT here: trained on its val split, tested on test);
    ``max_length``: tokens kept per document; ``max_train_documents``: 0 = all (a quick run)."""

    dataset: str = "webnlg"
    root: str = "data/ere/webnlg"
    format: str = "casrel"
    train_split: str = "train"
    val_split: str | None = "val"
    test_split: str = "test"
    val_fraction: float = 0.1
    relations: str | None = None  # the relation inventory file (default: the format's, beside the data)
    max_length: int = 128
    max_train_documents: int = 0
