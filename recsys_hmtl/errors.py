"""Errors a user can fix: bad input files, bad configuration.

The CLI turns :class:`InputError` into exit code 2 and one paragraph on stderr (no traceback unless
``--debug``). Everything else is exit code 1.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class InputError(Exception):
    """Bad input or configuration; the message names the file, column/key and first bad row."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        key: str | None = None,
        row: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.file, self.column, self.key, self.row, self.hint = file, column, key, row, hint
        where = []
        if file is not None:
            where.append(str(file))
        if column is not None:
            where.append(f"column '{column}'")
        if key is not None:
            where.append(f"key '{key}'")
        if row is not None:
            where.append(f"row {row}")
        text = _sentence(": ".join([", ".join(where), message]) if where else message)
        if hint:
            text += " " + _sentence(hint)
        super().__init__(text)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name`` (for 'did you mean ...?' hints), or None."""
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A hint sentence: 'did you mean X?' or the list of valid names."""
    candidates = sorted(candidates)
    best = closest(name, candidates)
    if best is not None:
        return f"did you mean '{best}'?"
    return "valid names: " + ", ".join(candidates)
