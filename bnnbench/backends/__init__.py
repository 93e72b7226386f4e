"""The engine side of each backend: how it compiles, trains, samples and times a spec.

Each module exposes ``PACKAGES`` (what must be installed), ``device_problem(device)``,
``log_joint_terms(spec, params, X, y)`` (float64 density and gradient, for ``verify``) and
``TrainingSession`` (for ``run``). Modules are imported only inside a cell's own process.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from bnnbench.types import BACKENDS

__all__ = ["PACKAGES", "get_backend", "missing_packages"]

#: Import names each backend needs, and the distribution that provides each.
PACKAGES: dict[str, dict[str, str]] = {
    "pymc": {"pymc": "pymc", "pytensor": "pytensor"},
    "pyro": {"pyro": "pyro-ppl", "torch": "torch"},
    "numpyro": {"numpyro": "numpyro", "jax": "jax"},
    "torch-ml": {"torch": "torch"},
}


def missing_packages(backend: str) -> list[str]:
    """Distributions the backend needs that are not installed (without importing them)."""
    return [
        dist for mod, dist in PACKAGES[backend].items() if importlib.util.find_spec(mod) is None
    ]


def get_backend(name: str) -> ModuleType:
    """The engine module of backend ``name`` (imports its library)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    return importlib.import_module(f"bnnbench.backends.{name.replace('-', '_')}_backend")
