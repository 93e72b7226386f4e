"""Configuration of one benchmark cell and of the settings profiles."""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from dataclasses import asdict, dataclass, fields

from bnnbench.spec import SPEC_NAMES, get_spec
from bnnbench.types import BACKENDS, DEVICES, PROFILES, BackendName, Device, ProfileName

__all__ = ["MAX_SEED", "PROFILE_DESCRIPTIONS", "RUN_ONLY", "CellConfig", "with_float_x"]

#: Largest seed every backend's generator accepts (NumPy, torch and JAX keys all take 32 bits).
MAX_SEED = 2**32 - 1

PROFILE_DESCRIPTIONS: dict[str, str] = {
    "matched": (
        "identical initial means (one seeded N(0, 1) draw shared by all backends), identical "
        "initial scale, Adam with the same learning rate, one particle, same batch size and "
        "steps, float32 everywhere"
    ),
    "tuned": (
        "the same algorithm and settings as matched (init, scale, Adam, one particle, float32, "
        "steps, batch) on each backend's fastest correct execution path for the spec and device, "
        "chosen by measurement (benchmarks/tune.py) among its knobs: PyMC pytensor's c (with "
        "OpenBLAS), numba or jax mode; Pyro JitTrace_ELBO or eager Trace_ELBO, fused Adam on the "
        "GPU; NumPyro a jitted lax.scan over a chunk of steps or a host loop over one jitted "
        "step, and Predictive or one jitted call per draw; its execution_path column names the "
        "values"
    ),
    "native": (
        "each library's own VI defaults: PyMC's zero init, sd softplus(0) = 0.693, "
        "adagrad_window(1e-3) and floatX float64; Pyro's and NumPyro's AutoNormal init "
        "(init_to_feasible / init_to_uniform, scale 0.1); Pyro and NumPyro have no default "
        "optimizer, so they use Adam at the profile's learning rate; same steps and batch size"
    ),
}


#: Fields of :class:`CellConfig` that limit how a cell runs but not what it computes.
RUN_ONLY: frozenset[str] = frozenset({"timeout_s"})


def with_float_x(pytensor_flags: str, float_x: str) -> str:
    """``PYTENSOR_FLAGS`` with its ``floatX`` set to ``float_x`` (pytensor reads it once, at
    import, so it must be set before anything imports pytensor)."""
    flags = [f for f in pytensor_flags.split(",") if f and "floatX" not in f]
    return ",".join([*flags, f"floatX={float_x}"])


@dataclass(frozen=True)
class CellConfig:
    """One (model, backend, profile, device, seed) cell and every setting it runs with.

    Attributes
    ----------
    steps
        Optimisation steps (each one minibatch of ``batch_size`` points).
    learning_rate
        Adam's step size (``matched``; ``native`` PyMC keeps adagrad_window's own).
    init_scale
        Initial standard deviation of every variational factor (``matched``).
    trace_every
        Steps per timed chunk; one ELBO trace point per chunk.
    predict_draws
        Posterior draws for the test-set posterior predictive.
    timeout_s
        Wall-clock limit of the cell's process, compile and prediction included.
    """

    model: str
    backend: BackendName
    profile: ProfileName
    device: Device
    seed: int
    steps: int
    batch_size: int
    learning_rate: float
    init_scale: float
    trace_every: int
    predict_draws: int
    timeout_s: float = 1800.0

    @classmethod
    def from_defaults(
        cls,
        model: str,
        backend: BackendName,
        profile: ProfileName,
        device: Device,
        seed: int,
        **overrides: object,
    ) -> CellConfig:
        """A cell with the spec's defaults, overridden by the non-``None`` ``overrides``."""
        d = get_spec(model).defaults
        values: dict[str, object] = dict(
            steps=d.steps,
            batch_size=d.batch_size,
            learning_rate=d.learning_rate,
            init_scale=d.init_scale,
            trace_every=d.trace_every,
            predict_draws=d.predict_draws,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name in ("learning_rate", "init_scale", "timeout_s"):  # 1 and 1.0: one run_id
            value = values.get(name)
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                values[name] = float(value)
        cfg = cls(model=model, backend=backend, profile=profile, device=device, seed=seed, **values)  # type: ignore[arg-type]
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ``ValueError`` (one line, naming the setting) on settings that cannot run."""
        if self.model not in SPEC_NAMES:
            raise ValueError(f"unknown model {self.model!r}; valid: {', '.join(SPEC_NAMES)}")
        for name, valid in (
            ("backend", BACKENDS),
            ("profile", PROFILES),
            ("device", DEVICES),
        ):
            if getattr(self, name) not in valid:
                raise ValueError(
                    f"unknown {name} {getattr(self, name)!r}; valid: {', '.join(valid)}"
                )
        for name in ("seed", "steps", "batch_size", "trace_every", "predict_draws"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            low = 0 if name == "seed" else 1
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if self.seed > MAX_SEED:
            raise ValueError(f"seed must be <= {MAX_SEED} (32 bits), got {self.seed}")
        for name in ("learning_rate", "init_scale", "timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        n_train = getattr(get_spec(self.model), "n_train", None)
        if n_train is not None and self.batch_size > n_train:
            raise ValueError(
                f"batch_size {self.batch_size} is larger than {self.model}'s training set "
                f"({n_train} points)"
            )

    def result_settings(self) -> dict[str, object]:
        """The settings that change a cell's result (every field but :data:`RUN_ONLY`)."""
        return {k: v for k, v in asdict(self).items() if k not in RUN_ONLY}

    @property
    def run_id(self) -> str:
        """Readable, deterministic id: the cell key plus a short hash of the settings that change
        the result (not ``timeout_s``: a longer limit does not make another result)."""
        text = json.dumps(self.result_settings(), sort_keys=True)
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        return f"{self.model}-{self.backend}-{self.profile}-{self.device}-seed{self.seed}-{digest}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CellConfig:
        raw = json.loads(text)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})
