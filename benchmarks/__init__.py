"""Benchmarks (`make bench`): each ``bench_*.py`` module has ``main(quick: bool = False)`` and
prints ratios measured side by side in one run. Run them on a quiet machine."""
