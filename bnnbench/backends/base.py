"""What every backend's training session returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["PredictiveDraws", "TrainingSession"]


@dataclass
class PredictiveDraws:
    """Posterior-predictive output for inputs ``X`` (n points).

    Attributes
    ----------
    posterior
        Draws of every parameter tensor, ``(draws, *shape)``.
    proba
        ``p(y = 1 | x, theta_s)`` for each draw, ``(draws, n)``.
    y
        One sampled label per draw and point, ``(draws, n)``.
    """

    posterior: dict[str, np.ndarray]
    proba: np.ndarray
    y: np.ndarray


class TrainingSession(Protocol):
    """One fitted variational approximation of one spec in one backend."""

    #: Which execution path the steps take (stored with the results).
    execution_path: str
    #: Floating-point type the training ran in.
    dtype: str

    def compile(self) -> None:
        """Build the model, guide and optimizer and compile (jit/trace) the step."""

    def run_steps(self, n_steps: int) -> np.ndarray:
        """Take ``n_steps`` optimisation steps; the per-step full-data negative ELBO (n_steps,).

        Returns only after the device has finished the work.
        """

    def sample_predictive(self, X: np.ndarray, draws: int, seed: int) -> PredictiveDraws:
        """Draw from the approximate posterior and its predictive at ``X`` via the library's API."""
