"""Tiny end-to-end runs: real libraries, one process per cell, through the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bnnbench.cli import main
from bnnbench.harness import load_suite, plan_suite, suite_names
from bnnbench.record import SCHEMA_VERSION, RunRecord, tta_key
from bnnbench.results import ResultStore

pytestmark = pytest.mark.smoke


def test_smoke_suite_runs_every_backend(smoke_results: Path):
    runs = ResultStore(smoke_results).runs()
    assert sorted(runs["backend"]) == ["numpyro", "pymc", "pyro", "torch-ml"]
    assert (runs["status"] == "ok").all(), runs[["run_id", "error"]]
    assert {f for f, _ in RunRecord.describe() if f not in ("ood", "tta")} <= set(runs.columns)
    assert (runs["schema_version"] == SCHEMA_VERSION).all()
    for col in ("compile_s", "fit_s", "step_ms", "predict_s", "peak_rss_mb", "accuracy", "nll"):
        assert (runs[col] > 0).all(), col
    assert (runs["dtype"] == "float32").all()  # matched profile
    assert runs["execution_path"].str.len().gt(0).all()
    traces = ResultStore(smoke_results).traces()
    for _run_id, trace in traces.groupby("run_id"):
        assert trace["step"].tolist() == [10, 20, 30, 40]
        assert trace["wall_s"].is_monotonic_increasing


def test_every_cell_has_a_learning_curve_and_its_time_to_accuracy(smoke_results: Path):
    from bnnbench.spec import get_spec

    runs = ResultStore(smoke_results).runs()
    traces = ResultStore(smoke_results).traces()
    assert (runs["curve_points"] == 4).all()  # checkpoints after chunks 1, 2, 3 and 4
    assert (runs["curve_eval_s"] > 0).all()
    for run_id, trace in traces.groupby("run_id"):
        curve = trace.dropna(subset=["curve_accuracy"])
        assert curve["step"].tolist() == [10, 20, 30, 40], run_id
        assert curve["curve_accuracy"].between(0, 1).all() and (curve["curve_nll"] > 0).all()
        assert (curve["curve_eval_s"] > 0).all()
        row = runs.set_index("run_id").loc[run_id]
        assert row["curve_eval_s"] == pytest.approx(curve["curve_eval_s"].sum())
        for target in get_spec("moons_2x5").accuracy_targets:
            key = f"tta_{tta_key(target)}_"
            reached = (curve["curve_accuracy"] >= target).any()
            assert row[key + "status"] == ("reached" if reached else "not reached")
            if reached:
                first = curve[curve["curve_accuracy"] >= target].iloc[0]
                assert row[key + "steps"] == first["step"]
                assert 0 < row[key + "train_s"] <= row["fit_s"]


def test_runs_store_inference_data_with_provenance(smoke_results: Path):
    for run_id in ResultStore(smoke_results).runs()["run_id"]:
        run_dir = smoke_results / run_id
        files = {p.name for p in run_dir.iterdir()}
        assert {"config.json", "env.json", "inference_data.nc", "predictive_summary.nc"} <= files
        libraries = json.loads((run_dir / "env.json").read_text())["backend_libraries"]
        assert all(libraries.values()), libraries
        if "-pymc-" in run_id:  # pytensor's BLAS is part of PyMC's provenance
            assert libraries["pytensor_blas"].startswith("scipy-openblas32")
        point_estimate = "-torch-ml-" in run_id  # the baseline has one "draw" and no posterior
        draws = 1 if point_estimate else 30
        with xr.open_datatree(run_dir / "inference_data.nc") as tree:
            groups = {"posterior", "predictions", "log_likelihood", "observed_data"}
            assert groups | {"variational", "sample_stats"} <= set(tree.children)
            if point_estimate:
                assert not tree["posterior"].data_vars and not tree["variational"].data_vars
            else:  # one canonical layout: (chain=1, draw, named dims with coordinates)
                w = tree["posterior"]["w_in_1"]
                assert w.dims == ("chain", "draw", "feature", "unit_1")
                assert w.shape == (1, 30, 2, 5)
                assert tree["variational"]["w_in_1_scale"].dims == ("feature", "unit_1")
            assert tree["predictions"]["p"].shape == (1, draws, 500)
            for group in ("predictions", "log_likelihood", "observed_data"):
                assert "obs_id" in tree[group].dims, group
            assert tree["sample_stats"]["neg_elbo_per_datum"].shape == (4,)
        with xr.open_datatree(run_dir / "predictive_summary.nc") as summary:
            assert summary["grid"]["p_sd"].shape == (100, 100)
            assert (summary["test"]["votes"].sum("class") == draws).all()


def test_runs_record_uncertainty_diagnostics_and_roofline(smoke_results: Path):
    runs = ResultStore(smoke_results).runs().set_index("backend")
    for col in ("chi2_auroc", "entropy_auroc", "refusal_rate", "accepted_accuracy", "ece_15"):
        assert runs[col].between(0, 1).all(), col
    assert (runs["brier"] > 0).all()
    bayesian = runs.drop(index="torch-ml")
    assert np.isfinite(bayesian["pareto_k"]).all() and (bayesian["pareto_draws"] == 30).all()
    assert bayesian["mi_auroc"].between(0, 1).all() and (bayesian["mean_mi_nats"] > 0).all()
    # the NUTS reference committed under results/reference scores every run
    assert runs["agreement_test"].between(0.5, 1).all() and (runs["tv_test"] >= 0).all()
    # roofline: the suite calibrated this machine; moons runs far above its floor
    assert (smoke_results / "calibration-cpu.json").exists()
    assert (runs["step_floor_ms"] > 0).all() and (runs["step_floor_ratio"] > 1).all()
    assert (runs.drop(index="pymc")["transfer_s"] >= 0).all()
    for run_id in runs["run_id"]:
        with xr.open_datatree(smoke_results / run_id / "predictive_summary.nc") as summary:
            assert {"coverage", "reliability"} <= set(summary.children)
            assert {"entropy", "mi", "accepted"} <= set(summary["test"].data_vars)
            assert int(summary["reliability"]["count"].sum()) == 500


def test_matched_profile_starts_every_backend_from_the_same_point(smoke_results: Path):
    """Same initial means and scale: the first chunk's ELBO agrees across backends (loosely)."""
    traces = ResultStore(smoke_results).traces()
    first = traces[traces["step"] == 10]["neg_elbo_per_datum"]
    assert first.max() - first.min() < 0.5 * first.abs().max()


