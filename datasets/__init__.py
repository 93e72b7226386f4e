"""Data loaders (installed as ``bnnbench.datasets``).

``FETCHABLE`` names the data sets ``bnnbench data fetch`` can download and verify, each with the
``module:function`` that does it (imported only when asked), so the CLI names no data set itself.
"""

import importlib
from pathlib import Path

__all__ = ["FETCHABLE", "DataUnavailableError", "fetch"]


class DataUnavailableError(RuntimeError):
    """A data set is missing or corrupt; the message says how to get it."""


#: Data set -> ``"module:function"`` that downloads, verifies and caches it (returns its path).
FETCHABLE: dict[str, str] = {"mnist": "bnnbench.datasets.mnist:fetch_mnist"}


def fetch(name: str, *, force: bool = False) -> Path:
    """Download, verify and cache the data set ``name`` (one of :data:`FETCHABLE`)."""
    module, function = FETCHABLE[name].split(":")
    return getattr(importlib.import_module(module), function)(force=force)
