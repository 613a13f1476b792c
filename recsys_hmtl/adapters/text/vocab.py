"""The word vocabulary of the training split: PAD (id 0), UNK (id 1), then words by falling count."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


@dataclass(frozen=True)
class Vocabulary:
    words: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", {w: i for i, w in enumerate(self.words)})

    @classmethod
    def fit(cls, texts: Iterable[Sequence[str]], min_count: int = 1, max_size: int | None = None) -> "Vocabulary":
        """Words seen at least ``min_count`` times, most frequent first (ties: alphabetical),
        at most ``max_size`` entries in all (PAD and UNK included)."""
        counts = Counter(w for tokens in texts for w in tokens)
        kept = sorted((w for w, n in counts.items() if n >= min_count and w not in (PAD, UNK)),
                      key=lambda w: (-counts[w], w))
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]
        return cls((PAD, UNK, *kept))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Sequence[str], max_length: int) -> list[int]:
        """The ids of the first ``max_length`` tokens; unknown words → UNK."""
        ids = self._ids  # type: ignore[attr-defined]
        return [ids.get(w, UNK_ID) for w in tokens[:max_length]]

    def to_dict(self) -> dict:
        return {"words": list(self.words)}

    @classmethod
    def from_dict(cls, state: dict) -> "Vocabulary":
        return cls(tuple(state["words"]))
