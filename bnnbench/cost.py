r"""The work a model must do: floating-point operations and the fewest bytes moved.

Each spec (``models/<spec>/spec.py``) states two costs from its layer shapes with the helpers
here, and :mod:`bnnbench.roofline` turns them into floor times on a measured machine:

* a **training step**: one minibatch of :math:`B` points of mean-field reparameterised VI with one
  particle (draw :math:`\varepsilon`, :math:`\theta = \mu + \mathrm{softplus}(\rho)\,\varepsilon`,
  forward pass, log-likelihood, log prior, log q, backward pass, Adam update of
  :math:`\mu` and :math:`\rho`);
* a **predictive draw** over :math:`n` points: one parameter draw and one forward pass to the
  output probabilities.

Conventions (one place, so that every spec counts alike)
--------------------------------------------------------
Flops
    One flop per elementary float operation; a transcendental (``tanh``, ``exp``, ``log``) counts
    as one, a comparison (max pooling) as one, the random normal draw as one (integer RNG work is
    not a flop). A matrix product :math:`(n \times m)(m \times k)` costs :math:`2nmk`.
Backward pass
    Twice the forward flops of every term (a matrix product's gradient is two products of the
    same size: one for the weights, one for the inputs), **except** that the gradient with
    respect to the data is never formed: the first layer's backward product is one, not two, so

    .. math:: F_{\mathrm{net, train}} = 3 F_{\mathrm{forward}} - F_{\mathrm{first\ product}}.

VI overhead per latent scalar (``VI_*`` constants)
    forward: sample 6 (draw 1, softplus 3, :math:`\mu + \sigma\varepsilon` 2), log prior 4,
    log q 7; backward twice those; Adam 12 per variational scalar, two variational scalars
    (:math:`\mu, \rho`) per latent: :math:`3 (6 + 4 + 7) + 2 \cdot 12 = 75` flops per latent;
    a positive latent (a scale, ``exp`` of a normal) adds 2 (``exp`` and its log-Jacobian),
    so 6 with the backward pass.
Bytes (the fewest, a lower bound)
    Everything that is not state or data stays on chip (activations, :math:`\varepsilon`,
    :math:`\theta`, gradients: fused). A training step reads and writes once, in float32, the
    six state arrays per latent (:math:`\mu, \rho` and Adam's two moments of each): 48 bytes per
    latent, and reads the minibatch once: :math:`4Bd` bytes of inputs + :math:`4B` of labels
    (int32). A predictive draw reads :math:`\mu, \rho` once (8 bytes per latent) and the
    :math:`n` inputs once (:math:`4nd`), and writes its :math:`n \times K` probabilities once
    (:math:`4nK`; :math:`K = 1` for a binary output).

Everything here is plain Python (no imports from the rest of bnnbench), so that both
:mod:`bnnbench.spec` and :mod:`bnnbench.roofline` can use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "FLOAT32_BYTES",
    "LABEL_BYTES",
    "VI_ADAM_FLOPS",
    "VI_LOG_PRIOR_FLOPS",
    "VI_LOG_Q_FLOPS",
    "VI_POSITIVE_FLOPS",
    "VI_SAMPLE_FLOPS",
    "WorkCost",
    "bernoulli_logit_loglik_cost",
    "categorical_loglik_cost",
    "conv2d_cost",
    "conv2d_matmul_flops",
    "dense_cost",
    "matmul_flops",
    "maxpool_cost",
    "predictive_draw",
    "sigmoid_cost",
    "softmax_cost",
    "training_step",
    "vi_draw_overhead",
    "vi_step_overhead",
]

FLOAT32_BYTES = 4
#: Bytes per class label (int32).
LABEL_BYTES = 4

#: Forward flops per latent scalar to draw it: normal draw 1, softplus 3, mu + sigma * eps 2.
VI_SAMPLE_FLOPS = 6
#: Forward flops per latent scalar of its log prior, -(theta / s)^2 / 2 summed: 4.
VI_LOG_PRIOR_FLOPS = 4
#: Forward flops per latent scalar of log q: ((theta - mu) / sigma)^2 / 2 + log sigma, summed: 7.
VI_LOG_Q_FLOPS = 7
#: Flops of one Adam update of one variational scalar (two moments, bias-corrected step): 12.
VI_ADAM_FLOPS = 12
#: Extra forward flops per positive latent scalar: exp of the normal draw and its log-Jacobian.
VI_POSITIVE_FLOPS = 2


@dataclass(frozen=True)
class WorkCost:
    """Floating-point operations and bytes moved by one piece of work.

    Costs add (:math:`(F_1, M_1) + (F_2, M_2) = (F_1 + F_2, M_1 + M_2)`) and scale by a
    non-negative factor (``3 * cost``, ``cost.scaled(3)``).
    """

    flops: float
    bytes: float

    def __post_init__(self) -> None:
        if self.flops < 0 or self.bytes < 0:
            raise ValueError(f"a cost is non-negative: {self}")

    def __add__(self, other: WorkCost) -> WorkCost:
        if not isinstance(other, WorkCost):
            return NotImplemented
        return WorkCost(self.flops + other.flops, self.bytes + other.bytes)

    def __radd__(self, other: object) -> WorkCost:
        # ``sum(costs)`` starts from the integer 0.
        if other == 0:
            return self
        return NotImplemented

    def __mul__(self, factor: float) -> WorkCost:
        if isinstance(factor, WorkCost):
            return NotImplemented
        return self.scaled(factor)

    __rmul__ = __mul__

    def scaled(self, factor: float) -> WorkCost:
        """:math:`(cF, cM)`."""
        return WorkCost(self.flops * factor, self.bytes * factor)

    def flops_only(self) -> WorkCost:
        """The same flops with no bytes."""
        return WorkCost(self.flops, 0.0)

    @property
    def intensity(self) -> float:
        """Arithmetic intensity :math:`F / M` in flops per byte (``inf`` with no bytes)."""
        return self.flops / self.bytes if self.bytes else float("inf")

    @classmethod
    def zero(cls) -> WorkCost:
        return cls(0.0, 0.0)

    @classmethod
    def total(cls, costs: Iterable[WorkCost]) -> WorkCost:
        """:math:`\\sum_i (F_i, M_i)`."""
        out = cls.zero()
        for cost in costs:
            out = out + cost
        return out


def matmul_flops(n_points: int, fan_in: int, fan_out: int) -> float:
    r""":math:`2 n m k` for :math:`(n \times m)(m \times k)`."""
    return 2.0 * n_points * fan_in * fan_out


def dense_cost(
    n_points: int, fan_in: int, fan_out: int, *, bias: bool = True, activation: bool = True
) -> WorkCost:
    r"""Forward flops of :math:`a(h W + b)` over ``n_points`` rows (activations stay on chip).

    .. math:: F = 2 n m k + n k [\text{bias}] + n k [\text{activation}].
    """
    elementwise = n_points * fan_out * (int(bias) + int(activation))
    return WorkCost(matmul_flops(n_points, fan_in, fan_out) + elementwise, 0.0)


def conv2d_matmul_flops(
    n_points: int, c_in: int, c_out: int, h_out: int, w_out: int, kernel_h: int, kernel_w: int
) -> float:
    r""":math:`2 n C_{out} H_{out} W_{out} C_{in} k_h k_w`."""
    return 2.0 * n_points * c_out * h_out * w_out * c_in * kernel_h * kernel_w


def conv2d_cost(
    n_points: int,
    c_in: int,
    c_out: int,
    h_in: int,
    w_in: int,
    kernel_h: int,
    kernel_w: int,
    *,
    bias: bool = True,
    activation: bool = True,
) -> WorkCost:
    r"""Forward flops of a "valid", stride-1 convolution (+ bias, + activation).

    With :math:`H_{out} = H_{in} - k_h + 1`, :math:`W_{out} = W_{in} - k_w + 1`:

    .. math::

        F = 2 n C_{out} H_{out} W_{out} C_{in} k_h k_w
            + n C_{out} H_{out} W_{out} ([\text{bias}] + [\text{activation}]).
    """
    h_out, w_out = h_in - kernel_h + 1, w_in - kernel_w + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(f"kernel {kernel_h}x{kernel_w} larger than the input {h_in}x{w_in}")
    products = conv2d_matmul_flops(n_points, c_in, c_out, h_out, w_out, kernel_h, kernel_w)
    elementwise = n_points * c_out * h_out * w_out * (int(bias) + int(activation))
    return WorkCost(products + elementwise, 0.0)


def maxpool_cost(n_points: int, channels: int, h_in: int, w_in: int, size: int = 2) -> WorkCost:
    r"""Forward flops of non-overlapping :math:`s \times s` max pooling: :math:`s^2 - 1`
    comparisons per output, :math:`F = n C (H / s)(W / s)(s^2 - 1)`."""
    return WorkCost(
        float(n_points * channels * (h_in // size) * (w_in // size) * (size**2 - 1)), 0.0
    )


def bernoulli_logit_loglik_cost(n_points: int) -> WorkCost:
    r""":math:`\sum_n y_n \eta_n - \mathrm{softplus}(\eta_n)`: 6 flops per point (softplus 3,
    product 1, difference 1, sum 1)."""
    return WorkCost(6.0 * n_points, 0.0)


def categorical_loglik_cost(n_points: int, n_classes: int) -> WorkCost:
    r""":math:`\sum_n \eta_{n y_n} - \log\sum_k e^{\eta_{nk}}` by a stable log-softmax:
    :math:`4K + 2` flops per point (max, subtract, exp, sum over :math:`K`; log; pick and sum)."""
    return WorkCost(float(n_points * (4 * n_classes + 2)), 0.0)


def sigmoid_cost(n_points: int) -> WorkCost:
    r""":math:`\sigma(\eta) = 1 / (1 + e^{-\eta})`: 3 flops per point (exp, add, divide; the
    negation folded in)."""
    return WorkCost(3.0 * n_points, 0.0)


def softmax_cost(n_points: int, n_classes: int) -> WorkCost:
    r"""Stable softmax: :math:`5K` flops per point (max, subtract, exp, sum, divide)."""
    return WorkCost(5.0 * n_points * n_classes, 0.0)


def vi_step_overhead(n_latent: int, n_positive: int = 0) -> WorkCost:
    r"""The VI work of one step that scales with the parameters, not the data.

    .. math::

        F &= P \left(3 (F_{\mathrm{sample}} + F_{\mathrm{prior}} + F_{q}) + 2 F_{\mathrm{Adam}}
            \right) + 3 P_{+} F_{+} = 75 P + 6 P_{+}, \\
        M &= 6 \cdot 2 \cdot 4\, P = 48 P \text{ bytes}

    (:math:`\mu, \rho` and Adam's two moments of each, read and written once in float32), with
    :math:`P` latent scalars of which :math:`P_{+}` are positive (scales).
    """
    forward = VI_SAMPLE_FLOPS + VI_LOG_PRIOR_FLOPS + VI_LOG_Q_FLOPS
    flops = n_latent * (3 * forward + 2 * VI_ADAM_FLOPS) + 3 * n_positive * VI_POSITIVE_FLOPS
    return WorkCost(float(flops), float(6 * 2 * FLOAT32_BYTES * n_latent))


def vi_draw_overhead(n_latent: int, n_positive: int = 0) -> WorkCost:
    r"""One parameter draw :math:`\theta = \mu + \mathrm{softplus}(\rho)\varepsilon`:
    :math:`F = 6 P + 2 P_{+}`, :math:`M = 2 \cdot 4 P` bytes (:math:`\mu, \rho` read once)."""
    flops = VI_SAMPLE_FLOPS * n_latent + VI_POSITIVE_FLOPS * n_positive
    return WorkCost(float(flops), float(2 * FLOAT32_BYTES * n_latent))


def training_step(
    forward: WorkCost,
    first_product_flops: float,
    *,
    n_latent: int,
    n_positive: int,
    batch_size: int,
    n_features: int,
) -> WorkCost:
    r"""One VI training step from the forward pass over the minibatch.

    .. math::

        F &= 3 F_{\mathrm{fwd}} - F_{\mathrm{first}} + 75 P + 6 P_{+}, \\
        M &= 48 P + 4 B d + 4 B,

    where ``forward`` is the network and log-likelihood over the :math:`B` minibatch points and
    ``first_product_flops`` the first layer's matrix product (its input gradient is not formed).
    """
    network = WorkCost(3 * forward.flops - first_product_flops, 3 * forward.bytes)
    minibatch = WorkCost(0.0, float(batch_size * (n_features * FLOAT32_BYTES + LABEL_BYTES)))
    return network + vi_step_overhead(n_latent, n_positive) + minibatch


def predictive_draw(
    forward: WorkCost,
    *,
    n_latent: int,
    n_positive: int,
    n_points: int,
    n_features: int,
    n_outputs: int,
) -> WorkCost:
    r"""One predictive draw from the forward pass (to the probabilities) over ``n_points``.

    .. math::

        F = F_{\mathrm{fwd}} + 6 P + 2 P_{+}, \qquad M = 8 P + 4 n d + 4 n K,

    with :math:`K` = ``n_outputs`` probabilities written per point.
    """
    data = WorkCost(0.0, float(n_points * (n_features + n_outputs) * FLOAT32_BYTES))
    return forward + vi_draw_overhead(n_latent, n_positive) + data
