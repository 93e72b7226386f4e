"""The interface every backend's training session implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["TrainingSession"]


class TrainingSession(Protocol):
    """One fitted variational approximation of one spec in one backend."""

    #: Which execution path the steps take (stored with the results).
    execution_path: str
    #: Floating-point type the training ran in.
    dtype: str

    def compile(self, chunk_sizes: set[int]) -> None:
        """Build the model, guide and optimizer and compile (jit/trace) the step for each chunk
        size the harness will ask for."""

    def run_steps(self, n_steps: int) -> np.ndarray:
        """Take ``n_steps`` optimisation steps; the per-step full-data negative ELBO (n_steps,).

        Returns only after the device has finished the work.
        """

    def sample_posterior(self, draws: int, seed: int) -> dict[str, np.ndarray]:
        """``draws`` draws of every parameter tensor from the approximation, ``(draws, *shape)``."""

    def predict(
        self, posterior: dict[str, np.ndarray], X: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The model's predictive at ``X`` for each draw, through the library's own API:
        probabilities ``(draws, n)`` (binary) or ``(draws, n, K)``, and sampled labels
        ``(draws, n)``. Returns only after the device has finished."""
