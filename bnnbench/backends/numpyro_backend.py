"""NumPyro: SVI with ``AutoNormal`` and ``Trace_ELBO``, steps run in a jitted ``lax.scan``.

The data live on the device once (``jax.device_put``). In ``matched``, every chunk of
``trace_every`` steps is one compiled, buffer-donating call of ``lax.scan`` over ``svi.update``,
so the host only sees the chunk's per-step losses, and the predictive is NumPyro's
``Predictive`` (a ``lax.map`` over the draws). ``tuned`` picks per (spec, device) from the
measured knobs in ``KNOBS``: on XLA's CPU backend a convolution inside a loop (``lax.scan``'s and
``lax.map``'s while loop) ran ~20x slower than the same convolution in a straight-line program,
so the conv net steps from a host loop over one jitted step and predicts one jitted call per draw.
"""

from __future__ import annotations

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro import handlers
from numpyro.infer import SVI, Predictive, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal
from numpyro.infer.initialization import init_to_value
from numpyro.infer.util import log_density

from bnnbench.backends.knobs import Knob, describe
from bnnbench.config import CellConfig
from bnnbench.spec import Dataset, ModelSpec, backend_module

__all__ = ["KNOBS", "NumPyroSession", "device_problem", "library_versions", "log_joint_terms"]

#: This backend's entry in :mod:`bnnbench.registry` (read from the source, never imported there).
BACKEND = dict(
    name="numpyro",
    order=2,
    bayesian=True,
    packages={"numpyro": "numpyro", "jax": "jax"},
    library="numpyro",
    runtime="jax",
    extra="numpyro",
    color="#2ca02c",
    model_file="numpyro",
)


#: The execution knobs behind ``tuned`` (see :mod:`bnnbench.backends.knobs`), timed by
#: ``python -P -m bnnbench.benchmarks.tune`` (results/tuning/cpu-dense and cpu-conv, 2-core CPU):
#: loop, step ms scan / host: mnist_2x800 41 / 62, hierarchical 43 / 60, conv 3184 / 161 (19.8x);
#: predictive, ms per draw over the 10k test images (compile included, 4 draws) map / draws:
#: mnist_2x800 2043 / 1623, hierarchical 2000 / 1640, conv 14330 / 3558.
KNOBS: dict[str, Knob] = {
    "loop": Knob(
        env="BNNBENCH_NUMPYRO_LOOP",
        choices=("scan", "host"),
        default="scan",
        tuned={("mnist_conv", "cpu"): "host"},
        doc=(
            "scan: each chunk of steps is one jitted lax.scan over svi.update (one dispatch per "
            "chunk); host: a Python loop over one jitted, donated svi.update per step (one "
            "dispatch per step, no while loop around the step)"
        ),
    ),
    "predictive": Knob(
        env="BNNBENCH_NUMPYRO_PREDICTIVE",
        choices=("map", "draws"),
        default="map",
        tuned={
            ("mnist_2x800", "cpu"): "draws",
            ("mnist_2x800_hier", "cpu"): "draws",
            ("mnist_conv", "cpu"): "draws",
        },
        doc=(
            "map: numpyro.infer.Predictive over all draws in one call (lax.map); draws: one "
            "jitted call of the conditioned model per draw, from a Python loop"
        ),
        affects="predict",
    ),
}


def library_versions() -> dict[str, str]:
    return {"numpyro": numpyro.__version__, "jax": jax.__version__}


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used, or ``None``."""
    if device == "gpu":
        try:
            jax.devices("gpu")
        except RuntimeError as err:
            return f"JAX has no GPU backend here ({err}); install jax[cuda12] on a CUDA machine"
    return None


def _site_log_probs(model, args: tuple, params: dict) -> dict[str, jax.Array]:
    _, trace = log_density(model, args, {}, params)
    terms = {}
    for name, site in trace.items():
        if site["type"] != "sample":
            continue
        log_prob = site["fn"].log_prob(site["value"])
        if site["scale"] is not None:
            log_prob = site["scale"] * log_prob
        terms[name] = jnp.sum(log_prob)
    return terms


def log_joint_terms(
    spec: ModelSpec, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Full-data log density per site and its gradient, float64."""
    jax.config.update("jax_enable_x64", True)
    model = backend_module(spec.name, "numpyro").model
    args = (jnp.asarray(X, jnp.float64), jnp.asarray(y))
    point = {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}
    terms = _site_log_probs(model, args, point)
    grads = jax.grad(lambda p: sum(_site_log_probs(model, args, p).values()))(point)
    return (
        {k: float(v) for k, v in terms.items()},
        {k: np.asarray(v, np.float64) for k, v in grads.items()},
    )


