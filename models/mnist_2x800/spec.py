r"""``mnist_2x800``: the tutorial's 784 -> 800 -> 800 -> 10 tanh BNN on MNIST, in maths.

Data: MNIST, the classic 50k train / 10k test split (``bnnbench.datasets.mnist``); inputs
:math:`x_n \in [0, 1)^{784}` (row-major 28 x 28 pixels), labels :math:`y_n \in \{0, \dots, 9\}`,
:math:`N = 50\,000`.

Network (tanh, with biases; weight matrices laid out (in, out) in every backend):

.. math::

    h^{(1)} = \tanh(x W_{in,1} + b_1), \quad h^{(2)} = \tanh(h^{(1)} W_{1,2} + b_2), \quad
    \eta = h^{(2)} W_{2,out} + b_{out},

:math:`W_{in,1} \in \mathbb{R}^{784 \times 800}, W_{1,2} \in \mathbb{R}^{800 \times 800},
W_{2,out} \in \mathbb{R}^{800 \times 10}`, biases of the matching widths.

Prior and likelihood:

.. math::

    \text{every weight and bias} \overset{iid}{\sim} \mathcal{N}(0, 0.1^2), \qquad
    y_n \mid x_n, \theta \sim \mathrm{Categorical}(\mathrm{softmax}(\eta_n)).

Log joint with every constant: :math:`\sum_j \log \mathcal{N}(\theta_j; 0, 0.1^2)
+ \sum_n \eta_{n, y_n} - \log \sum_k e^{\eta_{nk}}`. Minibatch 500, scaled by N / B.

Site names: ``w_in_1, b_1, w_1_2, b_2, w_2_out, b_out``, observed ``y``, softmax probabilities
``p`` (n, 10).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import log_softmax, softmax
from scipy.stats import norm

from bnnbench.datasets.mnist import load_mnist
from bnnbench.spec import ModelSpec, ParamSpec, TrainingDefaults

__all__ = ["LAYERS", "PRIOR_SD", "SPEC", "logits", "mnist_defaults"]

N_INPUT, N_HIDDEN, N_CLASSES = 784, 800, 10
PRIOR_SD = 0.1
#: (weight, bias, fan-in, fan-out) of each dense layer, input to output.
LAYERS = (
    ("w_in_1", "b_1", N_INPUT, N_HIDDEN),
    ("w_1_2", "b_2", N_HIDDEN, N_HIDDEN),
    ("w_2_out", "b_out", N_HIDDEN, N_CLASSES),
)


def _normal_prior(x: np.ndarray, params: Mapping[str, np.ndarray]) -> float:
    return float(norm.logpdf(x, 0.0, PRIOR_SD).sum())


def logits(params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    r""":math:`\eta`, (n, 10); parameters may carry leading draw dims."""
    h = X
    for i, (w, b, _, _) in enumerate(LAYERS):
        h = h @ params[w] + params[b][..., None, :]
        if i < len(LAYERS) - 1:
            h = np.tanh(h)
    return h


def log_likelihood(params: Mapping[str, np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
    eta = logits({k: np.asarray(v, np.float64) for k, v in params.items()}, X)
    return float(np.take_along_axis(log_softmax(eta, axis=-1), y[:, None], axis=-1).sum())


def predict_proba(params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    return softmax(logits(params, X), axis=-1)


def mnist_defaults(steps: int = 2_000) -> TrainingDefaults:
    """The tutorials' minibatch of 500; Adam(1e-3) and initial scale 0.01 (field notes: these
    train the 2x800 net in float32 without NaNs); 100 predictive draws."""
    return TrainingDefaults(
        batch_size=500,
        steps=steps,
        learning_rate=1e-3,
        init_scale=0.01,
        predict_draws=100,
        trace_every=100,
    )


SPEC = ModelSpec(
    name="mnist_2x800",
    description="MNIST, 784 -> 800 -> 800 -> 10 tanh, N(0, 0.1^2) weights and biases, softmax",
    params=tuple(
        ParamSpec(name, shape, "Normal(0, 0.1)", _normal_prior, init_sd=PRIOR_SD)
        for w, b, n_in, n_out in LAYERS
        for name, shape in ((w, (n_in, n_out)), (b, (n_out,)))
    ),
    likelihood_site="y",
    log_likelihood=log_likelihood,
    predict_proba=predict_proba,
    load_data=load_mnist,
    defaults=mnist_defaults(),
    n_classes=N_CLASSES,
    predict_chunk=2_500,
    verify_points=2_000,
    reference="PyMC3/Lasagne tutorial: 89.8% test accuracy, minibatch ADVI, 4 hours",
)
