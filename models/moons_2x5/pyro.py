"""``moons_2x5`` in Pyro (see ``spec.py`` for the maths)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from bnnbench.models.moons_2x5.spec import N_HIDDEN, PRIOR_SD

__all__ = ["model"]


def model(X: torch.Tensor, y: torch.Tensor | None = None, batch_size: int | None = None) -> None:
    """The model on ``(X, y)``; ``batch_size`` subsamples the data plate (scaled by N / B).

    Priors are built from tensors on ``X``'s device and dtype, so the model runs where the data is.
    """
    n_data, n_input = X.shape
    zero = X.new_zeros(())
    prior = dist.Normal(zero, PRIOR_SD)
    # Weights are sampled before the plate so they carry no data dimension.
    w_in_1 = pyro.sample("w_in_1", prior.expand((n_input, N_HIDDEN)).to_event(2))
    w_1_2 = pyro.sample("w_1_2", prior.expand((N_HIDDEN, N_HIDDEN)).to_event(2))
    w_2_out = pyro.sample("w_2_out", prior.expand((N_HIDDEN,)).to_event(1))
    with pyro.plate("data", n_data, subsample_size=batch_size, device=X.device) as idx:
        x = X[idx]
        logit = torch.tanh(torch.tanh(x @ w_in_1) @ w_1_2) @ w_2_out
        pyro.deterministic("p", torch.sigmoid(logit))
        pyro.sample("y", dist.Bernoulli(logits=logit), obs=None if y is None else y[idx])
