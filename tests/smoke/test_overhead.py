"""The harness-overhead benchmark runs end to end; its exit status follows the limit.

Whether the harness stays within 3 % of the bare loops is a benchmark result
(``python -m bnnbench.benchmarks.overhead``), never asserted here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnnbench.benchmarks import overhead

pytestmark = pytest.mark.smoke

BACKENDS = ["pymc", "pyro", "numpyro"]


def test_overhead_tool_runs_every_backend_and_writes_the_csv(tmp_path: Path):
    out = tmp_path / "overhead.csv"
    argv = [
        "--models",
        "moons_2x5",
        "--backends",
        *BACKENDS,
        "--steps",
        "20",
        "--trace-every",
        "10",
        "--repeats",
        "1",
        "--max-overhead-pct",
        "inf",  # no threshold: timings of 20 steps say nothing about overhead
        "--out",
        str(out),
    ]
    assert overhead.main(argv) == 0  # 2 would mean a failed measurement
    table = pd.read_csv(out)
    assert list(table.columns) == list(overhead.COLUMNS)
    assert sorted(table["backend"]) == sorted(BACKENDS)
    assert (table["status"] == "ok").all(), table[["backend", "error"]]
    assert (table["model"] == "moons_2x5").all()
    assert (table["steps"] == 20).all() and (table["repeats"] == 1).all()
    for col in ("harness_step_ms", "bare_step_ms"):
        values = table[col].to_numpy(float)
        assert np.isfinite(values).all() and (values > 0).all(), col
    np.testing.assert_allclose(
        table["overhead_pct"], 100 * (table["harness_step_ms"] / table["bare_step_ms"] - 1)
    )
    assert table["host"].notna().all() and table["backend_version"].notna().all()
    assert table["harness_execution_path"].str.len().gt(0).all()
    assert table["bare_execution_path"].str.len().gt(0).all()


def _fake_measurement(harness_ms: float, bare_ms: float):
    def measure(model, backend, steps, trace_every, repeats, **_) -> dict[str, object]:
        return {
            "model": model,
            "backend": backend,
            "steps": steps,
            "trace_every": trace_every,
            "repeats": repeats,
            "harness_step_ms": harness_ms,
            "bare_step_ms": bare_ms,
            "overhead_pct": 100 * (harness_ms / bare_ms - 1),
            "harness_step_ms_repeats": [harness_ms] * repeats,
            "bare_step_ms_repeats": [bare_ms] * repeats,
        }

    return measure


@pytest.mark.parametrize(
    ("harness_ms", "limit_pct", "code"),
    [(1.10, 3.0, 1), (1.02, 3.0, 0), (1.10, 20.0, 0), (0.95, 3.0, 0)],
)
def test_exit_status_is_1_when_an_overhead_exceeds_the_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, harness_ms: float, limit_pct: float, code: int
):
    monkeypatch.setattr(overhead, "measure_isolated", _fake_measurement(harness_ms, 1.0))
    out = tmp_path / "o.csv"
    argv = ["--backends", *BACKENDS, "--repeats", "2", "--out", str(out)]
    argv += ["--max-overhead-pct", str(limit_pct)]
    assert overhead.main(argv) == code
    table = pd.read_csv(out)
    assert len(table) == 3 and (table["within_limit"] == (code == 0)).all()


def test_exit_status_is_2_when_a_measurement_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    def fail(*_, **__) -> dict[str, object]:
        raise RuntimeError("exit status 1: boom")

    monkeypatch.setattr(overhead, "measure_isolated", fail)
    out = tmp_path / "o.csv"
    assert overhead.main(["--backends", "pyro", "--out", str(out)]) == 2
    table = pd.read_csv(out)
    assert table.loc[0, "status"] == "failed" and "boom" in table.loc[0, "error"]
