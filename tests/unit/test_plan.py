"""``bnnbench plan``: durations from stored records, LPT makespan, GPU-hours, and its CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from bnnbench.cli import main
from bnnbench.config import CellConfig
from bnnbench.plan import estimate_cells, plan, schedule

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "results" / "default"


def _record(backend="pymc", device="cpu", profile="matched", batch=50, **extra):
    row = dict(
        model="moons_2x5",
        backend=backend,
        profile=profile,
        device=device,
        batch_size=batch,
        status="ok",
        step_ms=2.0,
        compile_s=3.0,
        fit_s=10.0,
        predict_s=1.0,
        predict_ms_per_draw=4.0,
        cell_wall_s=20.0,
    )
    row.update(extra)
    return row


def _cell(backend="pymc", device="cpu", profile="matched", steps=1000, draws=100, batch=50):
    return CellConfig.from_defaults(
        "moons_2x5",
        backend,
        profile,
        device,
        0,
        steps=steps,
        predict_draws=draws,
        batch_size=batch,
    )


def test_a_measured_cell_is_overhead_compile_steps_and_draws():
    runs = pd.DataFrame([_record()])
    (est,) = estimate_cells([_cell(steps=1000, draws=100)], runs)
    # overhead 20 - 3 - 10 - 1 = 6 s; compile 3 s; 1000 x 2 ms; 100 x 4 ms
    assert est.basis == "measured" and est.records == 1
    assert est.seconds == pytest.approx(6 + 3 + 2 + 0.4)


def test_the_basis_says_what_was_extrapolated():
    runs = pd.DataFrame([_record(profile="tuned"), _record(backend="pyro", batch=25, step_ms=1.0)])
    other_profile, scaled, gpu, nothing = estimate_cells(
        [_cell(), _cell("pyro", batch=50), _cell("pyro", device="gpu"), _cell("numpyro")], runs
    )
    assert other_profile.basis == "other profile"
    assert scaled.basis == "scaled batch"  # 1 ms at batch 25 -> 2 ms at batch 50
    assert scaled.seconds == pytest.approx(6 + 3 + 1000 * 2.0 / 1000 + 0.4)
    assert gpu.basis == "CPU figure for GPU" and gpu.gpu_fraction == 1.0
    assert nothing.basis == "no figure" and math.isnan(nothing.seconds)


def test_failed_records_time_nothing():
    runs = pd.DataFrame([_record(status="failed")])
    (est,) = estimate_cells([_cell()], runs)
    assert est.basis == "no figure"


def test_longest_job_first():
    assert schedule([3, 3, 2, 2, 2], 2) == 7  # LPT: 3+2+2 and 3+2 (the optimum is 6)
    assert schedule([5, 1, 1], 8) == 5
    assert schedule([1.0] * 10, 1) == 10
    assert schedule([], 4) == 0.0


def test_plan_from_the_committed_results_pools_gpus_and_cpus():
    cells = [_cell("numpyro", device="gpu"), _cell("pymc"), _cell("pyro")]
    one = plan("t", cells, [DEFAULT], gpus=1, cpus=2, cpus_per_cell=2)
    assert [c.basis for c in one.cells] == ["CPU figure for GPU", "measured", "measured"]
    cpu_total = sum(c.seconds for c in one.cells if c.device == "cpu")
    assert one.makespan_s == pytest.approx(max(one.cells[0].seconds, cpu_total))
    assert one.gpu_hours == pytest.approx(one.cells[0].seconds / 3600)
    assert any("CPU figures" in n for n in one.notes)
    wide = plan("t", cells, [DEFAULT], gpus=1, cpus=4, cpus_per_cell=2)  # two CPU slots
    cpu_longest = max(c.seconds for c in one.cells if c.device == "cpu")
    assert wide.makespan_s == pytest.approx(max(one.cells[0].seconds, cpu_longest))


def test_cli_plan_prints_the_table_and_json(capsys: pytest.CaptureFixture[str]):
    argv = ["plan", "--suite", "smoke", "--gpus", "2", "--results", str(DEFAULT)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "makespan" in out and "measured" in out and "GPU-hours" in out
    assert main([*argv, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == 1 and doc["by_basis"]["measured"] == len(doc["cells"]) == 4


def test_cli_plan_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    with pytest.raises(SystemExit) as err:
        main(["plan", "--suite", "smoke", "--results", str(tmp_path)])
    assert err.value.code == 2
    message = capsys.readouterr().err.strip()
    assert "holds no runs.csv" in message and len(message.splitlines()) == 1
    with pytest.raises(SystemExit) as err:
        main(["plan", "--suite", "nightly", "--results", str(DEFAULT)])
    assert err.value.code == 2
