"""Execution knobs: the choices behind a backend's ``tuned`` profile.

A knob is one way a backend can run the *same* computation (the same model, guide, optimizer,
init and float32 arithmetic) faster or slower: pytensor's compile mode, Pyro's JIT or eager ELBO,
NumPyro's scanned or host-driven step loop, ... ``matched`` and ``native`` always take the knob's
``default``; ``tuned`` takes the value measured fastest for the (spec, device), from the knob's
``tuned`` table; the environment variable ``env`` overrides both, which is how
``python -m bnnbench.benchmarks.tune`` times every candidate in a cell of its own.

Every backend lists its knobs in ``KNOBS`` (name -> :class:`Knob`); the chosen values are named in
each cell's ``execution_path``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Knob", "describe"]


@dataclass(frozen=True)
class Knob:
    """One execution choice of a backend.

    Attributes
    ----------
    env
        Environment variable that forces a value (``BNNBENCH_<BACKEND>_<KNOB>``).
    choices
        The values, each a correct path to the same result.
    default
        The value of ``matched`` and ``native`` (and of ``tuned`` where no measurement chose);
        on a device that cannot run it, that device's first candidate.
    tuned
        ``(spec, device) -> value`` measured fastest by ``benchmarks/tune.py``.
    doc
        What the values mean and what was measured, for README and ``bnnbench profiles``.
    devices
        Per device, the values that can run there (all ``choices`` when absent).
    affects
        Which timing the knob changes, and so which one chooses its ``tuned`` value:
        ``"step"`` (``step_ms``) or ``"predict"`` (``predict_ms_per_draw``).
    """

    env: str
    choices: tuple[str, ...]
    default: str
    tuned: Mapping[tuple[str, str], str] = field(default_factory=dict)
    doc: str = ""
    devices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    affects: Literal["step", "predict"] = "step"

    def __post_init__(self) -> None:
        values = {self.default, *self.tuned.values()}
        for allowed in self.devices.values():
            values.update(allowed)
        unknown = values - set(self.choices)
        if unknown:
            raise ValueError(f"{self.env}: {sorted(unknown)} not among {self.choices}")

    def candidates(self, device: str) -> tuple[str, ...]:
        """The values that can run on ``device``."""
        return tuple(self.devices.get(device, self.choices))

    def choose(self, spec_name: str, device: str, profile: str) -> str:
        """This cell's value: the environment's, else ``tuned``'s table, else the default."""
        override = os.environ.get(self.env)
        if override:
            allowed = self.candidates(device)
            if override not in allowed:
                raise ValueError(
                    f"{self.env} must be one of {', '.join(allowed)} on the {device}, "
                    f"not {override!r}"
                )
            return override
        if profile == "tuned" and (spec_name, device) in self.tuned:
            return self.tuned[spec_name, device]
        return self.default_on(device)

    def default_on(self, device: str) -> str:
        """The ``matched`` value on ``device``."""
        allowed = self.candidates(device)
        return self.default if self.default in allowed else allowed[0]


def describe(choices: Mapping[str, str]) -> str:
    """``"loop=host, predictive=draws"``: the knob values of one cell, for ``execution_path``."""
    return ", ".join(f"{name}={value}" for name, value in choices.items())
