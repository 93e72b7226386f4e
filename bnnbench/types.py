"""Closed sets of choices shared by the CLI, the harness and the results.

Backends are an open set: they come from :mod:`bnnbench.registry` (one module each), so
``BackendName`` is any registered name and ``BACKENDS`` lists them in the registry's order.
"""

from typing import Literal, get_args

from bnnbench.registry import backend_names

__all__ = [
    "BACKENDS",
    "BAYESIAN_BACKENDS",
    "DEVICES",
    "EXECUTORS",
    "PROFILES",
    "STATUSES",
    "BackendName",
    "Device",
    "Executor",
    "ProfileName",
    "Status",
]

#: A name in :func:`bnnbench.registry.backend_names` (checked at run time, not by the type).
BackendName = str
ProfileName = Literal["matched", "tuned", "native"]
Device = Literal["cpu", "gpu"]
#: Where a run's cells execute: one after another on this machine, or as tasks of a Ray cluster.
Executor = Literal["local", "ray"]
#: ``diverged``: the loss exploded (non-finite, or finite but far beyond where it started).
Status = Literal["ok", "failed", "diverged", "unavailable", "unsupported"]

BACKENDS: tuple[str, ...] = backend_names()
#: The probabilistic-programming backends; a non-Bayesian one (``torch-ml``) is a baseline:
#: same networks, no posterior, nothing to ``verify``.
BAYESIAN_BACKENDS: tuple[str, ...] = backend_names(bayesian_only=True)
PROFILES: tuple[str, ...] = get_args(ProfileName)
DEVICES: tuple[str, ...] = get_args(Device)
EXECUTORS: tuple[str, ...] = get_args(Executor)
STATUSES: tuple[str, ...] = get_args(Status)
