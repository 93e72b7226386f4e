"""``mnist_2x800`` in NumPyro (see ``spec.py`` for the maths)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bnnbench.models.mnist_2x800.spec import LAYERS, PRIOR_SD

__all__ = ["model"]


def model(X: jax.Array, y: jax.Array | None = None, batch_size: int | None = None) -> None:
    """The model on ``(X, y)``; ``batch_size`` subsamples the data plate (scaled by N / B)."""
    prior = dist.Normal(jnp.zeros((), X.dtype), PRIOR_SD)
    layers = [
        (
            numpyro.sample(w, prior.expand((n_in, n_out)).to_event(2)),
            numpyro.sample(b, prior.expand((n_out,)).to_event(1)),
        )
        for w, b, n_in, n_out in LAYERS
    ]
    with numpyro.plate("data", X.shape[0], subsample_size=batch_size):
        h = numpyro.subsample(X, event_dim=1)
        for i, (weight, bias) in enumerate(layers):
            h = h @ weight + bias
            if i < len(layers) - 1:
                h = jnp.tanh(h)
        numpyro.deterministic("p", jax.nn.softmax(h, axis=-1))
        obs = None if y is None else numpyro.subsample(y, event_dim=0)
        numpyro.sample("y", dist.Categorical(logits=h), obs=obs)
