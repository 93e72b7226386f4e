"""Predictive metrics, computed once in the engine from posterior-predictive draws.

Probabilities come either as ``(S, n)``, the probability of class 1 of a binary model, or as
``(S, n, K)`` class probabilities; :func:`class_probabilities` turns the first into the second.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import chisquare
from sklearn.metrics import accuracy_score, log_loss

__all__ = [
    "EPS",
    "accuracy",
    "chi_square_of_votes",
    "class_probabilities",
    "negative_log_likelihood",
    "predictive_mean",
    "sample_labels",
    "vote_counts",
]

#: Probabilities are clipped to [EPS, 1 - EPS] before taking logs.
EPS = 1e-7


def class_probabilities(proba: np.ndarray) -> np.ndarray:
    """``(..., n)`` binary p(y = 1) -> ``(..., n, 2)``; ``(..., n, K)`` is returned as it is."""
    proba = np.asarray(proba)
    if proba.ndim == 2:
        return np.stack([1.0 - proba, proba], axis=-1)
    return proba


def predictive_mean(proba_draws: np.ndarray) -> np.ndarray:
    r"""Mean over draws, :math:`\bar p_k(x_n) = \frac1S \sum_s p(y = k \mid x_n, \theta_s)`.

    Input (S, n) or (S, n, K); output (n, K).
    """
    return class_probabilities(np.asarray(proba_draws, np.float64)).mean(axis=0)


def accuracy(y_true: np.ndarray, mean_proba: np.ndarray) -> float:
    r"""Fraction of points with :math:`\arg\max_k \bar p_k(x_n) = y_n` (threshold 1/2 if binary)."""
    mean_proba = np.asarray(mean_proba)
    if mean_proba.ndim == 1:
        mean_proba = class_probabilities(mean_proba[None])[0]
    return float(accuracy_score(y_true, mean_proba.argmax(axis=-1)))


def negative_log_likelihood(y_true: np.ndarray, mean_proba: np.ndarray) -> float:
    r"""Mean negative log predictive density in nats.

    :math:`-\frac1n \sum_n \log \bar p_{y_n}(x_n)`, probabilities clipped to [EPS, 1 - EPS].
    """
    mean_proba = np.asarray(mean_proba, np.float64)
    if mean_proba.ndim == 1:
        mean_proba = class_probabilities(mean_proba[None])[0]
    p = np.clip(mean_proba, EPS, 1 - EPS)
    p = p / p.sum(axis=-1, keepdims=True)
    return float(log_loss(y_true, p, labels=np.arange(p.shape[-1])))


def vote_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """How often each class was drawn: labels (S, n) -> counts (n, K)."""
    labels = np.asarray(labels, np.int64)
    counts = np.zeros((labels.shape[1], n_classes), np.int64)
    np.add.at(counts, (np.broadcast_to(np.arange(labels.shape[1]), labels.shape), labels), 1)
    return counts


def chi_square_of_votes(counts: np.ndarray) -> np.ndarray:
    r"""The tutorial's certainty statistic per point: Pearson's :math:`\chi^2` of the vote counts.

    :math:`\chi^2_n = \sum_k (c_{nk} - S/K)^2 / (S/K)` against uniform votes
    (``scipy.stats.chisquare``): 0 when the draws spread evenly over the classes (most uncertain),
    :math:`S(K - 1)` when every draw votes for one class (most certain).
    """
    counts = np.asarray(counts, np.float64)
    return np.asarray(chisquare(counts, axis=-1).statistic, np.float64)


def sample_labels(proba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per draw and point from p (binary, (S, n)) or class probabilities (S, n, K)."""
    if proba.ndim == 2:
        return (rng.random(proba.shape) < proba).astype(np.int64)
    cumulative = np.cumsum(proba, axis=-1)
    u = rng.random((*proba.shape[:-1], 1)) * cumulative[..., -1:]
    return np.minimum((u > cumulative).sum(axis=-1), proba.shape[-1] - 1)
