"""Faults a run must survive, with real processes, signals and file systems: kill -9 of the parent,
SIGTERM and SIGHUP, two runs on one folder, a full disk, a read-only folder, a working directory
that shadows the package, a machine with nothing runnable, a busy machine."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from bnnbench.cli import main
from bnnbench.results import ResultStore
from bnnbench.safety import LOCK_NAME, MARKER_NAME, ResultsLock

pytestmark = pytest.mark.smoke

REPO = Path(__file__).resolve().parents[2]
TINY = ["--models", "moons_2x5", "--backends", "torch-ml", "--steps", "20", "--trace-every", "10"]
TINY += ["--draws", "5", "--no-progress"]
#: A cell that runs until it is killed.
ENDLESS = ["--models", "moons_2x5", "--backends", "torch-ml", "--steps", "100000000"]
ENDLESS += ["--trace-every", "10000", "--no-progress"]
BNNBENCH = [sys.executable, "-P", "-m", "bnnbench"]


def _out(tmp_path: Path, name: str = "out") -> Path:
    """A new results folder holding the CPU calibration (saves a 5 s measurement per test)."""
    out = tmp_path / name
    out.mkdir()
    calibration = REPO / "results" / "default" / "calibration-cpu.json"
    if calibration.exists():
        shutil.copy(calibration, out / "calibration-cpu.json")
    return out


def _cell_of(parent: subprocess.Popen, timeout: float = 120) -> psutil.Process:
    """The cell process ``parent`` (a ``bnnbench run``) started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert parent.poll() is None, parent.communicate()
        for child in psutil.Process(parent.pid).children(recursive=True):
            try:
                if "bnnbench.cell" in " ".join(child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.1)
    raise AssertionError("no cell process started")


