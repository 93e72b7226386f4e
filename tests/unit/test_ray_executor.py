"""The Ray executor's parts that need no cluster: resources, the cell's environment on a node,
Ray's failures in words, and the CLI's checks. The cluster itself: tests/smoke."""

from __future__ import annotations

import dataclasses

import pytest

from bnnbench.cli import main
from bnnbench.config import CellConfig
from bnnbench.spec import get_spec

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'bnnbench[ray]')")

from bnnbench.ray_executor import TaskResources, _node_environment, _reason  # noqa: E402


def _cfg(device: str, model: str = "moons_2x5") -> CellConfig:
    return CellConfig.from_defaults(model, "numpyro", "matched", device, 0)


def test_a_cell_asks_for_its_spec_memory_and_a_gpu_only_on_the_gpu():
    cpu = TaskResources.of(_cfg("cpu", "mnist_2x800"), cpus_per_cell=3)
    assert cpu == TaskResources(3.0, 0.0, get_spec("mnist_2x800").cell_memory_mb * 2**20)
    gpu = TaskResources.of(_cfg("gpu"), cpus_per_cell=1)
    assert gpu.num_gpus == get_spec("moons_2x5").gpu_fraction == 1.0


def test_on_a_node_a_cpu_cell_sees_no_gpu_and_uses_its_cores(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # as Ray could leave it
    env = _node_environment(_cfg("cpu"), TaskResources(2.0, 0.0, 1))
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "2"
    assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


def test_a_gpu_cell_keeps_the_gpu_ray_gave_it_and_a_shared_one_limits_jax(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    whole = _node_environment(_cfg("gpu"), TaskResources(1.0, 1.0, 1))
    assert whole["CUDA_VISIBLE_DEVICES"] == "1" and "XLA_CLIENT_MEM_FRACTION" not in whole
    assert whole["JAX_PLATFORMS"] == "cuda,cpu"
    half = _node_environment(_cfg("gpu"), TaskResources(1.0, 0.5, 1))
    assert half["XLA_CLIENT_MEM_FRACTION"] == "0.475"


def test_a_spec_that_fits_half_a_gpu_asks_for_half(monkeypatch: pytest.MonkeyPatch):
    import bnnbench.ray_executor as rx

    spec = dataclasses.replace(get_spec("moons_2x5"), gpu_fraction=0.5)
    monkeypatch.setattr(rx, "get_spec", lambda name: spec)
    assert TaskResources.of(_cfg("gpu"), cpus_per_cell=1).num_gpus == 0.5


def test_rays_failures_are_said_in_words():
    from ray import exceptions as rex

    assert _reason(rex.WorkerCrashedError()).startswith("the Ray worker running the cell died")
    assert _reason(rex.TaskCancelledError()).startswith("cancelled")
    assert _reason(RuntimeError("boom")) == "RuntimeError: boom"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--address", "auto"], "--address and --cpus-per-cell need --executor ray"),
        (["--executor", "ray", "--require-idle", "5"], "--require-idle applies to the local"),
        (["--executor", "ray", "--cpus-per-cell", "0"], "must be a whole number >= 1"),
    ],
)
def test_executor_flags_are_checked_before_anything_runs(
    tmp_path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
):
    argv = ["run", "--models", "moons_2x5", "--out", str(tmp_path / "r"), *extra]
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "r").exists()
