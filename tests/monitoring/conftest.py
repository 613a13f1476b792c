"""Fixtures: real Prometheus/Pushgateway servers (``servers``) and a trainer they scrape (``fed``).

``servers`` is session-scoped and skips, with the reason, when the binaries are missing (install
them with ``tests/setup_servers.sh`` as root). Any test can scrape its own process with
``servers.add_target("127.0.0.1:PORT")`` (job ``recsys_hmtl_trainer``) and query with
``servers.query`` / ``servers.wait_for``; pushes go to ``servers.pushgateway_url``. Once a scraped
process exits its series go stale at the next scrape: query ``last_over_time(...[5m])`` afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from promstack import Stack, missing_binaries, start_stack  # noqa: E402
from feeding import FedRun, start_fed_run  # noqa: E402


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: run tests/setup_servers.sh as root "
                    "(Debian packages prometheus, prometheus-pushgateway)")
    stack = start_stack(tmp_path_factory.mktemp("promstack"))
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def fed(servers: Stack) -> Iterator[FedRun]:
    """A TrainingMetrics served on a free port, scraped by ``servers``, stepping every 0.2 s, with
    its training run and evaluation pushed: every dashboard panel has data once it is up."""
    run = start_fed_run(servers)
    yield run
    run.stop()
