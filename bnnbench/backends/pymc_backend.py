"""PyMC: minibatch ADVI (``pm.Minibatch``, ``total_size``) compiled by pytensor.

PyMC's ADVI runs one compiled pytensor function per step from a Python loop (that is what
``pm.fit`` does; the library offers no multi-step compiled loop). The harness calls the same step
function that ``pm.fit`` builds (``inference.objective.step_function``), so compile time is apart
from steady-state time. ``matched`` and ``native`` compile with pytensor's C backend on the CPU and
its JAX backend on the GPU; ``tuned`` takes the fastest mode measured for the spec and device
(``KNOBS``). pytensor's C code is linked to OpenBLAS from the ``scipy-openblas32`` wheel
(:mod:`bnnbench.backends.pytensor_blas`): installed from pip, pytensor finds no BLAS of its
own. Every mode returns the loss as a host number, so each step ends synchronised.

``pytensor`` reads ``floatX`` once at import: the harness sets ``PYTENSOR_FLAGS`` in the cell's
process (``float32`` for ``matched``, PyMC's own ``float64`` for ``native``).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
from pymc.model.transform.conditioning import remove_value_transforms
from pymc.pytensorf import resolve_backend_compile_kwargs

from bnnbench.backends.knobs import Knob, describe
from bnnbench.backends.pytensor_blas import configure_blas
from bnnbench.config import CellConfig
from bnnbench.metrics import sample_labels
from bnnbench.spec import Dataset, ModelSpec, backend_module

__all__ = ["KNOBS", "PyMCSession", "device_problem", "library_versions", "log_joint_terms"]

#: This backend's entry in :mod:`bnnbench.registry` (read from the source, never imported there).
BACKEND = dict(
    name="pymc",
    order=0,
    bayesian=True,
    packages={"pymc": "pymc", "pytensor": "pytensor"},
    library="pymc",
    runtime="pytensor",
    extra="pymc",
    color="#1f77b4",
    model_file="pymc",
)

#: The execution knobs behind ``tuned`` (see :mod:`bnnbench.backends.knobs`), timed by
#: ``python -P -m bnnbench.benchmarks.tune`` (results/tuning/cpu-dense and cpu-conv, 2-core CPU),
#: step ms c (with OpenBLAS) / numba / jax: mnist_2x800 95 / 71 / 65, hierarchical 99 / 78 / 63,
#: conv 1115 / 1073 / 298; moons (results/tuning/cpu-moons_2x5, before OpenBLAS) 0.090 / 0.126 /
#: 0.281, so moons keeps c.
KNOBS: dict[str, Knob] = {
    "mode": Knob(
        env="BNNBENCH_PYMC_BACKEND",
        choices=("c", "numba", "jax"),
        default="c",
        tuned={
            ("mnist_2x800", "cpu"): "jax",
            ("mnist_2x800_hier", "cpu"): "jax",
            ("mnist_conv", "cpu"): "jax",
        },
        devices={"gpu": ("jax",)},
        doc=(
            "pytensor's compile mode for the ADVI step and the predictive, as "
            "pm.fit(backend=...) names it: c (C code, linked to OpenBLAS), numba or jax; on "
            "the GPU only jax reaches the device"
        ),
    ),
}


def compile_backend(spec_name: str, device: str, profile: str) -> str:
    """The pytensor backend (``"c"``, ``"numba"`` or ``"jax"``) this cell compiles with."""
    return KNOBS["mode"].choose(spec_name, device, profile)


#: The BLAS pytensor's C code links to in this process (provenance; ``configure_blas``).
PYTENSOR_BLAS = configure_blas()


def library_versions() -> dict[str, str]:
    return {
        "pymc": pm.__version__,
        "pytensor": pytensor.__version__,
        "pytensor_blas": PYTENSOR_BLAS,
    }


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used, or ``None`` (the GPU path goes through JAX)."""
    if device == "gpu":
        try:
            import jax

            jax.devices("gpu")
        except (ImportError, RuntimeError) as err:
            return f"PyMC runs on the GPU through pytensor's JAX backend; JAX has no GPU ({err})"
    return None


def label_dtype() -> str:
    """The discrete dtype PyMC casts observed labels to under the current floatX."""
    return "int16" if pytensor.config.floatX == "float32" else "int32"


