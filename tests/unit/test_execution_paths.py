"""Which execution path each profile takes: ``tuned`` picks per spec and device, and an
override exists only for measuring the candidates."""

import dataclasses

import pytest

from bnnbench.config import PROFILE_DESCRIPTIONS, CellConfig
from bnnbench.harness import cell_environment
from bnnbench.types import PROFILES


def test_tuned_is_a_profile_with_a_description_and_float32():
    assert "tuned" in PROFILES and "tuned" in PROFILE_DESCRIPTIONS
    cfg = CellConfig.from_defaults("moons_2x5", "pymc", "tuned", "cpu", 0)
    assert "floatX=float32" in cell_environment(cfg)["PYTENSOR_FLAGS"]


def test_pyro_tuned_elbo_follows_the_table(monkeypatch):
    from bnnbench.backends import pyro_backend as pb

    monkeypatch.delenv("BNNBENCH_PYRO_ELBO", raising=False)
    knob = dataclasses.replace(pb.KNOBS["elbo"], tuned={("mnist_2x800", "cpu"): "eager"})
    monkeypatch.setitem(pb.KNOBS, "elbo", knob)
    assert pb.elbo_choice("mnist_2x800", "cpu", "tuned") == "eager"
    assert pb.elbo_choice("mnist_2x800", "gpu", "tuned") == "jit"
    assert pb.elbo_choice("mnist_2x800", "cpu", "matched") == "jit"
    monkeypatch.setenv("BNNBENCH_PYRO_ELBO", "jit")
    assert pb.elbo_choice("mnist_2x800", "cpu", "tuned") == "jit"
    monkeypatch.setenv("BNNBENCH_PYRO_ELBO", "fast")
    with pytest.raises(ValueError, match="one of jit, eager on the cpu, not 'fast'"):
        pb.elbo_choice("mnist_2x800", "cpu", "tuned")


def test_pymc_tuned_backend_follows_the_table_and_the_gpu_needs_jax(monkeypatch):
    from bnnbench.backends import pymc_backend as pb

    monkeypatch.delenv("BNNBENCH_PYMC_BACKEND", raising=False)
    knob = dataclasses.replace(pb.KNOBS["mode"], tuned={("mnist_2x800", "cpu"): "numba"})
    monkeypatch.setitem(pb.KNOBS, "mode", knob)
    assert pb.compile_backend("mnist_2x800", "cpu", "tuned") == "numba"
    assert pb.compile_backend("mnist_2x800", "cpu", "matched") == "c"
    assert pb.compile_backend("moons_2x5", "gpu", "tuned") == "jax"
    monkeypatch.setenv("BNNBENCH_PYMC_BACKEND", "numba")
    with pytest.raises(ValueError, match="one of jax on the gpu, not 'numba'"):
        pb.compile_backend("moons_2x5", "gpu", "matched")


def test_numpyro_conv_is_tuned_to_a_host_loop_and_per_draw_predictive(monkeypatch):
    from bnnbench.backends import numpyro_backend as nb

    for knob in nb.KNOBS.values():
        monkeypatch.delenv(knob.env, raising=False)
    loop, predictive = nb.KNOBS["loop"], nb.KNOBS["predictive"]
    assert loop.choose("mnist_conv", "cpu", "tuned") == "host"
    assert loop.choose("mnist_conv", "cpu", "matched") == "scan"
    assert predictive.choose("mnist_conv", "cpu", "tuned") == "draws"
    monkeypatch.setenv("BNNBENCH_NUMPYRO_LOOP", "scan")
    assert loop.choose("mnist_conv", "cpu", "tuned") == "scan"


def test_a_knob_rejects_a_tuned_value_it_does_not_offer():
    from bnnbench.backends.knobs import Knob

    with pytest.raises(ValueError, match="not among"):
        Knob(env="X", choices=("a", "b"), default="a", tuned={("m", "cpu"): "c"})


def test_pytensor_blas_flags_rename_every_routine_to_the_wheels_symbols():
    from bnnbench.backends.pytensor_blas import BLAS_ROUTINES, blas_ldflags

    flags = blas_ldflags("/lib/dir", "scipy_openblas").split()
    assert flags[:3] == ["-L/lib/dir", "-lscipy_openblas", "-Wl,-rpath,/lib/dir"]
    assert "-Dsgemm_=scipy_sgemm_" in flags and "-Ddgemv_=scipy_dgemv_" in flags
    assert len(flags) == 3 + len(BLAS_ROUTINES)


def test_pytensor_c_code_links_to_openblas_and_computes_gemv():
    """The flags are not only well formed: a C-compiled matrix-vector product links against
    the wheel's OpenBLAS (pytensor swaps in its BLAS ``CGemv`` only when a BLAS is configured)."""
    import numpy as np
    import pytensor
    import pytensor.tensor as pt
    from pymc.pytensorf import resolve_backend_compile_kwargs

    from bnnbench.backends import pymc_backend  # configures the BLAS at import

    assert pymc_backend.PYTENSOR_BLAS.startswith("scipy-openblas32 ")
    assert pymc_backend.library_versions()["pytensor_blas"] == pymc_backend.PYTENSOR_BLAS
    A, x, y = pt.matrix("A"), pt.vector("x"), pt.vector("y")
    c_mode = resolve_backend_compile_kwargs("c", None)  # PyMC's backend="c", as the cells use
    fn = pytensor.function([A, x, y], 2.0 * (A @ x) + y, **c_mode)
    ops = {type(node.op).__name__ for node in fn.maker.fgraph.toposort()}
    assert "CGemv" in ops, ops
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(7, 5)), rng.normal(size=5), rng.normal(size=7)
    a, b, c = (v.astype(pytensor.config.floatX) for v in (a, b, c))
    np.testing.assert_allclose(fn(a, b, c), 2.0 * (a @ b) + c, rtol=1e-5)
