"""Give pytensor's C backend a BLAS: OpenBLAS from the ``scipy-openblas32`` wheel.

pytensor installed from pip finds no BLAS library to link its C code to (it looks for MKL,
Accelerate, ``libblas``/``liblapack`` or ``libopenblas`` on the compiler's search path); it then
warns and falls back to slower C loops and NumPy calls for matrix-vector products and ``Gemm``.
A conda install links MKL or OpenBLAS. bnnbench's ``pymc`` extra installs the ``scipy-openblas32``
wheel (OpenBLAS with 32-bit integers, the ABI of pytensor's C declarations) and points
``pytensor.config.blas__ldflags`` at it. Its symbols carry a ``scipy_`` prefix (so that it never
clashes with NumPy's own copy), so the flags also map each BLAS routine pytensor's C code calls
(``sgemm_``, ``dgemv_``, ...) to the prefixed name with a preprocessor define.

The outcome is recorded in every PyMC cell's provenance (``library_versions()["pytensor_blas"]``)
and in its ``execution_path``.
"""

from __future__ import annotations

import os
import warnings

__all__ = ["BLAS_ROUTINES", "blas_ldflags", "configure_blas"]

#: Fortran BLAS routines pytensor's C code calls (``pytensor/tensor/blas/c_code``).
BLAS_ROUTINES = tuple(
    f"{t}{r}_"
    for r in ("gemm", "gemv", "ger", "dot", "axpy", "scal", "copy", "swap")
    for t in ("s", "d")
)


def blas_ldflags(lib_dir: str, library: str, prefix: str = "scipy_") -> str:
    """``blas__ldflags`` linking ``lib<library>.so`` from ``lib_dir`` (found again at run time
    through its rpath), each routine renamed to its ``prefix``-ed symbol."""
    defines = [f"-D{name}={prefix}{name}" for name in BLAS_ROUTINES]
    return " ".join([f"-L{lib_dir}", f"-l{library}", f"-Wl,-rpath,{lib_dir}", *defines])


def configure_blas() -> str:
    """Point pytensor at the wheel's OpenBLAS unless the user configured a BLAS.

    Returns
    -------
    str
        What pytensor's C code links to: ``"scipy-openblas32 <version>"``, ``"user:
        <flags>"`` when ``blas__ldflags`` was set by the user (``PYTENSOR_FLAGS`` or
        ``.pytensorrc``), or ``"none"`` when the wheel is missing.
    """
    import pytensor

    user_flags = "blas__ldflags" in os.environ.get("PYTENSOR_FLAGS", "") or os.path.exists(
        os.path.expanduser("~/.pytensorrc")
    )
    if user_flags:
        return f"user: {pytensor.config.blas__ldflags}"
    try:
        import scipy_openblas32
    except ImportError:
        warnings.warn(
            "scipy-openblas32 is not installed: pytensor's C backend runs without a BLAS "
            "(pip install 'bnnbench[pymc]')",
            stacklevel=2,
        )
        return "none"
    pytensor.config.blas__ldflags = blas_ldflags(
        scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library()
    )
    return f"scipy-openblas32 {scipy_openblas32.__version__}"
