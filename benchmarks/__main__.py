"""Run the benchmarks: ``python -m benchmarks [--quick] [name ...]`` (``make bench``: all but the long ones).

A module that sets ``LONG = True`` (a study rather than a speed check: over half an hour on 2 cores)
runs only when named; the others together fit in half an hour on 2 cores. Each prints how long it took.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("names", nargs="*", help="bench_<name> modules to run (default: all but the long ones)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = p.parse_args()
    found = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                   if m.name.startswith("bench_"))
    unknown = [n for n in args.names if n not in found]
    if unknown:
        print(f"unknown benchmark '{unknown[0]}'; available: {', '.join(found)}", file=sys.stderr)
        return 2
    modules = {n: importlib.import_module(f"benchmarks.bench_{n}") for n in args.names or found}
    chosen = args.names or [n for n, m in modules.items() if not getattr(m, "LONG", False)]
    skipped = [n for n in modules if n not in chosen]
    began = time.perf_counter()
    for name in chosen:
        print(f"\n=== bench_{name} ===", flush=True)
        started = time.perf_counter()
        modules[name].main(quick=args.quick)
        print(f"(bench_{name}: {time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\nall: {time.perf_counter() - began:.0f} s" + (f"; long ones not run (name them to run): "
                                                            f"{', '.join(skipped)}" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
