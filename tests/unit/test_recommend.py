"""bnnbench.recommend on synthetic result sets whose answers are known."""

import json
import zlib

import numpy as np
import pandas as pd
import pytest

from bnnbench.recommend import (
    SCHEMA_VERSION,
    Request,
    infer_test_size,
    recommend,
    render,
    report_answers,
)
from bnnbench.record import RunRecord

N_TEST = {"moons_2x5": 500}


def cell(
    backend,
    seed,
    *,
    model="moons_2x5",
    device="cpu",
    profile="matched",
    steps=2000,
    trace_every=100,
    compile_s=1.0,
    step_ms=1.0,
    predict_s=0.5,
    accuracy=0.95,
    peak_mb=500.0,
    auroc=0.9,
    status="ok",
    error="",
    noise=0.02,
    predict_draws=100,
    accuracy_curve=None,
):
    """One synthetic cell: its record and its trace (chunk times ``step_ms`` ± ``noise``)."""
    rng = np.random.default_rng([seed, zlib.crc32(f"{backend}{profile}{device}".encode())])
    n_chunks = steps // trace_every
    chunk_ms = step_ms * (1.0 + noise * rng.standard_normal(n_chunks)).clip(0.5)
    run_id = f"{model}-{backend}-{profile}-{device}-seed{seed}-{steps}-{predict_draws}"
    ok = status == "ok"
    record = RunRecord(
        run_id=run_id,
        model=model,
        backend=backend,
        profile=profile,
        device=device,
        seed=seed,
        steps=steps,
        batch_size=50,
        learning_rate=0.01,
        init_scale=0.1,
        trace_every=trace_every,
        predict_draws=predict_draws,
        status=status,
        error=error,
        transfer_s=0.0,
        compile_s=compile_s,
        fit_s=float(chunk_ms.sum() * trace_every / 1000),
        step_ms=float(np.median(chunk_ms)),
        predict_s=predict_s if ok else float("nan"),
        peak_rss_mb=peak_mb,
        peak_device_mb=peak_mb if device == "gpu" else float("nan"),
        accuracy=accuracy if ok else float("nan"),
        nll=(1.0 - accuracy) if ok else float("nan"),
        final_neg_elbo_per_datum=0.25 if ok else float("nan"),
        ece_15=0.03,
        entropy_auroc=auroc if ok else float("nan"),
        mi_auroc=auroc if ok else float("nan"),
        chi2_auroc=auroc if ok else float("nan"),
        host="test",
    )
    points = np.arange(1, n_chunks + 1) * trace_every
    trace = pd.DataFrame(
        {
            "run_id": run_id,
            "step": points,
            "wall_s": np.cumsum(chunk_ms * trace_every / 1000),
            "neg_elbo_per_datum": 0.25 + 1.0 / points,
        }
    )
    if accuracy_curve is not None:
        trace["curve_accuracy"] = accuracy_curve(points)
    if status == "failed":
        trace = trace.iloc[:0]
    elif status == "diverged":
        trace = trace.iloc[:3]
    return record.to_row(), trace


def build(*cells):
    rows, traces = zip(*cells, strict=True)
    return pd.DataFrame(list(rows)), pd.concat(traces, ignore_index=True)


def seeds(backend, n=3, accuracies=(0.95, 0.952, 0.948), **kw):
    return [cell(backend, s, accuracy=accuracies[s % len(accuracies)], **kw) for s in range(n)]


def ask(runs, traces, **kw):
    request = Request(**{"model": "moons_2x5", "replicates": 500, **kw})
    return recommend(runs, traces, request, n_test=N_TEST)


# ----------------------------------------------------------------------------- known answers
def test_a_clear_winner():
    runs, traces = build(
        *seeds("pymc", step_ms=0.5),
        *seeds("pyro", step_ms=2.0),
        *seeds("numpyro", step_ms=1.5),
    )
    rec = ask(runs, traces)
    assert rec.status == "answer" and rec.exit_code == 0
    assert rec.winner == "pymc" and rec.tied_with == []
    assert [a.backend for a in rec.ranking] == ["pymc", "numpyro", "pyro"]
    assert [a.rank for a in rec.ranking] == [1, 2, 3]
    assert rec.confidence == "high"
    winner = rec.ranking[0]
    assert winner.end_to_end_s.estimate == pytest.approx(1.0 + 2000 * 0.5 / 1000 + 0.5, rel=0.02)
    assert winner.end_to_end_s.low <= winner.end_to_end_s.estimate <= winner.end_to_end_s.high
    assert any("pymc vs pyro" in r and "faster" in r and "equal accuracy" in r for r in rec.reasons)


