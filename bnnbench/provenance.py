"""Where and with what a result was produced: versions, git revision, machine."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path

import bnnbench

__all__ = ["BACKEND_DISTRIBUTIONS", "environment", "git_revision", "package_versions"]

#: The library and its runtime per backend, as distribution names.
BACKEND_DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    "pymc": ("pymc", "pytensor"),
    "pyro": ("pyro-ppl", "torch"),
    "numpyro": ("numpyro", "jax"),
    "torch-ml": ("torch", "torch"),
}
_DISTRIBUTIONS = (
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "arviz",
    "xarray",
    "pymc",
    "pytensor",
    "pyro-ppl",
    "torch",
    "numpyro",
    "jax",
    "jaxlib",
)


def package_versions(names: tuple[str, ...] = _DISTRIBUTIONS) -> dict[str, str]:
    """Installed versions (``""`` when absent), read from metadata without importing."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = ""
    return versions


@functools.cache
def git_revision() -> str:
    """``git describe`` of the source tree (``-dirty`` when modified), or ``"unknown"``."""
    root = Path(bnnbench.__file__).resolve().parent.parent
    if shutil.which("git") is None:
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (subprocess.SubprocessError, OSError):
        return "unknown"
    return out.stdout.strip() or "unknown"


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def _gpu_name() -> str:
    if shutil.which("nvidia-smi") is None:
        return ""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
    except (subprocess.SubprocessError, OSError):
        return ""
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""


def environment() -> dict[str, object]:
    """The machine and software a result came from (stored as ``env.json``)."""
    return {
        "bnnbench": bnnbench.__version__,
        "git_revision": git_revision(),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": _gpu_name(),
        "packages": package_versions(),
    }
