"""``mnist_conv`` in PyMC (see ``spec.py`` for the maths and the NCHW/OIHW layouts).

pytensor has no multi-channel convolution layer: the valid cross-correlation is written as an
explicit patch extraction and one contraction (im2col), which compiles to a single matrix product.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.gradient import disconnected_grad

from bnnbench.models.mnist_conv.spec import IMAGE, KERNEL, PRIOR_SD, SHAPES

__all__ = ["build_model", "conv2d_valid", "maxpool_2x2"]


def conv2d_valid(a: pt.TensorVariable, kernel: pt.TensorVariable, size: int) -> pt.TensorVariable:
    """``out[n, o, i, j] = sum_{c, u, v} a[n, c, i + u, j + v] kernel[o, c, u, v]`` (NCHW, OIHW)."""
    h_out, w_out = a.shape[2] - size + 1, a.shape[3] - size + 1
    patches = pt.stack(
        [a[:, :, u : u + h_out, v : v + w_out] for u in range(size) for v in range(size)], axis=2
    )  # (n, C, k*k, H', W')
    flat_kernel = kernel.reshape((kernel.shape[0], kernel.shape[1], size * size))
    return pt.einsum("ncphw,ocp->nohw", patches, flat_kernel)


def maxpool_2x2(a: pt.TensorVariable) -> pt.TensorVariable:
    """2 x 2 max pooling whose gradient is split evenly among tied maxima.

    pytensor's ``max`` passes the full gradient to *every* tied maximum, so blank image regions
    (where tanh(bias) ties across a window) get it counted up to four times; torch gives it to one
    and JAX splits it, both conserving it. ``bnnbench verify`` caught the difference in the
    gradient of ``conv1_w``/``conv1_b``. The value is the maximum; the gradient is mask / count.
    """
    n, c, h, w = a.shape
    windows = a.reshape((n, c, h // 2, 2, w // 2, 2))
    peak = disconnected_grad(windows.max(axis=(3, 5), keepdims=True))
    mask = pt.eq(windows, peak)
    return (windows * mask).sum(axis=(3, 5)) / mask.sum(axis=(3, 5))


def build_model(X: np.ndarray, y: np.ndarray, *, batch_size: int | None = None) -> pm.Model:
    """The model on ``(X, y)``; with ``batch_size`` the likelihood sees an i.i.d. minibatch."""
    with pm.Model() as model:
        if batch_size is None:
            x_in, y_in, total_size = pm.Data("x_data", X), pm.Data("y_data", y), None
        else:
            (x_in, y_in), total_size = pm.Minibatch(X, y, batch_size=batch_size), X.shape[0]
        theta = {
            name: pm.Normal(name, 0.0, PRIOR_SD, shape=shape) for name, shape in SHAPES.items()
        }
        a = x_in.reshape((x_in.shape[0], *IMAGE))
        for layer in ("conv1", "conv2"):
            z = conv2d_valid(a, theta[f"{layer}_w"], KERNEL) + theta[f"{layer}_b"][:, None, None]
            a = maxpool_2x2(pt.tanh(z))
        h = pt.tanh(pt.dot(a.reshape((a.shape[0], -1)), theta["dense_w"]) + theta["dense_b"])
        eta = pt.dot(h, theta["out_w"]) + theta["out_b"]
        pm.Deterministic("p", pt.special.softmax(eta, axis=-1))
        pm.Categorical("y", logit_p=eta, observed=y_in, total_size=total_size, shape=x_in.shape[0])
    return model
