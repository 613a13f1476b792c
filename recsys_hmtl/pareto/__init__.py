"""Building blocks of ``recsys-hmtl pareto``: the preference vectors to sweep, the front's
dominance, hypervolume and reference point, the distance to a dense reference front, the front's
CSV and its plot. Nothing here trains; the command runs one training per preference vector."""

from __future__ import annotations

from .distance import distance_to_front
from .dominance import non_dominated
from .front import FrontRow, mark_dominated, read_front_csv, read_front_tasks, write_front_csv
from .hypervolume import hypervolume, reference_point
from .plot import plot_front
from .preferences import format_preference, lattice_order, parse_preference, preference_points

__all__ = [
    "preference_points", "lattice_order", "format_preference", "parse_preference",
    "non_dominated", "hypervolume", "reference_point", "distance_to_front",
    "FrontRow", "mark_dominated", "write_front_csv", "read_front_csv", "read_front_tasks",
    "plot_front",
]
