"""The engine side of each backend: how it compiles, trains, samples and times a spec.

One module per backend, ``<name>_backend.py``, declaring itself with a literal ``BACKEND =
dict(...)`` (see :mod:`bnnbench.registry`) and exposing ``library_versions()``,
``device_problem(device)``, ``log_joint_terms(spec, params, X, y)`` (float64 density and gradient,
for ``verify``; Bayesian backends) and ``TrainingSession`` (see :mod:`bnnbench.backends.base`).
Modules are imported only inside a cell's own process.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from bnnbench.registry import backend_info, missing_packages

__all__ = ["get_backend", "missing_packages"]


def get_backend(name: str) -> ModuleType:
    """The engine module of backend ``name`` (imports its library)."""
    return importlib.import_module(f"bnnbench.backends.{backend_info(name).module}")
