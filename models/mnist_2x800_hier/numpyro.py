"""``mnist_2x800_hier`` in NumPyro (see ``spec.py`` for the maths)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bnnbench.models.mnist_2x800.spec import LAYERS
from bnnbench.models.mnist_2x800_hier.spec import HYPERPRIOR_SD, scale_name

__all__ = ["model"]


def model(X: jax.Array, y: jax.Array | None = None, batch_size: int | None = None) -> None:
    """The model on ``(X, y)``; ``batch_size`` subsamples the data plate (scaled by N / B)."""
    hyperprior = dist.HalfNormal(jnp.full((), HYPERPRIOR_SD, X.dtype))
    layers = []
    for w, b, n_in, n_out in LAYERS:
        sigma_w = numpyro.sample(scale_name(w), hyperprior)
        sigma_b = numpyro.sample(scale_name(b), hyperprior)
        weight = numpyro.sample(w, dist.Normal(0.0, sigma_w).expand((n_in, n_out)).to_event(2))
        bias = numpyro.sample(b, dist.Normal(0.0, sigma_b).expand((n_out,)).to_event(1))
        layers.append((weight, bias))
    with numpyro.plate("data", X.shape[0], subsample_size=batch_size):
        h = numpyro.subsample(X, event_dim=1)
        for i, (weight, bias) in enumerate(layers):
            h = h @ weight + bias
            if i < len(layers) - 1:
                h = jnp.tanh(h)
        numpyro.deterministic("p", jax.nn.softmax(h, axis=-1))
        obs = None if y is None else numpyro.subsample(y, event_dim=0)
        numpyro.sample("y", dist.Categorical(logits=h), obs=obs)
