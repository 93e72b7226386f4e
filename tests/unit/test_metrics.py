import numpy as np
import pytest

from bnnbench import metrics


def test_predictive_mean_averages_draws():
    proba = np.array([[0.2, 0.9], [0.4, 0.7]])
    np.testing.assert_allclose(metrics.predictive_mean(proba), [0.3, 0.8])


def test_accuracy_thresholds_at_one_half():
    assert metrics.accuracy(np.array([0, 1, 1, 0]), np.array([0.4, 0.6, 0.2, 0.51])) == 0.5


def test_nll_is_mean_negative_log_predictive():
    y = np.array([1, 0])
    p = np.array([0.8, 0.3])
    expected = -(np.log(0.8) + np.log(0.7)) / 2
    assert metrics.negative_log_likelihood(y, p) == pytest.approx(expected)


def test_nll_is_finite_for_certain_wrong_predictions():
    assert np.isfinite(metrics.negative_log_likelihood(np.array([1]), np.array([0.0])))
