"""``mnist_2x800_hier`` in Pyro (see ``spec.py`` for the maths)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from bnnbench.models.mnist_2x800.spec import LAYERS
from bnnbench.models.mnist_2x800_hier.spec import HYPERPRIOR_SD, scale_name

__all__ = ["model"]


def model(X: torch.Tensor, y: torch.Tensor | None = None, batch_size: int | None = None) -> None:
    """The model on ``(X, y)``; ``batch_size`` subsamples the data plate (scaled by N / B)."""
    hyperprior = dist.HalfNormal(X.new_full((), HYPERPRIOR_SD))
    zero = X.new_zeros(())
    layers = []
    for w, b, n_in, n_out in LAYERS:
        sigma_w = pyro.sample(scale_name(w), hyperprior)
        sigma_b = pyro.sample(scale_name(b), hyperprior)
        weight = pyro.sample(w, dist.Normal(zero, sigma_w).expand((n_in, n_out)).to_event(2))
        bias = pyro.sample(b, dist.Normal(zero, sigma_b).expand((n_out,)).to_event(1))
        layers.append((weight, bias))
    with pyro.plate("data", X.shape[0], subsample_size=batch_size, device=X.device) as idx:
        h = X[idx]
        for i, (weight, bias) in enumerate(layers):
            h = h @ weight + bias
            if i < len(layers) - 1:
                h = torch.tanh(h)
        pyro.deterministic("p", torch.softmax(h, dim=-1), event_dim=1)
        pyro.sample("y", dist.Categorical(logits=h), obs=None if y is None else y[idx])
