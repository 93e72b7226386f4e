r"""``mnist_2x800_hier``: the 2x800 network with hierarchical regularisation, in maths.

The data, network and likelihood are ``mnist_2x800``'s (see ``models/mnist_2x800/spec.py``). Each
of the six weight and bias tensors :math:`\theta_k` gets its own scale, learned from the data
(the PyMC3 tutorial's hierarchical variant):

.. math::

    \sigma_k \sim \mathrm{HalfNormal}(1), \qquad
    \theta_{k,j} \mid \sigma_k \sim \mathcal{N}(0, \sigma_k^2),

with :math:`\log \mathrm{HalfNormal}(\sigma; 1) = \log 2 - \tfrac12 \log 2\pi - \tfrac12 \sigma^2`
for :math:`\sigma > 0` (the constant :math:`\log 2` is part of the density in every backend).
Densities are compared on :math:`\sigma` itself, without the Jacobian of any transform; the
variational families (mean-field normal) act on :math:`\log \sigma_k`.

Site names: ``sigma_<tensor>`` for each of ``w_in_1, b_1, w_1_2, b_2, w_2_out, b_out``, then the
tensors themselves, observed ``y``, probabilities ``p``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.stats import halfnorm, norm

from bnnbench.models.mnist_2x800.spec import LAYERS, N_CLASSES, mnist_defaults
from bnnbench.models.mnist_2x800.spec import SPEC as DENSE
from bnnbench.spec import ModelSpec, ParamSpec

__all__ = ["HYPERPRIOR_SD", "SPEC", "scale_name"]

HYPERPRIOR_SD = 1.0
#: Initial value of every scale (``matched``), the non-hierarchical spec's prior sd.
INITIAL_SCALE = 0.1


def scale_name(tensor: str) -> str:
    return f"sigma_{tensor}"


def _halfnormal_prior(x: np.ndarray, params: Mapping[str, np.ndarray]) -> float:
    return float(halfnorm.logpdf(x, scale=HYPERPRIOR_SD).sum())


def _scaled_normal_prior(tensor: str):
    def logpdf(x: np.ndarray, params: Mapping[str, np.ndarray]) -> float:
        return float(norm.logpdf(x, 0.0, params[scale_name(tensor)]).sum())

    return logpdf


_tensors = [
    (name, shape)
    for w, b, n_in, n_out in LAYERS
    for name, shape in ((w, (n_in, n_out)), (b, (n_out,)))
]

SPEC = ModelSpec(
    name="mnist_2x800_hier",
    description="mnist_2x800 with sigma_k ~ HalfNormal(1), W_k ~ N(0, sigma_k^2) per tensor",
    params=(
        *(
            ParamSpec(
                scale_name(name),
                (),
                "HalfNormal(1)",
                _halfnormal_prior,
                positive=True,
                init_value=INITIAL_SCALE,
            )
            for name, _ in _tensors
        ),
        *(
            ParamSpec(
                name,
                shape,
                f"Normal(0, {scale_name(name)})",
                _scaled_normal_prior(name),
                init_sd=INITIAL_SCALE,
            )
            for name, shape in _tensors
        ),
    ),
    likelihood_site="y",
    log_likelihood=DENSE.log_likelihood,
    predict_proba=DENSE.predict_proba,
    load_data=DENSE.load_data,
    defaults=mnist_defaults(),
    n_classes=N_CLASSES,
    predict_chunk=DENSE.predict_chunk,
    verify_points=DENSE.verify_points,
    reference="PyMC3/Lasagne tutorial (hierarchical regularisation): 92.3% test accuracy",
)
