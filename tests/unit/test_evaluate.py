"""The evaluate stage: pure functions, and figures recomputed from stored artifacts alone."""

from pathlib import Path

import numpy as np
import pytest

from bnnbench import metrics, uncertainty
from bnnbench.evaluate import equivalent_over_seeds, step_timing
from bnnbench.results import load, open_artifacts

DEFAULT = Path(__file__).resolve().parents[2] / "results" / "default"


def test_step_timing_is_the_median_over_full_chunks():
    timing = step_timing([10, 10, 10, 5], [0.010, 0.030, 0.020, 1.0], trace_every=10)
    assert timing["step_ms"] == pytest.approx(2.0)  # the 5-step remainder is left out
    assert timing["step_ms_iqr"] == pytest.approx(1.0)


def test_equivalence_over_seeds_accepts_noise_and_rejects_a_shift():
    rng = np.random.default_rng(0)
    a = 1.0 + 0.01 * rng.standard_normal(5)
    assert equivalent_over_seeds(a, a).ok  # bit-identical paths agree
    assert equivalent_over_seeds(a, 1.0 + 0.01 * rng.standard_normal(5)).ok
    shifted = equivalent_over_seeds(a, a + 0.1)
    assert not shifted.ok and shifted.gap == pytest.approx(0.1)
    with pytest.raises(ValueError, match="two seeds"):
        equivalent_over_seeds(a[:1], a)


@pytest.mark.parametrize("backend", ["pymc", "pyro", "numpyro"])
def test_stored_figures_recompute_from_the_predictive_summary(backend):
    """accuracy, NLL, error-detection AUROC and refusal of a committed run, from its
    predictive_summary.nc alone, equal the figures in runs.csv."""
    runs = load(DEFAULT)
    run = runs[(runs["model"] == "moons_2x5") & (runs["backend"] == backend)].iloc[0]
    test = open_artifacts(DEFAULT, run["run_id"])["test"].to_dataset()
    mean, y = test["mean_proba"].values, test["y"].values
    assert metrics.accuracy(y, mean) == pytest.approx(run["accuracy"], abs=1e-6)
    assert metrics.negative_log_likelihood(y, mean) == pytest.approx(run["nll"], rel=1e-5)
    correct = test["correct"].values.astype(bool)
    auroc = uncertainty.error_detection_auroc(test["entropy"].values, correct, "error")
    assert auroc == pytest.approx(run["entropy_auroc"], abs=1e-6)
    refused = 1.0 - test["accepted"].values.mean()
    assert refused == pytest.approx(run["refusal_rate"], abs=1e-6)


def test_time_to_accuracy_is_the_first_checkpoint_at_or_above_each_target():
    from bnnbench.evaluate import time_to_accuracy

    # unsorted on purpose; the curve dips below 0.9 after first reaching it
    steps = np.array([400, 100, 200, 800])
    train_s = np.array([4.0, 1.0, 2.0, 8.0])
    accuracy = np.array([0.88, 0.70, 0.90, 0.93])
    tta = time_to_accuracy(steps, train_s, accuracy, (0.9, 0.93, 0.95))
    assert (tta["90"].status, tta["90"].steps, tta["90"].train_s) == ("reached", 200, 2.0)
    assert (tta["93"].status, tta["93"].steps, tta["93"].train_s) == ("reached", 800, 8.0)
    assert tta["95"].status == "not reached" and np.isnan(tta["95"].steps)
    assert tta["95"].target == 0.95
    empty = time_to_accuracy(np.array([]), np.array([]), np.array([]), (0.9,))
    assert empty["90"].status == "no curve"


def test_the_learning_curve_scores_each_checkpoint_on_its_test_points():
    from bnnbench.evaluate import learning_curve
    from bnnbench.measure import Checkpoint, Measurement, PredictiveDraws

    y = np.array([0, 1, 1])
    right = np.array([[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]])  # every point right
    half = np.array([[[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]])  # the second one wrong
    empty = PredictiveDraws({}, np.zeros((1, 3, 2)), np.zeros((1, 3)))
    m = Measurement(
        "x",
        "float32",
        0.0,
        0.0,
        [10, 10],
        [1.0, 1.0],
        [],
        empty,
        None,
        checkpoints=[Checkpoint(10, half, 0.5), Checkpoint(20, right, 0.25)],
    )
    curve = learning_curve(m, y)
    assert curve["step"] == [10, 20]
    assert curve["curve_accuracy"] == pytest.approx([2 / 3, 1.0])
    assert curve["curve_nll"][1] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.7])))
    assert curve["curve_eval_s"] == [0.5, 0.25] and m.curve_eval_s == 0.75


def test_the_curves_test_points_are_a_fixed_random_subset():
    from bnnbench.measure import CURVE_POINTS, curve_test_indices

    np.testing.assert_array_equal(curve_test_indices(500), np.arange(500))
    idx = curve_test_indices(10_000)
    assert len(idx) == CURVE_POINTS == len(np.unique(idx)) and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, curve_test_indices(10_000))  # the same in every cell
    assert idx.max() > 9_000 and idx.min() < 1_000  # spread over the set, not its head
