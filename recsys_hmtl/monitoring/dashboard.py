"""The PromQL queries of a Grafana dashboard (classic JSON model), with template variables filled in.

Panels nested in rows (collapsed or not) are included; hidden targets are not. Query variables
(``label_values(metric, label)`` or ``query_result(expr)``) are checked too, as ``variable NAME``.
Dashboard variables become the value given, else ``.*`` (the dashboards use ``=~"$var"``); Grafana's
built-in intervals (``$__rate_interval``, ...) become fixed durations.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..errors import InputError

_VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\[\[(\w+)(?::[\w]+)?\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\((.*)\)\s*$", re.S)


def builtins(rate_interval: str = "5m", range_: str = "1h") -> dict[str, str]:
    """Grafana's built-in variables as fixed values."""
    return {
        "__rate_interval": rate_interval, "__interval": rate_interval, "__range": range_,
        "__interval_ms": "60000", "__range_s": "3600", "__range_ms": "3600000",
    }


def substitute(expr: str, values: Mapping[str, str] | None = None, default: str = ".*") -> str:
    """Replace ``$var``, ``${var}``, ``${var:fmt}`` and ``[[var]]`` by ``values[var]`` or ``default``."""
    values = dict(values or {})

    def repl(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return values.get(name, default)

    return _VARIABLE.sub(repl, expr)


def load(path: str | Path) -> dict[str, Any]:
    """The dashboard JSON; a missing or malformed file is an :class:`InputError`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the dashboard: {exc.strerror or exc}", file=str(path)) from exc
    except ValueError as exc:
        raise InputError(f"not valid JSON: {exc}", file=str(path)) from exc
    if not isinstance(data, dict):
        raise InputError("a Grafana dashboard is a JSON object", file=str(path))
    return data["dashboard"] if isinstance(data.get("dashboard"), dict) else data  # API export shape


def _panels(panels: list[Any]) -> Iterator[dict[str, Any]]:
    for panel in panels or []:
        if isinstance(panel, dict):
            yield panel
            yield from _panels(panel.get("panels") or [])


def raw_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(title, expr)`` for every visible panel target and every query variable, unsubstituted."""
    out: list[tuple[str, str]] = []
    for panel in _panels(dashboard.get("panels") or []):
        for target in panel.get("targets") or []:
            expr = target.get("expr") if isinstance(target, dict) else None
            if expr and not target.get("hide"):
                out.append((str(panel.get("title", "")), str(expr)))
    for var in (dashboard.get("templating") or {}).get("list") or []:
        if not isinstance(var, dict) or var.get("type") != "query":
            continue
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if not isinstance(query, str):
            continue
        match = _LABEL_VALUES.match(query) or _QUERY_RESULT.match(query)
        if match:
            out.append((f"variable {var.get('name', '')}", match.group(1).strip()))
    return out


def queries(
    dashboard: Mapping[str, Any],
    variables: Mapping[str, str] | None = None,
    rate_interval: str = "5m",
) -> list[tuple[str, str]]:
    """``(title, expr)`` with every template variable substituted, ready for Prometheus."""
    values = {**builtins(rate_interval), **dict(variables or {})}
    return [(title, substitute(expr, values)) for title, expr in raw_queries(dashboard)]
