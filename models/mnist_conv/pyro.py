"""``mnist_conv`` in Pyro (see ``spec.py`` for the maths; torch is natively NCHW/OIHW)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F

from bnnbench.models.mnist_conv.spec import IMAGE, PRIOR_SD, SHAPES

__all__ = ["model"]


def model(X: torch.Tensor, y: torch.Tensor | None = None, batch_size: int | None = None) -> None:
    """The model on ``(X, y)``; ``batch_size`` subsamples the data plate (scaled by N / B)."""
    prior = dist.Normal(X.new_zeros(()), PRIOR_SD)
    theta = {
        name: pyro.sample(name, prior.expand(shape).to_event(len(shape)))
        for name, shape in SHAPES.items()
    }
    with pyro.plate("data", X.shape[0], subsample_size=batch_size, device=X.device) as idx:
        a = X[idx].reshape(-1, *IMAGE)
        for layer in ("conv1", "conv2"):
            z = F.conv2d(a, theta[f"{layer}_w"], theta[f"{layer}_b"])
            a = F.max_pool2d(torch.tanh(z), 2)
        h = torch.tanh(a.flatten(1) @ theta["dense_w"] + theta["dense_b"])
        eta = h @ theta["out_w"] + theta["out_b"]
        pyro.deterministic("p", torch.softmax(eta, dim=-1), event_dim=1)
        pyro.sample("y", dist.Categorical(logits=eta), obs=None if y is None else y[idx])
