"""The training fit keeps its freed temporaries in the heap (training/heap.py): a step's large
allocations reuse memory instead of page-faulting fresh pages; released, the memory goes back.

Run in a fresh interpreter: what glibc does with a block depends on the heap's history."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from recsys_hmtl.training import heap

pytestmark = pytest.mark.skipif(heap._glibc() is None, reason="mallopt/malloc_trim are glibc's")

MIB, BLOCKS, STEPS = 40, 3, 5  # a step holds 3 blocks of 40 MiB (batch 8192 x 1280 hidden units)

SCRIPT = f"""
import json, os, resource, torch
from recsys_hmtl.training import heap

def faults_of_steps():
    def step():
        held = [torch.ones({MIB} << 18) for _ in range({BLOCKS})]
        sum(float(t[-1]) for t in held)
    for _ in range(2 * {STEPS}):  # a loop's first steps, while the heap grows to fit the pattern
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range({STEPS}):
        step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

before = faults_of_steps()
heap.retain_freed_memory()
retained = faults_of_steps()
kept = resident()
heap.release_freed_memory()
print(json.dumps({{"before": before, "retained": retained, "returned": kept - resident()}}))
"""


def test_freed_blocks_are_reused_while_retained_and_returned_after():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    step_pages = BLOCKS * (MIB << 20) // resource.getpagesize()
    assert seen["before"] >= (STEPS - 1) * step_pages  # glibc's defaults: every step maps its blocks anew
    assert seen["retained"] < step_pages               # retained: served from freed blocks (at most a
                                                       # block or two of heap growth in all the steps)
    assert seen["returned"] >= BLOCKS * (MIB << 20) * 0.9  # released: the freed blocks leave the process
