"""Values from input files as error messages show them: cut to about :data:`LIMIT` characters.

A data file can hold a 30 MB field, or be something else entirely (a config, a binary) given as data:
messages name the row and show the offending value, cut, never a whole line or other lines of it.
Every message of the data layer that echoes a value, a header name or a reader's message goes
through :func:`shown` or :func:`clipped`.
"""

from __future__ import annotations

LIMIT = 200  # characters of a value shown in a message
ELLIPSIS = "…"


def shown(value: object, limit: int = LIMIT) -> str:
    """``repr`` of a value, a long string cut: ``'aaaa…' (30,000,000 characters)``."""
    if isinstance(value, str) and len(value) > limit:
        text = repr(value[:limit])
        return f"{text[:-1]}{ELLIPSIS}{text[-1]} ({len(value):,} characters)"
    return clipped(repr(value), limit)


def clipped(text: object, limit: int = LIMIT) -> str:
    """``str(text)`` cut to ``limit`` characters: ``aaaa… (30,000,000 characters)``."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}{ELLIPSIS} ({len(text):,} characters)"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, cut (Polars parse errors quote the bad field)."""
    text = str(exc).strip()
    return clipped(text.splitlines()[0]) if text else type(exc).__name__
