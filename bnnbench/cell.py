"""One benchmark cell, run in its own process: ``python -P -m bnnbench.cell RUN_DIR``.

The parent writes ``RUN_DIR/config.json`` and sets the environment (``PYTENSOR_FLAGS``,
``JAX_PLATFORMS``) before this process imports any backend. The cell then calls the three
stages in one direction:

1. *measure* (:mod:`bnnbench.measure`): the backend's session compiles, trains in timed chunks,
   samples and predicts;
2. *evaluate* (:mod:`bnnbench.evaluate`): metrics from the measurement, the spec, the data, the
   machine's ceilings and the spec's reference posterior, without I/O;
3. *store* (:mod:`bnnbench.results`): ``inference_data.nc``, ``predictive_summary.nc``,
   ``scales_summary.csv`` and, last, ``result.json`` (its record, and its ELBO trace with the
   learning curve's points on the checkpoint steps).

The parent treats a missing ``result.json`` as a failed cell. A cell whose loss explodes is
``diverged``; one that raises is ``failed``; both keep the trace they trained.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import arviz as az

from bnnbench import roofline
from bnnbench.config import CellConfig
from bnnbench.evaluate import Evaluation, evaluate
from bnnbench.measure import DivergedError, Measurement, TracePoint, measure, peak_rss_mb
from bnnbench.provenance import environment
from bnnbench.results import (
    atomic_write_text,
    find_reference,
    inference_data,
    load_tree,
    write_tree,
)
from bnnbench.spec import Dataset, ModelSpec, get_spec

__all__ = ["main", "run_cell"]

#: Largest number of floats of one parameter tensor's draws kept in ``inference_data.nc``; larger
#: tensors (the MNIST weight matrices) regenerate from the stored variational parameters.
POSTERIOR_FLOATS_LIMIT = 2_000_000
#: Points of each out-of-distribution set (white noise, Fashion-MNIST) evaluated per run.
OOD_POINTS = 2_000
#: Largest test input array kept as ``predictions_constant_data``.
CONSTANT_DATA_FLOATS_LIMIT = 1_000_000


def _ood_inputs(spec: ModelSpec, seed: int) -> tuple[dict, dict[str, str]]:
    """The spec's out-of-distribution inputs, and the sets skipped with the reason."""
    from bnnbench.datasets import DataUnavailableError
    from bnnbench.datasets.ood import load_ood

    inputs, skipped = {}, {}
    for name in spec.ood_sets:
        try:
            inputs[name] = load_ood(name, OOD_POINTS, seed)
        except DataUnavailableError as err:
            print(f"out-of-distribution set {name} skipped: {err}", file=sys.stderr)
            skipped[name] = str(err)
    return inputs, skipped


def _store(
    run_dir: Path, spec: ModelSpec, data: Dataset, cfg: CellConfig, m: Measurement, ev: Evaluation
) -> None:
    """Write the cell's artifacts (not ``result.json``)."""
    import pandas as pd
    import xarray as xr

    trace = pd.DataFrame([vars(p) for p in m.trace])
    attrs = {k: getattr(cfg, k) for k in ("model", "backend", "profile", "device", "seed")}
    tree = inference_data(
        param_dims=spec.param_dims,
        posterior=m.test.posterior,
        variational=m.variational,
        y_test=data.y_test,
        proba=m.test.proba,
        labels=m.test.y,
        trace=trace,
        X_test=data.X_test if data.X_test.size <= CONSTANT_DATA_FLOATS_LIMIT else None,
        posterior_floats_limit=POSTERIOR_FLOATS_LIMIT,
    )
    tree.attrs.update(run_id=cfg.run_id, **attrs)
    write_tree(tree, run_dir / "inference_data.nc")
    scales = [p.name for p in spec.params if p.positive and p.name in tree["posterior"].data_vars]
    if scales:  # the hierarchical scales: ArviZ summary of their posterior draws
        table = az.summary(tree, var_names=scales, kind="stats")
        atomic_write_text(run_dir / "scales_summary.csv", table.to_csv())
    summary_tree = xr.DataTree.from_dict(ev.summary)
    summary_tree.attrs.update(run_id=cfg.run_id, **attrs)
    write_tree(summary_tree, run_dir / "predictive_summary.nc")


