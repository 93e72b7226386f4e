"""``mnist_2x800`` in Pyro (see ``spec.py`` for the maths)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from bnnbench.models.mnist_2x800.spec import LAYERS, PRIOR_SD

__all__ = ["model"]


def model(X: torch.Tensor, y: torch.Tensor | None = None, batch_size: int | None = None) -> None:
    """The model on ``(X, y)``; ``batch_size`` subsamples the data plate (scaled by N / B)."""
    prior = dist.Normal(X.new_zeros(()), PRIOR_SD)
    # Weights are sampled before the plate so they carry no data dimension.
    layers = [
        (
            pyro.sample(w, prior.expand((n_in, n_out)).to_event(2)),
            pyro.sample(b, prior.expand((n_out,)).to_event(1)),
        )
        for w, b, n_in, n_out in LAYERS
    ]
    with pyro.plate("data", X.shape[0], subsample_size=batch_size, device=X.device) as idx:
        h = X[idx]
        for i, (weight, bias) in enumerate(layers):
            h = h @ weight + bias
            if i < len(layers) - 1:
                h = torch.tanh(h)
        pyro.deterministic("p", torch.softmax(h, dim=-1), event_dim=1)
        pyro.sample("y", dist.Categorical(logits=h), obs=None if y is None else y[idx])
