"""Shared fixtures. Verification runs in this process in float64, so pytensor is told before
anything imports it; training runs always happen in child processes with their own settings."""

from __future__ import annotations

import os

from bnnbench.config import with_float_x

os.environ["PYTENSOR_FLAGS"] = with_float_x(os.environ.get("PYTENSOR_FLAGS", ""), "float64")

from pathlib import Path

import pytest

from bnnbench.cli import main

#: Settings of the tiny end-to-end runs (every backend, real processes, real libraries).
TINY = ["--steps", "40", "--trace-every", "10", "--draws", "30"]


#: JAX's persistent compilation cache, on for the tests' cell processes (environment variables
#: JAX reads at import): every NumPyro cell of the suite compiles the same programs, about 10 s
#: each on a 2-core CPU. Never for measurements: benchmarks/gate.py strips these variables.
JAX_CACHE_VARIABLES = {
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}


@pytest.fixture(scope="session", autouse=True)
def jax_compilation_cache(tmp_path_factory: pytest.TempPathFactory):
    """One JAX compilation cache for the session's child processes."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.mktemp("jax-cache")))
        for name, value in JAX_CACHE_VARIABLES.items():
            mp.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def tiny() -> list[str]:
    """CLI settings of a tiny run."""
    return list(TINY)


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``smoke`` suite run once through the CLI, shared by the tests that read results."""
    out = tmp_path_factory.mktemp("smoke") / "results"
    assert main(["run", "--suite", "smoke", *TINY, "--out", str(out), "--no-progress"]) == 0
    return out
