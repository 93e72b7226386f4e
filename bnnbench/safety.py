"""What keeps a run safe and its timings honest.

* **Whose folder**: every results folder ``run`` creates holds a marker file
  (:data:`MARKER_NAME`); ``--overwrite`` removes only what bnnbench wrote in a folder it
  recognises (:func:`overwrite_problem`, :func:`clear_results`), never the working directory, its
  parents, the home folder or a git repository's root.
* **One writer**: :class:`ResultsLock` holds an exclusive ``flock`` on :data:`LOCK_NAME` in the
  folder; the file names the holder (pid and command line). The kernel releases the lock when its
  holder dies, so a killed run never leaves a folder stuck.
* **Cells die with their parent**: :func:`child_process_options` makes the kernel send SIGKILL to a
  cell when the ``bnnbench run`` that started it dies (Linux ``PR_SET_PDEATHSIG``), even by
  ``kill -9``.
* **Busy machines**: :class:`HostLoadSampler` measures, while a cell runs, the 1-minute load
  average, the CPU time other processes used on this process's CPUs and the steal time;
  :func:`wait_until_idle` waits for other processes to go quiet before a cell is timed.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = [
    "BUSY_OTHER_CORES",
    "BUSY_STEAL_PCT",
    "LOCK_NAME",
    "MARKER_NAME",
    "DirInUseError",
    "HostLoad",
    "HostLoadSampler",
    "ResultsLock",
    "child_process_options",
    "clear_results",
    "describe_exit",
    "is_results_dir",
    "out_dir_problem",
    "overwrite_problem",
    "wait_until_idle",
    "write_marker",
]

#: Empty file in every results folder bnnbench creates: ``--overwrite`` needs it.
MARKER_NAME = ".bnnbench-results"
#: The lock file of a results folder (holds the pid and command line of the run holding it).
LOCK_NAME = ".bnnbench.lock"

#: A cell is timed on a busy machine when other processes used, on average over the cell, at
#: least this many of the CPUs this process may run on (half a core) ...
BUSY_OTHER_CORES = 0.5
#: ... or when the hypervisor stole at least this percentage of those CPUs' time.
BUSY_STEAL_PCT = 5.0


# --------------------------------------------------------------------------------------------
# Whose folder


def _is_known_entry(path: Path) -> bool:
    """A file or folder that ``bnnbench run`` / ``calibrate`` writes in a results folder."""
    name = path.name
    if path.is_dir() and not path.is_symlink():
        return (path / "config.json").is_file()  # a run's folder
    return (
        name in {"runs.csv", "traces.csv", "env.json", MARKER_NAME, LOCK_NAME}
        or (name.startswith("calibration-") and name.endswith(".json"))
        or (name.startswith(".") and name.endswith(".tmp"))
    )


def is_results_dir(path: Path) -> bool:
    """Whether bnnbench wrote ``path``: it holds the marker, or (folders from before markers
    existed) ``runs.csv`` and ``env.json`` and nothing that bnnbench does not write."""
    path = Path(path)
    if (path / MARKER_NAME).is_file():
        return True
    if not ((path / "runs.csv").is_file() and (path / "env.json").is_file()):
        return False
    return all(_is_known_entry(p) for p in path.iterdir())


def write_marker(path: Path) -> None:
    (Path(path) / MARKER_NAME).touch()


def out_dir_problem(path: Path) -> str | None:
    """Why ``run`` must not write into ``path`` (``None``: it may).

    It may when ``path`` does not exist yet (its nearest existing parent writable), or is an
    empty folder, a bnnbench results folder, or a folder holding only files bnnbench writes.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"--out {path} is a file, not a folder"
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"--out {path}: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"--out {path}: cannot write in {existing} (read-only folder or no permission)"
    if path.is_dir() and not is_results_dir(path):
        unknown = sorted(p.name for p in path.iterdir() if not _is_known_entry(p))
        if unknown:
            return (
                f"--out {path} is a folder bnnbench did not create (it holds "
                f"{', '.join(unknown[:3])}{', ...' if len(unknown) > 3 else ''}); "
                "choose a new or empty folder"
            )
    return None


