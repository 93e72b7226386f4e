import numpy as np
import pytest

from bnnbench import metrics


def test_predictive_mean_averages_draws():
    proba = np.array([[0.2, 0.9], [0.4, 0.7]])
    np.testing.assert_allclose(metrics.predictive_mean(proba), [[0.7, 0.3], [0.2, 0.8]])


def test_accuracy_thresholds_at_one_half():
    assert metrics.accuracy(np.array([0, 1, 1, 0]), np.array([0.4, 0.6, 0.2, 0.51])) == 0.5


def test_nll_is_mean_negative_log_predictive():
    y = np.array([1, 0])
    p = np.array([0.8, 0.3])
    expected = -(np.log(0.8) + np.log(0.7)) / 2
    assert metrics.negative_log_likelihood(y, p) == pytest.approx(expected)


def test_nll_is_finite_for_certain_wrong_predictions():
    assert np.isfinite(metrics.negative_log_likelihood(np.array([1]), np.array([0.0])))


def test_class_probabilities_of_a_binary_model():
    out = metrics.class_probabilities(np.array([[0.25, 1.0]]))
    np.testing.assert_allclose(out, [[[0.75, 0.25], [0.0, 1.0]]])


def test_multiclass_accuracy_and_nll():
    mean = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    y = np.array([0, 1])
    assert metrics.accuracy(y, mean) == 0.5
    assert metrics.negative_log_likelihood(y, mean) == pytest.approx(
        -(np.log(0.7) + np.log(0.3)) / 2
    )


def test_vote_counts():
    labels = np.array([[0, 2], [0, 1], [1, 2]])  # 3 draws, 2 points
    np.testing.assert_array_equal(metrics.vote_counts(labels, 3), [[2, 1, 0], [0, 1, 2]])


def test_chi_square_hand_cases():
    # All S = 10 draws agree among K = 10 classes: 81 + 9 * 1 = 90 = S (K - 1).
    unanimous = np.zeros(10)
    unanimous[3] = 10
    # Every class drawn once: perfectly uniform votes, the least certain, statistic 0.
    tie = np.ones(10)
    # A single draw: its one vote makes the statistic S (K - 1) = 9, the same as unanimity.
    single = np.eye(10)[0]
    stats = metrics.chi_square_of_votes(np.stack([unanimous, tie, single * 1.0]))
    np.testing.assert_allclose(stats, [90.0, 0.0, 9.0])
    # Two of four draws for each of two classes (K = 2): uniform, 0.
    assert metrics.chi_square_of_votes(np.array([[2.0, 2.0]]))[0] == 0.0
