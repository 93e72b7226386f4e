"""Plans a suite's cells and runs each in its own process, recording results as they end."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from itertools import product
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from bnnbench.backends import missing_packages
from bnnbench.config import CellConfig
from bnnbench.provenance import BACKEND_DISTRIBUTIONS, environment
from bnnbench.results import ResultStore, atomic_write_text

__all__ = ["Suite", "cell_environment", "load_suite", "plan_cells", "run_cells", "suite_names"]

#: Settings a suite or the CLI may override.
OVERRIDABLE = (
    "steps",
    "batch_size",
    "learning_rate",
    "init_scale",
    "trace_every",
    "predict_draws",
    "timeout_s",
)


@dataclass(frozen=True)
class Suite:
    """A named grid of cells (``benchmarks/suites/<name>.toml``)."""

    name: str
    description: str
    groups: tuple[dict, ...] = field(default_factory=tuple)


def suite_names() -> list[str]:
    folder = resources.files("bnnbench.benchmarks") / "suites"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_suite(name: str) -> Suite:
    """The suite called ``name`` (``ValueError`` listing valid names otherwise)."""
    if name not in suite_names():
        raise ValueError(f"unknown suite {name!r}; valid: {', '.join(suite_names())}")
    text = (resources.files("bnnbench.benchmarks") / "suites" / f"{name}.toml").read_text()
    raw = tomllib.loads(text)
    return Suite(
        name=name, description=raw.get("description", ""), groups=tuple(raw.get("group", []))
    )


def plan_cells(
    models: Sequence[str],
    backends: Sequence[str],
    profiles: Sequence[str],
    devices: Sequence[str],
    seeds: Sequence[int],
    **overrides,
) -> list[CellConfig]:
    """Every (model, backend, profile, device, seed) combination, in that nesting order."""
    return [
        CellConfig.from_defaults(m, b, p, d, s, **overrides)
        for m, p, d, s, b in product(models, profiles, devices, seeds, backends)
    ]


def plan_suite(suite: Suite, **overrides) -> list[CellConfig]:
    """The suite's cells; CLI ``overrides`` (non-``None``, ``seeds`` too) win over the suite's."""
    seeds = overrides.pop("seeds", None)
    cells: list[CellConfig] = []
    for group in suite.groups:
        settings = {k: group[k] for k in OVERRIDABLE if k in group}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        cells += plan_cells(
            group["models"],
            group["backends"],
            group.get("profiles", ["matched"]),
            group.get("devices", ["cpu"]),
            seeds or group.get("seeds", [0]),
            **settings,
        )
    return cells


def cell_environment(cfg: CellConfig) -> dict[str, str]:
    """The cell process's environment: precision and platform are fixed before any import."""
    env = dict(os.environ)
    float_x = "float64" if cfg.profile == "native" else "float32"
    flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f and "floatX" not in f]
    env["PYTENSOR_FLAGS"] = ",".join([*flags, f"floatX={float_x}"])
    env["JAX_PLATFORMS"] = "cuda,cpu" if cfg.device == "gpu" else "cpu"
    env["JAX_ENABLE_X64"] = "0"
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if cfg.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _base_row(cfg: CellConfig, env: dict) -> dict[str, object]:
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
        host=env["host"],
        cpu=env["cpu"],
        gpu=env["gpu"],
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    return row


def _tail(path: Path, lines: int = 6) -> str:
    if not path.exists():
        return ""
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


