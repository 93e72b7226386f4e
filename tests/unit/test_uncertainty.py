"""Uncertainty metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnnbench import uncertainty as u


def _agreeing_draws(S: int = 4) -> np.ndarray:
    """One point, every draw (0.8, 0.1, 0.1)."""
    return np.tile(np.array([0.8, 0.1, 0.1]), (S, 1, 1))


# ----------------------------------------------------------------------------- entropy, MI


def test_all_draws_agree():
    proba = _agreeing_draws(S=4)
    h = -(0.8 * math.log(0.8) + 2 * 0.1 * math.log(0.1))
    np.testing.assert_allclose(u.predictive_entropy(proba), [h], rtol=1e-12)
    np.testing.assert_allclose(u.expected_entropy(proba), [h], rtol=1e-12)
    np.testing.assert_allclose(u.mutual_information(proba), [0.0], atol=1e-12)
    labels = np.zeros((4, 1), np.int64)
    point = u.per_point_uncertainty(proba, labels, n_classes=3)
    assert point["chi2"][0] == pytest.approx(4 * (3 - 1))  # S (K - 1) = 8
    assert point["accepted"].tolist() == [True]
    assert point["median_max"][0] == pytest.approx(0.8)
    assert u.reject_option(proba).predicted.tolist() == [0]


def test_one_hot_draws_use_zero_log_zero():
    proba = np.tile(np.array([0.0, 1.0, 0.0]), (3, 2, 1))
    assert np.all(np.isfinite(u.predictive_entropy(proba)))
    np.testing.assert_array_equal(u.predictive_entropy(proba), [0.0, 0.0])
    np.testing.assert_array_equal(u.mutual_information(proba), [0.0, 0.0])


def test_all_classes_tie_ten_classes():
    K = S = 10
    proba = np.full((S, 1, K), 1 / K)
    np.testing.assert_allclose(u.predictive_entropy(proba), [math.log(K)], rtol=1e-12)
    np.testing.assert_allclose(u.mutual_information(proba), [0.0], atol=1e-12)
    labels = np.arange(S)[:, None]  # one vote per class
    point = u.per_point_uncertainty(proba, labels, n_classes=K)
    assert point["chi2"][0] == pytest.approx(0.0)
    rejected = u.reject_option(proba, np.array([0]), threshold=0.2)
    assert rejected.accepted.tolist() == [False]  # 0.1 <= 0.2
    assert rejected.refusal_rate == 1.0
    assert math.isnan(rejected.accepted_accuracy)


def test_all_classes_tie_two_classes_is_accepted():
    proba = np.full((4, 1, 2), 0.5)
    np.testing.assert_allclose(u.predictive_entropy(proba), [math.log(2)], rtol=1e-12)
    assert u.reject_option(proba, threshold=0.2).accepted.tolist() == [True]  # 0.5 > 0.2
    # the same as binary p(y = 1) = 0.5
    assert u.reject_option(np.full((4, 1), 0.5)).accepted.tolist() == [True]


def test_single_draw():
    proba = np.array([[[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]])  # S = 1, n = 2
    np.testing.assert_array_equal(u.mutual_information(proba), [0.0, 0.0])
    result = u.reject_option(proba, np.array([0, 1]))
    np.testing.assert_allclose(result.median_max, [0.6, 0.6])
    assert result.predicted.tolist() == [0, 2]
    assert result.accepted_accuracy == 0.5


def test_disagreeing_confident_draws_have_mi_log_two():
    proba = np.array([[1.0], [0.0]])  # binary: one draw says 1, the other 0
    np.testing.assert_allclose(u.predictive_entropy(proba), [math.log(2)])
    np.testing.assert_array_equal(u.expected_entropy(proba), [0.0])
    np.testing.assert_allclose(u.mutual_information(proba), [math.log(2)])


def test_mutual_information_is_never_negative():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=(7, 50)).astype(np.float32)
    mi = u.mutual_information(proba)
    assert mi.shape == (50,) and np.all(mi >= 0)
    np.testing.assert_allclose(
        mi, u.predictive_entropy(proba) - u.expected_entropy(proba), atol=1e-6
    )


# -------------------------------------------------------------------------------------- AUROC


def test_error_detection_auroc_known_ranking():
    score = np.array([0.1, 0.4, 0.35, 0.8])
    correct = np.array([True, True, False, False])
    # errors {0.35, 0.8} above correct {0.1, 0.4} in 3 of 4 pairs
    assert u.error_detection_auroc(score, correct, "error") == pytest.approx(0.75)
    # correct above errors in 1 of 4 pairs
    assert u.error_detection_auroc(score, correct, "correct") == pytest.approx(0.25)
    assert u.error_detection_auroc(np.ones(4), correct) == pytest.approx(0.5)  # ties


def test_error_detection_auroc_one_class_is_nan():
    assert math.isnan(u.error_detection_auroc(np.arange(3.0), np.ones(3, bool)))
    assert math.isnan(u.error_detection_auroc(np.arange(3.0), np.zeros(3, bool), "correct"))
    with pytest.raises(ValueError):
        u.error_detection_auroc(np.arange(2.0), np.array([True, False]), "wrong")


def test_ood_auroc_known_ranking():
    score_in, score_out = np.array([0.1, 0.2]), np.array([0.3, 0.15])
    assert u.ood_auroc(score_in, score_out, "ood") == pytest.approx(0.75)
    assert u.ood_auroc(score_in, score_out, "in") == pytest.approx(0.25)
    assert math.isnan(u.ood_auroc(score_in, np.array([])))


# ------------------------------------------------------------------------------ reject option


def test_reject_uses_per_class_medians():
    # class 0 medians: point 0 -> median 0.9 (mean 0.6); point 1 -> per-class medians 0.5 each
    proba = np.array(
        [
            [[0.9, 0.1, 0.0], [0.5, 0.5, 0.0]],
            [[0.9, 0.1, 0.0], [0.5, 0.0, 0.5]],
            [[0.0, 0.0, 1.0], [0.0, 0.5, 0.5]],
        ]
    )
    result = u.reject_option(proba, np.array([0, 1]), threshold=0.45)
    np.testing.assert_allclose(result.median_max, [0.9, 0.5])
    assert result.accepted.tolist() == [True, True]
    assert result.predicted.tolist() == [0, 0]  # a tie of medians goes to the first class
    assert result.accepted_accuracy == 0.5
    assert u.reject_option(proba, threshold=0.5).accepted.tolist() == [True, False]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_threshold_is_strict(dtype):
    proba = np.full((3, 1, 5), 0.2, dtype)  # median exactly 0.2
    assert u.reject_option(proba, threshold=0.2).accepted.tolist() == [False]
    assert u.reject_option(proba, threshold=0.19).accepted.tolist() == [True]
    curve = u.accuracy_coverage_curve(proba, np.array([0]), thresholds=np.array([0.2]))
    assert curve["coverage"].tolist() == [0.0]


def test_accuracy_coverage_curve_by_hand():
    # S = 1, binary p(y = 1): median max 0.9, 0.7, 0.5 ... -> point 2 has class 0 median 0.5
    proba = np.array([[0.9, 0.3, 0.5, 0.7]])
    y = np.array([1, 1, 0, 1])  # predicted 1, 0, 0 (tie), 1 -> correct, wrong, correct, correct
    curve = u.accuracy_coverage_curve(proba, y, thresholds=np.array([0.0, 0.6, 0.8, 0.95]))
    assert list(curve.columns) == ["threshold", "coverage", "accuracy"]
    np.testing.assert_allclose(curve["coverage"], [1.0, 0.75, 0.25, 0.0])
    np.testing.assert_allclose(curve["accuracy"], [0.75, 2 / 3, 1.0, np.nan])
    default = u.accuracy_coverage_curve(proba, y)
    assert len(default) == 51 and np.all(np.diff(default["coverage"]) <= 0)


# -------------------------------------------------------------------------------- calibration

_MEAN = np.array([[0.9, 0.1], [0.3, 0.7], [0.65, 0.35], [0.0, 1.0]])
_Y = np.array([0, 0, 0, 1])


def test_brier_by_hand():
    # 2 * 0.1^2 + 2 * 0.7^2 + 2 * 0.35^2 + 0 = 1.245 over 4 points
    assert u.brier_score(_MEAN, _Y) == pytest.approx(0.31125)
    assert u.brier_score(_MEAN[:, 1], _Y) == pytest.approx(0.31125)  # binary form


def test_ece_by_hand():
    # 5 bins; [0.6, 0.8): conf 0.7 (wrong), 0.65 (right) -> |0.5 - 0.675| = 0.175
    # [0.8, 1.0]: conf 0.9, 1.0 (both right) -> |1 - 0.95| = 0.05; ECE = 0.5 * 0.175 + 0.5 * 0.05
    assert u.expected_calibration_error(_MEAN, _Y, n_bins=5) == pytest.approx(0.1125)
    table = u.reliability_diagram(_MEAN, _Y, n_bins=5)
    assert list(table.columns) == ["bin_lower", "bin_upper", "count", "mean_confidence", "accuracy"]
    assert table["count"].tolist() == [0, 0, 0, 2, 2]
    np.testing.assert_allclose(table["mean_confidence"][3:], [0.675, 0.95])
    np.testing.assert_allclose(table["accuracy"][3:], [0.5, 1.0])
    assert table["accuracy"][:3].isna().all()
    np.testing.assert_allclose(table["bin_lower"], [0.0, 0.2, 0.4, 0.6, 0.8])


def test_confidence_one_goes_to_last_bin():
    table = u.reliability_diagram(np.array([[1.0, 0.0]]), np.array([0]))
    assert len(table) == 15 and table["count"].iloc[-1] == 1
    assert u.expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == 0.0


# ------------------------------------------------------------------------------- entry points


def test_uncertainty_summary_by_hand():
    proba = np.array(
        [
            [[0.9, 0.1], [1.0, 0.0]],
            [[0.9, 0.1], [0.0, 1.0]],
        ]
    )  # point 0: confident, agreeing; point 1: draws disagree, mean (0.5, 0.5) -> class 0
    labels = np.array([[0, 0], [0, 1]])
    y = np.array([0, 1])  # point 0 correct, point 1 an error
    out = u.uncertainty_summary(y, proba, labels, n_classes=2)
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    expected = {
        "chi2_auroc": 1.0,  # chi2 = 2 (correct) vs 0 (error)
        "entropy_auroc": 1.0,  # ln 2 (error) vs H(0.9)
        "mi_auroc": 1.0,  # ln 2 vs 0
        "refusal_rate": 0.0,  # medians 0.9 and 0.5 > 0.2
        "accepted_accuracy": 0.5,  # point 1's medians tie -> class 0, wrong
        "brier": (0.02 + 0.5) / 2,
        "ece": 0.5 * 0.1 + 0.5 * 0.5,  # bins of 0.9 (acc 1) and 0.5 (acc 0)
        "mean_entropy_nats": (h + math.log(2)) / 2,
        "mean_mi_nats": math.log(2) / 2,
    }
    assert set(out) == set(expected)
    for key, value in expected.items():
        assert out[key] == pytest.approx(value), key


def test_ood_summary_by_hand():
    S = K = 10
    inside = np.full((S, 2, K), 0.01)
    inside[:, :, 3] = 0.91
    in_labels = np.full((S, 2), 3)
    outside = np.empty((S, 2, K))
    outside[:, 0] = 1 / K  # every draw uniform: MI 0
    outside[:, 1] = np.eye(K)  # draw s certain of class s: MI ln 10, every median 0
    out_labels = np.tile(np.arange(S)[:, None], (1, 2))  # even votes: chi2 0
    out = u.ood_summary(inside, in_labels, outside, out_labels, n_classes=K)
    assert set(out) == {"refusal_rate", "entropy_auroc", "mi_auroc", "chi2_auroc"}
    assert out["refusal_rate"] == 1.0
    assert out["entropy_auroc"] == pytest.approx(1.0)  # ln 10 vs H(0.91, 9 x 0.01)
    assert out["mi_auroc"] == pytest.approx(0.75)  # out MI (0, ln 10) vs in (0, 0): 2 ties
    assert out["chi2_auroc"] == pytest.approx(1.0)  # in 90 vs out 0


def test_binary_input_matches_two_class_form():
    rng = np.random.default_rng(1)
    p = rng.random((5, 40))
    two = np.stack([1 - p, p], axis=-1)
    labels = (rng.random((5, 40)) < p).astype(np.int64)
    y = rng.integers(0, 2, 40)
    for key, value in u.per_point_uncertainty(p, labels, 2).items():
        np.testing.assert_allclose(value, u.per_point_uncertainty(two, labels, 2)[key])
    binary, multi = (u.uncertainty_summary(y, x, labels, 2) for x in (p, two))
    assert binary == pytest.approx(multi, nan_ok=True)
    assert u.ood_summary(p, labels, p[:, ::-1], labels, 2) == pytest.approx(
        u.ood_summary(two, labels, two[:, ::-1], labels, 2)
    )
    pd_binary = u.accuracy_coverage_curve(p, y)
    np.testing.assert_allclose(pd_binary, u.accuracy_coverage_curve(two, y))
