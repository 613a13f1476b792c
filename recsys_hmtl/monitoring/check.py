"""``recsys-hmtl metrics-check``: which of the Grafana dashboard's queries return data right now.

Every panel query (and every query variable) is run as an instant query against Prometheus'
HTTP API. Exit 0 when all return data, 1 when some do not (they are listed), 2 when the dashboard
is unreadable or one of its queries does not parse (an :class:`~recsys_hmtl.errors.InputError`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import InputError
from . import dashboard as dash
from .prometheus_api import QueryError, has_data, query

#: The dashboard shipped in the repository's deploy/ folder (present in a source checkout).
DEFAULT_DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "recsys_hmtl.json"


def metrics_check(
    prometheus_url: str,
    dashboard_path: str | Path = DEFAULT_DASHBOARD,
    variables: Mapping[str, str] | None = None,
    rate_interval: str = "5m",
    timeout: float = 10.0,
) -> list[tuple[str, str, bool]]:
    """``(panel title, expr, has_data)`` for every dashboard query, variables substituted.

    ``has_data``: the instant query returned at least one finite sample (all-NaN counts as empty).

    ``variables`` gives dashboard variable values (regexes, as the dashboard matches with ``=~``);
    the others become ``.*``. A query Prometheus cannot parse raises :class:`InputError` naming the
    panel; an unreachable Prometheus raises ``PrometheusUnavailable``.
    """
    board = dash.load(dashboard_path)
    results = []
    for title, expr in dash.queries(board, variables, rate_interval=rate_interval):
        try:
            data = query(prometheus_url, expr, timeout=timeout)
        except QueryError as exc:
            raise InputError(f"panel '{title}': Prometheus rejects the query: {exc.message}",
                             file=str(dashboard_path), hint=f"query: {expr}") from exc
        results.append((title, expr, has_data(data)))
    return results


def _variable(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``metrics-check`` options to ``parser`` (a sub-command parser of the CLI)."""
    parser.add_argument("--prometheus", required=True, metavar="URL",
                        help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--dashboard", default=str(DEFAULT_DASHBOARD), metavar="FILE",
                        help="Grafana dashboard JSON (default: deploy/grafana/recsys_hmtl.json)")
    parser.add_argument("--var", dest="variables", action="append", default=[], type=_variable,
                        metavar="NAME=VALUE", help="a dashboard variable's value (default .*); repeatable")
    parser.add_argument("--rate-interval", default="5m", metavar="DURATION",
                        help="what $__rate_interval and $__interval become (default 5m)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="per-query HTTP timeout")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the check for parsed ``args``; print one line per query; 0 if all have data, else 1."""
    results = metrics_check(args.prometheus, args.dashboard, dict(args.variables),
                            rate_interval=args.rate_interval, timeout=args.timeout)
    empty = [(title, expr) for title, expr, ok in results if not ok]
    for title, expr, ok in results:
        print(f"{'ok     ' if ok else 'NO DATA'}  {title}: {expr}")
    if empty:
        print(f"metrics-check: {len(empty)} of {len(results)} dashboard queries return no data: "
              + "; ".join(f"'{title}'" for title, _ in empty), file=sys.stderr)
        return 1
    print(f"metrics-check: all {len(results)} dashboard queries return data", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m recsys_hmtl.monitoring.check``); same exit codes as the CLI."""
    parser = argparse.ArgumentParser(prog="recsys-hmtl metrics-check",
                                     description="Which of the Grafana dashboard's queries return data now.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except InputError as exc:
        print(f"recsys-hmtl metrics-check: error: {exc}", file=sys.stderr)
        return InputError.exit_code
    except Exception as exc:  # one paragraph for scheduled jobs, not a traceback
        print(f"recsys-hmtl metrics-check: failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
