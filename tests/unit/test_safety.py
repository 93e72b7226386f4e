"""bnnbench.safety with real files and processes: markers, --overwrite's limits, the results lock,
cells dying with their parent, and the host-load measure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from bnnbench import safety


def _results_dir(path: Path, *, marker: bool = True) -> Path:
    """A folder laid out as ``bnnbench run`` leaves it."""
    (path / "run-a").mkdir(parents=True)
    (path / "run-a" / "config.json").write_text("{}")
    (path / "runs.csv").write_text("run_id,status\nrun-a,ok\n")
    (path / "env.json").write_text("{}")
    (path / "calibration-cpu.json").write_text("{}")
    if marker:
        safety.write_marker(path)
    return path


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """The process has ended (a zombie waiting for a reaper that does not reap has ended too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_results_dirs_are_recognised_by_marker_or_layout(tmp_path: Path):
    marked = _results_dir(tmp_path / "marked")
    legacy = _results_dir(tmp_path / "legacy", marker=False)  # from before markers existed
    foreign = _results_dir(tmp_path / "foreign", marker=False)
    (foreign / "important.txt").write_text("mine")
    only_csv = tmp_path / "only_csv"
    only_csv.mkdir()
    (only_csv / "runs.csv").write_text("a\n")
    assert safety.is_results_dir(marked) and safety.is_results_dir(legacy)
    assert not safety.is_results_dir(foreign) and not safety.is_results_dir(only_csv)


def test_out_dir_problems(tmp_path: Path):
    assert safety.out_dir_problem(tmp_path / "new" / "deeper") is None
    assert safety.out_dir_problem(tmp_path) is None  # empty
    (tmp_path / "file").write_text("x")
    assert "is a file" in safety.out_dir_problem(tmp_path / "file")
    assert "is a file" in safety.out_dir_problem(tmp_path / "file" / "sub")
    assert "did not create" in safety.out_dir_problem(tmp_path)  # holds a foreign file
    assert safety.out_dir_problem(_results_dir(tmp_path / "r")) is None


def test_overwrite_refuses_what_bnnbench_did_not_create(tmp_path: Path, monkeypatch):
    ok = _results_dir(tmp_path / "ok")
    assert safety.overwrite_problem(ok) is None
    assert safety.overwrite_problem(tmp_path / "missing") is None
    user = tmp_path / "user"
    (user / "sub").mkdir(parents=True)
    (user / "important.txt").write_text("mine")
    assert "did not create" in safety.overwrite_problem(user)
    repo = _results_dir(tmp_path / "repo")
    (repo / ".git").mkdir()
    assert "git repository" in safety.overwrite_problem(repo)
    monkeypatch.chdir(ok / "run-a")
    assert "working directory" in safety.overwrite_problem(ok)  # a parent of the cwd
    monkeypatch.chdir(ok)
    assert "working directory" in safety.overwrite_problem(Path("."))
    monkeypatch.chdir("/")
    monkeypatch.setenv("HOME", str(ok))
    assert "home" in safety.overwrite_problem(ok)
    assert "home" in safety.overwrite_problem(tmp_path)  # a parent of home


def test_clear_results_removes_only_what_bnnbench_wrote(tmp_path: Path):
    out = _results_dir(tmp_path / "out")
    (out / "notes.txt").write_text("mine")
    (out / "user_folder").mkdir()
    (out / safety.LOCK_NAME).write_text("")
    assert safety.clear_results(out) == ["notes.txt", "user_folder"]
    assert sorted(p.name for p in out.iterdir()) == [safety.LOCK_NAME, "notes.txt", "user_folder"]


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from bnnbench.safety import ResultsLock
    lock = ResultsLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_lock_names_its_holder_and_dies_with_it(tmp_path: Path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out), "--marker-arg"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(safety.DirInUseError) as err:
            safety.ResultsLock(out).acquire()
        assert f"is in use by pid {holder.pid} (command " in str(err.value)
        assert "--marker-arg" in str(err.value)
        assert json.loads((out / safety.LOCK_NAME).read_text())["pid"] == holder.pid
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the kernel drops the flock
        holder.wait()
    with safety.ResultsLock(out) as lock:
        assert lock.holder()["pid"] == os.getpid()
        with pytest.raises(safety.DirInUseError):
            safety.ResultsLock(out).acquire()  # one writer, even within one process
    safety.ResultsLock(out).acquire().release()  # released


SPAWN_CELL = textwrap.dedent(
    """
    import subprocess, sys, time
    from bnnbench.safety import child_process_options
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], **child_process_options()
    )
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_child_dies_when_its_parent_is_killed(tmp_path: Path):
    parent = subprocess.Popen([sys.executable, "-c", SPAWN_CELL], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert psutil.Process(child).ppid() == parent.pid
    assert os.getsid(child) == child  # its own session: the harness kills its whole group
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _gone(child), "the child outlived its parent"


def test_exit_descriptions_name_the_signal():
    assert safety.describe_exit(-9) == "killed by SIGKILL"
    assert safety.describe_exit(-15) == "killed by SIGTERM"
    assert safety.describe_exit(3) == "exited with code 3"


BUSY_LOOP = [sys.executable, "-c", "while True: pass"]


def test_host_load_sees_other_processes():
    busy = subprocess.Popen(BUSY_LOOP)
    try:
        time.sleep(0.3)
        sampler = safety.HostLoadSampler(interval=0.2).start()
        time.sleep(1.5)
        load = sampler.stop()  # before the loop is reaped: its CPU is another process's
    finally:
        busy.kill()
        busy.wait()
    assert load.busy and load.other_cpu_cores >= safety.BUSY_OTHER_CORES
    assert 0 < load.other_cpu_pct <= 100 and load.load_avg_1m >= 0 and load.steal_pct >= 0
    row = load.row()
    assert set(row) == {"host_load_avg_1m", "host_other_cpu_pct", "host_steal_pct", "host_busy"}
    assert row["host_busy"] is True


def test_own_children_do_not_count_as_others():
    sampler = safety.HostLoadSampler(interval=0.2).start()
    own = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"]
    )
    own.wait()  # reaped before stop: bnnbench's own (the cell's) CPU time
    load = sampler.stop()
    # Whatever else runs on this machine, the 1.5 core-seconds of the child are not in it.
    total_cores = len(safety._cpus() or [0] * (os.cpu_count() or 1))
    assert load.other_cpu_cores <= total_cores - 0.6


def test_wait_until_idle_gives_up_while_a_process_spins():
    busy = subprocess.Popen(BUSY_LOOP)
    try:
        time.sleep(0.3)
        started = time.monotonic()
        idle, cores = safety.wait_until_idle(1.0, window_s=0.5)
        assert time.monotonic() - started < 5
    finally:
        busy.kill()
        busy.wait()
    assert not idle and cores >= safety.BUSY_OTHER_CORES
