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
    #: Seconds spent placing the training data on the device (synchronised; NaN where the
    #: library folds it into compilation).
    transfer_s: float

    def synchronize(self) -> None:
        """Block until the device has finished all queued work (a no-op on the CPU)."""

    def peak_device_memory_mb(self) -> float | None:
        """Peak accelerator memory of this process in MiB (``torch.cuda.max_memory_allocated``,
        JAX's ``memory_stats()["peak_bytes_in_use"]``); ``None`` on the CPU."""

    def variational_parameters(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per parameter tensor, the mean-field ``(loc, scale)`` in the unconstrained space
        (the parameter itself, or its logarithm for a positive one); Bayesian backends only."""

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