def overwrite_problem(path: Path) -> str | None:
    """Why ``--overwrite`` must not clear ``path`` (``None``: it may)."""
    given = Path(path)
    if not given.exists():
        return None
    resolved = given.resolve()
    if not resolved.is_dir():
        return f"--overwrite: {given} is not a folder"
    cwd = Path.cwd().resolve()
    home = Path.home().resolve()
    if resolved == cwd or resolved in cwd.parents:
        return f"--overwrite refuses to clear {given}: it is the working directory or a parent"
    if resolved == home or resolved in home.parents:
        return f"--overwrite refuses to clear {given}: it is the home folder or a parent"
    if (resolved / ".git").exists():
        return f"--overwrite refuses to clear {given}: it is the root of a git repository"
    if not is_results_dir(resolved):
        return (
            f"--overwrite refuses to clear {given}: bnnbench did not create it "
            f"(no {MARKER_NAME} marker); delete it yourself or choose another --out"
        )
    return None


def clear_results(path: Path) -> list[str]:
    """Remove what bnnbench wrote in ``path`` (not its lock); returns the names of what was kept
    (files bnnbench does not write, e.g. a user's notes, are never removed)."""
    kept = []
    for entry in Path(path).iterdir():
        if entry.name == LOCK_NAME:
            continue
        if not _is_known_entry(entry):
            kept.append(entry.name)
        elif entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return sorted(kept)


# --------------------------------------------------------------------------------------------
# One writer


class DirInUseError(RuntimeError):
    """Another live process holds the results folder's lock."""


class ResultsLock:
    """An exclusive lock on a results folder, held from :meth:`acquire` to :meth:`release`.

    ``flock`` on :data:`LOCK_NAME`: the kernel drops it when the holder's process ends, however it
    ends. The file is never deleted (deleting it would let two runs lock two different files).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> ResultsLock:
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.holder()
            os.close(fd)
            if holder:
                raise DirInUseError(
                    f"{self.root} is in use by pid {holder.get('pid', '?')} "
                    f"(command {holder.get('command', '?')})"
                ) from None
            raise DirInUseError(f"{self.root} is in use by another bnnbench process") from None
        try:
            os.ftruncate(fd, 0)
            text = json.dumps({"pid": os.getpid(), "command": shlex.join(sys.argv)}) + "\n"
            os.write(fd, text.encode())
        except BaseException:
            os.close(fd)  # also releases the lock
            raise
        self._fd = fd
        return self

    def holder(self) -> dict | None:
        """The pid and command written by the process holding (or that last held) the lock."""
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ResultsLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# --------------------------------------------------------------------------------------------
# Cells die with their parent

_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def child_process_options() -> dict[str, object]:
    """``subprocess.Popen`` options for a cell: on Linux the kernel SIGKILLs the child when this
    process dies (``PR_SET_PDEATHSIG``; also if it died before the child got there), and the
    child leads its own session so that the harness can kill its whole process group.

    Where that is not available the child stays in this process's group and session, so that a
    terminal's Ctrl-C or hang-up reaches it too.
    """
    prctl = _prctl()
    if prctl is None:
        return {}
    parent = os.getpid()
    option, sig, zero = ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL), 0

    def die_with_parent() -> None:  # runs in the child between fork and exec
        if prctl(option, sig, ctypes.c_ulong(zero), ctypes.c_ulong(zero), ctypes.c_ulong(zero)):
            os._exit(126)  # no guarantee: better no cell than an orphan
        if os.getppid() != parent:  # the parent died before prctl
            os.kill(os.getpid(), signal.SIGKILL)

    return {"preexec_fn": die_with_parent, "start_new_session": True}


def describe_exit(returncode: int) -> str:
    """``exited with code 3`` or ``killed by SIGKILL``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


# --------------------------------------------------------------------------------------------
# Busy machines


