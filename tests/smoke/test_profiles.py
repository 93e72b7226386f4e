"""Speed may never change the answer: ``tuned`` lands where ``matched`` lands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bnnbench.cli import main
from bnnbench.results import ResultStore

pytestmark = pytest.mark.smoke


def test_tuned_and_matched_give_the_same_elbo_within_seed_spread(tmp_path: Path):
    out = tmp_path / "profiles"
    argv = ["run", "--models", "moons_2x5", "--backends", "pymc", "pyro"]
    argv += ["--profile", "matched", "tuned", "--seeds", "0", "1", "2"]
    argv += ["--steps", "1500", "--trace-every", "100", "--draws", "30"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    store = ResultStore(out)
    runs, traces = store.runs(), store.traces()
    assert (runs["status"] == "ok").all(), runs[["run_id", "error"]]
    # the ELBO at the end of training: mean of the last five trace points of each run
    final = (
        traces.sort_values("step")
        .groupby("run_id")["neg_elbo_per_datum"]
        .apply(lambda s: s.iloc[-5:].mean())
    )
    runs = runs.set_index("run_id").assign(final=final)
    for backend, group in runs.groupby("backend"):
        by_profile = group.groupby("profile")["final"]
        means, sds = by_profile.mean(), by_profile.std(ddof=1)
        spread = float(np.sqrt((sds**2).mean()))
        gap = abs(means["tuned"] - means["matched"])
        assert gap <= 2 * spread + 1e-4, (backend, means.to_dict(), sds.to_dict())
        # both really trained: well below the starting point and the same accuracy band
        assert (group["accuracy"] > 0.9).all(), backend


def test_pymc_gpu_path_runs_on_cpu_jax(tmp_path: Path, tiny: list[str], monkeypatch):
    """PyMC reaches the GPU through pytensor's JAX backend: the same compiled path, exercised
    here on JAX's CPU platform (training, posterior draws after a JAX fit, predictive)."""
    monkeypatch.setenv("BNNBENCH_PYMC_BACKEND", "jax")
    out = tmp_path / "jax"
    argv = ["run", "--models", "moons_2x5", "--backends", "pymc", *tiny]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    run = ResultStore(out).runs().iloc[0]
    assert run["status"] == "ok", run["error"]
    assert "backend=jax" in run["execution_path"]
    assert run["accuracy"] > 0.5 and np.isfinite(run["pareto_k"])