def test_resume_skips_finished_cells(smoke_results: Path, tmp_path: Path, tiny: list[str]):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(smoke_results, out)
    before = (out / "runs.csv").read_text()
    started = time.perf_counter()
    assert (
        main(["run", "--suite", "smoke", *tiny, "--out", str(out), "--resume", "--no-progress"])
        == 0
    )
    assert time.perf_counter() - started < 5  # no cell process was started
    assert (out / "runs.csv").read_text() == before


def test_report_renders_every_backend(smoke_results: Path, tmp_path: Path):
    out = tmp_path / "report.html"
    assert main(["report", str(smoke_results), "--out", str(out)]) == 0
    page = out.read_text()
    for backend in ("pymc", "pyro", "numpyro"):
        assert backend in page
    assert page.count("<svg") >= 3  # traces, timings, surfaces
    assert "final −ELBO / datum" in page
    for fetch in ('src="http', "src='http", "<link", "url(http", "@import"):
        assert fetch not in page  # nothing is fetched when the page is viewed


def test_gpu_without_gpu_is_unsupported_and_the_suite_goes_on(tmp_path: Path, tiny: list[str]):
    out = tmp_path / "gpu"
    code = main(
        [
            "run",
            "--models",
            "moons_2x5",
            "--device",
            "gpu",
            "cpu",
            "--backends",
            "pyro",
            *tiny,
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    runs = ResultStore(out).runs().set_index("device")
    if runs.loc["gpu", "status"] == "ok":
        pytest.skip("this machine has a GPU")
    assert code == 0
    assert runs.loc["gpu", "status"] == "unsupported" and "CUDA" in runs.loc["gpu", "error"]
    assert runs.loc["cpu", "status"] == "ok"


def test_interrupt_loses_at_most_the_running_cell(tmp_path: Path, tiny: list[str]):
    """Ctrl-C: finished cells stay recorded, no cell process is left, --resume ends (SIGTERM
    and SIGHUP stop a run the same way: tests/smoke/test_faults.py)."""
    out = tmp_path / "interrupted"
    cmd = [
        sys.executable,
        "-P",
        "-m",
        "bnnbench",
        "run",
        "--suite",
        "smoke",
        *tiny,
        "--out",
        str(out),
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (out / "runs.csv").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode == 130  # 128 + SIGINT
    leftover = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""  # the running cell's process was killed too
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) in (1, 2) and (runs["status"] == "ok").all()
    assert not [p for p in out.rglob("*.tmp")]
    assert (
        main(["run", "--suite", "smoke", *tiny, "--out", str(out), "--resume", "--no-progress"])
        == 0
    )
    assert sorted(pd.read_csv(out / "runs.csv")["backend"]) == [
        "numpyro",
        "pymc",
        "pyro",
        "torch-ml",
    ]


#: Suites not run tiny below: smoke (the smoke_results fixture runs it) and those without moons
#: cells (their MNIST specs are run by test_mnist_specs_run_on_every_backend).
MNIST_ONLY = {"smoke", "smoke_mnist", "tuned_cpu", "cpu_long"}


#: The suite whose moons cells are every other suite's: its tiny run stands for theirs (with
#: ``tiny`` settings and one seed, a suite's moons cells differ only in backend and profile).
COVERING = "profiles"


def _moons_cells(suite: str) -> set[tuple[str, str]]:
    only = {"models": ["moons_2x5"], "devices": ["cpu"]}
    return {(c.backend, c.profile) for c in plan_suite(load_suite(suite), only=only)}


def test_one_suite_holds_every_suites_moons_cells():
    covering = _moons_cells(COVERING)
    assert len(covering) == 12  # every backend x matched, tuned, native
    for suite in suite_names():
        assert _moons_cells(suite) <= covering, suite


@pytest.mark.parametrize("suite", sorted(set(suite_names()) - MNIST_ONLY))
def test_every_suite_with_moons_cells_is_a_valid_plan(suite: str, capsys):
    assert main(["plan", "--suite", suite, "--device", "cpu", "--cpus", "2"]) == 0
    assert "moons_2x5" in capsys.readouterr().out


def test_every_suites_moons_cells_run_tiny(tmp_path: Path, tiny: list[str]):
    """The moons cells of every suite (those of ``COVERING``) run end to end and report;
    smoke_mnist covers the MNIST specs."""
    out = tmp_path / COVERING
    argv = [
        "run",
        "--suite",
        COVERING,
        *tiny,
        "--seeds",
        "0",
        "--models",
        "moons_2x5",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    runs = ResultStore(out).runs()
    assert len(runs) == 12 and (runs["status"] == "ok").all(), runs[["run_id", "error"]]
    assert main(["report", str(out), "--out", str(tmp_path / "r.html")]) == 0


@pytest.mark.parametrize("suite", sorted(MNIST_ONLY - {"smoke"}))
def test_mnist_only_suites_are_valid_plans(suite: str, capsys):
    """The MNIST-only suites parse and validate into a plan (exit 0) without running."""
    assert main(["plan", "--suite", suite, "--device", "cpu", "--cpus", "2"]) == 0
    assert "mnist" in capsys.readouterr().out


def test_mnist_specs_run_on_every_backend(tmp_path: Path):
    """Two steps and two draws of every MNIST spec on every backend, real data and libraries."""
    out = tmp_path / "mnist"
    assert main(["run", "--suite", "smoke_mnist", "--out", str(out), "--no-progress"]) == 0
    runs = ResultStore(out).runs()
    # mnist_2x800_hier has no torch-ml cell (its maximum likelihood is mnist_2x800's)
    assert len(runs) == 11 and (runs["status"] == "ok").all(), runs[["run_id", "error"]]
    for run in runs.itertuples():
        with xr.open_datatree(out / run.run_id / "predictive_summary.nc") as summary:
            test = summary["test"]
            assert test["mean_proba"].shape == (10_000, 10)
            np.testing.assert_allclose(test["mean_proba"].sum("class"), 1.0, rtol=1e-4)
            assert test["chi2"].shape == (10_000,)
        hierarchical = run.model == "mnist_2x800_hier"
        assert (out / run.run_id / "scales_summary.csv").exists() == hierarchical
        # out-of-distribution sets: measured, or skipped with how to install them
        for name in ("white_noise", "fashion_mnist"):
            status = getattr(run, f"ood_{name}_status")
            if status == "ok":
                assert 0 <= getattr(run, f"ood_{name}_refusal_rate") <= 1
                assert 0 <= getattr(run, f"ood_{name}_entropy_auroc") <= 1
            else:
                assert name == "fashion_mnist" and "apt-get install" in status, status
    assert runs["ood_white_noise_status"].eq("ok").all()
    assert main(["report", str(out), "--out", str(tmp_path / "mnist.html")]) == 0
    page = (tmp_path / "mnist.html").read_text()
    assert "Hierarchical scales" in page and "Uncertainty of the votes" in page
    assert "Out-of-distribution inputs" in page
