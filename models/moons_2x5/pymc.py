"""``moons_2x5`` in PyMC (see ``spec.py`` for the maths)."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bnnbench.models.moons_2x5.spec import N_HIDDEN, PRIOR_SD

__all__ = ["build_model"]


def build_model(X: np.ndarray, y: np.ndarray, *, batch_size: int | None = None) -> pm.Model:
    """The model on ``(X, y)``; with ``batch_size`` the likelihood sees an i.i.d. minibatch.

    With ``batch_size=None`` the data sit in ``pm.Data`` containers ``x_data``/``y_data`` (swap
    them with ``pm.set_data`` to predict); with a batch size they are ``pm.Minibatch`` slices and
    the likelihood is scaled to the full data by ``total_size=N``.
    """
    n_input = X.shape[1]
    with pm.Model() as model:
        if batch_size is None:
            x_in = pm.Data("x_data", X)
            y_in = pm.Data("y_data", y)
            total_size = None
        else:
            x_in, y_in = pm.Minibatch(X, y, batch_size=batch_size)
            total_size = X.shape[0]
        w_in_1 = pm.Normal("w_in_1", 0.0, PRIOR_SD, shape=(n_input, N_HIDDEN))
        w_1_2 = pm.Normal("w_1_2", 0.0, PRIOR_SD, shape=(N_HIDDEN, N_HIDDEN))
        w_2_out = pm.Normal("w_2_out", 0.0, PRIOR_SD, shape=(N_HIDDEN,))
        logit = pt.dot(pt.tanh(pt.dot(pt.tanh(pt.dot(x_in, w_in_1)), w_1_2)), w_2_out)
        pm.Deterministic("p", pm.math.sigmoid(logit))
        pm.Bernoulli("y", logit_p=logit, observed=y_in, total_size=total_size, shape=x_in.shape[0])
    return model
