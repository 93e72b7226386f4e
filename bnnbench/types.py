"""Closed sets of choices shared by the CLI, the harness and the results."""

from typing import Literal, get_args

__all__ = [
    "BACKENDS",
    "BAYESIAN_BACKENDS",
    "DEVICES",
    "PROFILES",
    "STATUSES",
    "BackendName",
    "Device",
    "ProfileName",
    "Status",
]

BackendName = Literal["pymc", "pyro", "numpyro", "torch-ml"]
ProfileName = Literal["matched", "tuned", "native"]
Device = Literal["cpu", "gpu"]
Status = Literal["ok", "failed", "unavailable", "unsupported"]

BACKENDS: tuple[str, ...] = get_args(BackendName)
#: The probabilistic-programming backends; ``torch-ml`` is the deterministic (maximum likelihood)
#: baseline: same networks, no posterior, nothing to ``verify``.
BAYESIAN_BACKENDS: tuple[str, ...] = ("pymc", "pyro", "numpyro")
PROFILES: tuple[str, ...] = get_args(ProfileName)
DEVICES: tuple[str, ...] = get_args(Device)
STATUSES: tuple[str, ...] = get_args(Status)
