"""Run every benchmark: ``python -m benchmarks [--quick] [name ...]``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("names", nargs="*", help="bench_<name> modules to run (default: all)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = p.parse_args()
    found = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                   if m.name.startswith("bench_"))
    for name in args.names or found:
        if name not in found:
            print(f"unknown benchmark '{name}'; available: {', '.join(found)}", file=sys.stderr)
            return 2
        print(f"\n=== bench_{name} ===", flush=True)
        importlib.import_module(f"benchmarks.bench_{name}").main(quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
