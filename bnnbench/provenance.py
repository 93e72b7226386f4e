"""Where and with what a result was produced: versions, git revision, machine."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path

import bnnbench
from bnnbench.registry import backends

__all__ = ["BACKEND_DISTRIBUTIONS", "environment", "git_revision", "package_versions"]

#: The library and its runtime per backend, as distribution names (from the registry).
BACKEND_DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    b.name: (b.library, b.runtime) for b in backends()
}
_DISTRIBUTIONS = tuple(
    dict.fromkeys(
        ["numpy", "scipy", "pandas", "scikit-learn", "arviz", "xarray", "jaxlib"]
        + [d for b in backends() for d in b.packages.values()]
    )
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


#: Folders of stored outputs, not source: a run that writes its results into a tracked
#: ``results/`` does not make the source it ran "modified".
OUTPUT_FOLDERS = ("results", "reports")
_SOURCE_ONLY = [".", *(f":(exclude){folder}" for folder in OUTPUT_FOLDERS)]


def _checkout() -> Path:
    return Path(bnnbench.__file__).resolve().parent.parent


def _git(root: Path, *args: str) -> bytes | None:
    if shutil.which("git") is None:
        return None
    try:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, timeout=30, check=True
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return None


def git_revision(root: Path | None = None) -> str:
    """``git describe`` of the source, ``-dirty`` when a tracked source file differs from it
    (changes under :data:`OUTPUT_FOLDERS` do not count), or ``"unknown"``."""
    return _git_revision(root or _checkout())


@functools.cache
def _git_revision(root: Path) -> str:
    described = _git(root, "describe", "--always", "--abbrev=12")
    if not described:
        return "unknown"
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", *_SOURCE_ONLY)
    return described.decode().strip() + ("-dirty" if status else "")


def git_diff_sha256(root: Path | None = None) -> str:
    """sha256 of ``git diff HEAD`` of the source (outputs excluded) when it is dirty, else
    ``""``: a result from a modified tree records exactly what differed from its revision."""
    root = root or _checkout()
    if not git_revision(root).endswith("-dirty"):
        return ""
    diff = _git(root, "diff", "HEAD", "--binary", "--", *_SOURCE_ONLY)
    return "" if diff is None else hashlib.sha256(diff).hexdigest()


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


#: Environment variables of a persistent compilation cache: where one is set, a cell's
#: ``compile_s`` may be a cache read rather than a compile, so ``env.json`` records them.
COMPILE_CACHE_VARIABLES = (
    "JAX_COMPILATION_CACHE_DIR",
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES",
)


def environment() -> dict[str, object]:
    """The machine and software a result came from (stored as ``env.json``)."""
    return {
        "bnnbench": bnnbench.__version__,
        "git_revision": git_revision(),
        "git_diff_sha256": git_diff_sha256(),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": _gpu_name(),
        "packages": package_versions(),
        "compile_cache": {k: os.environ[k] for k in COMPILE_CACHE_VARIABLES if k in os.environ},
    }
