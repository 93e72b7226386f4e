r"""Out-of-distribution inputs for the MNIST specs, in the layout of :mod:`bnnbench.datasets.mnist`.

Every set is float32 ``(n, 784)``, 28 x 28 pixels row-major, in [0, 1) (a conv spec reshapes
itself), and comes without labels:

* ``white_noise``: i.i.d. uniform pixels :math:`x_{nj} \sim U[0, 1)`, as in the Pyro tutorial
  "Making your neural network say I don't know";
* ``fashion_mnist``: the 10k Fashion-MNIST test images from the Debian package
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``, or the folder in
  ``$BNNBENCH_FASHION_MNIST``). Pixels are scaled as MNIST's: the pickled MNIST holds
  :math:`v / 256` for a byte :math:`v \in \{0, \dots, 255\}`, so Fashion-MNIST bytes are divided
  by 256 too (at most 255/256), and the two sets differ in content only, not in scale.

Nothing is ever downloaded: a missing file raises
:class:`~bnnbench.datasets.mnist.DataUnavailableError` saying how to install it.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from bnnbench.datasets.mnist import DataUnavailableError

__all__ = [
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_TEST_IMAGES",
    "IDX3_MAGIC",
    "OOD_LABELS",
    "OOD_SETS",
    "fashion_mnist_dir",
    "load_fashion_mnist_test",
    "load_ood",
    "read_idx3_images",
    "white_noise",
]

#: The names :func:`load_ood` knows.
OOD_SETS = ("white_noise", "fashion_mnist")
#: How reports name each set.
OOD_LABELS = {"white_noise": "white noise", "fashion_mnist": "Fashion-MNIST"}
#: Where the Debian package ``dataset-fashion-mnist`` puts its files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
#: Magic number of an idx file of unsigned bytes with 3 dimensions (0x00000803).
IDX3_MAGIC = 2051
#: MNIST pixels are byte / 256 (see the module docstring).
PIXEL_SCALE = 256.0
IMAGE_SIDE_PX = 28
N_PIXELS = IMAGE_SIDE_PX * IMAGE_SIDE_PX
_HOW_TO_GET = (
    "install the Debian package with `sudo apt-get install dataset-fashion-mnist` "
    f"(it provides {FASHION_MNIST_DIR / FASHION_MNIST_TEST_IMAGES}), or set "
    f"BNNBENCH_FASHION_MNIST to a folder that holds {FASHION_MNIST_TEST_IMAGES}"
)


def white_noise(n: int, seed: int) -> np.ndarray:
    r"""``n`` images of i.i.d. uniform pixels, :math:`x_{nj} \sim U[0, 1)`, float32 ``(n, 784)``.

    Deterministic in ``seed`` (``numpy.random.default_rng``).
    """
    if n < 0:
        raise ValueError("n must be non-negative")
    return np.random.default_rng(seed).random((n, N_PIXELS), dtype=np.float32)


def fashion_mnist_dir() -> Path:
    """``$BNNBENCH_FASHION_MNIST``, or the folder of the Debian package."""
    env = os.environ.get("BNNBENCH_FASHION_MNIST")
    return Path(env) if env else FASHION_MNIST_DIR


def read_idx3_images(path: Path) -> np.ndarray:
    """The uint8 images ``(count, rows, cols)`` of a gzipped idx3 file.

    The format: big-endian int32 magic 2051, count, rows, cols, then ``count * rows * cols``
    bytes, row-major.

    Raises
    ------
    DataUnavailableError
        When the file is missing, not gzip, has another magic number or the wrong length.
    """
    path = Path(path)
    if not path.exists():
        raise DataUnavailableError(f"Fashion-MNIST is not at {path}: " + _HOW_TO_GET)
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataUnavailableError(
            f"{path} cannot be read ({err}); reinstall it: " + _HOW_TO_GET
        ) from err
    if len(raw) < 16:
        raise DataUnavailableError(f"{path} is too short for an idx3 header: " + _HOW_TO_GET)
    magic, count, rows, cols = struct.unpack(">iiii", raw[:16])
    if magic != IDX3_MAGIC:
        raise DataUnavailableError(
            f"{path} is not an idx3 image file (magic {magic}, expected {IDX3_MAGIC}): "
            + _HOW_TO_GET
        )
    expected = count * rows * cols
    if min(count, rows, cols) < 0 or len(raw) - 16 != expected:
        raise DataUnavailableError(
            f"{path} is corrupt or truncated ({len(raw) - 16} pixel bytes, header says "
            f"{count} x {rows} x {cols} = {expected}): " + _HOW_TO_GET
        )
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows, cols)


def load_fashion_mnist_test(n: int | None = None) -> np.ndarray:
    """The first ``n`` (default all 10000) Fashion-MNIST test images, float32 ``(n, 784)``.

    Pixels are byte / 256, in [0, 255/256] like MNIST's.

    Raises
    ------
    DataUnavailableError
        When the file is missing or corrupt, or its images are not 28 x 28.
    """
    path = fashion_mnist_dir() / FASHION_MNIST_TEST_IMAGES
    images = read_idx3_images(path)
    if images.shape[1:] != (IMAGE_SIDE_PX, IMAGE_SIDE_PX):
        raise DataUnavailableError(
            f"{path} holds {images.shape[1]} x {images.shape[2]} images, expected "
            f"{IMAGE_SIDE_PX} x {IMAGE_SIDE_PX}: " + _HOW_TO_GET
        )
    if n is not None:
        if n < 0:
            raise ValueError("n must be non-negative")
        if n > images.shape[0]:
            raise ValueError(f"asked for {n} images, {path} has {images.shape[0]}")
        images = images[:n]
    return (images.reshape(images.shape[0], N_PIXELS) / np.float32(PIXEL_SCALE)).astype(np.float32)


def load_ood(name: str, n: int, seed: int) -> np.ndarray:
    """``n`` inputs of the OOD set ``name`` (one of :data:`OOD_SETS`), float32 ``(n, 784)``.

    ``seed`` drives the white noise; Fashion-MNIST gives its first ``n`` test images.
    """
    if name == "white_noise":
        return white_noise(n, seed)
    if name == "fashion_mnist":
        return load_fashion_mnist_test(n)
    raise ValueError(f"unknown OOD set {name!r}; known: {', '.join(OOD_SETS)}")
