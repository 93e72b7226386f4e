"""Pyro: SVI with ``AutoNormal``, ``Trace_ELBO`` (or its JIT twin) and a subsampling data plate.

Pyro's ``SVI.step`` is a Python call per step that returns the loss as a float (one host sync per
step); that loop is the library's execution model. Argument validation is off in every profile.
``matched`` and ``native`` use ``JitTrace_ELBO``; ``tuned`` takes, per spec and device, the
faster of ``JitTrace_ELBO`` and eager ``Trace_ELBO`` (``KNOBS``, chosen by measurement) and,
on the GPU, torch's fused Adam kernel (the same update rule in one kernel per step).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import numpy as np
import pyro
import torch
from pyro.infer import SVI, JitTrace_ELBO, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.infer.autoguide.initialization import init_to_value
from pyro.poutine.util import site_is_subsample

from bnnbench.backends import torch_device
from bnnbench.backends.knobs import Knob, describe
from bnnbench.config import CellConfig
from bnnbench.spec import Dataset, ModelSpec, backend_module

__all__ = ["KNOBS", "PyroSession", "device_problem", "library_versions", "log_joint_terms"]

#: This backend's entry in :mod:`bnnbench.registry` (read from the source, never imported there).
BACKEND = dict(
    name="pyro",
    order=1,
    bayesian=True,
    packages={"pyro": "pyro-ppl", "torch": "torch"},
    library="pyro-ppl",
    runtime="torch",
    extra="pyro",
    color="#d62728",
    model_file="pyro",
)


def library_versions() -> dict[str, str]:
    return {"pyro-ppl": pyro.__version__, "torch": torch.__version__}


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used, or ``None``."""
    if device == "gpu" and not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)"
    return None


def _torch_device(device: str) -> torch.device:
    return torch.device("cuda" if device == "gpu" else "cpu")


