"""Two moons, as in the PyMC3 BNN tutorial."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import scale

from bnnbench.spec import Dataset

__all__ = ["load_moons"]


def load_moons(
    n_samples: int = 1000, noise: float = 0.2, random_state: int = 0, test_size: float = 0.5
) -> Dataset:
    """``make_moons(noise=0.2, n_samples=1000, random_state=0)``, standardised, split 50/50.

    Features are standardised over the whole set (``sklearn.preprocessing.scale``, as the tutorial
    did) and split with a fixed ``random_state`` so that every seed and backend sees the same data.
    Inputs are float64 (n, 2); labels int64 in {0, 1}.
    """
    X, y = make_moons(noise=noise, n_samples=n_samples, random_state=random_state)
    X = scale(X)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_state, stratify=y
    )
    return Dataset(
        name="moons",
        X_train=np.ascontiguousarray(X_train, dtype=np.float64),
        y_train=y_train.astype(np.int64),
        X_test=np.ascontiguousarray(X_test, dtype=np.float64),
        y_test=y_test.astype(np.int64),
    )