def test_a_tie_within_seed_spread():
    # pyro is 10 % slower on average, but compile times swing by seconds between seeds
    runs, traces = build(
        *[cell("pymc", s, compile_s=c) for s, c in enumerate([1.0, 3.0, 5.0])],
        *[cell("pyro", s, compile_s=c) for s, c in enumerate([1.5, 3.5, 5.5])],
    )
    rec = ask(runs, traces)
    t = {a.backend: a.end_to_end_s.estimate for a in rec.ranking}
    assert t["pyro"] / t["pymc"] > 1.05  # not the practical margin: the spread makes the tie
    assert [a.rank for a in rec.ranking] == [1, 1]
    assert rec.winner == "pymc" and rec.tied_with == ["pyro"]
    assert "tied with pyro" in rec.headline
    assert any("they tie" in r for r in rec.reasons)
    assert any("bootstrap" in t for t in rec.tests)


def test_a_compile_step_crossover():
    # pymc: 1 s fixed + 2 ms per step; numpyro: 9 s + 1 ms: equal at n* = 8,000 steps
    runs, traces = build(
        *seeds("pymc", compile_s=0.5, step_ms=2.0, noise=0.005),
        *seeds("numpyro", compile_s=8.5, step_ms=1.0, noise=0.005),
    )
    rec = ask(runs, traces)
    (cross,) = rec.crossovers
    assert (cross.faster_below, cross.faster_above) == ("pymc", "numpyro")
    assert cross.steps.estimate == pytest.approx(8000, rel=0.03)
    assert cross.steps.low <= 8000 <= cross.steps.high
    assert cross.end_to_end_s == pytest.approx(1.0 + 8000 * 2.0 / 1000, rel=0.03)
    assert ask(runs, traces, steps=2000).winner == "pymc"
    assert ask(runs, traces, steps=40_000).winner == "numpyro"
    assert any("below about 8,000 steps" in r for r in rec.reasons)
    # a budget: 30 s fits (30 - 1)/2 ms = 14,500 pymc steps and (30 - 9)/1 ms = 21,000 numpyro
    budget = ask(runs, traces, budget_s=30.0)
    assert budget.winner == "numpyro"
    fit = {a.backend: a.steps_in_budget.estimate for a in budget.ranking}
    assert fit["pymc"] == pytest.approx(14_500, rel=0.03)
    assert fit["numpyro"] == pytest.approx(21_000, rel=0.03)


def test_failed_and_diverged_cells_never_win_and_are_listed_with_their_error():
    runs, traces = build(
        *seeds("pymc", step_ms=1.0),
        cell("numpyro", 0, step_ms=0.1),
        cell("numpyro", 1, step_ms=0.1, status="diverged", error="loss non-finite at step 300"),
        cell("numpyro", 2, step_ms=0.1),
        *[cell("pyro", s, status="failed", error="timed out after 1800 s") for s in range(3)],
    )
    rec = ask(runs, traces)
    assert rec.winner == "pymc"
    assert [a.backend for a in rec.ranking] == ["pymc"]
    reasons = {e.backend: e for e in rec.excluded}
    assert reasons["numpyro"].reason == "diverged"
    assert "loss non-finite at step 300" in reasons["numpyro"].detail
    assert reasons["numpyro"].cells[0]["seed"] == 1
    assert reasons["pyro"].reason == "failed" and "timed out" in reasons["pyro"].detail
    text = render(rec, "text")
    assert "loss non-finite at step 300" in text and "timed out after 1800 s" in text


def test_a_single_seed_lowers_the_confidence_and_says_so():
    runs, traces = build(
        cell("pymc", 0, step_ms=1.0, accuracy=0.95),
        cell("pyro", 0, step_ms=3.0, accuracy=0.946),
    )
    rec = ask(runs, traces)
    assert rec.confidence == "low"
    assert rec.winner == "pymc"
    # 0.950 vs 0.946 on 500 test points: well inside the binomial error, a tie on accuracy
    assert any("equal accuracy" in r for r in rec.reasons)
    assert any("one seed" in m.what and "--seeds 0 1 2" in m.command for m in rec.missing)
    assert any(t.startswith("one seed") for t in rec.tests)
    # far apart on accuracy: the more accurate, slower one ranks first (priority quality)
    runs, traces = build(
        cell("pymc", 0, step_ms=1.0, accuracy=0.80),
        cell("pyro", 0, step_ms=3.0, accuracy=0.95),
    )
    assert ask(runs, traces).winner == "pyro"
    assert ask(runs, traces, priority="speed").winner == "pymc"


