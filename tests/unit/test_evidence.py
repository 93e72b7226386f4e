"""bnnbench.evidence: step times from traces, the two-level bootstrap, ties, crossovers, ranks."""

import math

import numpy as np
import pandas as pd
import pytest

from bnnbench import evidence as ev


def _trace(run_id, chunk_ms, every=100):
    """A stored trace whose chunk c took ``chunk_ms[c]`` ms per step."""
    steps = every * np.arange(1, len(chunk_ms) + 1)
    wall = np.cumsum(np.asarray(chunk_ms) * every / 1000.0)
    return pd.DataFrame(
        {"run_id": run_id, "step": steps, "wall_s": wall, "neg_elbo_per_datum": 1.0 / steps}
    )


def test_chunk_step_times_are_differences_from_zero():
    chunks = ev.chunk_step_times(_trace("r", [5.0, 2.0, 2.5]))
    assert list(chunks["chunk"]) == [1, 2, 3]
    assert list(chunks["steps"]) == [100, 100, 100]
    np.testing.assert_allclose(chunks["step_ms"], [5.0, 2.0, 2.5])
    np.testing.assert_allclose(chunks["seconds"], [0.5, 0.2, 0.25])


def test_chunk_step_times_handle_a_partial_last_chunk_and_unordered_rows():
    trace = pd.DataFrame(
        {"run_id": "r", "step": [250, 100, 200], "wall_s": [0.3, 0.1, 0.2]}
    )  # the last chunk has 50 steps
    chunks = ev.chunk_step_times(trace)
    np.testing.assert_allclose(chunks["steps"], [100, 100, 50])
    np.testing.assert_allclose(chunks["step_ms"], [1.0, 1.0, 2.0])


def test_seed_timing_counts_the_first_chunks_excess_as_warm_up():
    record = dict(run_id="r", seed=0, transfer_s=float("nan"), compile_s=2.0, predict_s=1.0)
    timing = ev.seed_timing(record, ev.chunk_step_times(_trace("r", [13.0, 2.0, 2.0, 2.0])))
    assert timing.chunk_step_ms == pytest.approx((2.0, 2.0, 2.0))
    assert timing.warmup_s == pytest.approx(100 * (13.0 - 2.0) / 1000)
    assert timing.transfer_s == 0.0  # not recorded: counts as nothing
    assert timing.fixed_s == pytest.approx(2.0 + 1.1 + 1.0)
    # two chunks: no steady state to compare with, no warm-up
    short = ev.seed_timing(record, ev.chunk_step_times(_trace("r", [13.0, 2.0])))
    assert short.warmup_s == 0.0 and short.chunk_step_ms == pytest.approx((13.0, 2.0))


def test_seed_timing_without_a_trace_uses_the_record():
    record = dict(
        run_id="r", seed=1, compile_s=1.0, predict_s=0.5, step_ms=2.0, fit_s=2.5, steps=1000
    )
    timing = ev.seed_timing(record, None)
    assert timing.chunk_step_ms == (2.0,)
    assert timing.warmup_s == pytest.approx(0.5)


def _timings(chunk_sets, fixed=1.0):
    return [
        ev.SeedTiming(f"r{i}", i, 0.0, fixed, 0.0, 0.0, tuple(chunks))
        for i, chunks in enumerate(chunk_sets)
    ]


def test_cost_model_is_the_line_through_fixed_and_step():
    model = ev.bootstrap_cost_model(
        _timings([[2.0, 2.0, 2.0]] * 3, fixed=4.0), np.random.default_rng(0), 500
    )
    assert model.end_to_end_s(1000) == pytest.approx(4.0 + 2.0)
    # no noise: every replicate is the estimate
    interval = model.end_to_end_interval(1000)
    assert interval.low == pytest.approx(6.0) and interval.high == pytest.approx(6.0)
    assert model.steps_within(10.0) == pytest.approx(3000)
    assert model.steps_within(3.0) == 0.0  # the fixed costs alone exceed the budget


def test_bootstrap_is_reproducible_and_covers_the_spread():
    rng = np.random.default_rng(1)
    seeds = [list(2.0 + 0.2 * rng.standard_normal(20)) for _ in range(3)]
    a = ev.bootstrap_cost_model(_timings(seeds), ev.rng_for(7, "pyro"), 1000)
    b = ev.bootstrap_cost_model(_timings(seeds), ev.rng_for(7, "pyro"), 1000)
    np.testing.assert_array_equal(a.step_ms_boot, b.step_ms_boot)
    interval = ev.Interval.of_replicates(a.step_ms, a.step_ms_boot)
    assert interval.low < a.step_ms < interval.high
    assert interval.high - interval.low < 0.5


def test_rng_for_depends_on_the_key_only():
    x = ev.rng_for(3, "numpyro").random(4)
    assert np.array_equal(x, ev.rng_for(3, "numpyro").random(4))
    assert not np.array_equal(x, ev.rng_for(3, "pymc").random(4))


