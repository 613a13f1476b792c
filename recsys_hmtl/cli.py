"""Command line: argument parsing only; every command calls the layers below (SPEC §5b).

Exit codes: 0 success, 2 bad input or configuration (one paragraph on stderr), 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from typing import Callable, Sequence

from .errors import InputError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def deco(fn: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = fn
        return fn

    return deco


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recsys-hmtl", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo-data", help="write a KuaiRand-1K-format sample with a planted funnel")
    d.add_argument("--out", required=True, help="folder; files go to OUT/data/")
    d.add_argument("--rows", type=int, default=None, help="interactions (default: trains in ~1 min)")
    d.add_argument("--seed", type=int, default=0)

    v = sub.add_parser("validate", help="check the inputs a config points at and print a summary")
    v.add_argument("--config", required=True)
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return p


@command("demo-data")
def _demo_data(args: argparse.Namespace) -> int:
    from .data.demo import write_demo_data

    report = write_demo_data(args.out, rows=args.rows, seed=args.seed)
    print(report, file=sys.stderr)
    return 0


@command("validate")
def _validate(args: argparse.Namespace) -> int:
    from .config import load_config
    from .data.validate import validate

    cfg = load_config(args.config, args.overrides)
    print(validate(cfg))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"recsys-hmtl {args.command}: error: {exc}", file=sys.stderr)
        return InputError.exit_code
    except KeyboardInterrupt:
        print(f"recsys-hmtl {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one paragraph, not a traceback, for scheduled jobs
        if args.debug:
            traceback.print_exc()
        print(f"recsys-hmtl {args.command}: failed: {type(exc).__name__}: {exc} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