def test_no_gpu_runs_is_no_evidence_with_the_command():
    runs, traces = build(*seeds("pymc"), *seeds("pyro"))
    rec = ask(runs, traces, device="gpu")
    assert rec.status == "no_evidence" and rec.exit_code == 3
    assert rec.winner is None and rec.ranking == []
    assert any(m.command and "--device gpu" in m.command for m in rec.missing)
    assert "gpu" in rec.headline
    other = ask(runs, traces, model="mnist_conv")
    assert other.exit_code == 3 and "--models mnist_conv" in other.missing[0].command


def test_unsupported_cells_are_named():
    runs, traces = build(
        *seeds("pymc"),
        cell("pyro", 0, device="gpu", status="unsupported", error="no CUDA device"),
    )
    rec = ask(runs, traces, device="gpu")
    assert rec.exit_code == 3
    assert any("no CUDA device" in m.what for m in rec.missing)


def test_torch_ml_is_the_reference_never_the_winner():
    runs, traces = build(
        *seeds("pymc", step_ms=1.0),
        *seeds("torch-ml", step_ms=0.1, accuracies=(0.99,), auroc=0.6),
    )
    rec = ask(runs, traces)
    assert rec.winner == "pymc"
    assert rec.baseline is not None and rec.baseline.backend == "torch-ml"
    assert rec.baseline.rank is None
    ref = [p for p in rec.pareto if p.backend == "torch-ml"]
    assert ref and not ref[0].bayesian and not ref[0].on_front
    assert any(r.startswith("Reference, not Bayesian: torch-ml") for r in rec.reasons)
    only_reference = ask(*build(*seeds("torch-ml")))
    assert only_reference.exit_code == 3


def test_max_memory_excludes_and_says_so():
    runs, traces = build(
        *seeds("pymc", step_ms=0.5, peak_mb=3000.0), *seeds("pyro", step_ms=2.0, peak_mb=800.0)
    )
    assert ask(runs, traces).winner == "pymc"
    rec = ask(runs, traces, max_memory_mb=1000)
    assert rec.winner == "pyro"
    (excl,) = rec.excluded
    assert excl.backend == "pymc" and excl.reason == "over memory" and "3,000" in excl.detail
    assert ask(runs, traces, max_memory_mb=100).exit_code == 3
    assert ask(runs, traces, priority="memory").winner == "pyro"


def test_target_accuracy_from_the_final_accuracy():
    runs, traces = build(
        *seeds("pymc", step_ms=0.5, accuracies=(0.90,)),
        *seeds("pyro", step_ms=2.0, accuracies=(0.96,)),
    )
    rec = ask(runs, traces, target_accuracy=0.93, priority="speed")
    assert rec.winner == "pyro"
    pyro = rec.ranking[0]
    assert pyro.target_status == "reached" and pyro.time_to_target_is_bound
    assert pyro.time_to_target_s == pytest.approx(pyro.end_to_end_s.estimate)
    assert [(e.backend, e.reason) for e in rec.excluded] == [("pymc", "below target accuracy")]
    assert "not reached within 2,000 steps" in rec.excluded[0].detail
    none = ask(runs, traces, target_accuracy=0.99)
    assert none.exit_code == 3
    assert any("long enough" in m.what and "--steps 4000" in m.command for m in none.missing)


def test_target_accuracy_from_an_accuracy_trace():
    def curve(points):
        return np.minimum(0.5 + points / 1000, 0.96)  # reaches 0.9 at step 400

    runs, traces = build(
        *seeds("pymc", step_ms=1.0, noise=0.0, accuracy_curve=curve),
        *seeds("pyro", step_ms=3.0, accuracies=(0.97,)),  # no accuracy curve stored
    )
    rec = ask(runs, traces, target_accuracy=0.9, priority="speed")
    a, b = rec.ranking
    assert a.backend == "pymc"
    assert a.target_status == "reached" and not a.time_to_target_is_bound
    assert a.time_to_target_s == pytest.approx(1.0 + 400 * 1.0 / 1000 + 0.5)
    assert b.target_status == "reached" and b.time_to_target_is_bound  # from the final accuracy
    never = ask(runs, traces, target_accuracy=0.965)  # the curve stops at 0.96
    assert [(e.backend, e.reason) for e in never.excluded] == [("pymc", "below target accuracy")]
    shorter = ask(runs, traces, steps=500)
    assert shorter.ranking[0].accuracy_at_steps == pytest.approx(0.96)
    assert shorter.ranking[0].neg_elbo_per_datum_at_steps == pytest.approx(0.25 + 1 / 500)


