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

Cost (:mod:`bnnbench.cost` conventions; :math:`P = 160\,362` latents, :math:`d = 784`,
:math:`K = 10`), forward flops per point: conv 1 :math:`2 \cdot 32 \cdot 24^2 \cdot 1 \cdot 5^2
= 921\,600` + bias and tanh :math:`2 \cdot 32 \cdot 24^2`; pool 1 :math:`3 \cdot 32 \cdot 12^2`;
conv 2 :math:`2 \cdot 32 \cdot 8^2 \cdot 32 \cdot 5^2 = 3\,276\,800` + :math:`2 \cdot 32 \cdot
8^2`; pool 2 :math:`3 \cdot 32 \cdot 4^2`; dense :math:`2 \cdot 512 \cdot 256 + 2 \cdot 256`;
output :math:`2 \cdot 256 \cdot 10 + 10`; in all :math:`4\,522\,506` per point. A training
step on :math:`B` points costs :math:`3(4\,522\,506 + 42)B - 921\,600B + 75P` flops (conv 1's
input gradient is not formed) and :math:`48P + B(4 \cdot 784 + 4)` bytes; a predictive draw over
:math:`n` points :math:`(4\,522\,506 + 50)n + 6P` flops and :math:`8P + 4n(784 + 10)` bytes.

Site names: ``conv1_w, conv1_b, conv2_w, conv2_b, dense_w, dense_b, out_w, out_b``, observed
``y``, probabilities ``p`` (n, 10).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import log_softmax, softmax
from scipy.stats import norm

from bnnbench.cost import (
    WorkCost,
    categorical_loglik_cost,
    conv2d_cost,
    conv2d_matmul_flops,
    dense_cost,
    maxpool_cost,
    predictive_draw,
    softmax_cost,
    training_step,
)
from bnnbench.models.mnist_2x800.spec import MNIST_FACTS, N_CLASSES, REFUSAL_ANCHOR, mnist_defaults
from bnnbench.models.mnist_2x800.spec import SPEC as DENSE
from bnnbench.spec import ModelSpec, ParamSpec, TutorialAnchor

__all__ = [
    "IMAGE",
    "KERNEL",
    "PRIOR_SD",
    "SHAPES",
    "SPEC",
    "draw_cost",
    "forward_cost",
    "logits",
    "step_cost",
]

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

#: Named dimensions of each tensor (kernels are (out channel, in channel, kernel y, kernel x)).
DIMS: dict[str, tuple[str, ...]] = {
    "conv1_w": ("channel_1", "channel_in", "kernel_y", "kernel_x"),
    "conv1_b": ("channel_1",),
    "conv2_w": ("channel_2", "channel_1", "kernel_y", "kernel_x"),
    "conv2_b": ("channel_2",),
    "dense_w": ("flat", "unit_dense"),
    "dense_b": ("unit_dense",),
    "out_w": ("unit_dense", "class"),
    "out_b": ("class",),
}


def _normal_prior(x: np.ndarray, params: Mapping[str, np.ndarray]) -> float:
    return float(norm.logpdf(x, 0.0, PRIOR_SD).sum())


#: Points per batch of this NumPy forward pass: conv 2's window copy of a batch is about 200 MB
#: at float32 (1,024 x 64 positions x 800 weights).
BATCH_POINTS = 1024


