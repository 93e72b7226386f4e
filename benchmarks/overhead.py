"""Overhead of the harness: a backend's cell against a bare training loop of the same library.

``python -m bnnbench.benchmarks.overhead --models moons_2x5 --backends pymc pyro numpyro
--repeats 5 --out results/overhead/overhead.csv`` measures, for every model x backend and in a
process of its own (with the environment a cell process gets, ``harness.cell_environment``):

* the harness path: :func:`bnnbench.cell.run_cell` on a ``matched`` CPU cell, in-process, into a
  temporary folder; its record's ``step_ms`` (median over chunks of chunk time / steps);
* the bare path: :func:`bnnbench.benchmarks.bare_loops.run_bare`, the same library on the same
  model file, data, batch size, initial point, learning rate and execution path, timed the same
  way.

The two alternate ``repeats`` times (harness first on even repeats, bare first on odd ones, so
that drift of a shared machine hits both alike); each side's ``step_ms`` is the median over its
repeats and ``overhead_pct = 100 * (harness / bare - 1)`` (the figure the limit applies to). The
spread is the median and range of the per-repeat (paired) overheads. The table is printed and
written as a tidy CSV (one row per model x backend, with the machine and library versions). Exit
status: 1 when an overhead exceeds ``--max-overhead-pct`` (3 % by default), 2 when a measurement
failed (it wins over 1), 0 otherwise. ``--threads 1`` pins the OMP/MKL thread pools of both paths,
which a loaded machine needs for stable torch timings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bnnbench.config import CellConfig
from bnnbench.provenance import BACKEND_DISTRIBUTIONS, environment
from bnnbench.results import atomic_write_text

__all__ = [
    "BUDGETS",
    "COLUMNS",
    "main",
    "measure_isolated",
    "measure_overhead",
]

#: Bayesian backends that have a bare loop.
BACKENDS: tuple[str, ...] = ("pymc", "pyro", "numpyro")
#: Default (steps, trace_every) per spec: enough chunks for a stable median on a 2-core CPU.
BUDGETS: dict[str, tuple[int, int]] = {"moons_2x5": (3_000, 100), "mnist_2x800": (200, 50)}
#: Posterior draws of the harness cell's predictive (outside ``step_ms``; kept small for speed).
HARNESS_PREDICT_DRAWS = 2
#: Untimed warm-up steps of the bare PyMC and Pyro loops (NumPyro warms up with one chunk).
BARE_WARMUP_STEPS = 5
#: Marks the measurement's JSON line on the child process's stdout.
JSON_MARK = "OVERHEAD_JSON "
#: Columns of the CSV, in order.
COLUMNS: tuple[str, ...] = (
    "model",
    "backend",
    "device",
    "profile",
    "status",
    "error",
    "steps",
    "trace_every",
    "batch_size",
    "repeats",
    "threads",
    "harness_step_ms",
    "bare_step_ms",
    "overhead_pct",
    "overhead_pct_paired_median",
    "overhead_pct_min",
    "overhead_pct_max",
    "max_overhead_pct",
    "within_limit",
    "harness_step_ms_repeats",
    "bare_step_ms_repeats",
    "harness_compile_s",
    "bare_setup_s",
    "harness_execution_path",
    "bare_execution_path",
    "backend_version",
    "runtime_version",
    "python_version",
    "numpy_version",
    "bnnbench_version",
    "git_revision",
    "host",
    "cpu",
    "cpu_count",
    "gpu",
    "measured_at",
)


def _cell_config(
    model: str, backend: str, steps: int, trace_every: int, seed: int, device: str
) -> CellConfig:
    if steps % trace_every or steps < trace_every:
        raise ValueError(f"steps ({steps}) must be a positive multiple of trace_every")
    return CellConfig.from_defaults(
        model,
        backend,  # type: ignore[arg-type]
        "matched",
        device,  # type: ignore[arg-type]
        seed,
        steps=steps,
        trace_every=trace_every,
        predict_draws=HARNESS_PREDICT_DRAWS,
    )


def _bare_settings(cfg: CellConfig) -> dict[str, object]:
    """The bare loop's settings: the cell's, plus the execution-path choices its session makes.

    The choices (PyMC's compile mode, Pyro's ELBO class) are read from a session of the cell
    built here, outside every timed region and never compiled or run.
    """
    from bnnbench.backends import get_backend
    from bnnbench.spec import get_spec

    settings: dict[str, object] = dict(
        n_chunks=cfg.steps // cfg.trace_every,
        chunk_steps=cfg.trace_every,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        init_scale=cfg.init_scale,
        seed=cfg.seed,
        device=cfg.device,
        warmup_steps=BARE_WARMUP_STEPS,
    )
    if cfg.backend in ("pymc", "pyro"):
        spec = get_spec(cfg.model)
        session = get_backend(cfg.backend).TrainingSession(spec, spec.load_data(), cfg)
        if cfg.backend == "pymc":
            settings["pytensor_backend"] = session.mode
        else:
            from pyro.infer import JitTrace_ELBO

            settings["jit_elbo"] = isinstance(session.elbo, JitTrace_ELBO)
        del session
    return settings


def _pct(harness_ms: float, bare_ms: float) -> float:
    return 100.0 * (harness_ms / bare_ms - 1.0)


def measure_overhead(
    model: str,
    backend: str,
    steps: int,
    trace_every: int,
    repeats: int,
    *,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, object]:
    """Harness ``step_ms`` against the bare loop's, alternating the two ``repeats`` times.

    Runs in the calling process: call it in a process that has the cell environment
    (:func:`measure_isolated` does), since PyMC reads ``floatX`` once at import.

    Parameters
    ----------
    model, backend
        Spec name and Bayesian backend (``pymc``, ``pyro``, ``numpyro``).
    steps, trace_every
        Steps per run and steps per timed chunk (``steps`` a multiple of ``trace_every``).
    repeats
        Runs of each path; each run builds, compiles and trains from scratch.
    seed, device
        The cell's seed and device (profile ``matched``).

    Returns
    -------
    dict
        ``harness_step_ms`` and ``bare_step_ms`` (medians over repeats, ms), ``overhead_pct``
        (from the medians), ``overhead_pct_paired_median`` and ``overhead_pct_min``/``_max``
        (median and range of the paired per-repeat overheads, robust to drift of the machine),
        the per-repeat values, compile/setup seconds and both execution paths.
    """
    from bnnbench.benchmarks.bare_loops import run_bare
    from bnnbench.cell import run_cell

    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    if backend not in BACKENDS:
        raise ValueError(f"no bare loop for {backend!r}; valid: {', '.join(BACKENDS)}")
    cfg = _cell_config(model, backend, steps, trace_every, seed, device)
    bare_settings = _bare_settings(cfg)

    harness_ms: list[float] = []
    bare_ms: list[float] = []
    compile_s: list[float] = []
    setup_s: list[float] = []
    paths = {"harness": "", "bare": ""}

    def harness_once() -> None:
        gc.collect()
        with tempfile.TemporaryDirectory(prefix="bnnbench-overhead-") as run_dir:
            record = run_cell(cfg, Path(run_dir))
        if record.get("status") != "ok":
            raise RuntimeError(f"harness cell {record.get('status')}: {record.get('error')}")
        harness_ms.append(float(record["step_ms"]))  # type: ignore[arg-type]
        compile_s.append(float(record["compile_s"]))  # type: ignore[arg-type]
        paths["harness"] = str(record["execution_path"])

    def bare_once() -> None:
        gc.collect()
        timing = run_bare(backend, model, **bare_settings)
        if not math.isfinite(timing.final_loss):
            raise FloatingPointError(f"bare {backend} loop: final loss {timing.final_loss}")
        bare_ms.append(timing.step_ms)
        setup_s.append(timing.setup_s)
        paths["bare"] = timing.execution_path

    for r in range(repeats):
        for run in (harness_once, bare_once) if r % 2 == 0 else (bare_once, harness_once):
            run()

    harness, bare = float(np.median(harness_ms)), float(np.median(bare_ms))
    paired = [_pct(h, b) for h, b in zip(harness_ms, bare_ms, strict=True)]
    return {
        "model": model,
        "backend": backend,
        "device": device,
        "profile": cfg.profile,
        "steps": steps,
        "trace_every": trace_every,
        "batch_size": cfg.batch_size,
        "repeats": repeats,
        "harness_step_ms": harness,
        "bare_step_ms": bare,
        "overhead_pct": _pct(harness, bare),
        "overhead_pct_paired_median": float(np.median(paired)),
        "overhead_pct_min": min(paired),
        "overhead_pct_max": max(paired),
        "harness_step_ms_repeats": harness_ms,
        "bare_step_ms_repeats": bare_ms,
        "harness_compile_s": float(np.median(compile_s)),
        "bare_setup_s": float(np.median(setup_s)),
        "harness_execution_path": paths["harness"],
        "bare_execution_path": paths["bare"],
    }


def measure_isolated(
    model: str,
    backend: str,
    steps: int,
    trace_every: int,
    repeats: int,
    *,
    seed: int = 0,
    device: str = "cpu",
    threads: int | None = None,
    timeout_s: float = 3600.0,
) -> dict[str, object]:
    """:func:`measure_overhead` in a fresh process with the cell's environment.

    ``threads`` sets ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` of that process (both paths
    share it): on a loaded machine torch's intra-op thread pool makes small steps erratic.
    Raises ``RuntimeError`` (with the tail of the child's output) when the child fails.
    """
    from bnnbench.harness import cell_environment

    cfg = _cell_config(model, backend, steps, trace_every, seed, device)
    cmd = [
        sys.executable,
        "-P",
        "-m",
        "bnnbench.benchmarks.overhead",
        "--one",
        model,
        backend,
        "--steps",
        str(steps),
        "--trace-every",
        str(trace_every),
        "--repeats",
        str(repeats),
        "--seed",
        str(seed),
        "--device",
        device,
    ]
    env = cell_environment(cfg)
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"timed out after {timeout_s:.0f} s") from err
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(JSON_MARK):
            return json.loads(line.removeprefix(JSON_MARK))
    tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
    raise RuntimeError(f"exit status {proc.returncode}: {tail}")


def _provenance(backend: str, env: dict) -> dict[str, object]:
    packages = env["packages"]
    library, runtime = BACKEND_DISTRIBUTIONS[backend]
    return {
        "backend_version": packages.get(library, ""),
        "runtime_version": packages.get(runtime, ""),
        "python_version": env["python"],
        "numpy_version": packages.get("numpy", ""),
        "bnnbench_version": env["bnnbench"],
        "git_revision": env["git_revision"],
        "host": env["host"],
        "cpu": env["cpu"],
        "cpu_count": env["cpu_count"],
        "gpu": env["gpu"],
    }


def _csv_row(result: dict[str, object], max_overhead_pct: float) -> dict[str, object]:
    row = dict(result)
    for key in ("harness_step_ms_repeats", "bare_step_ms_repeats"):
        values = row.get(key) or []
        row[key] = ";".join(f"{v:.6g}" for v in values)  # type: ignore[union-attr]
    overhead = row.get("overhead_pct")
    row["max_overhead_pct"] = max_overhead_pct
    row["within_limit"] = (
        bool(overhead <= max_overhead_pct) if isinstance(overhead, float) else None
    )
    return {col: row.get(col) for col in COLUMNS}


def _print_table(table: pd.DataFrame) -> None:
    shown = table[
        [
            "model",
            "backend",
            "steps",
            "trace_every",
            "repeats",
            "harness_step_ms",
            "bare_step_ms",
            "overhead_pct",
            "overhead_pct_paired_median",
            "overhead_pct_min",
            "overhead_pct_max",
            "status",
        ]
    ]
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(shown.to_string(index=False))
    first = table.iloc[0]
    print(f"machine: {first['host']} ({first['cpu']}, {first['cpu_count']} CPUs)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bnnbench.benchmarks.overhead",
        description="Harness step_ms against a bare training loop of each library.",
    )
    p.add_argument("--models", nargs="+", default=["moons_2x5"])
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument(
        "--steps", type=int, help="steps per run (default: per spec, see BUDGETS, else the spec's)"
    )
    p.add_argument("--trace-every", type=int, help="steps per timed chunk (default: per spec)")
    p.add_argument("--repeats", type=int, default=5, help="runs of each path (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument(
        "--threads", type=int, help="OMP/MKL threads of the measuring processes (default: inherit)"
    )
    p.add_argument("--max-overhead-pct", type=float, default=3.0)
    p.add_argument("--timeout-s", type=float, default=3600.0, help="per model x backend process")
    p.add_argument("--out", type=Path, default=Path("results/overhead/overhead.csv"))
    p.add_argument(
        "--one",
        nargs=2,
        metavar=("MODEL", "BACKEND"),
        help="internal: measure one pair in this process and print its JSON",
    )
    return p


def _budget(model: str, steps: int | None, trace_every: int | None) -> tuple[int, int]:
    from bnnbench.spec import get_spec

    defaults = get_spec(model).defaults
    default_steps, default_every = BUDGETS.get(model, (defaults.steps, defaults.trace_every))
    return steps or default_steps, trace_every or default_every


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every model x backend, print the table, write the CSV; the exit status."""
    args = _parser().parse_args(argv)
    if args.one:
        model, backend = args.one
        steps, every = _budget(model, args.steps, args.trace_every)
        result = measure_overhead(
            model, backend, steps, every, args.repeats, seed=args.seed, device=args.device
        )
        print(JSON_MARK + json.dumps(result), flush=True)
        return 0

    env = environment()
    rows = []
    for model in args.models:
        steps, every = _budget(model, args.steps, args.trace_every)
        for backend in args.backends:
            print(f"{model} x {backend}: {steps} steps, chunks of {every}, ...", flush=True)
            base = {
                "model": model,
                "backend": backend,
                "device": args.device,
                "profile": "matched",
                "steps": steps,
                "trace_every": every,
                "repeats": args.repeats,
                "threads": args.threads,
                "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                **_provenance(backend, env),
            }
            try:
                result = measure_isolated(
                    model,
                    backend,
                    steps,
                    every,
                    args.repeats,
                    seed=args.seed,
                    device=args.device,
                    threads=args.threads,
                    timeout_s=args.timeout_s,
                )
                base.update(result, status="ok", error="")
            except (RuntimeError, ValueError) as err:
                base.update(status="failed", error=str(err))
            rows.append(_csv_row(base, args.max_overhead_pct))

    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("steps", "trace_every", "batch_size", "repeats", "threads", "cpu_count"):
        table[col] = table[col].astype("Int64")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, table.to_csv(index=False))
    _print_table(table)
    print(f"written: {args.out}")
    code = 0
    for row in table[table["within_limit"].eq(False)].itertuples():
        print(
            f"overhead {row.overhead_pct:.2f}% > {args.max_overhead_pct}%: "
            f"{row.model} x {row.backend}",
            file=sys.stderr,
        )
        code = 1
    for row in table[table["status"] != "ok"].itertuples():
        print(f"failed: {row.model} x {row.backend}: {row.error}", file=sys.stderr)
        code = 2
    return code


if __name__ == "__main__":
    sys.exit(main())
