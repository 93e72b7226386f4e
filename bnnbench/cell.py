"""One benchmark cell, run in its own process: ``python -m bnnbench.cell RUN_DIR``.

The parent writes ``RUN_DIR/config.json`` and sets the environment (``PYTENSOR_FLAGS``,
``JAX_PLATFORMS``) before this process imports any backend. The cell writes ``env.json``,
``inference_data.nc`` and, last, ``result.json`` (its row of ``runs.csv`` and its ELBO trace);
the parent treats a missing ``result.json`` as a failed cell.

Phases and their timers (``time.perf_counter``; every backend synchronises the device before it
returns, so a timer never stops while work is queued):

* ``compile_s``: build model, guide and optimizer and compile/trace the step function(s);
* ``fit_s``: all training chunks; ``step_ms`` is the median over chunks of chunk time / steps;
* ``predict_s``: ``predict_draws`` posterior draws and their predictive over the test set.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bnnbench import metrics
from bnnbench.config import CellConfig
from bnnbench.predictive import PredictiveDraws, posterior_predictive, summary_dataset
from bnnbench.provenance import environment
from bnnbench.results import atomic_write_text
from bnnbench.spec import Dataset, get_spec

__all__ = ["NonFiniteELBOError", "chunk_sizes", "main", "run_cell"]


class NonFiniteELBOError(FloatingPointError):
    """The negative ELBO became NaN or infinite."""


def chunk_sizes(steps: int, trace_every: int) -> list[int]:
    """Split ``steps`` into chunks of ``trace_every`` and a remainder."""
    sizes = [trace_every] * (steps // trace_every)
    if steps % trace_every:
        sizes.append(steps % trace_every)
    return sizes


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


#: Largest number of floats of one parameter tensor's draws kept in ``inference_data.nc``; larger
#: tensors (the MNIST weight matrices) are summarised by the stored predictive instead.
POSTERIOR_FLOATS_LIMIT = 2_000_000
#: Largest test input array kept as ``constant_data``.
CONSTANT_DATA_FLOATS_LIMIT = 1_000_000


def _draws_dataset(arrays: dict[str, np.ndarray]) -> xr.Dataset:
    """``(draws, *shape)`` arrays as an ArviZ group with ``chain`` and ``draw`` dims."""
    return xr.Dataset(
        {
            k: (("chain", "draw", *[f"{k}_dim_{i}" for i in range(v.ndim - 1)]), v[None])
            for k, v in arrays.items()
        },
        coords={"chain": [0], "draw": np.arange(next(iter(arrays.values())).shape[0])},
    )


def _inference_data(data: Dataset, test: PredictiveDraws, trace: pd.DataFrame) -> xr.DataTree:
    """ArviZ-layout InferenceData: posterior, posterior_predictive, observed_data, sample_stats."""
    posterior = {k: v for k, v in test.posterior.items() if v.size <= POSTERIOR_FLOATS_LIMIT}
    groups = {
        "posterior": _draws_dataset(posterior) if posterior else xr.Dataset(),
        "posterior_predictive": _draws_dataset(
            {"y": test.y.astype(np.int8), "p": test.proba.astype(np.float32)}
        ),
        "observed_data": xr.Dataset({"y": ("obs_id", data.y_test)}),
        "sample_stats": xr.Dataset(
            {
                "neg_elbo_per_datum": ("step", trace["neg_elbo_per_datum"].to_numpy()),
                "wall_s": ("step", trace["wall_s"].to_numpy()),
            },
            coords={"step": trace["step"].to_numpy()},
        ),
    }
    if data.X_test.size <= CONSTANT_DATA_FLOATS_LIMIT:
        groups["constant_data"] = xr.Dataset({"X": (("obs_id", "feature"), data.X_test)})
    tree = xr.DataTree.from_dict(groups)
    tree.attrs["omitted_posterior"] = ",".join(sorted(set(test.posterior) - set(posterior)))
    return tree


def _grid_dataset(xs: np.ndarray, ys: np.ndarray, proba: np.ndarray) -> xr.Dataset:
    """Predictive mean and sd of p(y = 1) over the grid (the tutorial's two maps)."""
    n = len(xs)
    return xr.Dataset(
        {
            "p_mean": (("grid_y", "grid_x"), proba.mean(axis=0).reshape(n, n)),
            "p_sd": (("grid_y", "grid_x"), proba.std(axis=0).reshape(n, n)),
        },
        coords={"grid_x": xs, "grid_y": ys},
    )


def _write_tree(tree: xr.DataTree, path: Path) -> None:
    """Compressed netCDF, written beside the target and renamed into place."""
    encoding = {
        node.path: {name: {"zlib": True, "complevel": 4} for name in node.data_vars}
        for node in tree.subtree
        if node.data_vars
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tree.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
    tmp.replace(path)


def run_cell(cfg: CellConfig, run_dir: Path, rows: list[tuple] | None = None) -> dict[str, object]:
    """Train, time and evaluate one cell; write its artifacts; return its result record.

    ``rows`` collects the ELBO trace points as they come, so a failed cell keeps its trace.
    """
    from bnnbench.backends import get_backend

    started = time.perf_counter()
    spec = get_spec(cfg.model)
    backend = get_backend(cfg.backend)
    record: dict[str, object] = {"backend_version": "", "runtime_version": ""}
    versions = backend.library_versions()
    record["backend_version"], record["runtime_version"] = list(versions.values())[:2]
    problem = backend.device_problem(cfg.device)
    if problem is not None:
        return {**record, "status": "unsupported", "error": problem}

    data = spec.load_data()
    sizes = chunk_sizes(cfg.steps, cfg.trace_every)

    t0 = time.perf_counter()
    session = backend.TrainingSession(spec, data, cfg)
    session.compile(set(sizes))
    compile_s = time.perf_counter() - t0

    rows = [] if rows is None else rows
    chunk_ms, done = [], 0
    fit_start = time.perf_counter()
    for n_steps in sizes:
        t = time.perf_counter()
        losses = session.run_steps(n_steps)
        elapsed = time.perf_counter() - t
        done += n_steps
        if not np.all(np.isfinite(losses)):
            bad = done - n_steps + int(np.argmin(np.isfinite(losses)))
            raise NonFiniteELBOError(f"negative ELBO is not finite at step {bad + 1}")
        if n_steps == cfg.trace_every:
            chunk_ms.append(1000.0 * elapsed / n_steps)
        rows.append(
            (
                cfg.run_id,
                done,
                time.perf_counter() - fit_start,
                float(np.mean(losses)) / data.n_train,
            )
        )
    fit_s = time.perf_counter() - fit_start
    if not chunk_ms:  # fewer steps than one chunk: time the one remainder chunk
        chunk_ms.append(1000.0 * fit_s / cfg.steps)
    trace = pd.DataFrame(rows, columns=["run_id", "step", "wall_s", "neg_elbo_per_datum"])

    t = time.perf_counter()
    test = posterior_predictive(
        session, data.X_test, cfg.predict_draws, cfg.seed, spec.predict_chunk
    )
    predict_s = time.perf_counter() - t

    summary = {"test": summary_dataset(data.y_test, test, spec.n_classes)}
    grid_points = spec.grid_points()
    if grid_points is not None:
        xs, ys, points = grid_points
        grid = posterior_predictive(
            session, points, cfg.predict_draws, cfg.seed + 10_000, spec.predict_chunk
        )
        summary["grid"] = _grid_dataset(xs, ys, grid.proba)
        summary["test_inputs"] = xr.Dataset({"X": (("obs_id", "feature"), data.X_test)})

    attrs = {k: getattr(cfg, k) for k in ("model", "backend", "profile", "device", "seed")}
    tree = _inference_data(data, test, trace)
    tree.attrs.update(run_id=cfg.run_id, **attrs)
    _write_tree(tree, run_dir / "inference_data.nc")
    scales = [p.name for p in spec.params if p.positive and p.name in test.posterior]
    if scales:  # the hierarchical scales: ArviZ summary of their posterior draws
        az.summary(tree, var_names=scales, kind="stats").to_csv(run_dir / "scales_summary.csv")
    summary_tree = xr.DataTree.from_dict(summary)
    summary_tree.attrs.update(run_id=cfg.run_id, **attrs)
    _write_tree(summary_tree, run_dir / "predictive_summary.nc")
    mean_proba = summary["test"]["mean_proba"].values

    record.update(
        status="ok",
        error="",
        execution_path=session.execution_path,
        dtype=session.dtype,
        compile_s=compile_s,
        fit_s=fit_s,
        step_ms=float(np.median(chunk_ms)),
        predict_s=predict_s,
        accuracy=metrics.accuracy(data.y_test, mean_proba),
        nll=metrics.negative_log_likelihood(data.y_test, mean_proba),
        final_neg_elbo_per_datum=float(trace["neg_elbo_per_datum"].iloc[-1]),
        peak_rss_mb=_peak_rss_mb(),
        cell_wall_s=time.perf_counter() - started,
        trace=trace[["step", "wall_s", "neg_elbo_per_datum"]].to_dict(orient="list"),
    )
    return record


def main(argv: list[str] | None = None) -> int:
    """Entry point of the cell process; always writes ``result.json`` unless killed."""
    run_dir = Path((argv if argv is not None else sys.argv[1:])[0])
    cfg = CellConfig.from_json((run_dir / "config.json").read_text())
    atomic_write_text(run_dir / "env.json", json.dumps(environment(), indent=2))
    trace_rows: list[tuple] = []
    try:
        record = run_cell(cfg, run_dir, trace_rows)
    except Exception as err:  # the cell fails, the suite goes on
        traceback.print_exc()
        record = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
        if trace_rows:  # what was trained before the failure, for diagnosis
            steps, wall_s, neg_elbo = zip(*[row[1:] for row in trace_rows], strict=True)
            record["trace"] = {"step": steps, "wall_s": wall_s, "neg_elbo_per_datum": neg_elbo}
    record.setdefault("peak_rss_mb", _peak_rss_mb())
    atomic_write_text(run_dir / "result.json", json.dumps(record, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
