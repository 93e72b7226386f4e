"""bnnbench.compare: verdicts of synthetic runs with known answers (records built with RunRecord,
traces with known chunk times), pytest-benchmark documents in the real format, and the
statistics added to bnnbench.evidence for it."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest

from bnnbench import evidence as ev
from bnnbench.compare import (
    OUTPUT_FORMATS,
    PAIR_FIELDS,
    SCHEMA_VERSION,
    CompareInputError,
    Options,
    ResultsSide,
    compare_benchmarks,
    compare_results,
    metric_verdict,
    render,
)
from bnnbench.evidence import Interval
from bnnbench.record import CELL_KEY_FIELDS, RunRecord

CHUNKS, EVERY = 20, 100


def cell_rows(
    *,
    backend: str = "pymc",
    model: str = "moons_2x5",
    seeds: tuple[int, ...] = (0, 1, 2),
    step_ms: float = 1.0,
    chunk_sd: float = 0.01,
    seed_sd: float = 0.005,
    compile_s: float = 2.0,
    compile_sd: float = 0.02,
    accuracy: float = 0.95,
    elbo: float = 0.25,
    cpu: str = "AMD EPYC",
    host: str = "vm",
    steps: int = CHUNKS * EVERY,
    draw: int = 0,
    status: dict[int, str] | None = None,
) -> tuple[list[dict], pd.DataFrame]:
    """One cell's records and traces: per seed a level ``step_ms * exp(seed_sd z)``, chunks
    ``level * (1 + chunk_sd z)``; ``draw`` picks the random numbers (two sides drawn with
    different ``draw`` are independent measurements)."""
    rows, traces = [], []
    for seed in seeds:
        rng = np.random.default_rng([draw, seed, len(backend)])
        level = step_ms * math.exp(seed_sd * rng.standard_normal())
        chunk_ms = level * (1.0 + chunk_sd * rng.standard_normal(steps // EVERY))
        st = (status or {}).get(seed, "ok")
        run_id = f"{model}-{backend}-matched-cpu-seed{seed}-{steps}"
        record = RunRecord(
            run_id=run_id,
            model=model,
            backend=backend,
            profile="matched",
            device="cpu",
            seed=seed,
            steps=steps,
            batch_size=50,
            learning_rate=0.01,
            init_scale=0.1,
            trace_every=EVERY,
            predict_draws=100,
            status=st,
            error="" if st == "ok" else "loss exploded",
            compile_s=compile_s * math.exp(compile_sd * rng.standard_normal()),
            predict_s=0.5 * math.exp(0.02 * rng.standard_normal()),
            step_ms=float(np.median(chunk_ms)),
            peak_rss_mb=600.0 * math.exp(0.001 * rng.standard_normal()),
            accuracy=accuracy,
            final_neg_elbo_per_datum=elbo * (1 + 0.001 * seed),
            cpu=cpu,
            host=host,
            started_at=f"2026-12-0{1 + draw % 9}T00:00:0{seed}+00:00",
        )
        rows.append(record.to_row())
        if st == "ok":
            traces.append(
                pd.DataFrame(
                    {
                        "run_id": run_id,
                        "step": EVERY * np.arange(1, steps // EVERY + 1),
                        "wall_s": np.cumsum(chunk_ms * EVERY / 1000),
                        "neg_elbo_per_datum": elbo,
                    }
                )
            )
    return rows, pd.concat(traces, ignore_index=True) if traces else pd.DataFrame()


def side(*cells: tuple[list[dict], pd.DataFrame], label: str = "side", **kw) -> ResultsSide:
    rows = [r for c in cells for r in c[0]]
    traces = [c[1] for c in cells if len(c[1])]
    return ResultsSide(
        label,
        pd.DataFrame(rows),
        pd.concat(traces, ignore_index=True) if traces else pd.DataFrame(),
        **kw,
    )


def only_cell(report):
    assert len(report.cells) == 1, [c.name for c in report.cells]
    return report.cells[0]


# ---------------------------------------------------------------------------- verdict rule
@pytest.mark.parametrize(
    ("ratio", "p", "expected"),
    [
        (Interval(1.5, 1.45, 1.55), 1e-6, "slower"),
        (Interval(0.6, 0.55, 0.65), 1e-6, "faster"),
        (Interval(1.02, 0.97, 1.07), 0.3, "unchanged"),
        (Interval(1.05, 1.04, 1.06), 1e-9, "unchanged"),  # significant, but inside the band
        (Interval(1.5, 1.45, 1.55), 0.02, "inconclusive"),  # beyond, but p >= alpha
        (Interval(1.3, 0.9, 1.8), 1e-6, "inconclusive"),  # interval contains 1
        (Interval(1.08, 1.01, 1.15), 1e-6, "inconclusive"),  # reaches beyond the band
        (Interval(2.0, math.nan, math.nan), math.nan, "inconclusive"),  # one replicate
        (Interval(math.nan, math.nan, math.nan), math.nan, "no data"),
    ],
)
def test_metric_verdict(ratio, p, expected):
    assert metric_verdict(ratio, p, 0.10, 0.01) == expected


# ---------------------------------------------------------------------------- results
def test_identical_sides_are_unchanged_by_construction():
    cells = [cell_rows(backend=b) for b in ("pymc", "pyro")]
    report = compare_results(side(*cells), side(*cells))
    assert report.exit_code == 0 and report.counts == {"unchanged": 2}
    for cell in report.cells:
        assert cell.reason == "the same measurements on both sides"
        step = cell.metric("step_ms")
        assert (step.ratio.estimate, step.ratio.low, step.ratio.high) == (1.0, 1.0, 1.0)


def test_two_independent_runs_of_the_same_code_are_unchanged():
    report = compare_results(side(cell_rows(draw=1)), side(cell_rows(draw=2)))
    cell = only_cell(report)
    assert cell.verdict == "unchanged", cell.reason
    step = cell.metric("step_ms")
    assert 1 / 1.1 <= step.ratio.low <= 1.0 <= step.ratio.high <= 1.1
    assert cell.metric("compile_s").verdict == "unchanged"
    assert report.exit_code == 0


def test_a_step_one_and_a_half_times_slower_fails():
    report = compare_results(side(cell_rows(draw=1)), side(cell_rows(draw=2, step_ms=1.5)))
    cell = only_cell(report)
    step = cell.metric("step_ms")
    assert step.verdict == "slower" and cell.verdict == "slower"
    assert step.ratio.low > 1.4 and step.ratio.high < 1.6 and step.p_value < 1e-6
    assert report.exit_code == 1 and report.regressions == [cell]
    assert "steady step 1.5" in cell.reason and "beyond +10 %" in cell.reason


def test_faster_is_said_and_passes():
    report = compare_results(side(cell_rows(draw=1)), side(cell_rows(draw=2, step_ms=0.5)))
    assert only_cell(report).verdict == "faster" and report.exit_code == 0


def test_five_percent_slower_is_within_a_ten_percent_threshold():
    report = compare_results(side(cell_rows(draw=1)), side(cell_rows(draw=2, step_ms=1.05)))
    cell = only_cell(report)
    step = cell.metric("step_ms")
    assert step.p_value < 0.01  # the change is real ...
    assert step.verdict == "unchanged" and report.exit_code == 0  # ... and does not matter


def test_five_percent_slower_fails_a_two_percent_threshold():
    report = compare_results(
        side(cell_rows(draw=1)),
        side(cell_rows(draw=2, step_ms=1.05)),
        Options(threshold=0.02),
    )
    assert only_cell(report).verdict == "slower" and report.exit_code == 1


def test_noisy_seeds_are_inconclusive_with_the_advice_to_rerun():
    report = compare_results(
        side(cell_rows(draw=3, seed_sd=0.2, chunk_sd=0.05)),
        side(cell_rows(draw=4, seed_sd=0.2, chunk_sd=0.05, step_ms=1.15)),
    )
    cell = only_cell(report)
    step = cell.metric("step_ms")
    assert step.ratio.low < 1.0 / 1.1 or step.ratio.high > 1.1
    assert step.verdict == "inconclusive" and cell.verdict == "inconclusive"
    assert cell.reason.startswith("re-run:")
    assert report.exit_code == 0
    assert "re-run" in render(report, "text").splitlines()[-1]


def test_compile_twice_as_slow_fails_a_half_threshold():
    report = compare_results(
        side(cell_rows(draw=1)),
        side(cell_rows(draw=2, compile_s=4.0)),
        Options(compile_threshold=0.5),
    )
    cell = only_cell(report)
    compile_ = cell.metric("compile_s")
    assert compile_.verdict == "slower" and cell.metric("step_ms").verdict == "unchanged"
    assert compile_.ratio.low > 1.5 and compile_.p_value < 0.01
    assert cell.verdict == "slower" and report.exit_code == 1
    # the same change under a threshold of 1.5 (2.5x) does not matter
    loose = compare_results(
        side(cell_rows(draw=1)),
        side(cell_rows(draw=2, compile_s=4.0)),
        Options(compile_threshold=1.5),
    )
    assert only_cell(loose).metric("compile_s").verdict != "slower" and loose.exit_code == 0


def test_one_seed_per_side_is_one_replicate_never_a_verdict_on_compile():
    report = compare_results(
        side(cell_rows(draw=1, seeds=(0,))), side(cell_rows(draw=2, seeds=(0,), compile_s=10.0))
    )
    cell = only_cell(report)
    compile_ = cell.metric("compile_s")
    assert compile_.verdict == "inconclusive" and math.isnan(compile_.p_value)
    assert math.isnan(compile_.ratio.low) and compile_.ratio.estimate > 4
    assert "one replicate" in compile_.note and "one replicate" in cell.reason
    assert cell.verdict == "inconclusive" and report.exit_code == 0
    # the step still has its chunks: a slower step is found from one seed
    step_report = compare_results(
        side(cell_rows(draw=1, seeds=(0,))), side(cell_rows(draw=2, seeds=(0,), step_ms=1.5))
    )
    cell = only_cell(step_report)
    assert cell.metric("step_ms").verdict == "slower" and cell.verdict == "slower"
    assert "chunk-to-chunk noise only" in cell.metric("step_ms").note


def test_a_cell_on_one_side_is_missing_and_says_which():
    base = side(cell_rows(backend="pymc", draw=1), cell_rows(backend="pyro", draw=1))
    cand = side(cell_rows(backend="pymc", draw=2), cell_rows(backend="numpyro", draw=2))
    report = compare_results(base, cand)
    by_name = {c.name: c for c in report.cells}
    assert by_name["moons_2x5 pyro matched cpu"].verdict == "missing"
    assert by_name["moons_2x5 pyro matched cpu"].side == "baseline only"
    assert by_name["moons_2x5 numpyro matched cpu"].side == "candidate only"
    assert by_name["moons_2x5 pymc matched cpu"].verdict == "unchanged"
    assert report.exit_code == 0


def test_a_different_cpu_is_not_comparable_unless_allowed():
    base, cand = side(cell_rows(draw=1)), side(cell_rows(draw=2, cpu="Intel Xeon"))
    report = compare_results(base, cand)
    cell = only_cell(report)
    assert cell.verdict == "not comparable" and "cpu 'AMD EPYC' vs 'Intel Xeon'" in cell.reason
    assert report.exit_code == 2 and "--allow-other-machine" in report.error
    allowed = compare_results(base, cand, Options(allow_other_machine=True))
    cell = only_cell(allowed)
    assert cell.verdict == "unchanged" and allowed.exit_code == 0
    assert any("compared anyway" in n for n in cell.notes)


def test_a_different_host_is_another_machine():
    report = compare_results(side(cell_rows(draw=1)), side(cell_rows(draw=2, host="ci-7")))
    assert "host 'vm' vs 'ci-7'" in only_cell(report).reason


def test_a_calibration_beyond_its_same_machine_swing_is_another_machine():
    base = side(cell_rows(draw=1), calibration={"cpu": 100e9})
    far = side(cell_rows(draw=2), calibration={"cpu": 60e9})
    near = side(cell_rows(draw=2), calibration={"cpu": 81e9})  # one VM's swing (148-183)
    cell = only_cell(compare_results(base, far))
    assert cell.verdict == "not comparable" and "calibration matmul 100.0 vs 60.0" in cell.reason
    assert only_cell(compare_results(base, near)).verdict == "unchanged"
    one_sided = only_cell(compare_results(base, side(cell_rows(draw=2))))
    assert one_sided.verdict == "unchanged"
    assert any("one side only" in n for n in one_sided.notes)


def test_other_settings_pair_as_not_comparable_saying_which():
    report = compare_results(
        side(cell_rows(draw=1)), side(cell_rows(draw=2, steps=2 * CHUNKS * EVERY))
    )
    cell = only_cell(report)
    assert cell.verdict == "not comparable"
    assert cell.reason == f"settings differ: steps {CHUNKS * EVERY} vs {2 * CHUNKS * EVERY}"
    assert report.exit_code == 2 and "settings differ" in report.error


def test_other_settings_among_several_are_missing_on_both_sides():
    base = side(cell_rows(draw=1), cell_rows(draw=1, steps=3000))
    cand = side(cell_rows(draw=2, steps=4000))
    report = compare_results(base, cand)
    assert report.counts == {"missing": 3} and report.exit_code == 2
    assert all("with other settings" in c.reason for c in report.cells)
    assert "no cell in common" in report.error


def test_pairing_ignores_the_seed_only():
    assert set(PAIR_FIELDS) == set(CELL_KEY_FIELDS) - {"seed"}
    report = compare_results(side(cell_rows(draw=1, seeds=(0, 1))), side(cell_rows(draw=2)))
    cell = only_cell(report)
    assert cell.seeds_baseline == [0, 1] and cell.seeds_candidate == [0, 1, 2]


def test_a_seed_that_now_diverges_fails():
    report = compare_results(
        side(cell_rows(draw=1)), side(cell_rows(draw=2, status={1: "diverged"}))
    )
    cell = only_cell(report)
    assert cell.verdict == "failed" and "seed(s) 1 diverged" in cell.reason
    assert report.exit_code == 1
    # a seed that diverged on both sides is no regression
    both = compare_results(
        side(cell_rows(draw=1, status={1: "diverged"})),
        side(cell_rows(draw=2, status={1: "diverged"})),
    )
    assert only_cell(both).verdict == "unchanged"
    assert any("baseline seed(s) 1" in n for n in only_cell(both).notes)


def test_a_cell_that_now_fails_on_every_seed_fails_and_one_not_run_is_not_comparable():
    failed = compare_results(
        side(cell_rows(draw=1)), side(cell_rows(draw=2, status=dict.fromkeys((0, 1, 2), "failed")))
    )
    cell = only_cell(failed)
    assert cell.verdict == "failed" and "loss exploded" in cell.reason
    assert failed.exit_code == 1
    unavailable = compare_results(
        side(cell_rows(draw=1)),
        side(cell_rows(draw=2, status=dict.fromkeys((0, 1, 2), "unavailable"))),
    )
    cell = only_cell(unavailable)
    assert cell.verdict == "not comparable" and cell.reason.startswith("candidate: unavailable")
    assert unavailable.exit_code == 2


def test_quality_regressions_are_reported_and_fail_only_when_asked():
    base = side(cell_rows(draw=1), n_test={"moons_2x5": 500})
    cand = side(cell_rows(draw=2, accuracy=0.80, elbo=0.40), n_test={"moons_2x5": 500})
    report = compare_results(base, cand)
    cell = only_cell(report)
    assert cell.quality_regression and cell.verdict == "unchanged"
    assert cell.metric("accuracy").verdict == "worse"
    assert cell.metric("neg_elbo_per_datum").verdict == "worse"
    assert "quality regression" in cell.reason
    assert report.exit_code == 0 and "--fail-on-quality" in render(report, "text")
    strict = compare_results(base, cand, Options(fail_on_quality=True))
    assert strict.exit_code == 1


def test_an_accuracy_drop_within_the_binomial_noise_is_no_regression():
    base = side(cell_rows(draw=1, seeds=(0,)), n_test={"moons_2x5": 500})
    cand = side(cell_rows(draw=2, seeds=(0,), accuracy=0.94), n_test={"moons_2x5": 500})
    cell = only_cell(compare_results(base, cand))
    assert cell.metric("accuracy").verdict == "unchanged" and not cell.quality_regression


def test_memory_and_predictive_are_reported_not_gated():
    rows, traces = cell_rows(draw=2)
    for r in rows:
        r["predict_s"] *= 3
        r["peak_rss_mb"] *= 2
    cell = only_cell(compare_results(side(cell_rows(draw=1)), side((rows, traces))))
    assert cell.metric("predict_s").verdict == "slower"
    assert cell.metric("peak_memory_mb").verdict == "worse"
    assert cell.verdict == "unchanged" and "not gated" in cell.reason


def test_invalid_options_raise():
    with pytest.raises(CompareInputError, match="threshold"):
        compare_results(side(cell_rows()), side(cell_rows()), Options(threshold=-1))
    with pytest.raises(CompareInputError, match="alpha"):
        compare_results(side(cell_rows()), side(cell_rows()), Options(alpha=1.5))


# ---------------------------------------------------------------------------- formats
def test_formats_are_reproducible_and_json_has_its_schema():
    base = side(cell_rows(draw=1), cell_rows(backend="pyro", draw=1))
    cand = side(cell_rows(draw=2, step_ms=1.5), cell_rows(backend="numpyro", draw=2))
    report = compare_results(base, cand)
    for fmt in OUTPUT_FORMATS:
        assert render(report, fmt) == render(compare_results(base, cand), fmt)
    doc = json.loads(render(report, "json"))
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    assert doc["kind"] == "results" and doc["exit_code"] == 1
    assert doc["thresholds"]["step_ms"] == 0.10 and doc["thresholds"]["compile_s"] == 0.5
    slower = next(c for c in doc["cells"] if c["verdict"] == "slower")
    step = next(m for m in slower["metrics"] if m["metric"] == "step_ms")
    assert set(step["ratio"]) == {"estimate", "low", "high"} and step["p_value"] < 0.01
    missing = [c for c in doc["cells"] if c["verdict"] == "missing"]
    assert {c["side"] for c in missing} == {"baseline only", "candidate only"}
    markdown = render(report, "markdown")
    assert "| cell | seeds |" in markdown and "Exit 1" in markdown
    text = render(report, "text")
    assert "moons_2x5 pymc matched cpu" in text and "slower" in text
    with pytest.raises(ValueError, match="unknown format"):
        render(report, "html")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- benchmarks
def bench_doc(
    medians: dict[str, float],
    *,
    rounds: int = 15,
    sd: float = 0.01,
    save_data: bool = True,
    cpu: str = "AMD EPYC",
    steps_per_call: int = 200,
    draw: int = 0,
) -> dict:
    """A pytest-benchmark JSON document (the keys the real files have)."""
    benchmarks = []
    for name, median in medians.items():
        rng = np.random.default_rng([draw, len(name)])
        data = median * (1 + sd * rng.standard_normal(rounds))
        q1, med, q3 = np.quantile(data, [0.25, 0.5, 0.75])
        stats = {
            "min": float(data.min()),
            "max": float(data.max()),
            "mean": float(data.mean()),
            "stddev": float(data.std(ddof=1)),
            "rounds": rounds,
            "median": float(med),
            "iqr": float(q3 - q1),
            "q1": float(q1),
            "q3": float(q3),
            "iqr_outliers": 0,
            "stddev_outliers": 1,
            "outliers": "1;0",
            "ld15iqr": float(data.min()),
            "hd15iqr": float(data.max()),
            "ops": float(1 / data.mean()),
            "total": float(data.sum()),
            "iterations": 1,
        }
        if save_data:
            stats["data"] = [float(x) for x in data]
        benchmarks.append(
            {
                "group": "train moons_2x5",
                "name": name,
                "fullname": f"benchmarks/perf/test_perf.py::{name}",
                "params": {"model": "moons_2x5", "backend": name},
                "param": name,
                "extra_info": {"steps_per_call": steps_per_call, "device": "cpu"},
                "options": {"disable_gc": False, "timer": "perf_counter", "warmup": False},
                "stats": stats,
            }
        )
    return {
        "machine_info": {"node": "vm", "machine": "x86_64", "cpu": {"brand_raw": cpu, "count": 2}},
        "commit_info": {"id": f"{draw:040d}", "dirty": False, "project": "bnnbench"},
        "benchmarks": benchmarks,
        "datetime": f"2026-12-0{1 + draw}T00:00:00",
        "version": "5.3.1",
    }


NAMES = ("test_train[moons_2x5-pymc]", "test_train[moons_2x5-pyro]")


@pytest.mark.parametrize("save_data", [True, False])
def test_benchmarks_slower_and_unchanged(save_data):
    base = bench_doc(dict.fromkeys(NAMES, 0.02), draw=1, save_data=save_data)
    cand = bench_doc({NAMES[0]: 0.03, NAMES[1]: 0.02}, draw=2, save_data=save_data)
    report = compare_benchmarks(base, cand)
    by_name = {c.name: c for c in report.cells}
    slow = by_name[NAMES[0]]
    assert slow.verdict == "slower" and report.exit_code == 1
    m = slow.metrics[0]
    assert m.metric == "step_ms" and m.baseline.estimate == pytest.approx(0.1, rel=0.05)
    same = by_name[NAMES[1]].metrics[0]
    if save_data:
        assert same.verdict == "unchanged" and "Mann-Whitney U on the rounds" in same.test
    else:  # the summary's conservative bounds: min/max of 15 rounds
        assert same.verdict in ("unchanged", "inconclusive")
        assert "summary statistics only" in same.test and "--benchmark-save-data" in same.note
        assert same.ratio.low <= min(m.ratio.low, 1.0)  # wider than with the data


def test_summary_bounds_are_wider_than_the_data_tests():
    base, cand = bench_doc({NAMES[0]: 0.02}, draw=1), bench_doc({NAMES[0]: 0.021}, draw=2)
    with_data = compare_benchmarks(base, cand).cells[0].metrics[0]
    for doc in (base, cand):
        del doc["benchmarks"][0]["stats"]["data"]
    summary = compare_benchmarks(base, cand).cells[0].metrics[0]
    assert summary.ratio.low <= with_data.ratio.low and summary.ratio.high >= with_data.ratio.high
    assert summary.p_value >= with_data.p_value


def test_the_same_benchmark_file_is_unchanged():
    doc = bench_doc(dict.fromkeys(NAMES, 0.02), save_data=False)
    report = compare_benchmarks(doc, copy.deepcopy(doc))
    assert report.counts == {"unchanged": 2} and report.exit_code == 0


def test_benchmarks_of_another_cpu_or_settings_are_not_comparable():
    base = bench_doc({NAMES[0]: 0.02}, draw=1)
    other_cpu = compare_benchmarks(base, bench_doc({NAMES[0]: 0.02}, draw=2, cpu="Intel Xeon"))
    assert "cpu 'AMD EPYC' vs 'Intel Xeon'" in other_cpu.cells[0].reason
    assert other_cpu.exit_code == 2
    allowed = compare_benchmarks(
        base,
        bench_doc({NAMES[0]: 0.02}, draw=2, cpu="Intel Xeon"),
        Options(allow_other_machine=True),
    )
    assert allowed.cells[0].verdict == "unchanged"
    steps = compare_benchmarks(base, bench_doc({NAMES[0]: 0.02}, draw=2, steps_per_call=100))
    assert steps.cells[0].reason == "settings differ: steps_per_call 200 vs 100"


def test_a_benchmark_on_one_side_is_missing():
    report = compare_benchmarks(
        bench_doc(dict.fromkeys(NAMES, 0.02), draw=1), bench_doc({NAMES[0]: 0.02}, draw=2)
    )
    missing = next(c for c in report.cells if c.verdict == "missing")
    assert missing.name == NAMES[1] and missing.side == "baseline only"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "not a pytest-benchmark JSON file"),
        ({"benchmarks": []}, "holds no benchmarks"),
        ({"benchmarks": [{"name": "x"}]}, "has no 'name' or 'stats'"),
        ({"benchmarks": [{"name": "x", "stats": {"rounds": 3}}]}, "no stats.median"),
    ],
)
def test_documents_that_are_not_benchmarks_raise(doc, message):
    with pytest.raises(CompareInputError, match=message):
        compare_benchmarks(doc, bench_doc({NAMES[0]: 0.02}))


# ---------------------------------------------------------------------------- evidence
def test_min_mann_whitney_p():
    assert ev.min_mann_whitney_p(3, 3) == pytest.approx(0.1)
    assert ev.min_mann_whitney_p(5, 5) == pytest.approx(2 / 252)
    assert ev.mann_whitney_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    assert ev.mann_whitney_p([1.0, 1.0], [1.0, 1.0]) == 1.0
    assert math.isnan(ev.mann_whitney_p([], [1.0]))


def test_welch_log_ratio():
    ratio, p = ev.welch_log_ratio([2.0, 2.2, 1.8], [1.0, 1.1, 0.9])
    assert ratio.estimate == pytest.approx(2.0, rel=1e-3) and ratio.low > 1.5 and p < 0.01
    same, p_same = ev.welch_log_ratio([1.0, 1.1, 0.9], [1.0, 1.1, 0.9])
    assert same.estimate == pytest.approx(1.0) and same.low < 1 < same.high and p_same > 0.99
    one, p_one = ev.welch_log_ratio([2.0], [1.0, 1.1])
    assert one.estimate == pytest.approx(2 / math.sqrt(1.1)) and math.isnan(one.low)
    assert math.isnan(p_one)
    flat, p_flat = ev.welch_log_ratio([1.0, 1.0], [1.0, 1.0])
    assert (flat.low, flat.high, p_flat) == (1.0, 1.0, 1.0)


def summary_of(data: np.ndarray) -> ev.RoundSummary:
    q1, med, q3 = np.quantile(data, [0.25, 0.5, 0.75])
    return ev.RoundSummary(len(data), float(data.min()), q1, med, q3, float(data.max()))


@pytest.mark.parametrize("n", [3, 5, 10, 15, 40])
def test_the_summary_p_bound_is_never_below_the_data_test(n):
    rng = np.random.default_rng(n)
    for shift in (0.0, 0.5, 1.0, 3.0):
        a, b = rng.standard_normal(n) + shift, rng.standard_normal(n)
        bound = ev.mann_whitney_p_bound_from_summary(summary_of(a), summary_of(b))
        assert bound >= ev.mann_whitney_p(a, b) - 1e-9


def test_the_summary_p_bound_of_separate_rounds_is_exact():
    a, b = np.arange(5.0) + 10, np.arange(5.0)
    assert ev.mann_whitney_p_bound_from_summary(summary_of(a), summary_of(b)) == pytest.approx(
        2 / 252
    )


def test_median_bounds_from_summary():
    data = np.arange(1.0, 16.0)
    assert ev.median_bounds_from_summary(summary_of(data)) == (1.0, 15.0)  # min/max at 15
    many = np.arange(1.0, 101.0)
    low, high = ev.median_bounds_from_summary(summary_of(many))
    assert (low, high) == tuple(np.quantile(many, [0.25, 0.75]))


def test_bootstrap_median_ratio_is_reproducible():
    a, b = np.linspace(1.9, 2.1, 15), np.linspace(0.9, 1.1, 15)
    one = ev.bootstrap_median_ratio(a, b, ev.rng_for(1, "a"), ev.rng_for(1, "b"))
    two = ev.bootstrap_median_ratio(a, b, ev.rng_for(1, "a"), ev.rng_for(1, "b"))
    assert one == two and one.estimate == pytest.approx(2.0) and one.low > 1.8


def test_a_compile_benchmark_is_judged_against_the_compile_threshold():
    """1.3x slower: a regression for a step (10 %), not for a compile (50 %); 2x is both."""
    name = "test_compile[pymc]"

    def docs(factor: float) -> tuple[dict, dict]:
        base, cand = bench_doc({name: 1.0}, draw=1), bench_doc({name: factor}, draw=2)
        for doc in (base, cand):
            doc["benchmarks"][0]["extra_info"] = {"kind": "compile", "device": "cpu"}
        return base, cand

    moderate = compare_benchmarks(*docs(1.3)).cells[0]
    assert moderate.metrics[0].metric == "compile_ms" and moderate.metrics[0].threshold == 0.5
    assert moderate.verdict != "slower"
    assert compare_benchmarks(*docs(2.0)).cells[0].verdict == "slower"
    step_base, step_cand = bench_doc({NAMES[0]: 1.0}, draw=1), bench_doc({NAMES[0]: 1.3}, draw=2)
    assert compare_benchmarks(step_base, step_cand).cells[0].verdict == "slower"
