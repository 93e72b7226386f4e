"""One cell, end to end: prepare its folder, run its process, collect its record.

Every executor (the local runner of :mod:`bnnbench.harness`, the Ray executor of
:mod:`bnnbench.ray_executor`) runs a cell through the same three functions, so that a cell is
the same code, with the same environment and the same record, wherever it runs:

1. :func:`prepare_run_dir`: ``config.json`` in the cell's folder, nothing stale left;
2. :func:`execute_cell`: ``python -P -m bnnbench.cell RUN_DIR`` in its own process, with
   :func:`cell_environment`, a wall-clock limit and the host's load measured beside it;
3. :func:`collect_cell`: ``result.json`` (or why there is none) into a ``runs.csv`` row, written
   through :class:`bnnbench.results.ResultStore` by the one process that owns the folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bnnbench.config import CellConfig, with_float_x
from bnnbench.provenance import BACKEND_DISTRIBUTIONS
from bnnbench.registry import backend_info, missing_packages
from bnnbench.results import ResultStore, atomic_write_text
from bnnbench.safety import HostLoadSampler, child_process_options, describe_exit

__all__ = [
    "CellExecution",
    "base_row",
    "cell_command",
    "cell_environment",
    "collect_cell",
    "execute_cell",
    "prepare_run_dir",
    "remove_temporaries",
    "report_row",
    "run_calibration",
    "unavailable_row",
]


def cell_environment(cfg: CellConfig, threads: int | None = None) -> dict[str, str]:
    """The cell process's environment: precision and platform are fixed before any import.

    ``threads``: the CPU cores the cell may use (a cluster task's share of its node; ``None``:
    the libraries' own default, every core). A GPU cell keeps the ``CUDA_VISIBLE_DEVICES`` it
    was given (Ray sets it per task); a CPU cell sees no GPU at all.
    """
    env = dict(os.environ)
    float_x = "float64" if cfg.profile == "native" else "float32"
    env["PYTENSOR_FLAGS"] = with_float_x(env.get("PYTENSOR_FLAGS", ""), float_x)
    env["JAX_PLATFORMS"] = "cuda,cpu" if cfg.device == "gpu" else "cpu"
    env["JAX_ENABLE_X64"] = "0"
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if cfg.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cell_command(run_dir: Path) -> list[str]:
    """``python -P -m bnnbench.cell RUN_DIR``: ``-P`` keeps the working directory off the path,
    so a folder called ``bnnbench`` there cannot shadow the installed package."""
    return [sys.executable, "-P", "-m", "bnnbench.cell", str(run_dir)]


def base_row(cfg: CellConfig, env: dict) -> dict[str, object]:
    """A cell's ``runs.csv`` row before it runs: its settings and the software and machine of
    ``env`` (:func:`bnnbench.provenance.environment`)."""
    row = {"run_id": cfg.run_id, **asdict(cfg)}
    row.pop("timeout_s")
    dists = BACKEND_DISTRIBUTIONS[cfg.backend]
    row.update(
        backend_version=env["packages"].get(dists[0], ""),
        runtime_version=env["packages"].get(dists[1], ""),
        python_version=env["python"],
        numpy_version=env["packages"].get("numpy", ""),
        bnnbench_version=env["bnnbench"],
        git_revision=env["git_revision"],
        git_diff_sha256=env.get("git_diff_sha256", ""),
        host=env["host"],
        cpu=env["cpu"],
        gpu=env["gpu"],
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    return row


def remove_temporaries(run_dir: Path) -> None:
    """Half-written files (``.<name>.<random>.tmp``) of a cell that was killed mid-write."""
    for tmp in run_dir.rglob("*.tmp"):
        tmp.unlink(missing_ok=True)


def prepare_run_dir(cfg: CellConfig, run_dir: Path) -> None:
    """The cell's folder with its ``config.json``; a previous attempt's ``result.json`` and
    half-written files removed (a missing ``result.json`` then means *this* attempt failed)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "result.json").unlink(missing_ok=True)
    remove_temporaries(run_dir)
    atomic_write_text(run_dir / "config.json", cfg.to_json())


@dataclass
class CellExecution:
    """How a cell's process ended.

    Attributes
    ----------
    returncode
        The process's exit status (negative: killed by that signal), ``None`` if it never ended
        (timed out, or its executor lost it).
    wall_s
        Seconds from start to end of the process.
    load
        The host's load while it ran (:meth:`bnnbench.safety.HostLoad.row`).
    error
        Why there is no result though the process may have ended (timed out, the cluster lost
        the worker or the node...), else ``""``.
    """

    returncode: int | None
    wall_s: float
    load: dict[str, object] = field(default_factory=dict)
    error: str = ""


def _stop(proc: subprocess.Popen, own_group: bool) -> None:
    """Kill a cell (its whole process group when it leads one) and reap it."""
    try:
        if own_group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()


