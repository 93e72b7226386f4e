"""Closed sets of choices shared by the CLI, the harness and the results."""

from typing import Literal, get_args

__all__ = [
    "BACKENDS",
    "DEVICES",
    "PROFILES",
    "STATUSES",
    "BackendName",
    "Device",
    "ProfileName",
    "Status",
]

BackendName = Literal["pymc", "pyro", "numpyro"]
ProfileName = Literal["matched", "native"]
Device = Literal["cpu", "gpu"]
Status = Literal["ok", "failed", "unavailable", "unsupported"]

BACKENDS: tuple[str, ...] = get_args(BackendName)
PROFILES: tuple[str, ...] = get_args(ProfileName)
DEVICES: tuple[str, ...] = get_args(Device)
STATUSES: tuple[str, ...] = get_args(Status)