@dataclass(frozen=True)
class HostLoad:
    """The machine's load while a cell ran.

    Attributes
    ----------
    load_avg_1m
        Mean of the 1-minute load average sampled every ``interval`` seconds (it counts the cell).
    other_cpu_pct
        CPU time used by processes other than bnnbench and the cell's process tree, in percent of
        the capacity of the CPUs this process may run on (100: all of them busy all the time).
    other_cpu_cores
        The same in cores (1.0: one core busy all the time).
    steal_pct
        Time the hypervisor gave those CPUs to other guests, in percent of their capacity.
    busy
        The timings were taken while other processes competed: ``other_cpu_cores >=``
        :data:`BUSY_OTHER_CORES` or ``steal_pct >=`` :data:`BUSY_STEAL_PCT`.
    """

    load_avg_1m: float
    other_cpu_pct: float
    other_cpu_cores: float
    steal_pct: float
    busy: bool

    def row(self) -> dict[str, object]:
        """The fields a ``runs.csv`` row records."""
        return {
            "host_load_avg_1m": round(self.load_avg_1m, 3),
            "host_other_cpu_pct": round(self.other_cpu_pct, 2),
            "host_steal_pct": round(self.steal_pct, 2),
            "host_busy": bool(self.busy),
        }


def _cpus() -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


@dataclass(frozen=True)
class _Snapshot:
    wall: float
    busy: float  # seconds of CPU busy (not idle, not iowait, not stolen) on our CPUs
    total: float  # seconds of all CPU time on our CPUs
    steal: float
    own: float  # this process's CPU time plus its reaped children's

    @classmethod
    def take(cls) -> _Snapshot:
        per_cpu = psutil.cpu_times(percpu=True)
        cpus = _cpus()
        if cpus is not None and max(cpus) < len(per_cpu):
            per_cpu = [per_cpu[i] for i in cpus]
        busy = total = steal = 0.0
        for t in per_cpu:
            fields = t._asdict()
            # guest time is already counted in user/nice on Linux
            all_time = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
            idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
            stolen = fields.get("steal", 0.0)
            total += all_time
            steal += stolen
            busy += all_time - idle - stolen
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
        return cls(time.monotonic(), busy, total, steal, own)


def _between(a: _Snapshot, b: _Snapshot) -> tuple[float, float, float]:
    """(other cores, other % of capacity, steal %) from ``a`` to ``b``."""
    wall = max(b.wall - a.wall, 1e-9)
    total = max(b.total - a.total, 1e-9)
    # CPU accounting is in clock ticks: clip the noise of a short window at zero
    others = max((b.busy - a.busy) - (b.own - a.own), 0.0)
    return others / wall, min(100.0 * others / total, 100.0), 100.0 * (b.steal - a.steal) / total


def _is_busy(other_cores: float, steal_pct: float) -> bool:
    return other_cores >= BUSY_OTHER_CORES or steal_pct >= BUSY_STEAL_PCT


class HostLoadSampler:
    """Measures the host's load from this (the parent) process while a child cell runs.

    Start it just before the child starts and stop it after the child has been waited for: the
    child's CPU time then counts as bnnbench's own (``RUSAGE_CHILDREN``), everything else that
    ran on this process's CPUs as other processes'. A thread samples the load average every
    ``interval`` seconds.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._loads: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start: _Snapshot | None = None

    def _sample(self) -> None:
        while True:
            self._loads.append(psutil.getloadavg()[0])
            if self._stop.wait(self.interval):
                return

    def start(self) -> HostLoadSampler:
        self._start = _Snapshot.take()
        self._thread = threading.Thread(target=self._sample, name="host-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> HostLoad:
        assert self._start is not None and self._thread is not None, "not started"
        end = _Snapshot.take()
        self._stop.set()
        self._thread.join()
        cores, pct, steal = _between(self._start, end)
        load = sum(self._loads) / len(self._loads) if self._loads else psutil.getloadavg()[0]
        return HostLoad(load, pct, cores, steal, _is_busy(cores, steal))


def wait_until_idle(max_wait_s: float, window_s: float = 1.0) -> tuple[bool, float]:
    """Wait (at most ``max_wait_s``) until other processes use less than
    :data:`BUSY_OTHER_CORES` over a ``window_s`` window; returns (idle, their last use in cores).
    """
    deadline = time.monotonic() + max_wait_s
    cores = float("nan")
    while True:
        a = _Snapshot.take()
        time.sleep(window_s)
        cores, _, steal = _between(a, _Snapshot.take())
        if not _is_busy(cores, steal):
            return True, cores
        if time.monotonic() + window_s > deadline:
            return False, cores
