"""Fixtures of the pytest-benchmark performance suite (``tox -e perf``).

Every benchmark runs in this one process, so the environment a cell process gets
(:func:`bnnbench.harness.cell_environment`: float32 for pytensor, JAX on the CPU unless the GPU
is asked for, no JAX preallocation) is applied here before any backend library is imported.
Threads are pinned by ``tox -e perf`` (one BLAS/OpenMP/XLA/torch thread), so that a run measures
the code and not the scheduler of a shared machine.

Settings: ``BNNBENCH_PERF_DEVICE`` (``cpu``, the default, or ``gpu``).
"""

from __future__ import annotations

import os

from bnnbench.config import CellConfig
from bnnbench.harness import cell_environment

DEVICE = os.environ.get("BNNBENCH_PERF_DEVICE", "cpu")
os.environ.update(
    cell_environment(CellConfig.from_defaults("moons_2x5", "pymc", "matched", DEVICE, 0))
)
