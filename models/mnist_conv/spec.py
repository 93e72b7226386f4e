r"""``mnist_conv``: a Bayesian convolutional network on MNIST, in maths.

Data: ``mnist_2x800``'s (50k train / 10k test). Each input row :math:`x_n \in [0, 1)^{784}` is
read as one 1 x 28 x 28 image.

Tensor layouts, the same in every backend (converted explicitly where a library differs):
images NCHW (batch, channel, height, width); convolution kernels OIHW (out, in, height, width);
dense weights (in, out); the flattening after the second pooling is C, H, W order (channel
slowest), 32 x 4 x 4 = 512 features.

Network (all convolutions "valid", stride 1, cross-correlation as in every deep-learning library):

.. math::

    a_1 &= \mathrm{maxpool}_{2\times2}(\tanh(\mathrm{conv}(x, K_1) + c_1))        & (32, 12, 12) \\
    a_2 &= \mathrm{maxpool}_{2\times2}(\tanh(\mathrm{conv}(a_1, K_2) + c_2))      & (32, 4, 4) \\
    h   &= \tanh(\mathrm{flatten}(a_2) W_d + b_d)                                 & (256,) \\
    \eta &= h W_o + b_o                                                           & (10,)

:math:`K_1 \in \mathbb{R}^{32 \times 1 \times 5 \times 5}, K_2 \in \mathbb{R}^{32 \times 32
\times 5 \times 5}, W_d \in \mathbb{R}^{512 \times 256}, W_o \in \mathbb{R}^{256 \times 10}`,
with :math:`\mathrm{conv}(a, K)_{o,i,j} = \sum_{c,u,v} a_{c,i+u,j+v} K_{o,c,u,v}`.

Every weight and bias :math:`\sim \mathcal{N}(0, 0.1^2)`; :math:`y_n \sim
\mathrm{Categorical}(\mathrm{softmax}(\eta_n))`; minibatch 500, scaled by N / B.

Site names: ``conv1_w, conv1_b, conv2_w, conv2_b, dense_w, dense_b, out_w, out_b``, observed
``y``, probabilities ``p`` (n, 10).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import log_softmax, softmax
from scipy.stats import norm

from bnnbench.models.mnist_2x800.spec import N_CLASSES, mnist_defaults
from bnnbench.models.mnist_2x800.spec import SPEC as DENSE
from bnnbench.spec import ModelSpec, ParamSpec

__all__ = ["IMAGE", "KERNEL", "PRIOR_SD", "SHAPES", "SPEC", "logits"]

PRIOR_SD = 0.1
IMAGE = (1, 28, 28)
KERNEL = 5
CHANNELS = 32
N_DENSE = 256
N_FLAT = CHANNELS * 4 * 4
SHAPES: dict[str, tuple[int, ...]] = {
    "conv1_w": (CHANNELS, 1, KERNEL, KERNEL),
    "conv1_b": (CHANNELS,),
    "conv2_w": (CHANNELS, CHANNELS, KERNEL, KERNEL),
    "conv2_b": (CHANNELS,),
    "dense_w": (N_FLAT, N_DENSE),
    "dense_b": (N_DENSE,),
    "out_w": (N_DENSE, N_CLASSES),
    "out_b": (N_CLASSES,),
}


def _normal_prior(x: np.ndarray, params: Mapping[str, np.ndarray]) -> float:
    return float(norm.logpdf(x, 0.0, PRIOR_SD).sum())


def _conv(a: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    windows = sliding_window_view(a, kernel.shape[-2:], axis=(2, 3))  # (n, C, H', W', k, k)
    return np.einsum("nchwuv,ocuv->nohw", windows, kernel) + bias[:, None, None]


def _maxpool(a: np.ndarray) -> np.ndarray:
    n, c, h, w = a.shape
    return a.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def logits(params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    r""":math:`\eta`, (n, 10), for one parameter point."""
    a = X.reshape(-1, *IMAGE)
    a = _maxpool(np.tanh(_conv(a, params["conv1_w"], params["conv1_b"])))
    a = _maxpool(np.tanh(_conv(a, params["conv2_w"], params["conv2_b"])))
    h = np.tanh(a.reshape(a.shape[0], -1) @ params["dense_w"] + params["dense_b"])
    return h @ params["out_w"] + params["out_b"]


def log_likelihood(params: Mapping[str, np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
    eta = logits({k: np.asarray(v, np.float64) for k, v in params.items()}, X)
    return float(np.take_along_axis(log_softmax(eta, axis=-1), y[:, None], axis=-1).sum())


def predict_proba(params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    return softmax(logits(params, X), axis=-1)


SPEC = ModelSpec(
    name="mnist_conv",
    description="MNIST conv net: 2 x (conv 32 5x5 tanh, maxpool 2x2), dense 256 tanh, dense 10",
    params=tuple(
        ParamSpec(name, shape, "Normal(0, 0.1)", _normal_prior, init_sd=PRIOR_SD)
        for name, shape in SHAPES.items()
    ),
    likelihood_site="y",
    log_likelihood=log_likelihood,
    predict_proba=predict_proba,
    load_data=DENSE.load_data,
    defaults=mnist_defaults(steps=300),
    n_classes=N_CLASSES,
    predict_chunk=1_000,
    verify_points=200,
    reference="PyMC3/Lasagne tutorial (Bayesian conv net): 98.0% test accuracy, 12.7 hours",
)