def test_extrapolation_is_named_with_the_measured_steps():
    runs, traces = build(*seeds("pymc"), *seeds("pyro", step_ms=2.0))
    rec = ask(runs, traces, steps=50_000)
    assert rec.extrapolated and rec.confidence == "medium"
    assert any(
        "measured at 2,000 steps only" in m.what and "--steps 50000" in m.command
        for m in rec.missing
    )
    assert not ask(runs, traces, steps=3000).extrapolated


def test_a_budget_below_the_fixed_costs_excludes():
    runs, traces = build(
        *seeds("pymc", compile_s=50.0, step_ms=0.1), *seeds("pyro", compile_s=1.0, step_ms=5.0)
    )
    rec = ask(runs, traces, budget_s=20.0)
    assert rec.winner == "pyro"
    assert [(e.backend, e.reason) for e in rec.excluded] == [("pymc", "over budget")]


def test_configuration_nearest_the_run_length():
    runs, traces = build(
        *seeds("pymc", steps=200, predict_draws=30),
        *seeds("pyro", steps=200, predict_draws=30, step_ms=2.0),
        *seeds("pymc", steps=5000),
        *seeds("pyro", steps=5000, step_ms=2.0),
    )
    rec = ask(runs, traces)
    assert rec.configuration["steps"] == 5000
    assert [c["steps"] for c in rec.other_configurations] == [200]
    assert ask(runs, traces, steps=300).configuration["steps"] == 200


def test_profiles_default_to_matched_and_other_answers_are_said():
    runs, traces = build(
        *seeds("pymc", step_ms=0.5),
        *seeds("pyro", step_ms=2.0),
        *seeds("pymc", profile="native", step_ms=0.5, accuracies=(0.5,)),
        *seeds("pyro", profile="native", step_ms=2.0),
    )
    rec = ask(runs, traces)
    assert rec.profile == "matched" and rec.profiles_available == ["matched", "native"]
    (note,) = rec.other_profiles
    assert note.profile == "native" and note.winner == "pyro" and not note.same_as_answer
    assert any("native profile the answer would be pyro" in r for r in rec.reasons)
    assert any("profile tuned not run" in m.what for m in rec.missing)
    native_only = ask(*build(*seeds("pymc", profile="native")))
    assert native_only.profile == "native"
    absent = ask(runs, traces, profile="tuned")
    assert absent.exit_code == 3 and "--profile tuned" in absent.missing[0].command


def test_output_is_reproducible_and_json_has_its_schema():
    runs, traces = build(*seeds("pymc"), *seeds("pyro", step_ms=2.0), *seeds("torch-ml"))
    a, b = ask(runs, traces), ask(runs, traces)
    assert render(a, "json") == render(b, "json")
    doc = json.loads(render(a, "json"))
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    assert doc["winner"] == "pymc" and doc["status"] == "answer"
    assert set(doc["ranking"][0]["end_to_end_s"]) == {"estimate", "low", "high"}
    assert doc["baseline"]["backend"] == "torch-ml"
    for fmt in ("text", "markdown"):
        assert "pymc" in render(a, fmt)
    assert "| rank | backend |" in render(a, "markdown")
    one = json.loads(render(ask(*build(cell("pymc", 0))), "json"))
    assert one["ranking"][0]["accuracy_sd"] is None  # NaN is null


def test_a_run_id_in_two_folders_keeps_its_own_folders_trace():
    # the same cell stored in two folders (e.g. results/default and results/profiles): the
    # record kept is the one of folder "new", so must be its trace
    runs, traces = build(*seeds("pymc", step_ms=1.0, noise=0.0))
    runs = runs.assign(results_dir="new")
    stale = traces.assign(wall_s=traces["wall_s"] * 5, results_dir="old")
    mixed = pd.concat([stale, traces.assign(results_dir="new")], ignore_index=True)
    rec = ask(runs, mixed)
    assert rec.ranking[0].step_ms.estimate == pytest.approx(1.0)
    # without folders the first point of each (run_id, step) is kept, as the loader does
    assert ask(runs, stale.drop(columns="results_dir")).ranking[0].step_ms.estimate == (
        pytest.approx(5.0)
    )