def log_joint_terms(
    spec: ModelSpec, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Full-data log density per site and its gradient, float64."""
    model = backend_module(spec.name, "pyro").model
    point = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    X_t = torch.as_tensor(X, dtype=torch.float64)
    y_t = torch.as_tensor(y, dtype=torch.float64)
    trace = pyro.poutine.trace(pyro.condition(model, data=point)).get_trace(X_t, y_t)
    trace.compute_log_prob()
    terms = {
        name: site["log_prob_sum"]
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
        and not site_is_subsample(site)
        and not site["infer"].get("_deterministic")
    }
    total = torch.stack(list(terms.values())).sum()
    grads = torch.autograd.grad(total, list(point.values()))
    return (
        {k: float(v.detach()) for k, v in terms.items()},
        {k: g.detach().numpy() for k, g in zip(point, grads, strict=True)},
    )


@contextlib.contextmanager
def _training_rng_kept() -> Iterator[None]:
    """Seed freely inside (drawing and predicting with their own seeds), then give training
    back the random state it had (torch's CPU and CUDA generators, Python's and NumPy's: what
    ``pyro.set_rng_seed`` reseeds), so that a learning-curve checkpoint between two chunks
    leaves the minibatches and the ELBO's noise of the next ones as they would have been."""
    state = pyro.util.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        pyro.util.set_rng_state(state)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


class PyroSession:
    """SVI state of one cell."""

    dtype = "float32"

    def __init__(self, spec: ModelSpec, data: Dataset, cfg: CellConfig) -> None:
        self.spec, self.cfg = spec, cfg
        self.model = backend_module(spec.name, "pyro").model
        self.device = _torch_device(cfg.device)
        pyro.enable_validation(False)
        pyro.set_rng_seed(cfg.seed)
        pyro.clear_param_store()
        started = time.perf_counter()
        self.X = torch.as_tensor(data.X_train, dtype=torch.float32, device=self.device)
        self.y = torch.as_tensor(data.y_train, dtype=torch.float32, device=self.device)
        self.synchronize()
        #: Seconds to place the training data on the device.
        self.transfer_s = time.perf_counter() - started
        if cfg.profile != "native":  # matched and tuned share the init
            init = {
                k: torch.as_tensor(v, device=self.device)
                for k, v in spec.initial_means(cfg.seed).items()
            }
            self.guide = AutoNormal(
                self.model, init_loc_fn=init_to_value(values=init), init_scale=cfg.init_scale
            )
        else:
            self.guide = AutoNormal(self.model)
        self.elbo_kind = elbo_choice(spec.name, cfg.device, cfg.profile)
        self.elbo = JitTrace_ELBO() if self.elbo_kind == "jit" else Trace_ELBO()
        adam: dict[str, object] = {"lr": cfg.learning_rate}
        # torch's fused Adam (one kernel for every parameter) pays off on the GPU; on the CPU it
        # measured no faster (results/profiles: moons 1.92 vs 1.69 ms), so tuned keeps it there.
        fused_adam = cfg.profile == "tuned" and self.device.type == "cuda"
        if fused_adam:
            adam["fused"] = True
        self.svi = SVI(self.model, self.guide, pyro.optim.Adam(adam), self.elbo)
        fused = "fused " if fused_adam else ""
        self.execution_path = (
            f"{type(self.elbo).__name__} + {fused}Adam, validation off, Python loop over SVI.step "
            f"(one host sync per step), torch on {self.device.type} "
            f"({describe({'elbo': self.elbo_kind})})"
        )

    def compile(self, chunk_sizes: set[int]) -> None:
        # Initialise the guide's parameters and (JIT) trace the loss without taking a step.
        with torch.no_grad():
            self.guide(self.X, self.y, batch_size=self.cfg.batch_size)
        # torch's profiling executor optimises a traced graph after its first calls: warm it up
        # here (gradients discarded, no optimizer step) so that compile time is not fit time.
        for _ in range(JIT_WARMUP_CALLS if self.elbo_kind == "jit" else 1):
            self.elbo.loss_and_grads(
                self.model, self.guide, self.X, self.y, batch_size=self.cfg.batch_size
            )
            # Clear the gradients of the optimised (unconstrained) tensors: ``values()`` gives
            # the constrained ones, and softplus(raw) is a new tensor whose ``.grad`` is not
            # the raw scale's, so the warm-up gradients would add to the first step's.
            for _, param in pyro.get_param_store().named_parameters():
                param.grad = None
        self.synchronize()

    def synchronize(self) -> None:
        """Wait until the device has finished all queued work."""
        torch_device.synchronize(self.device)

    def peak_device_memory_mb(self) -> float | None:
        """Peak memory torch allocated on the GPU in this process (``None`` on the CPU)."""
        return torch_device.peak_memory_mb(self.device)

    def run_steps(self, n_steps: int) -> np.ndarray:
        losses = np.empty(n_steps)
        for i in range(n_steps):
            losses[i] = self.svi.step(self.X, self.y, batch_size=self.cfg.batch_size)
        self.synchronize()
        return losses

    @torch.no_grad()
    def variational_parameters(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per parameter, the mean-field (loc, scale) in the unconstrained space."""
        out = {}
        for name in self.spec.param_names:
            loc, scale = self.guide._get_loc_and_scale(name)
            shape = self.spec.param_shapes[name]
            out[name] = (loc.reshape(shape).cpu().numpy(), scale.reshape(shape).cpu().numpy())
        return out

    @torch.no_grad()
    def sample_posterior(self, draws: int, seed: int) -> dict[str, np.ndarray]:
        with _training_rng_kept():
            return self._sample_posterior(draws, seed)

    def _sample_posterior(self, draws: int, seed: int) -> dict[str, np.ndarray]:
        pyro.set_rng_seed(seed)
        guide_draws = Predictive(self.guide, num_samples=draws, parallel=False)(
            self.X, self.y, batch_size=self.cfg.batch_size
        )
        shapes = self.spec.param_shapes
        return {
            k: guide_draws[k].reshape(draws, *shapes[k]).cpu().numpy()
            for k in self.spec.param_names
        }

    @torch.no_grad()
    def predict(
        self, posterior: dict[str, np.ndarray], X: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        with _training_rng_kept():
            return self._predict(posterior, X, seed)

    def _predict(
        self, posterior: dict[str, np.ndarray], X: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        pyro.set_rng_seed(seed)
        samples = {k: torch.as_tensor(v, device=self.device) for k, v in posterior.items()}
        predictive = Predictive(
            self.model, posterior_samples=samples, return_sites=("p", "y"), parallel=False
        )
        X_dev = torch.as_tensor(X, dtype=torch.float32, device=self.device)
        out = predictive(X_dev, None, None)
        self.synchronize()
        draws, n = len(next(iter(samples.values()))), X.shape[0]
        proba = out["p"].reshape(draws, n, *self.spec.proba_event_shape)
        return proba.cpu().numpy(), out["y"].reshape(draws, n).cpu().numpy()


#: The execution knobs behind ``tuned`` (see :mod:`bnnbench.backends.knobs`), timed by
#: ``python -P -m bnnbench.benchmarks.tune`` (results/tuning/cpu-dense and cpu-conv, 2-core CPU),
#: step ms jit / eager: mnist_2x800 55.6 / 55.4 and hierarchical 71.7 / 67.4 (within the 10 %
#: the tuning asks for: jit kept), conv 155 / 139 (eager). On an H100 jit is 2.2x faster for
#: mnist_2x800 (field notes: 8.0 vs 17.8 ms), so the GPU keeps it.
KNOBS: dict[str, Knob] = {
    "elbo": Knob(
        env="BNNBENCH_PYRO_ELBO",
        choices=("jit", "eager"),
        default="jit",
        tuned={("mnist_conv", "cpu"): "eager"},
        doc=(
            "jit: JitTrace_ELBO (the model and guide traced once by torch.jit); eager: "
            "Trace_ELBO, re-run in Python every step"
        ),
    ),
}


def elbo_choice(spec_name: str, device: str, profile: str) -> str:
    """``"jit"`` (``JitTrace_ELBO``) or ``"eager"`` (``Trace_ELBO``) for this cell."""
    return KNOBS["elbo"].choose(spec_name, device, profile)


#: Loss evaluations that warm up the JIT before training is timed.
JIT_WARMUP_CALLS = 3

TrainingSession = PyroSession
