"""``moons_2x5`` in NumPyro (see ``spec.py`` for the maths)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bnnbench.models.moons_2x5.spec import N_HIDDEN, PRIOR_SD

__all__ = ["model"]


def model(X: jax.Array, y: jax.Array | None = None, batch_size: int | None = None) -> None:
    """The model on ``(X, y)``; ``batch_size`` subsamples the data plate (scaled by N / B)."""
    n_data, n_input = X.shape
    prior = dist.Normal(jnp.zeros((), X.dtype), PRIOR_SD)
    w_in_1 = numpyro.sample("w_in_1", prior.expand((n_input, N_HIDDEN)).to_event(2))
    w_1_2 = numpyro.sample("w_1_2", prior.expand((N_HIDDEN, N_HIDDEN)).to_event(2))
    w_2_out = numpyro.sample("w_2_out", prior.expand((N_HIDDEN,)).to_event(1))
    with numpyro.plate("data", n_data, subsample_size=batch_size):
        x = numpyro.subsample(X, event_dim=1)
        logit = jnp.tanh(jnp.tanh(x @ w_in_1) @ w_1_2) @ w_2_out
        numpyro.deterministic("p", jax.nn.sigmoid(logit))
        obs = None if y is None else numpyro.subsample(y, event_dim=0)
        numpyro.sample("y", dist.Bernoulli(logits=logit), obs=obs)
