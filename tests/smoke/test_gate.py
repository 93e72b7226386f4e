"""The performance gate end to end: real worker processes, real packages laid out from trees.

torch-ml only (its step is quick to time); the decision's statistics are tested in
tests/unit/test_gate.py and its measured quality is committed in results/gate_quality.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bnnbench.benchmarks.gate import main
from bnnbench.benchmarks.gate_quality import slowed_copy

pytestmark = pytest.mark.smoke

REPO = Path(__file__).resolve().parents[2]
QUICK = ["--backends", "torch-ml", "--blocks", "8", "--compile-blocks", "2"]


def test_an_identical_candidate_passes_and_each_side_runs_its_own_tree(tmp_path: Path):
    out = tmp_path / "aa"
    # a factor no noise reaches: the A/A must pass whatever the machine's load
    sides = ["--baseline-dir", str(REPO), "--candidate-dir", str(REPO)]
    wide = ["--threshold", "9", "--compile-threshold", "9"]
    code = main([*sides, *QUICK, *wide, "--out", str(out), "--format", "json"])
    assert code == 0
    report = json.loads((out / "gate.json").read_text())
    assert report["schema_version"] == 1 and report["exit_code"] == 0
    names = {r["case"]["name"]: r for r in report["results"]}
    assert set(names) == {"train torch-ml", "compile torch-ml"}
    assert names["train torch-ml"]["blocks"] in (8, 16, 24)  # one to three passes
    assert len(names["train torch-ml"]["baseline_s"]) == len(names["train torch-ml"]["candidate_s"])
    assert {f"{REPO} pass1", "candidate pass1"} <= set(report["setup_s"])  # a worker per side


def test_a_candidate_four_times_slower_fails_the_gate(tmp_path: Path, capsys):
    slow = slowed_copy(REPO, tmp_path / "slow", "torch-ml", "run_steps", 4.0)
    code = main(
        ["--baseline-dir", str(REPO), "--candidate-dir", str(slow), *QUICK, "--format", "text"]
    )
    text = capsys.readouterr().out
    assert code == 1, text
    row = next(line for line in text.splitlines() if line.startswith("train torch-ml"))
    assert re.search(r"slower, slower\s+slower$", row.rstrip()), row  # two passes, each slower
    assert "Regression: train torch-ml" in text


def test_a_baseline_that_does_not_build_is_one_line_and_exit_2(tmp_path: Path):
    broken = tmp_path / "broken"
    slowed_copy(REPO, broken, "torch-ml", "run_steps", 1.0)
    (broken / "bnnbench" / "__init__.py").write_text("this is not python\n")
    sides = ["--baseline-dir", str(broken), "--candidate-dir", str(REPO)]
    done = subprocess.run(
        [sys.executable, "-P", "-m", "bnnbench.benchmarks.gate", *sides, *QUICK],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("gate: cannot measure")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "worker ended" in lines[0]
