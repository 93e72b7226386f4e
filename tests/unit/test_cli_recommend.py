"""``bnnbench recommend``: exit codes 0/2/3, one-line errors, JSON with its schema version, on real
results folders written and read back through bnnbench.results."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnnbench.cli import RECOMMEND_FORMATS, RECOMMEND_PRIORITIES, main
from bnnbench.recommend import OUTPUT_FORMATS, PRIORITIES, SCHEMA_VERSION
from bnnbench.record import RunRecord
from bnnbench.results import ResultStore

COMMITTED = Path(__file__).resolve().parents[2] / "results"


def _record(store, backend, seed, *, compile_s, step_ms, accuracy, status="ok", error=""):
    steps, every = 1000, 100
    run_id = f"moons_2x5-{backend}-matched-cpu-seed{seed}-cli"
    chunk_ms = step_ms * (1 + 0.01 * np.random.default_rng(seed).standard_normal(steps // every))
    ok = status == "ok"
    record = RunRecord(
        run_id=run_id,
        model="moons_2x5",
        backend=backend,
        profile="matched",
        device="cpu",
        seed=seed,
        steps=steps,
        batch_size=50,
        learning_rate=0.01,
        init_scale=0.1,
        trace_every=every,
        predict_draws=100,
        status=status,
        error=error,
        compile_s=compile_s,
        predict_s=0.5 if ok else float("nan"),
        step_ms=float(np.median(chunk_ms)),
        peak_rss_mb=600.0,
        accuracy=accuracy if ok else float("nan"),
        final_neg_elbo_per_datum=0.25 if ok else float("nan"),
        entropy_auroc=0.9 if ok else float("nan"),
        mi_auroc=0.9 if ok else float("nan"),
        chi2_auroc=0.9 if ok else float("nan"),
        host="test",
        started_at=f"2026-11-30T00:00:0{seed}+00:00",
    )
    trace = pd.DataFrame(
        {
            "run_id": run_id,
            "step": every * np.arange(1, steps // every + 1),
            "wall_s": np.cumsum(chunk_ms * every / 1000),
            "neg_elbo_per_datum": 0.3,
        }
    )
    store.record(record, trace if ok else None)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A results folder: pymc fast, pyro slow, numpyro diverged on one seed."""
    root = tmp_path_factory.mktemp("recommend") / "results"
    store = ResultStore(root)
    for seed in range(3):
        _record(store, "pymc", seed, compile_s=1.0, step_ms=0.5, accuracy=0.954)
        _record(store, "pyro", seed, compile_s=0.3, step_ms=2.0, accuracy=0.956)
        if seed == 1:
            _record(
                store,
                "numpyro",
                seed,
                compile_s=8.0,
                step_ms=0.1,
                accuracy=0.95,
                status="diverged",
                error="loss exploded past 100x its start",
            )
        else:
            _record(store, "numpyro", seed, compile_s=8.0, step_ms=0.1, accuracy=0.95)
    return root


def test_choices_are_the_engines():
    assert RECOMMEND_PRIORITIES == PRIORITIES
    assert RECOMMEND_FORMATS == OUTPUT_FORMATS


def test_an_answer_exits_0(results, capsys):
    assert main(["recommend", str(results), "--model", "moons_2x5"]) == 0
    out = capsys.readouterr().out
    assert "Use pymc for moons_2x5" in out
    assert "numpyro (diverged)" in out and "loss exploded" in out


def test_json_has_its_schema_version(results, capsys):
    argv = ["recommend", str(results), "--model", "moons_2x5", "--format", "json", "--steps", "500"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["winner"] == "pymc" and doc["requested_steps"] == 500
    assert doc["n_test_source"] == "inferred"  # no predictive_summary.nc in this folder
    assert [e["backend"] for e in doc["excluded"]] == ["numpyro"]


def test_markdown(results, capsys):
    argv = ["recommend", str(results), "--model", "moons_2x5", "--format", "markdown"]
    assert main(argv) == 0
    assert "| rank | backend |" in capsys.readouterr().out


def test_no_gpu_evidence_exits_3_with_the_command(results, capsys):
    assert main(["recommend", str(results), "--model", "moons_2x5", "--device", "gpu"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "no evidence" in err[0] and "bnnbench run --models moons_2x5" in err[0]
    assert "--device gpu" in err[0]


def test_constraints_that_nothing_meets_exit_3(results, capsys):
    argv = ["recommend", str(results), "--model", "moons_2x5", "--max-memory-mb", "100"]
    assert main(argv) == 3
    assert "over memory" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--model", "moons_9x9"], "moons_2x5"),
        (["--model", "moons_2x5", "--device", "tpu"], "gpu"),
        (["--model", "moons_2x5", "--profile", "fast"], "matched"),
        (["--model", "moons_2x5", "--priority", "cheap"], "uncertainty"),
        (["--model", "moons_2x5", "--format", "xml"], "json"),
        (["--model", "moons_2x5", "--steps", "0"], "--steps"),
        (["--model", "moons_2x5", "--steps", "5", "--budget-s", "3"], "not allowed with"),
        (["--model", "moons_2x5", "--budget-s", "-1"], "--budget-s"),
        (["--model", "moons_2x5", "--target-accuracy", "95"], "fraction"),
        (["--model", "moons_2x5", "--max-memory-mb", "nan"], "MiB"),
        (["--model", "moons_2x5", "--bogus"], "--bogus"),
        ([], "--model"),
    ],
)
def test_usage_errors_exit_2_in_one_line(results, argv, says, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["recommend", str(results), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]


def test_a_folder_without_results_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["recommend", str(tmp_path), "--model", "moons_2x5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no runs.csv" in err[0]


def test_subprocess_json_and_exit_codes(results):
    base = [sys.executable, "-P", "-m", "bnnbench", "recommend", str(results), "--model"]
    done = subprocess.run(
        [*base, "moons_2x5", "--format", "json"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["schema_version"] == SCHEMA_VERSION
    gpu = subprocess.run(
        [*base, "moons_2x5", "--device", "gpu", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gpu.returncode == 3
    assert json.loads(gpu.stdout)["status"] == "no_evidence"
    assert "Traceback" not in gpu.stderr and len(gpu.stderr.strip().splitlines()) == 1
    bad = subprocess.run([*base, "nope"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not (COMMITTED / "default" / "runs.csv").exists(), reason="no checkout")
@pytest.mark.parametrize("model", ["moons_2x5", "mnist_2x800", "mnist_2x800_hier", "mnist_conv"])
def test_the_committed_results_answer_every_spec_on_the_cpu(model, capsys):
    assert main(["recommend", "--model", model, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["winner"] in ("pymc", "pyro", "numpyro")
    assert doc["n_test"] == (500 if model == "moons_2x5" else 10_000)
    assert doc["n_test_source"] == "results"
