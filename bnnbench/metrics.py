"""Predictive metrics computed once from stored posterior-predictive probabilities."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, log_loss

__all__ = ["accuracy", "negative_log_likelihood", "predictive_mean"]

#: Probabilities are clipped to [EPS, 1 - EPS] before taking logs.
EPS = 1e-7


def predictive_mean(proba_draws: np.ndarray) -> np.ndarray:
    r"""Mean over draws, :math:`\bar p(x_n) = \frac1S \sum_s p(y = 1 \mid x_n, \theta_s)`.

    Input (S, n), output (n,).
    """
    return np.asarray(proba_draws, np.float64).mean(axis=0)


def accuracy(y_true: np.ndarray, mean_proba: np.ndarray) -> float:
    r"""Fraction of points with :math:`\mathbb{1}[\bar p(x_n) > 1/2] = y_n`."""
    return float(accuracy_score(y_true, (mean_proba > 0.5).astype(int)))


def negative_log_likelihood(y_true: np.ndarray, mean_proba: np.ndarray) -> float:
    r"""Mean negative log predictive density in nats.

    :math:`-\frac1n \sum_n \log \bar p(y_n \mid x_n)`, probabilities clipped to [EPS, 1 - EPS].
    """
    p = np.clip(mean_proba, EPS, 1 - EPS)
    return float(log_loss(y_true, p, labels=[0, 1]))
