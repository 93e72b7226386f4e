"""Plans a suite's cells and runs each in its own process, recording results as they end.

Cells run one after another on this machine (``executor="local"``, the default) or as tasks
of a Ray cluster (``executor="ray"``, :mod:`bnnbench.ray_executor`); either way each cell is
the same code (:mod:`bnnbench.execution`) and this process alone writes the results folder.

A run holds its results folder's lock (:class:`bnnbench.safety.ResultsLock`) while it writes;
each cell's process dies with the run (:func:`bnnbench.safety.child_process_options`), starts
with ``python -P`` (the working directory cannot shadow the package) and is timed beside a
measure of the machine's load (:class:`bnnbench.safety.HostLoadSampler`).
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from itertools import product
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from bnnbench.config import CellConfig
from bnnbench.execution import (
    base_row,
    cell_environment,
    collect_cell,
    execute_cell,
    prepare_run_dir,
    report_row,
    run_calibration,
    unavailable_row,
)
from bnnbench.provenance import environment
from bnnbench.results import ResultStore, atomic_write_text
from bnnbench.safety import (
    BUSY_OTHER_CORES,
    ResultsLock,
    wait_until_idle,
    write_marker,
)
from bnnbench.spec import SPEC_NAMES, get_spec
from bnnbench.types import BACKENDS, DEVICES, PROFILES, Executor

__all__ = [
    "MachineBusyError",
    "Suite",
    "SuiteError",
    "cell_environment",
    "load_suite",
    "plan_cells",
    "plan_suite",
    "run_cells",
    "suite_names",
]

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


class SuiteError(ValueError):
    """A suite that cannot be read or planned (one line, naming the file and the key)."""


class MachineBusyError(RuntimeError):
    """``require_idle``: other processes kept the machine busy for longer than allowed."""


#: Keys of a suite file, of each of its ``[[group]]`` tables, and their types.
SUITE_KEYS = ("description", "group")
GROUP_CHOICES: dict[str, tuple[str, ...]] = {
    "models": SPEC_NAMES,
    "backends": BACKENDS,
    "profiles": PROFILES,
    "devices": DEVICES,
}
GROUP_INTEGERS = ("steps", "batch_size", "trace_every", "predict_draws")
GROUP_NUMBERS = ("learning_rate", "init_scale", "timeout_s")
GROUP_KEYS = (*GROUP_CHOICES, "seeds", *OVERRIDABLE)
REQUIRED_GROUP_KEYS = ("models", "backends")


def _suites_folder() -> Traversable:
    """``benchmarks/suites``, installed as ``bnnbench.benchmarks``."""
    return resources.files("bnnbench.benchmarks") / "suites"


def suite_names() -> list[str]:
    folder = _suites_folder()
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def _is_path(name_or_path: str | Path) -> bool:
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or text.endswith(".toml") or os.sep in text or "/" in text


def _check_group(group: object, where: str) -> dict:
    if not isinstance(group, dict):
        raise SuiteError(f"{where}: a [[group]] must be a table, got {group!r}")
    unknown = sorted(set(group) - set(GROUP_KEYS))
    if unknown:
        raise SuiteError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} (allowed: {', '.join(sorted(GROUP_KEYS))})"
        )
    missing = [k for k in REQUIRED_GROUP_KEYS if k not in group]
    if missing:
        raise SuiteError(f"{where}: missing {' and '.join(map(repr, missing))}")
    for key, valid in GROUP_CHOICES.items():
        if key not in group:
            continue
        value = group[key]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise SuiteError(f"{where}: {key} must be a non-empty list of names, got {value!r}")
        bad = [v for v in value if v not in valid]
        if bad:
            raise SuiteError(
                f"{where}: unknown {key[:-1]} {bad[0]!r} in {key} (valid: {', '.join(valid)})"
            )
    if "seeds" in group:
        seeds = group["seeds"]
        if (
            not isinstance(seeds, list)
            or not seeds
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in seeds)
        ):
            raise SuiteError(f"{where}: seeds must be a non-empty list of integers, got {seeds!r}")
    for key in GROUP_INTEGERS:
        value = group.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SuiteError(f"{where}: {key} must be an integer, got {value!r}")
    for key in GROUP_NUMBERS:
        value = group.get(key, 1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SuiteError(f"{where}: {key} must be a number, got {value!r}")
    return group


def load_suite(name_or_path: str | Path) -> Suite:
    """A suite by name (``benchmarks/suites/<name>.toml``) or by the path of a ``.toml`` file.

    Raises :class:`SuiteError` (a ``ValueError``) with one line naming the file and the problem:
    an unknown name, an unreadable file, invalid TOML, an unknown key (the allowed ones listed), a
    group without ``models`` or ``backends``, a value of the wrong type.
    """
    if _is_path(name_or_path):
        path = Path(name_or_path)
        label, name = str(path), path.stem
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise SuiteError(f"suite file {path} not found") from None
        except (OSError, UnicodeDecodeError) as err:
            raise SuiteError(f"cannot read suite file {path}: {err}") from None
    else:
        name = str(name_or_path)
        if name not in suite_names():
            raise SuiteError(
                f"unknown suite {name!r}; valid: {', '.join(suite_names())} "
                "(or the path of a .toml file)"
            )
        label = f"suite {name}"
        text = (_suites_folder() / f"{name}.toml").read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SuiteError(f"{label}: not valid TOML: {err}") from None
    unknown = sorted(set(raw) - set(SUITE_KEYS))
    if unknown:
        raise SuiteError(
            f"{label}: unknown top-level key {unknown[0]!r} (allowed: {', '.join(SUITE_KEYS)}; "
            "settings go in a [[group]])"
        )
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SuiteError(f"{label}: description must be a string, got {description!r}")
    groups = raw.get("group", [])
    if not isinstance(groups, list) or not groups:
        raise SuiteError(f"{label}: defines no [[group]] of cells")
    checked = tuple(_check_group(g, f"{label}, group {i}") for i, g in enumerate(groups, 1))
    return Suite(name=name, description=description, groups=checked)


def plan_cells(
    models: Sequence[str],
    backends: Sequence[str],
    profiles: Sequence[str],
    devices: Sequence[str],
    seeds: Sequence[int],
    **overrides,
) -> list[CellConfig]:
    """Every (model, backend, profile, device, seed) combination, in that nesting order.

    Every cell is validated (``ValueError`` naming the setting) before any is returned.
    """
    # A backend a spec does not implement (mnist_2x800_hier has no torch-ml baseline: its
    # maximum likelihood is mnist_2x800's) has no cell.
    return [
        CellConfig.from_defaults(m, b, p, d, s, **overrides)
        for m, p, d, s, b in product(models, profiles, devices, seeds, backends)
        if b in get_spec(m).implementations
    ]


def plan_suite(
    suite: Suite, *, only: Mapping[str, Sequence[str] | None] | None = None, **overrides
) -> list[CellConfig]:
    """The suite's cells; CLI ``overrides`` (non-``None``, ``seeds`` too) win over the suite's.

    ``only`` selects among the suite's cells before they are planned (keys ``models``,
    ``backends``, ``profiles``, ``devices``; ``None`` or empty: all), so that settings are
    validated only for the cells that will run. A cell that cannot run raises
    :class:`SuiteError` naming the group.
    """
    only = {k: v for k, v in (only or {}).items() if v}
    seeds = overrides.pop("seeds", None)
    cells: list[CellConfig] = []
    for i, group in enumerate(suite.groups, 1):
        settings = {k: group[k] for k in OVERRIDABLE if k in group}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        axes = {
            "models": group["models"],
            "backends": group["backends"],
            "profiles": group.get("profiles", ["matched"]),
            "devices": group.get("devices", ["cpu"]),
        }
        axes = {k: [v for v in vs if k not in only or v in only[k]] for k, vs in axes.items()}
        try:
            cells += plan_cells(
                axes["models"],
                axes["backends"],
                axes["profiles"],
                axes["devices"],
                seeds or group.get("seeds", [0]),
                **settings,
            )
        except ValueError as err:
            raise SuiteError(f"suite {suite.name}, group {i}: {err}") from None
    return cells


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
        proc = run_calibration(device, out_dir)
        if verbose or proc.returncode != 0:
            print(proc.stdout.rstrip(), file=sys.stderr if proc.returncode else sys.stdout)
        if proc.returncode != 0:
            ok = False
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"calibration of {device} failed: {last}", file=sys.stderr)
    return ok


def run_one(cfg: CellConfig, store: ResultStore, env_info: dict) -> dict[str, object]:
    """Run one cell in a fresh process and record it; returns its ``runs.csv`` row.

    The row gains the host's load while the cell ran (``host_load_avg_1m``,
    ``host_other_cpu_pct``, ``host_steal_pct``, ``host_busy``; see
    :class:`bnnbench.safety.HostLoad`). Ctrl-C (or SIGTERM/SIGHUP turned into it) kills the cell
    and records nothing for it.
    """
    row = unavailable_row(cfg, env_info)
    if row is not None:
        store.record(row)
        return row
    row = base_row(cfg, env_info)
    run_dir = store.run_dir(cfg.run_id)
    prepare_run_dir(cfg, run_dir)
    execution = execute_cell(cfg, run_dir)
    return collect_cell(store, row, run_dir, execution)


def run_cells(
    cells: Iterable[CellConfig],
    out_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    require_idle: float | None = None,
    lock: ResultsLock | None = None,
    executor: Executor = "local",
    ray_options: Mapping[str, object] | None = None,
) -> pd.DataFrame:
    """Run ``cells`` into ``out_dir`` one process each; returns this call's rows.

    ``resume`` skips cells whose latest record is finished (``ResultStore.finished_run_ids``:
    ok, diverged, unavailable; ``failed`` and ``unsupported`` cells run again, the machine may
    have changed). The folder's lock is held throughout (``lock``: one the caller already holds;
    a second writer gets :class:`bnnbench.safety.DirInUseError`). With ``require_idle`` (seconds),
    each cell waits until other processes use less than ``BUSY_OTHER_CORES`` cores, and the run
    stops with :class:`MachineBusyError` when they do not within that time (local executor).

    ``executor="ray"`` runs the cells as tasks of a Ray cluster
    (:func:`bnnbench.ray_executor.run_on_ray`; ``ray_options``: its ``address``,
    ``cpus_per_cell``); this process still writes every result.
    """
    held = lock if lock is not None else ResultsLock(out_dir).acquire()
    try:
        return _run_locked(
            list(cells), out_dir, resume, progress, require_idle, executor, ray_options or {}
        )
    finally:
        if lock is None:
            held.release()


def _run_locked(
    cells: list[CellConfig],
    out_dir: Path,
    resume: bool,
    progress: bool,
    require_idle: float | None,
    executor: Executor,
    ray_options: Mapping[str, object],
) -> pd.DataFrame:
    store = ResultStore(out_dir)
    finished = store.finished_run_ids() if resume else set()
    todo = [c for c in cells if c.run_id not in finished]
    env_info = environment()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_marker(out_dir)
    for tmp in out_dir.glob(".*.tmp"):  # a write cut short by a run killed before this one
        tmp.unlink(missing_ok=True)
    atomic_write_text(
        out_dir / "env.json", json.dumps({**env_info, "executor": executor}, indent=2)
    )
    bar = tqdm(
        total=len(cells),
        initial=len(cells) - len(todo),
        unit="cell",
        disable=not progress,
        desc="bnnbench",
        dynamic_ncols=True,
    )
    try:
        if executor == "ray":
            from bnnbench.ray_executor import run_on_ray

            return pd.DataFrame(run_on_ray(todo, store, env_info, bar, **ray_options))
        # The machine's ceilings, so that every cell can record its roofline floor.
        calibrate_devices(out_dir, sorted({c.device for c in todo}))
        rows = []
        for cfg in todo:
            bar.set_postfix_str(
                f"{cfg.model}/{cfg.backend}/{cfg.profile}/{cfg.device}/seed{cfg.seed}"
            )
            if require_idle is not None:
                idle, cores = wait_until_idle(require_idle)
                if not idle:
                    raise MachineBusyError(
                        f"the machine stayed busy for {require_idle:g} s before {cfg.run_id}: "
                        f"other processes used {cores:.2f} cores (limit {BUSY_OTHER_CORES:g}); "
                        f"{len(rows)} cells ran; run the same command with --resume to go on"
                    )
            row = run_one(cfg, store, env_info)
            rows.append(row)
            bar.update(1)
            report_row(bar, row)
        return pd.DataFrame(rows)
    finally:
        try:
            bar.close()
        except OSError:  # a terminal closed under us (SIGHUP): keep the exception that stopped us
            pass
