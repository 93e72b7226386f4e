"""``bnnbench run --executor ray`` on a real Ray cluster on this machine (no mocks).

A head node is started on the loopback address with two CPUs and two declared (fake) GPUs, so
that GPU scheduling is exercised without a device; the smoke suite runs through it and its
records are compared with the local runner's; a worker is killed mid-cell; Ctrl-C on the driver
cancels what is running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bnnbench.cli import main
from bnnbench.results import ResultStore

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'bnnbench[ray]')")

pytestmark = pytest.mark.smoke


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def no_token_auth() -> Iterator[None]:
    """One authentication mode for the test cluster, its drivers and a local instance. Ray 2.60
    turns token authentication on for a new local instance (writing ``~/.ray/auth_token``) and
    for a ``ray start`` that finds that file: left to itself, the mode would depend on what
    ran before on the machine."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "disabled")
        yield


@pytest.fixture(scope="module")
def cluster(no_token_auth: None) -> Iterator[str]:
    """A Ray head node on 127.0.0.1: 2 CPUs, 2 fake GPUs; its address."""
    ray_cli = Path(sys.executable).with_name("ray")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rayt-", dir="/tmp")  # short: Ray's sockets live there
    start = [
        str(ray_cli),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-cpus=2",
        "--num-gpus=2",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]
    # from its own folder: nothing of the checkout on the workers' paths
    done = subprocess.run(start, capture_output=True, text=True, timeout=180, cwd=temp)
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([str(ray_cli), "stop", "--force"], capture_output=True, timeout=120)


def _ray_run(address: str, out: Path, *args: str) -> int:
    argv = ["run", *args, "--executor", "ray", "--address", address, "--out", str(out)]
    return main([*argv, "--no-progress"])


def test_the_smoke_suite_through_ray_gives_the_local_records(
    cluster: str, smoke_results: Path, tiny: list[str], tmp_path: Path
):
    out = tmp_path / "ray"
    assert _ray_run(cluster, out, "--suite", "smoke", *tiny) == 0
    local = ResultStore(smoke_results).runs().set_index("run_id").sort_index()
    remote = ResultStore(out).runs().set_index("run_id").sort_index()
    assert list(remote.index) == list(local.index)
    assert (remote["status"] == "ok").all(), remote["error"].tolist()
    # The same cell code, seeds and settings: the same model, to float noise.
    for column in ("accuracy", "final_neg_elbo_per_datum"):
        assert remote[column].to_numpy() == pytest.approx(local[column].to_numpy(), rel=1e-4)
    # Timings are measured again (same machine, within its noise: not compared here).
    assert (remote["step_ms"] > 0).all() and (remote["cell_wall_s"] > 0).all()
    env = json.loads((out / "env.json").read_text())
    assert env["executor"] == "ray"
    for run_id in remote.index:  # the artifacts travelled back to the driver's folder
        for name in ("inference_data.nc", "predictive_summary.nc", "cell.log", "env.json"):
            assert (out / run_id / name).is_file(), (run_id, name)
        info = json.loads((out / run_id / "executor.json").read_text())
        assert info["executor"] == "ray" and info["resources"]["num_gpus"] == 0
        assert info["cuda_visible_devices"] in ("", None)  # a CPU cell sees no GPU
    assert (out / "calibration-cpu.json").is_file()
    traces = ResultStore(out).traces()
    assert set(traces["run_id"]) == set(remote.index)


