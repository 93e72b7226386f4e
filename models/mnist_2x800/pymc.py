"""``mnist_2x800`` in PyMC (see ``spec.py`` for the maths)."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bnnbench.models.mnist_2x800.spec import LAYERS, PRIOR_SD

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
            weight = pm.Normal(w, 0.0, PRIOR_SD, shape=(n_in, n_out))
            bias = pm.Normal(b, 0.0, PRIOR_SD, shape=(n_out,))
            h = pt.dot(h, weight) + bias
            if i < len(LAYERS) - 1:
                h = pt.tanh(h)
        pm.Deterministic("p", pt.special.softmax(h, axis=-1))
        pm.Categorical("y", logit_p=h, observed=y_in, total_size=total_size, shape=x_in.shape[0])
    return model
