r"""The contract every model specification fulfils.

A specification (``models/<spec>/spec.py``) states a Bayesian neural network once, in maths and in
NumPy: the names and shapes of its parameters, their priors, the likelihood, the data, and a
float64 reference implementation of the log joint density

.. math::

    \log p(\theta, y \mid X) = \sum_k \log p(\theta_k)
        + \sum_{n=1}^{N} \log p(y_n \mid x_n, \theta).

Each backend file beside it (``pymc.py``, ``pyro.py``, ``numpyro.py``) must implement exactly that
density with exactly these site names; ``bnnbench verify`` checks it term by term.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from bnnbench.cost import WorkCost
from bnnbench.registry import backend_info
from bnnbench.types import BACKENDS

__all__ = [
    "SPEC_NAMES",
    "Dataset",
    "ModelSpec",
    "ParamSpec",
    "TrainingDefaults",
    "TutorialAnchor",
    "backend_module",
    "get_spec",
    "specs_with_nuts_reference",
]

#: Every specification bnnbench knows, by name (``models/<name>/``).
SPEC_NAMES: tuple[str, ...] = ("moons_2x5", "mnist_2x800", "mnist_2x800_hier", "mnist_conv")

Params = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Dataset:
    """A train/test split; ``X_*`` are float arrays (n, d), ``y_*`` integer labels (n,)."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])


@dataclass(frozen=True)
class ParamSpec:
    """One parameter tensor: site name, shape, prior (in words and as a log density).

    Attributes
    ----------
    prior_logpdf
        ``(value, params) -> float``: the log prior density of this tensor, float64; ``params``
        holds the other tensors for hierarchical priors.
    init_sd
        Standard deviation of the shared seeded draw of initial means (``matched``) and of the
        random points of ``verify``.
    positive
        A positive parameter (a scale): it starts at ``init_value`` and is drawn log-normally
        around it by ``verify``; variational families act on its logarithm.
    """

    name: str
    shape: tuple[int, ...]
    prior: str
    prior_logpdf: Callable[[np.ndarray, Mapping[str, np.ndarray]], float]
    init_sd: float = 1.0
    positive: bool = False
    init_value: float = 0.1
    dims: tuple[str, ...] | None = None

    @property
    def dim_names(self) -> tuple[str, ...]:
        """Named dimensions of the tensor in stored draws (``dims``, else ``<name>_dim_<i>``);
        tensors of one spec that share a dimension name share its length."""
        if self.dims is not None:
            if len(self.dims) != len(self.shape):
                raise ValueError(f"{self.name}: dims {self.dims} do not match shape {self.shape}")
            return self.dims
        return tuple(f"{self.name}_dim_{i}" for i in range(len(self.shape)))


@dataclass(frozen=True)
class TutorialAnchor:
    """What a tutorial behind a spec reported: shown beside the results, never used to score.

    Attributes
    ----------
    source
        The tutorial, in words.
    accuracy
        Its test accuracy (a fraction), or ``None``.
    steps, wall_time_h, hardware
        The budget it took (optimisation steps, hours, on what), where stated.
    refusal
        Record field -> the tutorial's figure for it (e.g. ``refusal_rate`` 0.125 in Pyro's
        "I don't know" tutorial), drawn as dashes in the report.
    """

    source: str
    accuracy: float | None = None
    steps: int | None = None
    wall_time_h: float | None = None
    hardware: str = ""
    refusal: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingDefaults:
    """Per-spec defaults of the harness (all overridable from the CLI or a suite)."""

    batch_size: int
    steps: int
    learning_rate: float
    init_scale: float
    predict_draws: int
    trace_every: int


