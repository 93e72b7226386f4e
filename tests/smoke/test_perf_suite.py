"""Smoke run of the pytest-benchmark performance suite (benchmarks/perf).

The suite runs in its own pytest process as ``tox -e perf`` runs it; here its moons and compile
benchmarks of the two backends quickest to compile (every backend's session is exercised by the
contract tests), with pytest-benchmark's own saving and comparing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.smoke

SUITE = Path(__file__).resolve().parents[2] / "benchmarks" / "perf"
PINNED = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _pytest(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-P", "-m", "pytest", str(SUITE), "-q", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
        env={**os.environ, **PINNED},
    )


def test_perf_suite_times_every_backend_and_compares_with_a_saved_run(tmp_path: Path):
    storage = tmp_path / "perf"
    first = _pytest(
        "-k",
        "(moons_2x5 or test_compile) and (pymc or torch-ml)",
        f"--benchmark-storage={storage}",
        "--benchmark-autosave",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    saved = list(storage.rglob("0001_*.json"))
    assert len(saved) == 1, list(storage.rglob("*"))
    runs = json.loads(saved[0].read_text())["benchmarks"]
    names = {b["name"] for b in runs}
    for backend in ("pymc", "torch-ml"):
        assert f"test_train[moons_2x5-{backend}]" in names
        assert f"test_predictive[moons_2x5-{backend}]" in names
        assert f"test_compile[{backend}]" in names
    for bench in runs:
        assert bench["stats"]["rounds"] >= 3 and 0 < bench["stats"]["min"] <= bench["stats"]["max"]
        assert {"steps_per_call", "draws_per_call", "kind"} & set(bench["extra_info"]), bench[
            "name"
        ]

    # pytest-benchmark's own comparison against the saved run works on this suite's saves
    again = _pytest(
        "-k",
        "test_train and moons_2x5-torch-ml",
        f"--benchmark-storage={storage}",
        "--benchmark-compare=0001",
        "--benchmark-compare-fail=median:1000%",
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "0001" in again.stdout
