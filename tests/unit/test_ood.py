"""OOD inputs: white noise, and Fashion-MNIST from a generated idx3 file and the Debian package."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from bnnbench.datasets import ood
from bnnbench.datasets.mnist import DataUnavailableError


def _write_idx3(folder, images: np.ndarray, magic: int = 2051, count: int | None = None):
    path = folder / ood.FASHION_MNIST_TEST_IMAGES
    n, rows, cols = images.shape
    header = struct.pack(">iiii", magic, n if count is None else count, rows, cols)
    with gzip.open(path, "wb") as fh:
        fh.write(header + images.astype(np.uint8).tobytes())
    return path


@pytest.fixture
def fashion_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BNNBENCH_FASHION_MNIST", str(tmp_path))
    return tmp_path


def test_generated_idx_file_is_parsed_and_scaled(fashion_dir):
    images = np.zeros((3, 28, 28), np.uint8)
    images[1, 2, 5] = 128
    images[2, 27, 27] = 255
    images[0, 0, 0] = 1
    _write_idx3(fashion_dir, images)
    X = ood.load_fashion_mnist_test()
    assert X.shape == (3, 784) and X.dtype == np.float32
    assert X[1, 2 * 28 + 5] == 0.5  # row-major, byte / 256 like the pickled MNIST
    assert X[2, 783] == np.float32(255 / 256)
    assert X[0, 0] == np.float32(1 / 256)
    assert X.sum() == pytest.approx((128 + 255 + 1) / 256)
    np.testing.assert_array_equal(ood.load_fashion_mnist_test(2), X[:2])
    with pytest.raises(ValueError, match="asked for 4"):
        ood.load_fashion_mnist_test(4)


def test_missing_file_says_how_to_install(fashion_dir):
    with pytest.raises(DataUnavailableError, match="apt-get install dataset-fashion-mnist") as e:
        ood.load_fashion_mnist_test()
    assert "BNNBENCH_FASHION_MNIST" in str(e.value)


def test_bad_magic_is_refused(fashion_dir):
    _write_idx3(fashion_dir, np.zeros((2, 28, 28)), magic=2049)
    with pytest.raises(DataUnavailableError, match="magic 2049"):
        ood.load_fashion_mnist_test()


def test_truncated_file_is_refused(fashion_dir):
    _write_idx3(fashion_dir, np.zeros((2, 28, 28)), count=3)
    with pytest.raises(DataUnavailableError, match="corrupt or truncated"):
        ood.load_fashion_mnist_test()


def test_not_gzip_is_refused(fashion_dir):
    (fashion_dir / ood.FASHION_MNIST_TEST_IMAGES).write_bytes(b"not a gzip file at all")
    with pytest.raises(DataUnavailableError, match="cannot be read"):
        ood.load_fashion_mnist_test()


def test_wrong_image_size_is_refused(fashion_dir):
    _write_idx3(fashion_dir, np.zeros((2, 4, 5)))
    with pytest.raises(DataUnavailableError, match="4 x 5 images"):
        ood.load_fashion_mnist_test()


def test_white_noise():
    X = ood.white_noise(200, seed=3)
    assert X.shape == (200, 784) and X.dtype == np.float32
    assert X.min() >= 0.0 and X.max() < 1.0
    assert abs(X.mean() - 0.5) < 0.01
    np.testing.assert_array_equal(X, ood.white_noise(200, seed=3))
    assert not np.array_equal(X, ood.white_noise(200, seed=4))


def test_load_ood_dispatches(fashion_dir):
    _write_idx3(fashion_dir, np.full((5, 28, 28), 64))
    assert ood.OOD_SETS == ("white_noise", "fashion_mnist")
    np.testing.assert_array_equal(ood.load_ood("white_noise", 3, 7), ood.white_noise(3, 7))
    np.testing.assert_array_equal(ood.load_ood("fashion_mnist", 4, 0), np.full((4, 784), 0.25))
    with pytest.raises(ValueError, match="unknown OOD set"):
        ood.load_ood("cifar", 3, 0)


def test_real_debian_file(monkeypatch):
    monkeypatch.delenv("BNNBENCH_FASHION_MNIST", raising=False)
    if not (ood.FASHION_MNIST_DIR / ood.FASHION_MNIST_TEST_IMAGES).exists():
        pytest.skip("dataset-fashion-mnist is not installed")
    X = ood.load_fashion_mnist_test()
    assert X.shape == (10000, 784) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() <= 1.0
    assert X.max() == np.float32(255 / 256)