def test_compare_replicates_separates_and_ties():
    rng = np.random.default_rng(0)
    fast, slow = 1.0 + 0.01 * rng.standard_normal(1000), 2.0 + 0.01 * rng.standard_normal(1000)
    clear = ev.compare_replicates(1.0, fast, 2.0, slow, n_seeds=(3, 3))
    assert not clear.tie and clear.difference.high < 0
    assert clear.ratio.estimate == pytest.approx(0.5)
    assert clear.confidence == "high"
    noisy = ev.compare_replicates(1.0, 1.0 + 0.3 * rng.standard_normal(1000), 1.2, slow - 0.8)
    assert noisy.tie and noisy.confidence == "low"
    # 3 % apart with tight intervals: inside the run-to-run margin, a tie
    close = ev.compare_replicates(1.0, fast, 1.03, fast + 0.03)
    assert close.tie
    assert not ev.compare_replicates(1.0, fast, 1.03, fast + 0.03, rel_margin=0.0).tie


def test_welch_rule_is_the_one_of_evaluate():
    from bnnbench.evaluate import EQUIVALENCE_Z, equivalent_over_seeds

    assert ev.SEED_Z == EQUIVALENCE_Z
    rng = np.random.default_rng(2)
    for _ in range(50):
        a = rng.normal(0, 1, rng.integers(2, 6))
        b = rng.normal(rng.normal(0, 2), 1, rng.integers(2, 6))
        ours = abs(a.mean() - b.mean()) <= ev.welch_tolerance(a, b)
        assert ours == equivalent_over_seeds(a, b, atol=0.0).ok
        assert ev.compare_per_seed(a, b).tie == ours


def test_compare_per_seed_with_one_seed_tests_only_the_sampling_error():
    se = math.hypot(ev.binomial_se(0.95, 10_000), ev.binomial_se(0.94, 10_000))
    cmp = ev.compare_per_seed([0.95], [0.94], sampling_se=se, sampling_name="binomial")
    assert cmp.confidence == "low" and "one seed" in cmp.test
    assert not cmp.tie  # 0.01 apart, ~3.2 standard errors
    assert ev.compare_per_seed([0.95], [0.948], sampling_se=se).tie
    # a relative margin (memory)
    assert ev.compare_per_seed([1000.0], [1040.0], rel_margin=0.05).tie
    assert not ev.compare_per_seed([1000.0], [1100.0], rel_margin=0.05).tie


def test_binomial_se():
    assert ev.binomial_se(0.9, 100) == pytest.approx(0.03)
    assert math.isnan(ev.binomial_se(0.9, 0))


def test_hanley_mcneil_matches_the_spread_of_simulated_aurocs():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    n_pos, n_neg = 60, 240
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    aucs = [
        roc_auc_score(y, np.r_[rng.normal(1.0, 1, n_pos), rng.normal(0.0, 1, n_neg)])
        for _ in range(600)
    ]
    se = ev.hanley_mcneil_se(float(np.mean(aucs)), n_pos, n_neg)
    assert se == pytest.approx(np.std(aucs), rel=0.2)


def test_crossover_steps():
    # a compiles in 1 s and steps in 2 ms; b in 5 s and 1 ms: equal at 4,000 steps
    n = ev.crossover_steps(1.0, 2.0, 5.0, 1.0)
    assert n == pytest.approx(4000)
    assert 1.0 + n * 2.0 / 1000 == pytest.approx(5.0 + n * 1.0 / 1000)
    assert ev.crossover_steps(5.0, 1.0, 1.0, 2.0) == pytest.approx(4000)
    assert math.isnan(ev.crossover_steps(1.0, 1.0, 5.0, 2.0))  # a is ahead everywhere
    assert math.isnan(ev.crossover_steps(1.0, 1.0, 1.0, 2.0))


def test_tiers_group_ties_and_never_decrease_along_the_order():
    values = [2.01, 1.0, 1.05, 2.0, float("nan")]
    tiers = ev.tiers(values, lambda i, j: abs(values[i] - values[j]) < 0.1, higher_is_better=False)
    assert tiers == [1, 0, 0, 1, 2]
    # leader-based: 1.0 ~ 1.08 and 1.08 ~ 1.16, but 1.16 is not within 0.1 of the leader 1.0
    chain = [1.0, 1.08, 1.16]
    assert ev.tiers(chain, lambda i, j: abs(chain[i] - chain[j]) < 0.1, higher_is_better=False) == [
        0,
        0,
        1,
    ]
    higher = [0.9, 0.95]
    assert ev.tiers(higher, lambda i, j: False, higher_is_better=True) == [1, 0]


def test_pareto_front():
    front = ev.pareto_front([1.0, 2.0, 3.0, 2.0, float("nan")], [0.8, 0.9, 0.85, 0.9, 1.0])
    # (3, 0.85) is dominated by (2, 0.9); equal points do not dominate each other
    assert front == [True, True, False, True, False]
