r"""Uncertainty metrics from stored posterior-predictive draws, computed once in the engine.

Every function is pure NumPy (with scipy / scikit-learn where they do the job) and works the
same for every backend. Probabilities come either as ``(S, n)``, p(y = 1) of a binary model, or
as ``(S, n, K)`` class probabilities (see :func:`bnnbench.metrics.class_probabilities`); the
predictive mean :math:`\bar p_k(x_n) = \frac1S \sum_s p_{snk}` is ``(n, K)``. Entropies are in
nats.

Contents
--------
* decomposition of the predictive entropy into aleatoric and epistemic parts
  (:func:`predictive_entropy`, :func:`expected_entropy`, :func:`mutual_information`);
* how well a per-point score detects errors (:func:`error_detection_auroc`) or
  out-of-distribution inputs (:func:`ood_auroc`);
* the reject option of the Pyro tutorial "Making your neural network say I don't know"
  (:func:`reject_option`, :func:`accuracy_coverage_curve`);
* calibration of the predictive mean (:func:`brier_score`, :func:`expected_calibration_error`,
  :func:`reliability_diagram`);
* the entry points of the benchmark cell (:func:`per_point_uncertainty`,
  :func:`uncertainty_summary`, :func:`ood_summary`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import entr
from sklearn.metrics import brier_score_loss, roc_auc_score

from bnnbench import metrics

__all__ = [
    "DEFAULT_THRESHOLD",
    "MI_ROUNDING_NATS",
    "RejectResult",
    "accuracy_coverage_curve",
    "brier_score",
    "error_detection_auroc",
    "expected_calibration_error",
    "expected_entropy",
    "mutual_information",
    "ood_auroc",
    "ood_summary",
    "per_point_uncertainty",
    "predictive_entropy",
    "reject_option",
    "reliability_diagram",
    "uncertainty_summary",
]

#: The tutorial's reject threshold on the median class probability.
DEFAULT_THRESHOLD = 0.2
#: Mutual information below this (in nats) is float64 rounding error and is set to 0.
MI_ROUNDING_NATS = 1e-12


def _draws(proba_draws: np.ndarray) -> np.ndarray:
    """``(S, n)`` or ``(S, n, K)`` -> ``(S, n, K)`` without copying a K-class array."""
    proba = metrics.class_probabilities(np.asarray(proba_draws))
    if proba.ndim != 3:
        raise ValueError(f"expected probabilities (S, n) or (S, n, K), got shape {proba.shape}")
    return proba


def _mean(mean_proba: np.ndarray) -> np.ndarray:
    """``(n,)`` binary or ``(n, K)`` predictive mean -> ``(n, K)`` float64."""
    mean = np.asarray(mean_proba, np.float64)
    if mean.ndim == 1:
        mean = metrics.class_probabilities(mean[None])[0]
    if mean.ndim != 2:
        raise ValueError(f"expected a predictive mean (n,) or (n, K), got shape {mean.shape}")
    return mean


def _entropy(p: np.ndarray) -> np.ndarray:
    r""":math:`H[p] = -\sum_k p_k \log p_k` in nats over the last axis, :math:`0 \log 0 = 0`."""
    return entr(np.asarray(p, np.float64)).sum(axis=-1)


def _clip_mi(mi: np.ndarray) -> np.ndarray:
    return np.where(mi < MI_ROUNDING_NATS, 0.0, mi)


# --------------------------------------------------------------------------- entropy decomposition


def predictive_entropy(proba_draws: np.ndarray) -> np.ndarray:
    r"""Entropy of the predictive mean (total uncertainty), in nats.

    .. math:: H[\bar p](x_n) = -\sum_k \bar p_k(x_n) \log \bar p_k(x_n), \qquad
              \bar p_k(x_n) = \frac1S \sum_s p(y = k \mid x_n, \theta_s),

    with :math:`0 \log 0 = 0`; between 0 and :math:`\log K`.

    Parameters
    ----------
    proba_draws
        ``(S, n)`` binary p(y = 1) or ``(S, n, K)`` class probabilities.

    Returns
    -------
    np.ndarray
        ``(n,)`` float64.
    """
    return _entropy(metrics.predictive_mean(proba_draws))


def expected_entropy(proba_draws: np.ndarray) -> np.ndarray:
    r"""Mean entropy of the per-draw predictives (aleatoric part), in nats.

    .. math:: \mathbb E_s H[p_s](x_n) = -\frac1S \sum_s \sum_k p_{snk} \log p_{snk}.

    Evaluated one draw at a time, so the memory stays at one ``(n, K)`` float64 slice.

    Returns
    -------
    np.ndarray
        ``(n,)`` float64.
    """
    proba = _draws(proba_draws)
    total = np.zeros(proba.shape[1], np.float64)
    for draw in proba:
        total += _entropy(draw)
    return total / proba.shape[0]


def mutual_information(proba_draws: np.ndarray) -> np.ndarray:
    r"""Mutual information between the label and the parameters (epistemic part), in nats.

    .. math:: I[y; \theta \mid x_n] = H[\bar p](x_n) - \mathbb E_s H[p_s](x_n) \ge 0,

    the BALD score: 0 when all draws agree, large when confident draws disagree. Values below
    ``MI_ROUNDING_NATS`` (1e-12) are rounding error (negative ones by Jensen's inequality) and are
    set to 0, so that draws which agree give exactly 0 (and tie in an AUROC).

    Returns
    -------
    np.ndarray
        ``(n,)`` float64.
    """
    return _clip_mi(predictive_entropy(proba_draws) - expected_entropy(proba_draws))


# ------------------------------------------------------------------------------------------ AUROC


def _auroc(positive: np.ndarray, score: np.ndarray) -> float:
    positive = np.asarray(positive, bool).ravel()
    score = np.asarray(score, np.float64).ravel()
    if positive.shape != score.shape:
        raise ValueError(f"{score.shape[0]} scores for {positive.shape[0]} points")
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, score))


def error_detection_auroc(
    score: np.ndarray,
    correct: np.ndarray,
    higher_means: Literal["error", "correct"] = "error",
) -> float:
    r"""AUROC with which a per-point score separates errors from correctly classified points.

    With :math:`E` the errors and :math:`C` the correct points, and the score oriented so that a
    high value flags an error (``higher_means="error"``: entropy, mutual information) or a
    correct point (``higher_means="correct"``: the chi-square of the votes),

    .. math:: \mathrm{AUROC} = P(s_e > s_c) + \tfrac12 P(s_e = s_c), \qquad e \in E,\ c \in C

    (scores of ``"correct"`` negated): 1 when the score ranks every error as more uncertain than
    every correct point, 1/2 for a useless score (``sklearn.metrics.roc_auc_score``).

    Parameters
    ----------
    score
        ``(n,)`` per-point score.
    correct
        ``(n,)`` bool, whether the point was classified correctly.
    higher_means
        Which class a high score indicates.

    Returns
    -------
    float
        NaN when there are no errors or no correct points.
    """
    correct = np.asarray(correct, bool)
    if higher_means == "error":
        return _auroc(~correct, score)
    if higher_means == "correct":
        return _auroc(correct, score)
    raise ValueError("higher_means must be 'error' or 'correct'")


def ood_auroc(
    score_in: np.ndarray,
    score_out: np.ndarray,
    higher_means: Literal["ood", "in"] = "ood",
) -> float:
    r"""AUROC with which a per-point score separates out-of-distribution inputs from the test set.

    .. math:: \mathrm{AUROC} = P(s_o > s_i) + \tfrac12 P(s_o = s_i)

    over pairs of an OOD point :math:`o` and an in-distribution point :math:`i`, for a score
    where high means OOD (``higher_means="ood"``: entropy, mutual information); with
    ``higher_means="in"`` (chi-square of the votes) the score is read the other way round.

    Returns
    -------
    float
        NaN when either set is empty.
    """
    score_in = np.asarray(score_in, np.float64).ravel()
    score_out = np.asarray(score_out, np.float64).ravel()
    is_out = np.concatenate([np.zeros(score_in.size, bool), np.ones(score_out.size, bool)])
    score = np.concatenate([score_in, score_out])
    if higher_means == "ood":
        return _auroc(is_out, score)
    if higher_means == "in":
        return _auroc(~is_out, score)
    raise ValueError("higher_means must be 'ood' or 'in'")


# ----------------------------------------------------------------------------------- reject option


@dataclass(frozen=True)
class RejectResult:
    r"""Outcome of the reject option for n points.

    Attributes
    ----------
    accepted
        ``(n,)`` bool, :math:`\max_k m_{nk} > \tau` with :math:`m_{nk}` the median over draws.
    predicted
        ``(n,)`` int64, :math:`\arg\max_k m_{nk}`, given for every point; only the accepted
        ones are predictions (the network says "I don't know" for the others).
    median_max
        ``(n,)`` :math:`\max_k m_{nk}`.
    threshold
        :math:`\tau`.
    refusal_rate
        Fraction of points refused.
    accepted_accuracy
        Accuracy on the accepted points; NaN when none was accepted or no labels were given.
    """

    accepted: np.ndarray
    predicted: np.ndarray
    median_max: np.ndarray
    threshold: float
    refusal_rate: float
    accepted_accuracy: float


def _median_decision(proba_draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the largest median class probability and its class."""
    median = np.median(_draws(proba_draws), axis=0)  # (n, K), the dtype of the draws
    return median.max(axis=-1), median.argmax(axis=-1).astype(np.int64)


def _above(median_max: np.ndarray, threshold: float) -> np.ndarray:
    # compare in the precision of the draws: a float32 median of 0.2 is refused at 0.2
    return median_max > np.asarray(threshold, median_max.dtype)


def _accuracy_or_nan(predicted: np.ndarray, y_true: np.ndarray, mask: np.ndarray) -> float:
    return float(np.mean(predicted[mask] == y_true[mask])) if mask.any() else float("nan")


def reject_option(
    proba_draws: np.ndarray,
    y_true: np.ndarray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> RejectResult:
    r"""The reject option of the Pyro tutorial "Making your neural network say I don't know".

    For each point and class the median over draws :math:`m_{nk} = \mathrm{median}_s\, p_{snk}`;
    the point is accepted iff some class clears the threshold strictly,

    .. math:: \text{accept}_n \iff \max_k m_{nk} > \tau,

    and the accepted point is predicted as :math:`\arg\max_k m_{nk}`. The comparison is made in
    the dtype of the draws (float32 draws with median 0.2 are refused at :math:`\tau = 0.2`).

    Parameters
    ----------
    proba_draws
        ``(S, n)`` binary p(y = 1) or ``(S, n, K)`` class probabilities.
    y_true
        ``(n,)`` true labels, for the accuracy on the accepted points.
    threshold
        :math:`\tau`; the tutorial uses 0.2 for MNIST.
    """
    median_max, predicted = _median_decision(proba_draws)
    accepted = _above(median_max, threshold)
    accuracy = float("nan")
    if y_true is not None:
        accuracy = _accuracy_or_nan(predicted, np.asarray(y_true), accepted)
    return RejectResult(
        accepted=accepted,
        predicted=predicted,
        median_max=median_max,
        threshold=float(threshold),
        refusal_rate=float(1.0 - accepted.mean()) if accepted.size else float("nan"),
        accepted_accuracy=accuracy,
    )


def accuracy_coverage_curve(
    proba_draws: np.ndarray,
    y_true: np.ndarray,
    thresholds: np.ndarray | None = None,
) -> pd.DataFrame:
    r"""Coverage and accuracy of the reject option as the threshold :math:`\tau` varies.

    .. math:: \mathrm{coverage}(\tau) = \frac1n \sum_n [\max_k m_{nk} > \tau], \qquad
              \mathrm{accuracy}(\tau) = \frac{\sum_n [\max_k m_{nk} > \tau]
              [\arg\max_k m_{nk} = y_n]}{\sum_n [\max_k m_{nk} > \tau]},

    with :math:`m_{nk}` the median over draws (see :func:`reject_option`); coverage is
    non-increasing in :math:`\tau`.

    Parameters
    ----------
    thresholds
        Default ``np.linspace(0, 1, 51)``.

    Returns
    -------
    pd.DataFrame
        Columns ``threshold``, ``coverage``, ``accuracy`` (NaN where the coverage is 0).
    """
    if thresholds is None:
        thresholds = np.linspace(0.0, 1.0, 51)
    thresholds = np.asarray(thresholds, np.float64).ravel()
    median_max, predicted = _median_decision(proba_draws)
    correct = predicted == np.asarray(y_true)
    coverage, accuracy = [], []
    for tau in thresholds:
        accepted = _above(median_max, tau)
        coverage.append(float(accepted.mean()))
        accuracy.append(float(correct[accepted].mean()) if accepted.any() else float("nan"))
    return pd.DataFrame({"threshold": thresholds, "coverage": coverage, "accuracy": accuracy})


# -------------------------------------------------------------------------------------- calibration


def brier_score(mean_proba: np.ndarray, y_true: np.ndarray) -> float:
    r"""Multi-class Brier score of the predictive mean.

    .. math:: \mathrm{BS} = \frac1n \sum_n \sum_k (\bar p_k(x_n) - [y_n = k])^2 \in [0, 2].

    A binary ``(n,)`` p(y = 1) is scored as its 2-class form, i.e. twice the
    :math:`\frac1n \sum_n (p_n - y_n)^2` of the binary convention.
    """
    mean = _mean(mean_proba)
    # float32 draws leave sums a few ulps off 1, which scikit-learn warns about: renormalise
    mean = mean / mean.sum(axis=1, keepdims=True)
    return float(
        brier_score_loss(
            np.asarray(y_true), mean, labels=np.arange(mean.shape[1]), scale_by_half=False
        )
    )


def _bins(mean_proba: np.ndarray, y_true: np.ndarray, n_bins: int) -> pd.DataFrame:
    if n_bins < 1:
        raise ValueError("n_bins must be positive")
    mean = _mean(mean_proba)
    confidence = mean.max(axis=-1)
    correct = mean.argmax(axis=-1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bins [lower, upper), the last one closed: a confidence of exactly 1 lands in it
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    sum_confidence = np.bincount(index, weights=confidence, minlength=n_bins)
    sum_correct = np.bincount(index, weights=correct.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.where(count > 0, sum_confidence / count, np.nan)
        accuracy = np.where(count > 0, sum_correct / count, np.nan)
    return pd.DataFrame(
        {
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "count": count.astype(np.int64),
            "mean_confidence": mean_confidence,
            "accuracy": accuracy,
        }
    )


def expected_calibration_error(
    mean_proba: np.ndarray, y_true: np.ndarray, n_bins: int = 15
) -> float:
    r"""Expected calibration error of the top-class confidence.

    With confidence :math:`c_n = \max_k \bar p_k(x_n)`, prediction :math:`\arg\max_k \bar p_k`,
    and ``n_bins`` equal-width bins :math:`B_b = [b/B, (b + 1)/B)` on [0, 1] (the last one
    closed, so :math:`c_n = 1` falls in it),

    .. math:: \mathrm{ECE} = \sum_b \frac{|B_b|}{n} \,|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|,

    :math:`\mathrm{acc}` and :math:`\mathrm{conf}` the mean correctness and confidence in a bin.
    """
    bins = _bins(mean_proba, y_true, n_bins)
    gap = (bins["accuracy"] - bins["mean_confidence"]).abs().fillna(0.0).to_numpy()
    weight = bins["count"].to_numpy() / max(int(bins["count"].sum()), 1)
    return float(np.sum(weight * gap))


def reliability_diagram(
    mean_proba: np.ndarray, y_true: np.ndarray, n_bins: int = 15
) -> pd.DataFrame:
    r"""The bins of :func:`expected_calibration_error`, one row each.

    Returns
    -------
    pd.DataFrame
        ``bin_lower``, ``bin_upper``, ``count``, ``mean_confidence`` (mean of
        :math:`\max_k \bar p_k` in the bin) and ``accuracy`` (fraction correct in the bin);
        the last two are NaN for an empty bin.
    """
    return _bins(mean_proba, y_true, n_bins)


# ------------------------------------------------------------------------------------ entry points


def _per_point(
    proba_draws: np.ndarray, labels: np.ndarray, n_classes: int, threshold: float
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Per-point arrays, the predictive mean (n, K) and the median prediction (n,)."""
    proba = _draws(proba_draws)
    mean = metrics.predictive_mean(proba)
    entropy = _entropy(mean)
    mi = _clip_mi(entropy - expected_entropy(proba))
    chi2 = metrics.chi_square_of_votes(metrics.vote_counts(labels, n_classes))
    median_max, predicted = _median_decision(proba)
    per_point = {
        "entropy": entropy,
        "mi": mi,
        "chi2": chi2,
        "accepted": _above(median_max, threshold),
        "median_max": median_max,
    }
    return per_point, mean, predicted


def per_point_uncertainty(
    proba_draws: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, np.ndarray]:
    r"""Per-point uncertainty arrays, each ``(n,)``, for the cell to store.

    Keys: ``entropy`` :math:`H[\bar p]` and ``mi`` :math:`I[y; \theta]` in nats, ``chi2`` the
    chi-square of the votes of ``labels`` (``(S, n)``, one sampled label per draw), ``accepted``
    of the reject option at ``threshold`` and ``median_max`` :math:`\max_k m_{nk}`.
    """
    return _per_point(proba_draws, labels, n_classes, threshold)[0]


def uncertainty_summary(
    y_true: np.ndarray,
    proba_draws: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, float]:
    r"""Scalar uncertainty metrics of one cell on the in-distribution test set.

    A point is an error when :math:`\arg\max_k \bar p_k(x_n) \ne y_n`.

    Returns
    -------
    dict[str, float]
        ``chi2_auroc``, ``entropy_auroc``, ``mi_auroc``: error-detection AUROC of the
        chi-square of the votes (high = correct), the predictive entropy and the mutual
        information (high = error); ``refusal_rate`` and ``accepted_accuracy`` of the reject
        option at ``threshold``; ``brier`` and ``ece`` of :math:`\bar p`; ``mean_entropy_nats``
        and ``mean_mi_nats``, the means over points.
    """
    y_true = np.asarray(y_true)
    per_point, mean, predicted = _per_point(proba_draws, labels, n_classes, threshold)
    correct = mean.argmax(axis=-1) == y_true
    accepted = per_point["accepted"]
    return {
        "chi2_auroc": error_detection_auroc(per_point["chi2"], correct, "correct"),
        "entropy_auroc": error_detection_auroc(per_point["entropy"], correct, "error"),
        "mi_auroc": error_detection_auroc(per_point["mi"], correct, "error"),
        "refusal_rate": float(1.0 - accepted.mean()),
        "accepted_accuracy": _accuracy_or_nan(predicted, y_true, accepted),
        "brier": brier_score(mean, y_true),
        "ece": expected_calibration_error(mean, y_true),
        "mean_entropy_nats": float(per_point["entropy"].mean()),
        "mean_mi_nats": float(per_point["mi"].mean()),
    }


def ood_summary(
    in_proba: np.ndarray,
    in_labels: np.ndarray,
    out_proba: np.ndarray,
    out_labels: np.ndarray,
    n_classes: int,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, float]:
    r"""Scalar metrics of one cell on an out-of-distribution set against the in-distribution one.

    Returns
    -------
    dict[str, float]
        ``refusal_rate`` of the reject option on the OOD set (ideally 1), and the in-vs-out
        AUROC of the predictive entropy and the mutual information (high = OOD),
        ``entropy_auroc`` and ``mi_auroc``, and of the chi-square of the votes (high =
        in-distribution), ``chi2_auroc``; 1 means the score separates the sets perfectly.
    """
    inside = _per_point(in_proba, in_labels, n_classes, threshold)[0]
    outside = _per_point(out_proba, out_labels, n_classes, threshold)[0]
    return {
        "refusal_rate": float(1.0 - outside["accepted"].mean()),
        "entropy_auroc": ood_auroc(inside["entropy"], outside["entropy"], "ood"),
        "mi_auroc": ood_auroc(inside["mi"], outside["mi"], "ood"),
        "chi2_auroc": ood_auroc(inside["chi2"], outside["chi2"], "in"),
    }
