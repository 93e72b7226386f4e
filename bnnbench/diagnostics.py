r"""Diagnostics of a variational fit that need the model's density: the Pareto-k of PSIS.

Yao, Vehtari, Simpson and Gelman (2018), "Yes, but did it work?": draw
:math:`\theta_s \sim q` and form the log importance ratios

.. math::

    \log r_s = \log p(\theta_s, y) - \log q(\theta_s), \qquad s = 1, \dots, S,

with the *full-data* log joint. The shape :math:`\hat k` of a generalised Pareto fit to the
largest ratios says how well :math:`q` covers the posterior: below 0.5 the ratios have finite
variance, 0.5-0.7 usable, above 0.7 the approximation misses mass (mean-field BNNs typically score
above 0.7; compare backends relatively). ArviZ's ``psislw`` treats its input as a log-likelihood
and weighs by its negative exponential, so it is given :math:`-\log r` (field notes).

The engine computes both densities itself, the same way for every backend: the log joint from the
spec's reference implementation (in float32, the precision of the fit), :math:`\log q` from the
mean-field parameters each backend reports (``TrainingSession.variational_parameters``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from arviz_stats.base.array import array_stats
from scipy.stats import norm

from bnnbench.spec import ModelSpec

__all__ = ["PSIS_MIN_DRAWS", "log_joint_draws", "pareto_k", "variational_log_density"]

#: Fewest draws for which a Pareto-k is reported: PSIS fits the largest min(S/5, 3 sqrt(S))
#: ratios; with fewer than 30 draws arviz-stats' fit returns NaN (measured, 1.3).
PSIS_MIN_DRAWS = 30


def variational_log_density(
    spec: ModelSpec,
    posterior: Mapping[str, np.ndarray],
    variational: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    r""":math:`\log q(\theta_s)` of each draw, ``(S,)``, float64.

    Mean-field normal in the unconstrained space: :math:`z = \theta` for real parameters and
    :math:`z = \log\theta` for positive ones, so that
    :math:`\log q(\theta) = \sum_j \log\mathcal N(z_j; \mu_j, \sigma_j^2) - \sum_{j \in +}
    \log\theta_j` (the change of variables from :math:`z` back to :math:`\theta`).
    """
    total = 0.0
    for param in spec.params:
        theta = np.asarray(posterior[param.name], np.float64)
        loc, scale = (np.asarray(a, np.float64) for a in variational[param.name])
        z = np.log(theta) if param.positive else theta
        axes = tuple(range(1, theta.ndim))
        total = total + norm.logpdf(z, loc, scale).sum(axis=axes)
        if param.positive:
            total = total - z.sum(axis=axes)
    return np.asarray(total, np.float64)


def log_joint_draws(
    spec: ModelSpec,
    posterior: Mapping[str, np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    dtype: type = np.float32,
) -> np.ndarray:
    r""":math:`\log p(\theta_s, y \mid X)` of each draw over the full training data, ``(S,)``.

    Priors in float64; the likelihood sum by the spec's reference in ``dtype`` (float32 by
    default, as the networks were trained; accumulated per draw in float64).
    """
    X = np.asarray(X, dtype)
    draws = len(next(iter(posterior.values())))
    out = np.empty(draws)
    for s in range(draws):
        point = {k: np.asarray(v[s], dtype) for k, v in posterior.items()}
        prior = sum(spec.log_prior_terms(point).values())
        out[s] = prior + float(spec.log_likelihood(point, X, y))
    return out


def pareto_k(log_ratios: np.ndarray) -> float:
    r"""PSIS's :math:`\hat k` for log importance ratios :math:`\log r_s` (``(S,)``).

    NaN if any ratio is not finite (a draw with zero model density) or ``S`` is below
    :data:`PSIS_MIN_DRAWS`; infinite when the ratios spread over so many orders of magnitude
    that the generalised Pareto fit itself fails (a fit far from the posterior: k >> 0.7).
    """
    log_ratios = np.asarray(log_ratios, np.float64)
    if log_ratios.size < PSIS_MIN_DRAWS or not np.all(np.isfinite(log_ratios)):
        return float("nan")
    _, khat = array_stats.psislw(-log_ratios, r_eff=1.0)
    return float(khat) if np.isfinite(khat) else float("inf")
