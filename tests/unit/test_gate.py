"""The performance gate's parts: package layout, baseline revision, and the decision rule."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from bnnbench.benchmarks.gate import (
    Case,
    CaseResult,
    GateError,
    GateReport,
    _block_log_ratios,
    baseline_revision,
    cases,
    export_revision,
    final_verdict,
    judge,
    lay_out_package,
    render,
)
from bnnbench.benchmarks.gate_quality import slowed_copy, summarise

REPO = Path(__file__).resolve().parents[2]


def _tree(root: Path) -> Path:
    (root / "bnnbench").mkdir(parents=True)
    (root / "bnnbench" / "__init__.py").write_text("")
    (root / "models" / "m1").mkdir(parents=True)
    (root / "models" / "__init__.py").write_text("")
    (root / "models" / "m1" / "spec.py").write_text("X = 1\n")
    (root / "pyproject.toml").write_text(
        '[tool.setuptools]\npackage-dir = { "bnnbench" = "bnnbench", '
        '"bnnbench.models" = "models" }\n'
    )
    return root


def test_the_package_is_laid_out_as_an_install_maps_it(tmp_path: Path):
    site = lay_out_package(_tree(tmp_path / "src"), tmp_path / "site")
    assert (site / "bnnbench" / "__init__.py").is_file()
    assert (site / "bnnbench" / "models" / "m1" / "spec.py").read_text() == "X = 1\n"


def test_the_real_checkout_lays_out_every_package_dir(tmp_path: Path):
    site = lay_out_package(REPO, tmp_path / "site")
    for sub in ("models", "datasets", "benchmarks", "backends", "templates"):
        assert (site / "bnnbench" / sub).is_dir(), sub
    assert (site / "bnnbench" / "benchmarks" / "gate_worker.py").is_file()


def test_a_tree_without_a_package_is_an_error(tmp_path: Path):
    (tmp_path / "src").mkdir()
    with pytest.raises(GateError, match=r"no pyproject\.toml"):
        lay_out_package(tmp_path / "src", tmp_path / "site")
    (tmp_path / "src" / "pyproject.toml").write_text(
        '[tool.setuptools]\npackage-dir = { "bnnbench" = "gone" }\n'
    )
    with pytest.raises(GateError, match="missing"):
        lay_out_package(tmp_path / "src", tmp_path / "site")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_the_baseline_is_the_flag_then_the_marker_then_the_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("BNNBENCH_GATE_BASELINE", raising=False)
    repo = _tree(tmp_path / "repo")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    first = _git(repo, "rev-parse", "HEAD")
    (repo / "bnnbench" / "x.py").write_text("")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "two")
    second = _git(repo, "rev-parse", "HEAD")
    (repo / "bnnbench" / "y.py").write_text("")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "three")
    assert baseline_revision(repo, None) == second  # HEAD~1
    (repo / ".ci").mkdir()
    (repo / ".ci" / "gate-baseline").write_text(f"# the last landed revision\n{first[:9]}\n")
    assert baseline_revision(repo, None) == first
    monkeypatch.setenv("BNNBENCH_GATE_BASELINE", second)
    assert baseline_revision(repo, None) == second
    assert baseline_revision(repo, first) == first
    with pytest.raises(GateError, match="rev-parse"):
        baseline_revision(repo, "no-such-revision")
    tree = export_revision(repo, first, tmp_path / "exported")
    assert (tree / "bnnbench" / "__init__.py").is_file() and not (
        tree / "bnnbench" / "x.py"
    ).exists()


def _result(kind: str, a: list[float], b: list[float], t: float = 0.1) -> CaseResult:
    r = CaseResult(Case(f"{kind} x", kind, "x"), list(a), list(b))  # type: ignore[arg-type]
    r.blocks = len(a) // 2
    return judge(r, t, 0.01)


def test_block_ratios_pair_each_abba_block():
    logs = _block_log_ratios([1.0, 1.0, 2.0, 2.0], [1.5, 1.5, 2.0, 2.0])
    assert np.allclose(logs, [np.log(1.5), 0.0])


def test_a_clear_step_slowdown_is_slower_and_noise_is_not():
    rng = np.random.default_rng(0)
    base = list(1.0 + 0.01 * rng.standard_normal(32))
    slow = [x * 1.3 for x in base]
    assert _result("train", base, slow).verdict == "slower"
    same = list(1.0 + 0.01 * rng.standard_normal(32))
    assert _result("train", base, same).verdict == "unchanged"
    faster = [x / 1.5 for x in base]
    assert _result("train", base, faster).verdict == "faster"


def test_a_small_real_slowdown_under_the_threshold_does_not_fail():
    rng = np.random.default_rng(1)
    base = list(1.0 + 0.005 * rng.standard_normal(32))
    assert _result("train", base, [x * 1.05 for x in base]).verdict != "slower"


def test_too_few_blocks_cannot_fail_the_gate():
    """Two blocks: Wilcoxon cannot reach p < 0.01, so even 2x is inconclusive, not slower."""
    r = _result("train", [1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0])
    assert r.verdict == "inconclusive" and r.p_value >= 0.01


def test_compile_uses_its_own_wider_threshold():
    rng = np.random.default_rng(2)
    base = list(1.0 + 0.02 * rng.standard_normal(6))
    assert _result("compile", base, [x * 1.3 for x in base], t=0.5).verdict != "slower"
    assert _result("compile", base, [x * 2.0 for x in base], t=0.5).verdict == "slower"


def test_the_report_renders_and_its_exit_code_follows_the_verdicts():
    rng = np.random.default_rng(3)
    base = list(1.0 + 0.01 * rng.standard_normal(32))
    results = [_result("train", base, [x * 1.3 for x in base]), _result("train", base, base)]
    report = GateReport("abc", "candidate", {"step": 0.1, "compile": 0.5}, 0.01, results, {}, 1.0)
    assert report.exit_code == 1
    text = render(report, "markdown")
    assert "| train x | ms/step |" in text and "**Regression**: train x" in text
    assert '"exit_code": 1' in render(report, "json")
    report.results = results[1:]
    assert report.exit_code == 0 and "No significant regression" in render(report, "text")


def test_the_gate_covers_every_installed_backend_step_and_compile():
    names = {c.name for c in cases()}
    assert {"train pymc", "compile pymc", "train numpyro", "compile torch-ml"} <= names


def test_a_slowed_copy_changes_only_the_copy(tmp_path: Path):
    copy = slowed_copy(REPO, tmp_path / "copy", "torch-ml", "run_steps", 1.3)
    module = copy / "bnnbench" / "backends" / "torch_ml_backend.py"
    assert "TrainingSession.run_steps = _gq_slowed" in module.read_text()
    assert "_gq_slowed" not in (REPO / "bnnbench" / "backends" / "torch_ml_backend.py").read_text()
    compile(module.read_text(), str(module), "exec")  # still valid Python
    assert not (copy / "results").exists()


def test_the_quality_summary_counts_false_alarms_and_detections():
    import pandas as pd

    rows = [
        dict(
            scenario="aa",
            run=0,
            case="train a",
            slowed=False,
            ratio=1.0,
            verdict="unchanged",
            gate_exit=0,
            wall_s=1.0,
        ),
        dict(
            scenario="aa",
            run=1,
            case="train a",
            slowed=False,
            ratio=1.2,
            verdict="slower",
            gate_exit=1,
            wall_s=1.0,
        ),
        dict(
            scenario="step_2",
            run=0,
            case="train a",
            slowed=True,
            ratio=2.0,
            verdict="slower",
            gate_exit=1,
            wall_s=1.0,
        ),
        dict(
            scenario="step_2",
            run=1,
            case="train a",
            slowed=True,
            ratio=1.1,
            verdict="inconclusive",
            gate_exit=0,
            wall_s=1.0,
        ),
    ]
    table = summarise(pd.DataFrame(rows)).set_index("scenario")
    assert table.loc["aa", "false_alarm_runs"] == 1 and table.loc["aa", "runs"] == 2
    assert table.loc["step_2", "detected"] == 1 and table.loc["step_2", "false_alarm_runs"] == 0


def test_slower_needs_two_passes_with_fresh_processes():
    assert final_verdict("slower", ["slower", "slower"]) == "slower"
    assert final_verdict("slower", ["slower"]) == "inconclusive"  # one process pair alone
    assert final_verdict("slower", ["slower", "inconclusive", "unchanged"]) == "inconclusive"
    assert final_verdict("inconclusive", ["slower", "inconclusive", "slower"]) == "slower"
    assert final_verdict("unchanged", ["inconclusive", "unchanged"]) == "unchanged"
    assert final_verdict("faster", ["faster"]) == "faster"