class NumPyroSession:
    """SVI state of one cell."""

    dtype = "float32"

    def __init__(self, spec: ModelSpec, data: Dataset, cfg: CellConfig) -> None:
        self.spec, self.cfg = spec, cfg
        self.model = backend_module(spec.name, "numpyro").model
        platform = "gpu" if cfg.device == "gpu" else "cpu"
        self.device = jax.devices(platform)[0]
        started = time.perf_counter()
        self.X = jax.device_put(np.asarray(data.X_train, np.float32), self.device)
        self.y = jax.device_put(np.asarray(data.y_train, np.int32), self.device)
        jax.block_until_ready((self.X, self.y))
        #: Seconds to place the training data on the device.
        self.transfer_s = time.perf_counter() - started
        if cfg.profile != "native":  # matched and tuned share the init
            init = {k: jnp.asarray(v) for k, v in spec.initial_means(cfg.seed).items()}
            self.guide = AutoNormal(
                self.model, init_loc_fn=init_to_value(values=init), init_scale=cfg.init_scale
            )
        else:
            self.guide = AutoNormal(self.model)
        optimizer = numpyro.optim.Adam(step_size=cfg.learning_rate)
        self.svi = SVI(self.model, self.guide, optimizer, Trace_ELBO())
        self._chunks: dict[int, jax.stages.Compiled] = {}
        self._step = None
        self._predict_draw = None
        self.knobs = {
            name: knob.choose(spec.name, cfg.device, cfg.profile) for name, knob in KNOBS.items()
        }
        loop = (
            f"jax.jit(lax.scan(svi.update)) over chunks of {cfg.trace_every} steps"
            if self.knobs["loop"] == "scan"
            else "a Python loop over jax.jit(svi.update), one dispatch per step"
        )
        self.execution_path = (
            f"{loop}, donated state, on {self.device.platform} ({describe(self.knobs)})"
        )

    def _scan(self, state, X, y, n_steps: int):
        def body(carry, _):
            return self.svi.update(carry, X, y, batch_size=self.cfg.batch_size)

        return jax.lax.scan(body, state, None, length=n_steps)

    def _update(self, state, X, y):
        return self.svi.update(state, X, y, batch_size=self.cfg.batch_size)

    def compile(self, chunk_sizes: set[int]) -> None:
        key = jax.random.PRNGKey(self.cfg.seed)
        self.state = self.svi.init(key, self.X, self.y, batch_size=self.cfg.batch_size)
        if self.knobs["loop"] == "host":
            fn = jax.jit(self._update, donate_argnums=0)
            self._step = fn.lower(self.state, self.X, self.y).compile()
        else:
            for n in sorted(chunk_sizes):
                fn = jax.jit(partial(self._scan, n_steps=n), donate_argnums=0)
                self._chunks[n] = fn.lower(self.state, self.X, self.y).compile()
        jax.block_until_ready(self.state)

    def synchronize(self) -> None:
        """Wait until the device has finished all queued work."""
        jax.block_until_ready(self.state)

    def peak_device_memory_mb(self) -> float | None:
        """Peak memory JAX's allocator held on the GPU (``None`` on the CPU)."""
        if self.device.platform == "cpu":
            return None
        stats = self.device.memory_stats() or {}
        return stats.get("peak_bytes_in_use", float("nan")) / 2**20

    def run_steps(self, n_steps: int) -> np.ndarray:
        if self._step is not None:
            step, losses = self._step, []
            for _ in range(n_steps):
                self.state, loss = step(self.state, self.X, self.y)
                losses.append(loss)  # stays on the device: no host sync inside the chunk
            return np.asarray(jax.block_until_ready(jnp.stack(losses)), np.float64)
        self.state, losses = self._chunks[n_steps](self.state, self.X, self.y)
        return np.asarray(jax.block_until_ready(losses), np.float64)

    def variational_parameters(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per parameter, the mean-field (loc, scale) in the unconstrained space."""
        params = self.svi.get_params(self.state)
        return {
            k: (np.asarray(params[f"{k}_auto_loc"]), np.asarray(params[f"{k}_auto_scale"]))
            for k in self.spec.param_names
        }

    def sample_posterior(self, draws: int, seed: int) -> dict[str, np.ndarray]:
        params = self.svi.get_params(self.state)
        samples = self.guide.sample_posterior(
            jax.random.PRNGKey(seed), params, sample_shape=(draws,)
        )
        return {k: np.asarray(samples[k]) for k in self.spec.param_names}

    def predict(
        self, posterior: dict[str, np.ndarray], X: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        samples = {k: jax.device_put(jnp.asarray(v), self.device) for k, v in posterior.items()}
        X_dev = jax.device_put(jnp.asarray(X, jnp.float32), self.device)
        if self.knobs["predictive"] == "draws":
            return self._predict_per_draw(samples, X_dev, seed)
        predictive = Predictive(self.model, posterior_samples=samples, return_sites=["p", "y"])
        out = jax.block_until_ready(predictive(jax.random.PRNGKey(seed), X_dev))
        return np.asarray(out["p"]), np.asarray(out["y"])

    def _predict_per_draw(
        self, samples: dict[str, jax.Array], X: jax.Array, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """p(y | x, theta_s) and a label y ~ p for each draw s: one jitted call per draw (the
        model conditioned on theta_s with ``handlers.condition``, seeded with the s-th split of
        ``seed``'s key, as ``Predictive`` splits it)."""
        if self._predict_draw is None:

            def one_draw(theta, key, X):
                model = handlers.seed(handlers.condition(self.model, data=theta), key)
                trace = handlers.trace(model).get_trace(X)
                return trace["p"]["value"], trace["y"]["value"]

            self._predict_draw = jax.jit(one_draw)
        draws = len(next(iter(samples.values())))
        keys = jax.random.split(jax.random.PRNGKey(seed), draws)
        proba, labels = [], []
        for s in range(draws):
            p, y = self._predict_draw({k: v[s] for k, v in samples.items()}, keys[s], X)
            proba.append(p)
            labels.append(y)
        proba_all, labels_all = jax.block_until_ready((jnp.stack(proba), jnp.stack(labels)))
        return np.asarray(proba_all), np.asarray(labels_all)


TrainingSession = NumPyroSession
