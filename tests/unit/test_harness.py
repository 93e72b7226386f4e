import time
from pathlib import Path

import pytest

import bnnbench.harness as harness
from bnnbench.config import CellConfig
from bnnbench.results import ResultStore
from bnnbench.types import BACKENDS


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
    models = {"mnist_2x800", "mnist_2x800_hier", "mnist_conv"}
    assert {c.model for c in mnist} == models
    # one cell per backend that implements each spec (mnist_2x800_hier has no torch-ml)
    from bnnbench.spec import get_spec

    implemented = sum(len(set(get_spec(m).implementations) & set(BACKENDS)) for m in models)
    assert {c.seed for c in mnist} == {0} and len(mnist) == implemented
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
    import bnnbench.execution as execution

    monkeypatch.setattr(
        execution, "missing_packages", lambda b: ["pyro-ppl"] if b == "pyro" else []
    )
    cfg = CellConfig.from_defaults("moons_2x5", "pyro", "matched", "cpu", 0)
    row = harness.run_one(cfg, ResultStore(tmp_path), harness.environment())
    assert row["status"] == "unavailable" and "pyro-ppl" in row["error"]
    assert "pip install 'bnnbench[pyro]'" in row["error"]  # the registry's extra
    assert ResultStore(tmp_path).runs()["status"].tolist() == ["unavailable"]


def test_timeout_fails_the_cell_and_kills_it(tmp_path: Path):
    cfg = CellConfig.from_defaults("moons_2x5", "numpyro", "matched", "cpu", 0, timeout_s=0.5)
    store = ResultStore(tmp_path)
    store.run_dir(cfg.run_id).mkdir()
    stale = store.run_dir(cfg.run_id) / ".inference_data.nc.x1y2.tmp"  # an earlier killed write
    stale.write_text("half")
    row = harness.run_one(cfg, store, harness.environment())
    assert row["status"] == "failed" and "timed out after 0.5 s" in row["error"]
    assert not list(tmp_path.rglob("*.tmp"))
    assert {"host_load_avg_1m", "host_other_cpu_pct", "host_steal_pct", "host_busy"} <= set(row)


def test_a_killed_cell_names_the_signal(tmp_path: Path):
    """The cell process is SIGKILLed (the OOM killer, a user): its error says so."""
    import threading

    import psutil

    cfg = CellConfig.from_defaults("moons_2x5", "torch-ml", "matched", "cpu", 0, steps=10**7)
    found: list[int] = []

    def kill_the_cell() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not found:
            for child in psutil.Process().children():
                if "bnnbench.cell" in " ".join(child.cmdline()):
                    found.append(child.pid)
                    child.kill()
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_cell)
    killer.start()
    row = harness.run_one(cfg, ResultStore(tmp_path), harness.environment())
    killer.join()
    assert found and row["status"] == "failed"
    assert row["error"].startswith("cell process killed by SIGKILL"), row["error"]


def test_cells_start_immune_to_the_working_directory():
    from bnnbench.execution import cell_command

    command = cell_command(Path("run"))
    assert command[1:4] == ["-P", "-m", "bnnbench.cell"]


def test_a_suite_file_by_path(tmp_path: Path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'description = "my grid"\n[[group]]\nmodels = ["moons_2x5"]\nbackends = ["pyro"]\n'
        "seeds = [3, 4]\nsteps = 20\nlearning_rate = 1\n"
    )
    suite = harness.load_suite(str(path))
    assert (suite.name, suite.description) == ("mine", "my grid")
    cells = harness.plan_suite(suite)
    assert [(c.seed, c.steps, c.learning_rate) for c in cells] == [(3, 20, 1.0), (4, 20, 1.0)]


GOOD_GROUP = 'models = ["moons_2x5"]\nbackends = ["pyro"]\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"[[group]]\n{GOOD_GROUP}step = 20\n", "unknown key 'step' (allowed: backends, "),
        ('[[group]]\nbackends = ["pyro"]\n', "missing 'models'"),
        ('[[group]]\nmodels = ["moons_2x5"]\n', "missing 'backends'"),
        (f'[[group]]\n{GOOD_GROUP}steps = "20"\n', "steps must be an integer"),
        (f"[[group]]\n{GOOD_GROUP}steps = 2.5\n", "steps must be an integer"),
        (f'[[group]]\n{GOOD_GROUP}learning_rate = "x"\n', "learning_rate must be a number"),
        (f"[[group]]\n{GOOD_GROUP}seeds = [0.5]\n", "seeds must be a non-empty list of integers"),
        (f"[[group]]\n{GOOD_GROUP}seeds = []\n", "seeds must be a non-empty list of integers"),
        ('[[group]]\nmodels = "moons_2x5"\nbackends = ["pyro"]\n', "models must be a non-empty"),
        ('[[group]]\nmodels = ["moons_9x9"]\nbackends = ["pyro"]\n', "unknown model 'moons_9x9'"),
        ('[[group]]\nmodels = ["moons_2x5"]\nbackends = ["stan"]\n', "unknown backend 'stan'"),
        ('description = "no groups"\n', "defines no [[group]]"),
        (f"steps = 20\n[[group]]\n{GOOD_GROUP}", "unknown top-level key 'steps'"),
        ("description = 3\n", "description must be a string"),
        ("[[group]\n", "not valid TOML"),
    ],
)
def test_broken_suites_name_the_file_and_the_problem(tmp_path: Path, text: str, message: str):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(harness.SuiteError) as err:
        harness.load_suite(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_suite_settings_are_validated_per_group(tmp_path: Path):
    path = tmp_path / "big_batch.toml"
    path.write_text(f"[[group]]\n{GOOD_GROUP}batch_size = 1000\n")
    with pytest.raises(harness.SuiteError, match="group 1: batch_size 1000 is larger"):
        harness.plan_suite(harness.load_suite(path))


def test_a_missing_suite_file():
    with pytest.raises(harness.SuiteError, match=r"suite file nowhere/mine\.toml not found"):
        harness.load_suite("nowhere/mine.toml")


def test_selection_happens_before_validation():
    """--batch-size 1000 suits the MNIST cells of the default suite, not its moons cells."""
    suite = harness.load_suite("default")
    cells = harness.plan_suite(suite, only={"models": ["mnist_2x800"]}, batch_size=1000)
    assert cells and {c.model for c in cells} == {"mnist_2x800"}
    with pytest.raises(harness.SuiteError, match="larger than moons_2x5"):
        harness.plan_suite(suite, batch_size=1000)


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
