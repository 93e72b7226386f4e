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
