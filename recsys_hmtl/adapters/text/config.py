"""The ``data:`` section of a text run config (``adapter: text``)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Seed 002's 14 Amazon product domains (FDU-MTL, Liu et al. 2017; Mao et al. 2021), one binary task each.
AMAZON_DOMAINS = (
    "apparel", "baby", "books", "camera_photo", "dvd", "electronics", "health_personal_care",
    "kitchen_housewares", "magazines", "music", "software", "sports_outdoors", "toys_games", "video",
)
EXTRA_DOMAINS = ("imdb", "MR")  # FDU-MTL's two other domains (not in seed 002's benchmark)
KNOWN_DOMAINS = AMAZON_DOMAINS + EXTRA_DOMAINS


@dataclass
class TextDataConfig:
    """``domains``: the tasks, in priority order (``<root>/<domain>.task.{train,test}`` each);
    ``val_fraction``: the share of each domain's training file held out as its validation split
    (a fixed draw per domain, the same for every run seed); ``per_task_batch``: reviews of EACH
    task in one training batch (0: ``trainer.batch_size / tasks``; otherwise ``trainer.batch_size``
    must equal ``per_task_batch × tasks``); ``max_length``: tokens kept per review; ``min_count``
    and ``max_vocab``: the vocabulary of the training split (PAD and UNK included);
    ``max_train_per_task``: 0 = all (a quick run trains on the first N of each domain)."""

    dataset: str = "amazon_mtl"
    root: str = "../shared/data/text/amazon_mtl"
    domains: list[str] = field(default_factory=lambda: list(AMAZON_DOMAINS))
    val_fraction: float = 0.1
    per_task_batch: int = 0
    max_length: int = 256
    min_count: int = 2
    max_vocab: int = 50000
    max_train_per_task: int = 0