def _conv(a: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    windows = sliding_window_view(a, kernel.shape[-2:], axis=(2, 3))  # (n, C, H', W', k, k)
    # one BLAS product over (c, u, v): (n, H', W', O); np.einsum's loop is ~100x slower
    out = np.tensordot(windows, kernel, axes=([1, 4, 5], [1, 2, 3]))
    return out.transpose(0, 3, 1, 2) + bias[:, None, None]


def _maxpool(a: np.ndarray) -> np.ndarray:
    n, c, h, w = a.shape
    return a.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _batch_logits(params: Mapping[str, np.ndarray], a: np.ndarray) -> np.ndarray:
    a = _maxpool(np.tanh(_conv(a, params["conv1_w"], params["conv1_b"])))
    a = _maxpool(np.tanh(_conv(a, params["conv2_w"], params["conv2_b"])))
    h = np.tanh(a.reshape(a.shape[0], -1) @ params["dense_w"] + params["dense_b"])
    return h @ params["out_w"] + params["out_b"]


def logits(params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    r""":math:`\eta`, (n, 10), for one parameter point (in batches of ``BATCH_POINTS``)."""
    a = X.reshape(-1, *IMAGE)
    starts = range(0, max(len(a), 1), BATCH_POINTS)
    return np.concatenate([_batch_logits(params, a[i : i + BATCH_POINTS]) for i in starts])


def log_likelihood(params: Mapping[str, np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
    # In the precision of X: float64 for ``verify``, float32 for the Pareto-k of a fit.
    dtype = np.result_type(np.asarray(X).dtype, np.float32)
    eta = logits({k: np.asarray(v, dtype) for k, v in params.items()}, np.asarray(X, dtype))
    log_p = np.take_along_axis(log_softmax(eta, axis=-1), y[:, None], axis=-1)
    return float(log_p.sum(dtype=np.float64))


def predict_proba(params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    return softmax(logits(params, X), axis=-1)


#: Latent scalars: every kernel, weight and bias (160,362).
N_LATENT = sum(int(np.prod(shape)) for shape in SHAPES.values())
N_INPUT = int(np.prod(IMAGE))


def _conv_size(size: int) -> int:
    """Side after a valid KERNEL x KERNEL convolution."""
    return size - KERNEL + 1


def forward_cost(n_points: int) -> WorkCost:
    r"""Logits of ``n_points``, layer by layer as :func:`logits` computes them: conv 1 (1 -> 32,
    28 -> 24) + bias + tanh, max pool (-> 12), conv 2 (32 -> 32, 12 -> 8) + bias + tanh, max pool
    (-> 4), dense 512 -> 256 + bias + tanh, dense 256 -> 10 + bias: 4,522,506 flops per point."""
    c_in, side, _ = IMAGE
    cost = WorkCost.zero()
    for _ in ("conv1", "conv2"):
        cost += conv2d_cost(n_points, c_in, CHANNELS, side, side, KERNEL, KERNEL)
        side = _conv_size(side)
        cost += maxpool_cost(n_points, CHANNELS, side, side, 2)
        c_in, side = CHANNELS, side // 2
    assert c_in * side * side == N_FLAT
    return (
        cost
        + dense_cost(n_points, N_FLAT, N_DENSE)
        + dense_cost(n_points, N_DENSE, N_CLASSES, activation=False)
    )


def step_cost(batch_size: int) -> WorkCost:
    r"""One VI step: :math:`F = 3(F_{\mathrm{fwd}}(B) + 42B) - 921\,600B + 75P`,
    :math:`M = 48P + B(4 \cdot 784 + 4)` bytes."""
    _, side, _ = IMAGE
    first = conv2d_matmul_flops(
        batch_size, IMAGE[0], CHANNELS, _conv_size(side), _conv_size(side), KERNEL, KERNEL
    )
    return training_step(
        forward_cost(batch_size) + categorical_loglik_cost(batch_size, N_CLASSES),
        first,
        n_latent=N_LATENT,
        n_positive=0,
        batch_size=batch_size,
        n_features=N_INPUT,
    )


def draw_cost(n_points: int) -> WorkCost:
    r"""One predictive draw: :math:`F = F_{\mathrm{fwd}}(n) + 50n + 6P`,
    :math:`M = 8P + 4n(784 + 10)` bytes."""
    return predictive_draw(
        forward_cost(n_points) + softmax_cost(n_points, N_CLASSES),
        n_latent=N_LATENT,
        n_positive=0,
        n_points=n_points,
        n_features=N_INPUT,
        n_outputs=N_CLASSES,
    )


SPEC = ModelSpec(
    name="mnist_conv",
    cell_memory_mb=2_500,  # peak_rss_mb of the committed results, with head room
    # 95 and 97%, the tutorial's 98.0%, and the maximum-likelihood LeNet's 98.5%.
    accuracy_targets=(0.95, 0.97, 0.98, 0.985),
    description="MNIST conv net: 2 x (conv 32 5x5 tanh, maxpool 2x2), dense 256 tanh, dense 10",
    params=tuple(
        ParamSpec(name, shape, "Normal(0, 0.1)", _normal_prior, init_sd=PRIOR_SD, dims=DIMS[name])
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
    tutorials=(
        TutorialAnchor(
            "PyMC3/Lasagne 'Bayesian deep learning' convolutional net",
            accuracy=0.980,
            wall_time_h=12.67,
        ),
        REFUSAL_ANCHOR,
    ),
    **MNIST_FACTS,
    step_cost=step_cost,
    draw_cost=draw_cost,
)