def run_cell(
    cfg: CellConfig, run_dir: Path, trace: list[TracePoint] | None = None
) -> dict[str, Any]:
    """Measure, evaluate and store one cell; its record's fields (``ood`` nested) and trace.

    ``trace`` collects the ELBO trace points as they come, so a failed cell keeps its trace.
    """
    from bnnbench.backends import get_backend

    started = time.perf_counter()
    spec = get_spec(cfg.model)
    backend = get_backend(cfg.backend)
    # the backend's libraries as this process loaded them (for PyMC, pytensor's BLAS too)
    env = {**environment(), "backend_libraries": backend.library_versions()}
    atomic_write_text(run_dir / "env.json", json.dumps(env, indent=2))
    problem = backend.device_problem(cfg.device)
    if problem is not None:
        return {"status": "unsupported", "error": problem}

    data = spec.load_data()
    ood_inputs, ood_skipped = _ood_inputs(spec, cfg.seed)
    collected = [] if trace is None else trace
    session = backend.TrainingSession(spec, data, cfg)
    m = measure(spec, data, session, cfg, ood_inputs, ood_skipped, on_trace=collected.append)

    calibration = roofline.calibration_path(run_dir.parent, cfg.device)
    ceilings = roofline.Ceilings.from_json(calibration) if calibration.exists() else None
    reference_path = find_reference(spec.name, near=[run_dir.parent])
    reference = load_tree(reference_path) if reference_path is not None else None
    ev = evaluate(m, spec, data, cfg, ceilings=ceilings, reference=reference)
    _store(run_dir, spec, data, cfg, m, ev)
    return {
        **ev.scores,
        "ood": {k: vars(v) for k, v in ev.ood.items()},
        "tta": {k: vars(v) for k, v in ev.tta.items()},
        "curve": ev.curve,
        "peak_rss_mb": peak_rss_mb(),
        "cell_wall_s": time.perf_counter() - started,
    }


def _trace_with_curve(trace: list[TracePoint], curve: dict[str, list[float]]) -> dict[str, list]:
    """The ELBO trace as columns, with the learning curve's columns (NaN off its steps)."""
    columns: dict[str, list] = {
        "step": [p.step for p in trace],
        "wall_s": [p.wall_s for p in trace],
        "neg_elbo_per_datum": [p.neg_elbo_per_datum for p in trace],
    }
    at = {step: i for i, step in enumerate(curve.get("step", []))}
    for name in ("curve_accuracy", "curve_nll", "curve_eval_s"):
        values = curve.get(name, [])
        columns[name] = [values[at[p.step]] if p.step in at else float("nan") for p in trace]
    return columns


def _watch_parent(parent_pid: int) -> None:
    """End this process when the harness that started it is gone (a thread's loop)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the cell process; always writes ``result.json`` unless killed."""
    run_dir = Path((argv if argv is not None else sys.argv[1:])[0])
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    cfg = CellConfig.from_json((run_dir / "config.json").read_text())
    atomic_write_text(run_dir / "env.json", json.dumps(environment(), indent=2))
    trace: list[TracePoint] = []
    try:
        record = run_cell(cfg, run_dir, trace)
    except DivergedError as err:
        record = {"status": "diverged", "error": f"{type(err).__name__}: {err}"}
    except Exception as err:  # the cell fails, the suite goes on
        traceback.print_exc()
        record = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
    curve = record.pop("curve", {})
    if trace:  # what was trained (also before a failure, for diagnosis)
        record["trace"] = _trace_with_curve(trace, curve)
    record.setdefault("peak_rss_mb", peak_rss_mb())
    atomic_write_text(run_dir / "result.json", json.dumps(record, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