@dataclass(frozen=True)
class ModelSpec:
    """A model written once in maths.

    Attributes
    ----------
    name
        The spec's name, also its folder under ``models/``.
    params
        The latent parameter tensors in a fixed order.
    likelihood_site
        Name of the observed site (the same in every backend).
    log_likelihood
        ``(params, X, y) -> float``: :math:`\\sum_n \\log p(y_n \\mid x_n, \\theta)` in float64.
    predict_proba
        ``(params, X) -> array``: class probabilities; for one binary output the probability of
        class 1, shape (n,); parameters may carry leading draw dimensions.
    load_data
        ``() -> Dataset``: the fixed train/test split.
    defaults
        Harness defaults for this spec.
    grid
        ``(lo, hi, n)``: the square of input space on which 2-D specs map the predictive surface,
        or ``None``.
    n_classes
        Number of classes; a 2-class spec has a Bernoulli likelihood and its site ``p`` is
        p(y = 1 | x) of shape (n,), otherwise ``p`` holds softmax probabilities (n, K).
    predict_chunk
        Test points per call of the backend's predictive (bounds memory).
    reference
        What the tutorial behind the spec reported (shown beside the results).
    verify_points
        ``verify`` evaluates the log joint on the first this many training points (``None``: all);
        large specs use a subset so that the float64 NumPy reference stays fast.
    step_cost
        ``batch_size -> WorkCost``: the flops and fewest bytes of one training step of
        mean-field VI with one particle on a minibatch of that size (:mod:`bnnbench.cost` states
        the conventions), or ``None`` if the spec states none.
    draw_cost
        ``n_points -> WorkCost``: the same for one predictive draw (parameter draw + forward pass
        to the probabilities) over that many points, or ``None``.
    ood_sets
        Out-of-distribution input sets (:mod:`bnnbench.datasets.ood`) each run also predicts,
        to measure how often the reject option refuses them.
    ood_labels
        How the report names each OOD set, and ``test_label`` the in-distribution test set.
    tutorials
        What the tutorials behind the spec reported (:class:`TutorialAnchor`).
    n_train
        Training points of ``load_data()`` (checked by the harness before a run, without
        loading the data).
    nuts_reference
        Whether full-data NUTS is affordable for this spec (``bnnbench reference`` offers it).
    cell_memory_mb
        Host memory one cell of this spec needs (the largest ``peak_rss_mb`` of any backend in
        the committed results, rounded up with head room): what a cluster scheduler reserves
        for it (``bnnbench run --executor ray``).
    gpu_fraction
        Share of one GPU a GPU cell of this spec needs when cells share a device (1.0: a GPU
        of its own). Below 1, JAX is limited to that share of the device's memory.
    accuracy_targets
        Test accuracies (fractions, ascending) whose time-to-accuracy every cell reports: the
        training steps and seconds at which its learning curve first reaches each (the tutorials'
        figures among them), or "not reached".
    """

    name: str
    description: str
    params: tuple[ParamSpec, ...]
    likelihood_site: str
    log_likelihood: Callable[[Params, np.ndarray, np.ndarray], float]
    predict_proba: Callable[[Params, np.ndarray], np.ndarray]
    load_data: Callable[[], Dataset]
    defaults: TrainingDefaults
    grid: tuple[float, float, int] | None = None
    n_classes: int = 2
    predict_chunk: int = 10_000
    verify_points: int | None = None
    reference: str = ""
    implementations: tuple[str, ...] = field(default=BACKENDS)
    step_cost: Callable[[int], WorkCost] | None = None
    draw_cost: Callable[[int], WorkCost] | None = None
    ood_sets: tuple[str, ...] = ()
    ood_labels: Mapping[str, str] = field(default_factory=dict)
    test_label: str = "test"
    tutorials: tuple[TutorialAnchor, ...] = ()
    n_train: int | None = None
    nuts_reference: bool = False
    cell_memory_mb: int = 2_000
    gpu_fraction: float = 1.0
    accuracy_targets: tuple[float, ...] = ()

    @property
    def param_dims(self) -> dict[str, tuple[str, ...]]:
        """Each tensor's named dimensions in stored draws."""
        return {p.name: p.dim_names for p in self.params}

    @property
    def tutorial_refusal(self) -> dict[str, float]:
        """Every tutorial's refusal figures, by record field."""
        return {k: v for t in self.tutorials for k, v in t.refusal.items()}

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def proba_event_shape(self) -> tuple[int, ...]:
        """Shape of the site ``p`` per data point: () if binary, (K,) otherwise."""
        return () if self.n_classes == 2 else (self.n_classes,)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {p.name: p.shape for p in self.params}

    @property
    def n_params(self) -> int:
        return int(sum(np.prod(p.shape, dtype=int) for p in self.params))

    def log_prior_terms(self, params: Params) -> dict[str, float]:
        """Per-tensor log prior densities, float64."""
        params64 = {k: np.asarray(v, np.float64) for k, v in params.items()}
        return {p.name: float(p.prior_logpdf(params64[p.name], params64)) for p in self.params}

    def log_joint_terms(self, params: Params, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Every term of the log joint: one per parameter tensor plus the likelihood site."""
        terms = self.log_prior_terms(params)
        terms[self.likelihood_site] = float(self.log_likelihood(params, X, y))
        return terms

    def random_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A random parameter point, float64: entries N(0, init_sd^2), positive ones
        ``init_value * exp(N(0, 1/4))``."""
        return {
            p.name: p.init_value * np.exp(0.5 * rng.standard_normal(p.shape))
            if p.positive
            else p.init_sd * rng.standard_normal(p.shape)
            for p in self.params
        }

    def initial_means(self, seed: int) -> dict[str, np.ndarray]:
        """The one seeded draw of initial variational means shared by all backends (``matched``).

        Entries are i.i.d. N(0, init_sd^2) (moons: N(0, 1), the PyMC3 tutorial's
        ``np.random.randn`` test values); positive parameters start at ``init_value``. Values are
        in the parameters' own (constrained) space, float32.
        """
        rng = np.random.default_rng([seed, 20_190_601])
        return {
            p.name: np.full(p.shape, p.init_value, np.float32)
            if p.positive
            else (p.init_sd * rng.standard_normal(p.shape)).astype(np.float32)
            for p in self.params
        }

    def verification_data(self) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)`` on which ``verify`` compares the backends: the first ``verify_points``
        training points (all of them by default), X in float64."""
        data = self.load_data()
        n = self.verify_points or data.n_train
        return np.asarray(data.X_train[:n], np.float64), data.y_train[:n]

    def grid_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(xs, ys, points)``: the grid axes and its points as an (n*n, 2) array."""
        if self.grid is None:
            return None
        lo, hi, n = self.grid
        xs = np.linspace(lo, hi, n)
        ys = np.linspace(lo, hi, n)
        gx, gy = np.meshgrid(xs, ys)
        return xs, ys, np.column_stack([gx.ravel(), gy.ravel()])


def get_spec(name: str) -> ModelSpec:
    """The spec called ``name`` (``ValueError`` listing the valid names otherwise)."""
    if name not in SPEC_NAMES:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(SPEC_NAMES)}")
    return importlib.import_module(f"bnnbench.models.{name}.spec").SPEC


def specs_with_nuts_reference() -> tuple[str, ...]:
    """The specs small enough for a full-data NUTS reference posterior."""
    return tuple(name for name in SPEC_NAMES if get_spec(name).nuts_reference)


def backend_module(spec_name: str, backend: str) -> ModuleType:
    """The file ``models/<spec>/<backend>.py`` (``torch_ml.py`` for ``torch-ml``)."""
    module = backend_info(backend).model_file
    return importlib.import_module(f"bnnbench.models.{get_spec(spec_name).name}.{module}")
