"""Configuration of one benchmark cell and of the settings profiles."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

from bnnbench.spec import get_spec
from bnnbench.types import BackendName, Device, ProfileName

__all__ = ["PROFILE_DESCRIPTIONS", "CellConfig"]

PROFILE_DESCRIPTIONS: dict[str, str] = {
    "matched": (
        "identical initial means (one seeded N(0, 1) draw shared by all backends), identical "
        "initial scale, Adam with the same learning rate, one particle, same batch size and "
        "steps, float32 everywhere"
    ),
    "tuned": (
        "the same algorithm and settings as matched (init, scale, Adam, one particle, float32, "
        "steps, batch) on each backend's fastest correct execution path for the spec and device, "
        "chosen by measurement (PyMC: pytensor's fastest compile mode; Pyro: JitTrace_ELBO or "
        "eager Trace_ELBO, validation off, fused Adam on the GPU; NumPyro: jitted scan over "
        "chunks with donated buffers); its execution_path column names the path"
    ),
    "native": (
        "each library's own VI defaults: PyMC's zero init, sd softplus(0) = 0.693, "
        "adagrad_window(1e-3) and floatX float64; Pyro's and NumPyro's AutoNormal init "
        "(init_to_feasible / init_to_uniform, scale 0.1); Pyro and NumPyro have no default "
        "optimizer, so they use Adam at the profile's learning rate; same steps and batch size"
    ),
}


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
        cfg = cls(model=model, backend=backend, profile=profile, device=device, seed=seed, **values)  # type: ignore[arg-type]
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ``ValueError`` on settings that cannot run."""
        if self.steps < 1 or self.batch_size < 1 or self.trace_every < 1 or self.predict_draws < 1:
            raise ValueError("steps, batch_size, trace_every and predict_draws must be >= 1")
        if self.learning_rate <= 0 or self.init_scale <= 0:
            raise ValueError("learning_rate and init_scale must be > 0")

    @property
    def run_id(self) -> str:
        """Readable, deterministic id: the cell key plus a short hash of every setting."""
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.model}-{self.backend}-{self.profile}-{self.device}-seed{self.seed}-{digest}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CellConfig:
        raw = json.loads(text)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})
