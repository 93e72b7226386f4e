"""``mnist_2x800_hier`` in PyMC (see ``spec.py`` for the maths)."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bnnbench.models.mnist_2x800.spec import LAYERS
from bnnbench.models.mnist_2x800_hier.spec import HYPERPRIOR_SD, scale_name

__all__ = ["build_model"]


def build_model(X: np.ndarray, y: np.ndarray, *, batch_size: int | None = None) -> pm.Model:
    """The model on ``(X, y)``; with ``batch_size`` the likelihood sees an i.i.d. minibatch."""
    with pm.Model() as model:
        if batch_size is None:
            x_in, y_in, total_size = pm.Data("x_data", X), pm.Data("y_data", y), None
        else:
            (x_in, y_in), total_size = pm.Minibatch(X, y, batch_size=batch_size), X.shape[0]
        h = x_in
        for i, (w, b, n_in, n_out) in enumerate(LAYERS):
            sigma_w = pm.HalfNormal(scale_name(w), HYPERPRIOR_SD)
            sigma_b = pm.HalfNormal(scale_name(b), HYPERPRIOR_SD)
            weight = pm.Normal(w, 0.0, sigma_w, shape=(n_in, n_out))
            bias = pm.Normal(b, 0.0, sigma_b, shape=(n_out,))
            h = pt.dot(h, weight) + bias
            if i < len(LAYERS) - 1:
                h = pt.tanh(h)
        pm.Deterministic("p", pt.special.softmax(h, axis=-1))
        pm.Categorical("y", logit_p=h, observed=y_in, total_size=total_size, shape=x_in.shape[0])
    return model