def test_invalid_requests_raise():
    runs, traces = build(*seeds("pymc"))
    for bad in (dict(steps=0), dict(steps=5, budget_s=3.0), dict(target_accuracy=1.5)):
        with pytest.raises(ValueError):
            ask(runs, traces, **bad)


def test_infer_test_size():
    assert infer_test_size([0.952, 0.958, 0.96, 0.334]) == 500
    assert infer_test_size([0.9423, 0.95]) == 10_000
    assert infer_test_size([]) is None


def test_report_answers_for_every_spec_and_device():
    runs, traces = build(
        *seeds("pymc", compile_s=0.5, step_ms=2.0, noise=0.005),
        *seeds("numpyro", compile_s=8.5, step_ms=1.0, noise=0.005),
    )
    answers = report_answers(runs, traces, n_test=N_TEST)
    assert [(a.model, a.device) for a in answers] == [("moons_2x5", "cpu"), ("moons_2x5", "gpu")]
    cpu, gpu = answers
    assert cpu.evidence and not gpu.evidence
    assert cpu.full_steps == 50_000  # the PyMC3 tutorial's budget for moons
    assert cpu.full_budget.steps == 50_000 and cpu.full_budget.winner == "numpyro"
    assert cpu.short_run.budget_s == 60.0 and cpu.short_run.winner == "numpyro"
    assert cpu.best_uncertainty.priority == "uncertainty"
    assert cpu.least_memory.priority == "memory"
    assert cpu.crossovers[0].steps.estimate == pytest.approx(8000, rel=0.03)
    assert {p.backend for p in cpu.pareto} == {"pymc", "numpyro"}
    assert gpu.full_budget.exit_code == 3
    assert any("--device gpu" in (m.command or "") for m in gpu.missing)
    assert report_answers(runs, traces, full_steps={"moons_2x5": 1000})[0].full_steps == 1000


# ----------------------------------------------------------------------------- a property
@pytest.mark.parametrize("priority", ["quality", "speed", "uncertainty", "memory"])
def test_adding_a_backend_worse_on_every_axis_never_changes_the_winner(priority):
    rng = np.random.default_rng(12)
    names = ["pymc", "pyro", "numpyro"]
    for _ in range(6):
        worst = str(rng.choice(names))
        base = [n for n in names if n != worst]
        n_seeds = int(rng.integers(1, 4))
        setups = {
            n: dict(
                compile_s=float(rng.uniform(0.5, 10)),
                step_ms=float(rng.uniform(0.2, 3)),
                predict_s=float(rng.uniform(0.1, 2)),
                peak_mb=float(rng.uniform(300, 3000)),
                auroc=float(rng.uniform(0.8, 0.95)),
                noise=float(rng.uniform(0.0, 0.3)),
                accs=[round(float(rng.uniform(0.85, 0.97)) * 500) / 500 for _ in range(n_seeds)],
            )
            for n in base
        }
        bad = dict(
            compile_s=max(s["compile_s"] for s in setups.values()) * 1.5,
            step_ms=max(s["step_ms"] for s in setups.values()) * 1.5,
            predict_s=max(s["predict_s"] for s in setups.values()) + 0.5,
            peak_mb=max(s["peak_mb"] for s in setups.values()) * 1.2,
            auroc=min(s["auroc"] for s in setups.values()) - 0.05,
            noise=0.1,
            accs=[min(min(s["accs"]) for s in setups.values()) - 0.02] * n_seeds,
        )

        def cells(name, s):
            kw = {k: v for k, v in s.items() if k != "accs"}
            return [cell(name, i, accuracy=acc, **kw) for i, acc in enumerate(s["accs"])]

        without = build(*[c for n in base for c in cells(n, setups[n])])
        with_worst = build(*[c for n in base for c in cells(n, setups[n])], *cells(worst, bad))
        for length in (dict(), dict(steps=20_000), dict(budget_s=30.0)):
            before = ask(*without, priority=priority, **length)
            after = ask(*with_worst, priority=priority, **length)
            assert after.winner == before.winner, (priority, length, setups, bad)
            ranked = [a.backend for a in after.ranking]
            assert worst not in ranked or ranked[-1] == worst
