"""``benchmarks/tune.py`` times every knob value in a cell of its own and names the fastest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bnnbench.benchmarks.tune import MIN_GAIN, main

pytestmark = pytest.mark.smoke


def test_tune_times_every_numpyro_candidate_and_names_a_winner_per_knob(tmp_path: Path):
    out = tmp_path / "tuning"
    argv = ["--models", "moons_2x5", "--backends", "numpyro", "--steps", "40"]
    assert main([*argv, "--trace-every", "10", "--draws", "2", "--out", str(out)]) == 0
    table = pd.read_csv(out / "candidates.csv")
    assert sorted(zip(table["loop"], table["predictive"], strict=True)) == [
        ("host", "draws"),
        ("host", "map"),
        ("scan", "draws"),
        ("scan", "map"),
    ]
    assert (table["status"] == "ok").all()
    assert table["step_ms"].gt(0).all() and table["predict_ms_per_draw"].gt(0).all()
    # Every path forced by its environment variable, and named in the record.
    for row in table.itertuples():
        assert f"loop={row.loop}, predictive={row.predictive}" in row.execution_path
    # Same algorithm on every path: the answers agree (same seed, same steps).
    assert table["final_neg_elbo_per_datum"].max() - table["final_neg_elbo_per_datum"].min() < 1e-3
    best = pd.read_csv(out / "winners.csv").set_index("knob")
    assert set(best.index) == {"loop", "predictive"}
    assert best.loc["loop", "figure"] == "step_ms"
    assert best.loc["predictive", "figure"] == "predict_ms_per_draw"
    loop_ms = table.groupby("loop")["step_ms"].median()
    assert best.loc["loop", "fastest"] == loop_ms.idxmin()
    gain = loop_ms["scan"] / loop_ms.min()
    assert best.loc["loop", "best"] == (loop_ms.idxmin() if gain >= MIN_GAIN else "scan")
    assert best.loc["loop", "speedup"] == pytest.approx(
        loop_ms["scan"] / loop_ms[best.loc["loop", "best"]]
    )