def log_joint_terms(
    spec: ModelSpec, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Full-data log density per variable and its gradient, float64, no Jacobian terms."""
    if pytensor.config.floatX != "float64":
        raise RuntimeError("verify needs pytensor floatX=float64")
    # Densities are compared on the parameters themselves: drop log/interval value transforms.
    model = remove_value_transforms(
        backend_module(spec.name, "pymc").build_model(X, y.astype(label_dtype()))
    )
    rvs = [*model.free_RVs, *model.observed_RVs]
    term_graphs = [model.logp(vars=[rv], jacobian=False, sum=True) for rv in rvs]
    total = model.logp(jacobian=False, sum=True)
    grad_graphs = [pytensor.grad(total, model.rvs_to_values[rv]) for rv in model.free_RVs]
    # FAST_COMPILE: verification needs exact float64 values, not a slow C compile.
    fn = model.compile_fn([*term_graphs, *grad_graphs], point_fn=True, mode="FAST_COMPILE")
    point = {
        model.rvs_to_values[model[k]].name: np.asarray(v, np.float64) for k, v in params.items()
    }
    out = fn(point)
    n = len(rvs)
    terms = {rv.name: float(v) for rv, v in zip(rvs, out[:n], strict=True)}
    grads = {rv.name: np.asarray(g) for rv, g in zip(model.free_RVs, out[n:], strict=True)}
    return terms, grads


class PyMCSession:
    """ADVI state of one cell."""

    def __init__(self, spec: ModelSpec, data: Dataset, cfg: CellConfig) -> None:
        self.spec, self.cfg, self.data = spec, cfg, data
        self.module = backend_module(spec.name, "pymc")
        self.dtype = pytensor.config.floatX
        self.mode = compile_backend(spec.name, cfg.device, cfg.profile)
        self._predict_model: pm.Model | None = None
        self._predict_fn = None
        self._predict_inputs: list[str] = []
        self._compile_kwargs = resolve_backend_compile_kwargs(self.mode, None)
        #: PyMC's minibatch embeds the training arrays in the compiled step: their transfer to
        #: the device is part of compile_s and cannot be timed apart.
        self.transfer_s = float("nan")
        blas = f", BLAS {PYTENSOR_BLAS}" if self.mode == "c" else ""
        self.execution_path = (
            f"pytensor-compiled ADVI step (floatX={self.dtype}{blas}), Python loop as in pm.fit; "
            "predictive p(y | x, theta) compiled once, one call per draw "
            f"({describe({'mode': self.mode})})"
        )

    def compile(self, chunk_sizes: set[int]) -> None:
        cfg = self.cfg
        X = self.data.X_train.astype(self.dtype)
        y = self.data.y_train.astype(label_dtype())
        self.model = self.module.build_model(X, y, batch_size=cfg.batch_size)
        with self.model:
            if cfg.profile != "native":  # matched and tuned share the init
                means = self.spec.initial_means(cfg.seed)
                self.inference = pm.ADVI(
                    random_seed=cfg.seed,
                    start={k: v.astype(self.dtype) for k, v in means.items()},
                    # start_sigma is keyed by value variable (e.g. ``sigma_b_1_log__``).
                    start_sigma={
                        self.model.rvs_to_values[self.model[k]].name: np.full(
                            v.size, cfg.init_scale, self.dtype
                        )
                        for k, v in means.items()
                    },
                )
                # Report and optimise the full-data objective, as Pyro and NumPyro do.
                self.inference.approx.scale_cost_to_minibatch = False
                optimizer = pm.adam(learning_rate=cfg.learning_rate)
            else:
                self.inference = pm.ADVI(random_seed=cfg.seed)
                optimizer = pm.adagrad_window()
            self._step = self.inference.objective.step_function(
                score=True, obj_optimizer=optimizer, compile_kwargs=self._compile_kwargs
            )
        # PyMC's loss is scaled by B / N unless scale_cost_to_minibatch is off.
        scaled = self.inference.approx.scale_cost_to_minibatch
        self._loss_to_full_data = self.data.n_train / cfg.batch_size if scaled else 1.0

    def synchronize(self) -> None:
        """Every compiled call returns host values: nothing is left queued."""
        if self.mode == "jax":
            import jax

            jax.effects_barrier()

    def peak_device_memory_mb(self) -> float | None:
        """Peak GPU memory of JAX in this process (``None`` on the CPU)."""
        if self.cfg.device != "gpu":
            return None
        import jax

        stats = jax.devices("gpu")[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use", float("nan")) / 2**20

    def run_steps(self, n_steps: int) -> np.ndarray:
        step = self._step
        losses = np.fromiter((step() for _ in range(n_steps)), np.float64, count=n_steps)
        return losses * self._loss_to_full_data

    def variational_parameters(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per parameter, the mean-field (loc, scale) in the unconstrained space (PyMC's value
        variables: the parameter itself, or its log for the positive scales)."""
        self._writable_parameters()
        group = self.inference.approx.groups[0]
        mean, std = group.mean.eval(), group.std.eval()
        values_to_names = {
            self.model.rvs_to_values[self.model[k]].name: k for k in self.spec.param_names
        }
        out = {}
        for value_name, (_, slc, shape, _) in group.ordering.items():
            name = values_to_names[value_name]
            out[name] = (mean[slc].reshape(shape), std[slc].reshape(shape))
        return out

    def _writable_parameters(self) -> None:
        """After a JAX-mode fit the approximation's shared parameters hold read-only buffers,
        which pytensor's default (numba) mode used by ``approx.sample`` cannot type
        ("Unknown attribute 'shape' of type readonly buffer"); give them writable copies."""
        for shared in self.inference.approx.params:
            value = shared.get_value(borrow=True)
            if not getattr(value, "flags", None) or not value.flags.writeable:
                shared.set_value(np.array(value))

    def _training_rngs(self) -> list:
        """The random generators (shared variables) the compiled step draws from: the
        minibatch indices and the ELBO's noise."""
        from pytensor.tensor.random.type import RandomGeneratorType

        return [v for v in self._step.get_shared() if isinstance(v.type, RandomGeneratorType)]

    def sample_posterior(self, draws: int, seed: int) -> dict[str, np.ndarray]:
        self._writable_parameters()
        # ``approx.sample(random_seed=...)`` reseeds the approximation's generators, which the
        # training step shares: give training back its state, so that a learning-curve
        # checkpoint leaves the next chunks' minibatches and noise as they would have been.
        rngs = self._training_rngs()
        states = [rng.get_value(borrow=False) for rng in rngs]
        try:
            posterior = self.inference.approx.sample(draws, random_seed=seed).posterior
        finally:
            for rng, state in zip(rngs, states, strict=True):
                rng.set_value(state, borrow=True)
        shapes = self.spec.param_shapes
        return {k: posterior[k].values.reshape(draws, *shapes[k]) for k in self.spec.param_names}

    def _compile_predictive(self, X: np.ndarray, y_placeholder: np.ndarray) -> None:
        """Compile p(y | x, theta) once, on a full-data twin of the model whose ``x_data``
        container is swapped per chunk (``pm.sample_posterior_predictive`` would recompile the
        graph on every call)."""
        model = self.module.build_model(X, y_placeholder)
        (p,) = model.replace_rvs_by_values([model["p"]])
        used = set(pytensor.graph.ancestors([p]))
        inputs = [
            v for v in (model.rvs_to_values[model[k]] for k in self.spec.param_names) if v in used
        ]
        self._predict_model = model
        self._predict_inputs = [v.name for v in inputs]
        self._predict_fn = model.compile_fn(
            p, inputs=inputs, point_fn=False, **self._compile_kwargs
        )

    def predict(
        self, posterior: dict[str, np.ndarray], X: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        n = X.shape[0]
        X = X.astype(self.dtype)
        y_placeholder = np.zeros(n, label_dtype())
        if self._predict_model is None:
            self._compile_predictive(X, y_placeholder)
        with self._predict_model:
            pm.set_data({"x_data": X, "y_data": y_placeholder})
        draws = len(next(iter(posterior.values())))
        proba = np.stack(
            [
                self._predict_fn(
                    *[posterior[name][s].astype(self.dtype) for name in self._predict_inputs]
                )
                for s in range(draws)
            ]
        )
        return proba, sample_labels(proba, np.random.default_rng(seed))


TrainingSession = PyMCSession