def test_without_an_address_a_new_local_instance_runs_the_cells(tmp_path: Path):
    """No cluster given: a fresh local Ray instance, whose workers start in the driver's
    (neutral, kept) folder and whose cells run in their own scratch folders."""
    out = tmp_path / "local-ray"
    argv = ["run", "--models", "moons_2x5", "--backends", "torch-ml", "--steps", "40"]
    argv += ["--trace-every", "10", "--draws", "5", "--executor", "ray", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    (row,) = ResultStore(out).runs().to_dict("records")
    assert row["status"] == "ok", row["error"]
    assert not ray.is_initialized()  # the run disconnected from (and so stopped) its instance


def test_a_gpu_cell_is_scheduled_on_a_declared_gpu(cluster: str, tmp_path: Path):
    out = tmp_path / "gpu"
    code = _ray_run(
        cluster,
        out,
        "--models",
        "moons_2x5",
        "--backends",
        "torch-ml",
        "--device",
        "gpu",
        "--steps",
        "20",
        "--draws",
        "5",
    )
    (row,) = ResultStore(out).runs().to_dict("records")
    info = json.loads((out / row["run_id"] / "executor.json").read_text())
    assert info["resources"]["num_gpus"] == 1.0
    assert len(info["gpu_ids"]) == 1 and info["cuda_visible_devices"] == info["gpu_ids"][0]
    # the GPU is declared, not real: the cell itself finds no CUDA device and says so
    assert row["status"] == "unsupported" and code == 1, row


def _kill_the_worker_of(run_id_part: str, found: list[int], deadline_s: float = 120) -> None:
    """SIGKILL the Ray worker whose cell process runs ``run_id_part`` (the cell then dies with
    it)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and not found:
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if "bnnbench.cell" in cmd and run_id_part in cmd:
                time.sleep(2.0)  # mid-cell
                worker = proc.parent()
                if worker is not None:
                    found.append(worker.pid)
                    worker.kill()
                return
        time.sleep(0.1)


def test_a_killed_worker_fails_its_cell_only_and_resume_reruns_it(cluster: str, tmp_path: Path):
    suite = tmp_path / "faults.toml"
    suite.write_text(
        'description = "a long cell and a short one"\n'
        '[[group]]\nmodels = ["moons_2x5"]\nbackends = ["torch-ml"]\nsteps = 2000000\n'
        "predict_draws = 5\n"
        '[[group]]\nmodels = ["moons_2x5"]\nbackends = ["numpyro"]\nsteps = 40\n'
        "trace_every = 10\npredict_draws = 5\n"
    )
    out = tmp_path / "faults"
    found: list[int] = []
    killer = threading.Thread(target=_kill_the_worker_of, args=("torch-ml", found))
    killer.start()
    code = _ray_run(cluster, out, "--suite", str(suite))
    killer.join()
    assert found, "no cell process of torch-ml was seen"
    runs = ResultStore(out).runs().set_index("backend")
    assert code == 1
    assert runs.loc["torch-ml", "status"] == "failed"
    assert "Ray worker running the cell died" in runs.loc["torch-ml", "error"]
    assert runs.loc["numpyro", "status"] == "ok"  # the suite went on
    finished = runs.loc["numpyro", "started_at"]
    # --resume reruns only the failed cell (here with a limit it cannot meet: a timeout)
    code = _ray_run(cluster, out, "--suite", str(suite), "--resume", "--timeout-s", "10")
    runs = ResultStore(out).runs().set_index("backend")
    assert code == 1 and runs.loc["numpyro", "started_at"] == finished
    assert runs.loc["torch-ml", "status"] == "failed"
    assert "timed out after 10 s" in runs.loc["torch-ml", "error"]


def test_ctrl_c_on_the_driver_cancels_the_running_cells(cluster: str, tmp_path: Path):
    out = tmp_path / "interrupted"
    driver = subprocess.Popen(
        [
            sys.executable,
            "-P",
            "-m",
            "bnnbench",
            "run",
            "--models",
            "moons_2x5",
            "--backends",
            "torch-ml",
            "--steps",
            "2000000",
            "--executor",
            "ray",
            "--address",
            cluster,
            "--out",
            str(out),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    cell = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and cell is None:
        for proc in psutil.process_iter(["cmdline"]):
            if "bnnbench.cell" in " ".join(proc.info["cmdline"] or []):
                cell = proc
        time.sleep(0.2)
    assert cell is not None, driver.communicate(timeout=30)
    time.sleep(2.0)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 128 + signal.SIGINT, err
    assert "--resume" in err
    cell.wait(timeout=30)  # cancelled with its task: the cell is gone
    assert not ResultStore(out).finished_run_ids()
