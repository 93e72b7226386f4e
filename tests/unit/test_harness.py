from pathlib import Path

import pytest

import bnnbench.harness as harness
from bnnbench.config import CellConfig
from bnnbench.results import ResultStore


def test_plan_cells_is_the_full_grid():
    cells = harness.plan_cells(
        ["moons_2x5"], ["pymc", "pyro"], ["matched", "native"], ["cpu"], [0, 1, 2], steps=10
    )
    assert len(cells) == 12
    assert len({c.run_id for c in cells}) == 12
    assert all(c.steps == 10 for c in cells)


def test_every_suite_loads_and_plans():
    names = harness.suite_names()
    assert {"default", "smoke", "profiles"} <= set(names)
    default = harness.plan_suite(harness.load_suite("default"))
    moons = [c for c in default if c.model == "moons_2x5"]
    assert {(c.backend, c.seed) for c in moons} == {
        (b, s) for b in ("pymc", "pyro", "numpyro", "torch-ml") for s in (0, 1, 2)
    }
    mnist = [c for c in default if c.model != "moons_2x5"]
    assert {c.model for c in mnist} == {"mnist_2x800", "mnist_2x800_hier", "mnist_conv"}
    assert {c.seed for c in mnist} == {0} and len(mnist) == 12
    assert {c.profile for c in default} == {"matched"} and {c.device for c in default} == {"cpu"}


def test_cli_overrides_win_over_the_suite():
    cells = harness.plan_suite(harness.load_suite("smoke"), steps=7, seeds=None)
    assert {c.steps for c in cells} == {7}


def test_unknown_suite_lists_the_valid_ones():
    with pytest.raises(ValueError, match="default"):
        harness.load_suite("nightly")


@pytest.mark.parametrize(("profile", "float_x"), [("matched", "float32"), ("native", "float64")])
def test_cell_environment_fixes_precision_before_import(profile, float_x):
    cfg = CellConfig.from_defaults("moons_2x5", "pymc", profile, "cpu", 0)
    env = harness.cell_environment(cfg)
    assert f"floatX={float_x}" in env["PYTENSOR_FLAGS"]
    assert env["JAX_PLATFORMS"] == "cpu" and env["JAX_ENABLE_X64"] == "0"


def test_missing_package_makes_cells_unavailable(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(harness, "missing_packages", lambda b: ["pyro-ppl"] if b == "pyro" else [])
    cfg = CellConfig.from_defaults("moons_2x5", "pyro", "matched", "cpu", 0)
    row = harness.run_one(cfg, ResultStore(tmp_path), harness.environment())
    assert row["status"] == "unavailable" and "pyro-ppl" in row["error"]
    assert ResultStore(tmp_path).runs()["status"].tolist() == ["unavailable"]


def test_timeout_fails_the_cell_and_kills_it(tmp_path: Path):
    cfg = CellConfig.from_defaults("moons_2x5", "numpyro", "matched", "cpu", 0, timeout_s=0.5)
    row = harness.run_one(cfg, ResultStore(tmp_path), harness.environment())
    assert row["status"] == "failed" and "timed out after 0.5 s" in row["error"]


def test_calibrate_devices_measures_once_and_reports_a_missing_gpu(tmp_path: Path, capsys):
    import json

    from bnnbench.harness import calibrate_devices

    assert calibrate_devices(tmp_path, ["cpu"])
    path = tmp_path / "calibration-cpu.json"
    stored = json.loads(path.read_text())
    assert stored["device"] == "cpu" and stored["matmul_flops_per_s"] > 0
    before = path.stat().st_mtime_ns
    assert calibrate_devices(tmp_path, ["cpu"])  # kept, not measured again
    assert path.stat().st_mtime_ns == before
    import torch

    if not torch.cuda.is_available():
        assert not calibrate_devices(tmp_path, ["gpu"])
        assert "calibration of gpu failed" in capsys.readouterr().err
        assert not (tmp_path / "calibration-gpu.json").exists()