def _gone(proc: psutil.Process, timeout: float = 15) -> bool:
    """The process ended (a zombie whose reaper does not reap, e.g. a container's init, too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kill_9_of_the_run_kills_its_cell_and_frees_the_folder(tmp_path: Path):
    out = _out(tmp_path)
    command = [*BNNBENCH, "run", *ENDLESS, "--out", str(out)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cell = _cell_of(first)
        # a second writer on the same folder is refused, naming the first
        second = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        line = _one_line_error(second.stderr)
        assert f"{out} is in use by pid {first.pid} (command " in line and "--steps" in line
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert _gone(cell), "the cell outlived its parent"
    ResultsLock(out).acquire().release()  # the dead holder left no stuck lock
    assert (out / MARKER_NAME).exists()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_the_suite_like_ctrl_c(sig, code, tmp_path: Path):
    out = _out(tmp_path)
    run = subprocess.Popen(
        [*BNNBENCH, "run", *ENDLESS, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cell = _cell_of(run)
    run.send_signal(sig)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == code, stderr
    assert f"interrupted ({sig.name}): 0 cells finished ok" in stderr
    assert "Traceback" not in stderr
    assert _gone(cell)
    assert not ResultStore(out).has_results()  # the killed cell is not recorded
    assert not list(out.rglob("*.tmp"))


def test_cells_run_from_a_folder_that_shadows_the_package(tmp_path: Path, monkeypatch, capsys):
    """A ``bnnbench`` folder in the working directory (e.g. the checkout's parent) is ignored."""
    shadow = tmp_path / "cwd" / "bnnbench"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('the shadow was imported')\n")
    out = _out(tmp_path)
    monkeypatch.chdir(shadow.parent)
    assert main(["run", *TINY, "--out", str(out)]) == 0, capsys.readouterr()
    runs = ResultStore(out).runs()
    assert runs["status"].tolist() == ["ok"], runs["error"].tolist()
    for column in ("host_load_avg_1m", "host_other_cpu_pct", "host_steal_pct", "host_busy"):
        assert column in runs


BUSY_LOOP = [sys.executable, "-c", "while True: pass"]


def test_busy_machine_is_flagged_and_overwrite_keeps_the_users_files(tmp_path: Path, capsys):
    out = _out(tmp_path)
    (out / MARKER_NAME).touch()  # an earlier run's folder ...
    (out / "env.json").write_text("{}")
    (out / "old-run").mkdir()
    (out / "old-run" / "config.json").write_text("{}")
    (out / "runs.csv").write_text("run_id,status\nold-run,ok\n")
    (out / "notes.txt").write_text("mine")  # ... where the user keeps a note
    busy = subprocess.Popen(BUSY_LOOP)  # another process spinning on one core
    try:
        time.sleep(0.5)
        code = main(["run", *TINY, "--overwrite", "--out", str(out)])
    finally:
        busy.kill()
        busy.wait()
    assert code == 0
    runs = ResultStore(out).runs()
    assert len(runs) == 1 and runs["run_id"].item() != "old-run"
    assert not (out / "old-run").exists()  # what bnnbench wrote is gone ...
    assert (out / "notes.txt").read_text() == "mine"  # ... the user's file is not
    row = runs.iloc[0]
    assert bool(row["host_busy"]) and row["host_other_cpu_pct"] > 0
    captured = capsys.readouterr()
    assert "timed on a busy machine" in captured.out + captured.err
    assert "kept what bnnbench did not write: notes.txt" in captured.err


def test_require_idle_refuses_to_time_on_a_busy_machine(tmp_path: Path):
    out = _out(tmp_path)
    busy = subprocess.Popen(BUSY_LOOP)
    try:
        time.sleep(0.5)
        run = subprocess.run(
            [*BNNBENCH, "run", *TINY, "--require-idle", "1", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        busy.kill()
        busy.wait()
    assert run.returncode == 1
    line = _one_line_error(run.stderr)
    assert "stayed busy for 1 s" in line and "--resume" in line
    assert not ResultStore(out).has_results()


def test_gpu_with_nothing_runnable_exits_1_and_resume_retries_it(tmp_path: Path, capsys):
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine may have a GPU")
    out = _out(tmp_path)
    shutil.copy(out / "calibration-cpu.json", out / "calibration-gpu.json")  # skip its probe
    argv = ["run", *TINY, "--device", "gpu", "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "nothing could run: every cell is unsupported or unavailable" in err
    assert "torch-ml/gpu:" in err
    first = ResultStore(out).runs()
    assert first["status"].tolist() == ["unsupported"]
    assert main([*argv, "--resume"]) == 1  # the machine may have changed: tried again
    again = ResultStore(out).runs()
    assert len(again) == 1 and again["started_at"].item() >= first["started_at"].item()
    log = out / first["run_id"].item() / "cell.log"
    assert log.exists()


def _unshare_works() -> bool:
    if not shutil.which("unshare") or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt || exit 1"],
        capture_output=True,
    )
    return probe.returncode == 0


def _in_tiny_fs(
    tmp_path: Path, script: str, *, read_only: bool = False
) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) in a private mount namespace with a 64 KiB tmpfs at ``$FS``."""
    fs = tmp_path / "fs"
    fs.mkdir()
    options = "ro,size=64k" if read_only else "size=64k"
    return subprocess.run(
        ["unshare", "-Urm", "sh", "-c", f'mount -t tmpfs -o {options} tmpfs "$FS" && {script}'],
        env={**os.environ, "FS": str(fs), "PY": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(not _unshare_works(), reason="no user namespaces to mount a tiny tmpfs")
def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path: Path):
    script = (
        'head -c 1000000 /dev/zero > "$FS/filler" 2>/dev/null; '
        f'"$PY" -P -m bnnbench run {" ".join(TINY)} --out "$FS/out"; echo "rc=$?"; '
        'find "$FS" -name "*.tmp"'
    )
    done = _in_tiny_fs(tmp_path, script)
    assert "rc=1" in done.stdout, (done.stdout, done.stderr)
    line = _one_line_error(done.stderr)
    assert "No space left on device" in line
    assert ".tmp" not in done.stdout.split("rc=1")[1]


def test_a_write_that_fails_is_one_line(tmp_path: Path):
    """The same path without a tiny file system: files may not grow past 64 bytes (EFBIG)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    out = tmp_path / "out"
    done = subprocess.run(
        [*BNNBENCH, "run", *TINY, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
    )
    assert done.returncode == 1
    assert "File too large" in _one_line_error(done.stderr)
    assert not list(out.rglob("*.tmp"))


def test_a_read_only_folder_is_one_line(tmp_path: Path):
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        done = subprocess.run(
            [*BNNBENCH, "run", *TINY, "--out", str(folder / "out")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        folder.chmod(0o755)
        code, stderr = done.returncode, done.stderr
    elif _unshare_works():  # root ignores permissions: a read-only mount
        done = _in_tiny_fs(
            tmp_path,
            f'"$PY" -P -m bnnbench run {" ".join(TINY)} --out "$FS/out"; echo "rc=$?"',
            read_only=True,
        )
        code, stderr = (
            (1 if "rc=1" in done.stdout else 2 if "rc=2" in done.stdout else -1),
            done.stderr,
        )
    else:
        pytest.skip("root without user namespaces: no read-only folder to test")
    assert code == 2, stderr
    assert "cannot write in" in _one_line_error(stderr)


def test_lock_file_names_the_holder(tmp_path: Path):
    out = _out(tmp_path)
    with ResultsLock(out):
        holder = json.loads((out / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["command"]


def test_interrupt_message_counts_only_ok_cells(tmp_path: Path):
    """A failed row is not a finished cell: after one failed cell the message says 0."""
    out = _out(tmp_path)
    failed = pd.DataFrame([{"run_id": "x", "model": "moons_2x5", "status": "failed", "error": "e"}])
    # Record a failed cell the way the harness does, then interrupt a run on the same folder.
    ResultStore(out).record(failed.iloc[0].to_dict())
    (out / MARKER_NAME).touch()
    (out / "env.json").write_text("{}")
    run = subprocess.Popen(
        [*BNNBENCH, "run", *ENDLESS, "--resume", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _cell_of(run)
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 143
    assert "0 cells finished ok" in stderr
