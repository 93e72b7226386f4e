"""NumPyro: SVI with ``AutoNormal`` and ``Trace_ELBO``, steps run in a jitted ``lax.scan``.

The data live on the device once (``jax.device_put``); every chunk of ``trace_every``
steps is one compiled, buffer-donating call of ``lax.scan`` over ``svi.update``, so the host only
sees the chunk's per-step losses.
"""

from __future__ import annotations

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.infer import SVI, Predictive, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal
from numpyro.infer.initialization import init_to_value
from numpyro.infer.util import log_density

from bnnbench.config import CellConfig
from bnnbench.spec import Dataset, ModelSpec, backend_module

__all__ = ["NumPyroSession", "device_problem", "library_versions", "log_joint_terms"]

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
        # ``tuned`` is this same path: the jitted, donated scan is NumPyro's fastest measured
        # execution (field notes: a hand-written JAX step was no faster).
        self.execution_path = (
            f"jax.jit(lax.scan(svi.update)) over chunks of {cfg.trace_every} "
            f"steps, donated state, on {self.device.platform}"
        )

    def _scan(self, state, X, y, n_steps: int):
        def body(carry, _):
            return self.svi.update(carry, X, y, batch_size=self.cfg.batch_size)

        return jax.lax.scan(body, state, None, length=n_steps)

    def compile(self, chunk_sizes: set[int]) -> None:
        key = jax.random.PRNGKey(self.cfg.seed)
        self.state = self.svi.init(key, self.X, self.y, batch_size=self.cfg.batch_size)
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
        predictive = Predictive(self.model, posterior_samples=samples, return_sites=["p", "y"])
        X_dev = jax.device_put(jnp.asarray(X, jnp.float32), self.device)
        out = jax.block_until_ready(predictive(jax.random.PRNGKey(seed), X_dev))
        return np.asarray(out["p"]), np.asarray(out["y"])


TrainingSession = NumPyroSession
