"""Posterior-predictive sampling in memory-bounded chunks, and its stored summary.

Draws of the parameters are taken once per cell (``session.sample_posterior``); the predictive
for the inputs is then evaluated chunk by chunk over the points (``session.predict``), so the
number of draws and the size of the test set can grow without the backend holding all
activations at once (every backend evaluates the draws of a chunk one after another).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from bnnbench import metrics
from bnnbench.backends.base import TrainingSession

__all__ = ["PredictiveDraws", "posterior_predictive", "sample_labels", "summary_dataset"]


@dataclass
class PredictiveDraws:
    """Posterior-predictive output for n points.

    Attributes
    ----------
    posterior
        Draws of every parameter tensor, ``(draws, *shape)``.
    proba
        Per draw, p(y = 1 | x) ``(draws, n)`` for a binary spec or class probabilities
        ``(draws, n, K)``.
    y
        One sampled label per draw and point, ``(draws, n)``.
    """

    posterior: dict[str, np.ndarray]
    proba: np.ndarray
    y: np.ndarray


def posterior_predictive(
    session: TrainingSession,
    X: np.ndarray,
    draws: int,
    seed: int,
    chunk_points: int,
    posterior: dict[str, np.ndarray] | None = None,
) -> PredictiveDraws:
    """``draws`` posterior draws and their predictive at ``X``, ``chunk_points`` points a call.

    ``posterior`` reuses draws already taken (the same parameters for the test set and the
    out-of-distribution sets); otherwise ``draws`` are sampled with ``seed``.
    """
    if posterior is None:
        posterior = session.sample_posterior(draws, seed)
    probas, labels = [], []
    for start in range(0, X.shape[0], chunk_points):
        proba, y = session.predict(posterior, X[start : start + chunk_points], seed + 1 + start)
        probas.append(proba)
        labels.append(y)
    return PredictiveDraws(
        posterior=posterior, proba=np.concatenate(probas, axis=1), y=np.concatenate(labels, axis=1)
    )


def summary_dataset(y_true: np.ndarray, pred: PredictiveDraws, n_classes: int) -> xr.Dataset:
    """Per test point: mean class probabilities, vote counts, the chi-square and correctness."""
    mean = metrics.predictive_mean(pred.proba)
    counts = metrics.vote_counts(pred.y, n_classes)
    return xr.Dataset(
        {
            "mean_proba": (("obs_id", "class"), mean.astype(np.float32)),
            "votes": (("obs_id", "class"), counts.astype(np.int32)),
            "chi2": ("obs_id", metrics.chi_square_of_votes(counts)),
            "correct": ("obs_id", (mean.argmax(axis=-1) == y_true).astype(np.int8)),
            "y": ("obs_id", y_true),
        },
        attrs={"draws": int(pred.proba.shape[0])},
    )


def sample_labels(proba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per draw and point from p (binary, (S, n)) or class probabilities (S, n, K)."""
    if proba.ndim == 2:
        return (rng.random(proba.shape) < proba).astype(np.int64)
    cumulative = np.cumsum(proba, axis=-1)
    u = rng.random((*proba.shape[:-1], 1)) * cumulative[..., -1:]
    return np.minimum((u > cumulative).sum(axis=-1), proba.shape[-1] - 1)
