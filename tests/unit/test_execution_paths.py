"""Which execution path each profile takes: ``tuned`` picks per spec and device, and an
override exists only for measuring the candidates."""

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
    monkeypatch.setattr(pb, "TUNED_ELBO", {("mnist_2x800", "cpu"): "eager"})
    assert pb.elbo_choice("mnist_2x800", "cpu", "tuned") == "eager"
    assert pb.elbo_choice("mnist_2x800", "gpu", "tuned") == pb.DEFAULT_ELBO
    assert pb.elbo_choice("mnist_2x800", "cpu", "matched") == pb.DEFAULT_ELBO
    monkeypatch.setenv("BNNBENCH_PYRO_ELBO", "jit")
    assert pb.elbo_choice("mnist_2x800", "cpu", "tuned") == "jit"
    monkeypatch.setenv("BNNBENCH_PYRO_ELBO", "fast")
    with pytest.raises(ValueError, match="jit or eager"):
        pb.elbo_choice("mnist_2x800", "cpu", "tuned")


def test_pymc_tuned_backend_follows_the_table_and_the_gpu_needs_jax(monkeypatch):
    from bnnbench.backends import pymc_backend as pb

    monkeypatch.delenv("BNNBENCH_PYMC_BACKEND", raising=False)
    monkeypatch.setattr(pb, "TUNED_BACKEND", {("mnist_2x800", "cpu"): "numba"})
    assert pb.compile_backend("mnist_2x800", "cpu", "tuned") == "numba"
    assert pb.compile_backend("mnist_2x800", "cpu", "matched") == "c"
    assert pb.compile_backend("moons_2x5", "gpu", "tuned") == "jax"
    monkeypatch.setenv("BNNBENCH_PYMC_BACKEND", "numba")
    with pytest.raises(ValueError, match="only through the jax backend"):
        pb.compile_backend("moons_2x5", "gpu", "matched")
