"""``mnist_conv`` in NumPyro (see ``spec.py`` for the maths; layouts passed to XLA explicitly)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bnnbench.models.mnist_conv.spec import IMAGE, PRIOR_SD, SHAPES

__all__ = ["model"]

#: Input, kernel and output layouts of the spec.
LAYOUT = ("NCHW", "OIHW", "NCHW")


def _maxpool_2x2(a: jax.Array) -> jax.Array:
    n, c, h, w = a.shape
    return a.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def model(X: jax.Array, y: jax.Array | None = None, batch_size: int | None = None) -> None:
    """The model on ``(X, y)``; ``batch_size`` subsamples the data plate (scaled by N / B)."""
    prior = dist.Normal(jnp.zeros((), X.dtype), PRIOR_SD)
    theta = {
        name: numpyro.sample(name, prior.expand(shape).to_event(len(shape)))
        for name, shape in SHAPES.items()
    }
    with numpyro.plate("data", X.shape[0], subsample_size=batch_size):
        a = numpyro.subsample(X, event_dim=1).reshape(-1, *IMAGE)
        for layer in ("conv1", "conv2"):
            z = jax.lax.conv_general_dilated(
                a, theta[f"{layer}_w"], (1, 1), "VALID", dimension_numbers=LAYOUT
            )
            a = _maxpool_2x2(jnp.tanh(z + theta[f"{layer}_b"][:, None, None]))
        h = jnp.tanh(a.reshape(a.shape[0], -1) @ theta["dense_w"] + theta["dense_b"])
        eta = h @ theta["out_w"] + theta["out_b"]
        numpyro.deterministic("p", jax.nn.softmax(eta, axis=-1))
        obs = None if y is None else numpyro.subsample(y, event_dim=0)
        numpyro.sample("y", dist.Categorical(logits=eta), obs=obs)
