"""Speed may never change the answer: ``tuned`` lands where ``matched`` lands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnnbench.cli import main
from bnnbench.evaluate import equivalent_over_seeds
from bnnbench.results import ResultStore, load

pytestmark = pytest.mark.smoke


def _final_elbo(out: Path) -> pd.DataFrame:
    """Per run: backend, profile and the mean of its last five ELBO trace points."""
    runs = load(out)
    assert (runs["status"] == "ok").all(), runs[["run_id", "error"]]
    traces = ResultStore(out).traces()
    final = (
        traces.sort_values("step")
        .groupby("run_id")["neg_elbo_per_datum"]
        .apply(lambda s: s.iloc[-5:].mean())
    )
    return runs.set_index("run_id").assign(final=final)


@pytest.fixture(scope="module")
def matched_and_tuned(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("profiles") / "profiles"
    argv = ["run", "--models", "moons_2x5", "--backends", "pymc", "pyro"]
    argv += ["--profile", "matched", "tuned", "--seeds", "0", "1", "2", *SETTINGS]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    return _final_elbo(out)


SETTINGS = ["--steps", "1500", "--trace-every", "100", "--draws", "30"]


def test_tuned_and_matched_give_the_same_elbo_over_seeds(matched_and_tuned: pd.DataFrame):
    for backend, group in matched_and_tuned.groupby("backend"):
        by = group.groupby("profile")["final"]
        check = equivalent_over_seeds(by.get_group("matched"), by.get_group("tuned"))
        assert check.ok, (backend, check)
        assert (group["accuracy"] > 0.9).all(), backend  # both really trained


def test_a_wrong_tuned_setting_fails_the_check(matched_and_tuned: pd.DataFrame, tmp_path: Path):
    """A 'tuned' path that changes the algorithm (here a 10x smaller learning rate) must not
    pass as equivalent: the check has the power to fail."""
    out = tmp_path / "wrong"
    argv = ["run", "--models", "moons_2x5", "--backends", "pyro", "--profile", "tuned"]
    argv += ["--seeds", "0", "1", "2", *SETTINGS, "--learning-rate", "0.001"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    wrong = _final_elbo(out)["final"]
    pyro = matched_and_tuned[matched_and_tuned["backend"] == "pyro"]
    check = equivalent_over_seeds(pyro[pyro["profile"] == "matched"]["final"], wrong)
    assert not check.ok, check


@pytest.mark.parametrize(("backend", "forced"), [("pyro", {"BNNBENCH_PYRO_ELBO": "eager"})])
def test_a_tuned_path_lands_where_the_default_path_lands(
    matched_and_tuned: pd.DataFrame, tmp_path: Path, monkeypatch, backend, forced
):
    """A path ``tuned`` picks for an MNIST spec (Pyro's eager ELBO), forced on moons: over
    three seeds, the same -ELBO and accuracy as the default path, within seed-to-seed spread.
    (NumPyro's host loop and per-draw predictive are checked step by step against the scan
    in tests/unit/test_numpyro_knobs.py, and the committed MNIST runs of both profiles in
    tests/unit/test_tuned_results.py.)"""
    for variable, value in forced.items():
        monkeypatch.setenv(variable, value)
    out = tmp_path / "forced"
    argv = ["run", "--models", "moons_2x5", "--backends", backend, "--profile", "matched"]
    assert (
        main([*argv, "--seeds", "0", "1", "2", *SETTINGS, "--out", str(out), "--no-progress"]) == 0
    )
    forced_runs = _final_elbo(out)
    for value in forced.values():
        assert forced_runs["execution_path"].str.contains(f"={value}").all()
    default = matched_and_tuned[
        (matched_and_tuned["backend"] == backend) & (matched_and_tuned["profile"] == "matched")
    ]
    for column in ("final", "accuracy"):
        check = equivalent_over_seeds(default[column], forced_runs[column], atol=0.005)
        assert check.ok, (column, check)


def test_pymc_gpu_path_runs_on_cpu_jax(tmp_path: Path, tiny: list[str], monkeypatch):
    """PyMC reaches the GPU through pytensor's JAX backend: the same compiled path, exercised
    here on JAX's CPU platform (training, posterior draws after a JAX fit, predictive)."""
    monkeypatch.setenv("BNNBENCH_PYMC_BACKEND", "jax")
    out = tmp_path / "jax"
    argv = ["run", "--models", "moons_2x5", "--backends", "pymc", *tiny]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    run = ResultStore(out).runs().iloc[0]
    assert run["status"] == "ok", run["error"]
    assert "mode=jax" in run["execution_path"]
    assert run["accuracy"] > 0.5 and np.isfinite(run["pareto_k"])