def execute_cell(
    cfg: CellConfig, run_dir: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> CellExecution:
    """Run the prepared cell in ``run_dir`` in its own process, at most ``cfg.timeout_s``.

    ``env``: its environment (default :func:`cell_environment`); ``cwd``: its working folder
    (default this process's; a cluster task gives its own scratch folder).

    Its output goes to ``run_dir/cell.log``. The process dies with this one
    (:func:`bnnbench.safety.child_process_options`). Ctrl-C (or SIGTERM/SIGHUP turned into it)
    kills the cell and is raised again.
    """
    options = child_process_options()
    own_group = bool(options.get("start_new_session"))
    started = time.perf_counter()
    sampler = HostLoadSampler()
    with open(run_dir / "cell.log", "w") as log:
        sampler.start()
        try:
            proc = subprocess.Popen(
                cell_command(run_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env if env is not None else cell_environment(cfg),
                cwd=cwd,
                **options,  # type: ignore[arg-type]
            )
        except BaseException:
            sampler.stop()
            raise
        try:
            proc.wait(timeout=cfg.timeout_s)
        except subprocess.TimeoutExpired:
            _stop(proc, own_group)
            remove_temporaries(run_dir)
            return CellExecution(
                None,
                time.perf_counter() - started,
                sampler.stop().row(),
                f"timed out after {cfg.timeout_s:g} s",
            )
        except BaseException:  # Ctrl-C: stop the cell, record nothing for it
            _stop(proc, own_group)
            sampler.stop()
            remove_temporaries(run_dir)
            raise
    load = sampler.stop()
    remove_temporaries(run_dir)
    return CellExecution(proc.returncode, time.perf_counter() - started, load.row())


def _tail(path: Path, lines: int = 6) -> str:
    if not path.exists():
        return ""
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


def collect_cell(
    store: ResultStore, row: dict[str, object], run_dir: Path, execution: CellExecution
) -> dict[str, object]:
    """Record the cell: ``row`` updated with its ``result.json`` (or the reason it has none)
    and the host's load, and its ELBO trace; returns the row."""
    row = dict(row)
    if execution.error:
        row.update(status="failed", error=execution.error, cell_wall_s=execution.wall_s)
        row.update(execution.load)
        store.record(row)
        return row
    result_path = run_dir / "result.json"
    try:
        result = json.loads(result_path.read_text()) if result_path.exists() else None
    except (OSError, ValueError) as err:
        result = {"status": "failed", "error": f"unreadable result.json: {err}"}
    if result is None:
        exit_text = (
            describe_exit(execution.returncode) if execution.returncode is not None else "ended"
        )
        row.update(
            status="failed",
            error=f"cell process {exit_text}: {_tail(run_dir / 'cell.log')}",
            cell_wall_s=execution.wall_s,
            **execution.load,
        )
        store.record(row)
        return row
    trace_points = result.pop("trace", None)
    row.update({k: v for k, v in result.items() if v != "" or k not in row})
    row.update(execution.load)
    row.setdefault("cell_wall_s", execution.wall_s)
    trace = None
    if trace_points:
        trace = pd.DataFrame(trace_points).assign(run_id=row["run_id"])
    store.record(row, trace)
    return row


def run_calibration(
    device: str, out_dir: Path, threads: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Measure ``device``'s roofline ceilings into ``out_dir/calibration-<device>.json``
    (``python -P -m bnnbench.roofline calibrate``) in its own process with the device's cell
    environment (a CPU calibration never sees the GPU)."""
    probe = CellConfig.from_defaults("moons_2x5", "numpyro", "matched", device, 0)  # type: ignore[arg-type]
    command = [sys.executable, "-P", "-m", "bnnbench.roofline", "calibrate"]
    return subprocess.run(
        [*command, "--device", device, "--out", str(out_dir)],
        env=cell_environment(probe, threads),
        capture_output=True,
        text=True,
        **child_process_options(),  # type: ignore[arg-type]
    )


def unavailable_row(cfg: CellConfig, env_info: dict) -> dict[str, object] | None:
    """The ``unavailable`` row of a cell whose backend is not installed here, else ``None``."""
    missing = missing_packages(cfg.backend)
    if not missing:
        return None
    extra = backend_info(cfg.backend).extra
    return {
        **base_row(cfg, env_info),
        "status": "unavailable",
        "error": f"not installed: {', '.join(missing)} (pip install 'bnnbench[{extra}]')",
    }


def report_row(bar: Any, row: Mapping[str, object]) -> None:
    """Say under the progress bar what went wrong with a cell, or that it was timed on a busy
    machine."""
    if row["status"] != "ok":
        bar.write(f"{row['run_id']}: {row['status']}: {row.get('error', '')}")
    elif row.get("host_busy"):
        bar.write(
            f"{row['run_id']}: timed on a busy machine (other processes used "
            f"{row['host_other_cpu_pct']:.0f}% of the CPUs; load {row['host_load_avg_1m']})"
        )