def run_one(cfg: CellConfig, store: ResultStore, env_info: dict) -> dict[str, object]:
    """Run one cell in a fresh process and record it; returns its ``runs.csv`` row."""
    row = _base_row(cfg, env_info)
    missing = missing_packages(cfg.backend)
    if missing:
        row.update(
            status="unavailable",
            error=f"not installed: {', '.join(missing)} (pip install 'bnnbench[{cfg.backend}]')",
        )
        store.record(row)
        return row

    run_dir = store.run_dir(cfg.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "result.json").unlink(missing_ok=True)
    atomic_write_text(run_dir / "config.json", cfg.to_json())
    log_path = run_dir / "cell.log"
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bnnbench.cell", str(run_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=cell_environment(cfg),
            start_new_session=True,
        )
        try:
            proc.wait(timeout=cfg.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            row.update(
                status="failed",
                error=f"timed out after {cfg.timeout_s:g} s",
                cell_wall_s=time.perf_counter() - started,
            )
            store.record(row)
            return row
        except BaseException:  # Ctrl-C: stop the cell, record nothing for it
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    result_path = run_dir / "result.json"
    if not result_path.exists():
        row.update(
            status="failed",
            error=f"cell process exited with code {proc.returncode}: {_tail(log_path)}",
            cell_wall_s=time.perf_counter() - started,
        )
        store.record(row)
        return row
    result = json.loads(result_path.read_text())
    trace_points = result.pop("trace", None)
    row.update({k: v for k, v in result.items() if v != "" or k not in row})
    trace = None
    if trace_points:
        trace = pd.DataFrame(trace_points).assign(run_id=cfg.run_id)
    store.record(row, trace)
    return row


def calibrate_devices(
    out_dir: Path, devices: Iterable[str], *, force: bool = False, verbose: bool = False
) -> bool:
    """Measure the roofline ceilings of each device into ``out_dir/calibration-<device>.json``.

    Each measurement runs in its own process with the device's cell environment (a CPU
    calibration never sees the GPU). An existing file is kept unless ``force``. Returns whether
    every device has a calibration afterwards; a device that cannot be measured (no GPU here) is
    reported, not faked.
    """
    from bnnbench.roofline import calibration_path

    ok = True
    out_dir.mkdir(parents=True, exist_ok=True)
    for device in devices:
        if calibration_path(out_dir, device).exists() and not force:
            continue
        probe = CellConfig.from_defaults("moons_2x5", "numpyro", "matched", device, 0)  # type: ignore[arg-type]
        command = [sys.executable, "-m", "bnnbench.roofline", "calibrate"]
        proc = subprocess.run(
            [*command, "--device", device, "--out", str(out_dir)],
            env=cell_environment(probe),
            capture_output=True,
            text=True,
        )
        if verbose or proc.returncode != 0:
            print(proc.stdout.rstrip(), file=sys.stderr if proc.returncode else sys.stdout)
        if proc.returncode != 0:
            ok = False
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"calibration of {device} failed: {last}", file=sys.stderr)
    return ok


def run_cells(
    cells: Iterable[CellConfig], out_dir: Path, *, resume: bool = False, progress: bool = True
) -> pd.DataFrame:
    """Run ``cells`` into ``out_dir`` one process each; with ``resume``, skip finished cells."""
    store = ResultStore(out_dir)
    cells = list(cells)
    finished = store.finished_run_ids() if resume else set()
    todo = [c for c in cells if c.run_id not in finished]
    env_info = environment()
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "env.json", json.dumps(env_info, indent=2))
    # The machine's ceilings, so that every cell can record its roofline floor.
    calibrate_devices(out_dir, sorted({c.device for c in todo}))
    bar = tqdm(
        total=len(cells),
        initial=len(cells) - len(todo),
        unit="cell",
        disable=not progress,
        desc="bnnbench",
        dynamic_ncols=True,
    )
    rows = []
    try:
        for cfg in todo:
            bar.set_postfix_str(
                f"{cfg.model}/{cfg.backend}/{cfg.profile}/{cfg.device}/seed{cfg.seed}"
            )
            row = run_one(cfg, store, env_info)
            rows.append(row)
            bar.update(1)
            if row["status"] != "ok":
                bar.write(f"{cfg.run_id}: {row['status']}: {row.get('error', '')}")
    finally:
        bar.close()
    return pd.DataFrame(rows)
