"""One benchmark cell, run in its own process: ``python -m bnnbench.cell RUN_DIR``.

The parent writes ``RUN_DIR/config.json`` and sets the environment (``PYTENSOR_FLAGS``,
``JAX_PLATFORMS``) before this process imports any backend. The cell writes ``env.json``,
``inference_data.nc`` and, last, ``result.json`` (its row of ``runs.csv`` and its ELBO trace);
the parent treats a missing ``result.json`` as a failed cell.

Phases and their timers (``time.perf_counter``; the session synchronises the device before a
timer stops, so no timer stops while work is queued):

* ``transfer_s``: placing the training data on the device;
* ``compile_s``: build model, guide and optimizer and compile/trace the step function(s);
* ``fit_s``: all training chunks; ``step_ms`` is the median over chunks of chunk time / steps
  (``step_ms_iqr`` their interquartile range);
* ``predict_s``: ``predict_draws`` posterior draws and their predictive over the test set
  (``predict_ms_per_draw``); out-of-distribution sets and diagnostics are timed apart.

Beside the timers: peak host memory (``peak_rss_mb``) and peak device memory
(``peak_device_mb``); the roofline floor of a step and of a predictive draw for this machine
(``calibration-<device>.json`` in the results folder, see :mod:`bnnbench.roofline`) and the
ratios ``step_ms / step_floor_ms`` and ``predict_ms_per_draw / draw_floor_ms``; the uncertainty
metrics of :mod:`bnnbench.uncertainty` on the test set and, for the MNIST specs, the
out-of-distribution sets; the Pareto-k of the fit (:mod:`bnnbench.diagnostics`); and, where a
reference posterior exists (:mod:`bnnbench.reference`), agreement and total variation to it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bnnbench import diagnostics, metrics, uncertainty
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
#: Points of each out-of-distribution set (white noise, Fashion-MNIST) evaluated per run.
OOD_POINTS = 2_000
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


def _step_timing(chunk_ms: list[float]) -> dict[str, float]:
    """Median and interquartile range of the per-chunk step times."""
    q25, q50, q75 = np.percentile(chunk_ms, [25, 50, 75])
    return {"step_ms": float(q50), "step_ms_iqr": float(q75 - q25)}


def _roofline(spec, cfg: CellConfig, run_dir: Path, n_test: int) -> dict[str, float]:
    """The floor times of one step and one predictive draw on this machine (NaN without a
    calibration file in the results folder)."""
    from bnnbench import roofline

    step = roofline.training_step_cost(spec, cfg.batch_size)
    draw = roofline.predictive_draw_cost(spec, n_test)
    out = {
        "step_gflop": step.flops / 1e9,
        "step_mbytes": step.bytes / 1e6,
        "draw_gflop": draw.flops / 1e9,
        "step_floor_ms": float("nan"),
        "draw_floor_ms": float("nan"),
    }
    path = roofline.calibration_path(run_dir.parent, cfg.device)
    if path.exists():
        ceilings = roofline.Ceilings.from_json(path)
        out["step_floor_ms"] = roofline.floor_ms(step, ceilings)
        out["draw_floor_ms"] = roofline.floor_ms(draw, ceilings)
        out["step_bound"] = roofline.bound(step, ceilings)
    return out


def _uncertainty_groups(
    y_true: np.ndarray, pred: PredictiveDraws, n_classes: int
) -> tuple[dict[str, float], dict[str, xr.Dataset], dict[str, np.ndarray]]:
    """Scalar metrics, the curves' datasets and per-point arrays of the test predictive."""
    scalars = uncertainty.uncertainty_summary(y_true, pred.proba, pred.y, n_classes)
    mean = metrics.predictive_mean(pred.proba)
    scalars["ece_15"] = scalars.pop("ece")
    points = uncertainty.per_point_uncertainty(pred.proba, pred.y, n_classes)
    coverage = uncertainty.accuracy_coverage_curve(pred.proba, y_true)
    reliability = uncertainty.reliability_diagram(mean, y_true)
    groups = {
        "coverage": xr.Dataset.from_dataframe(coverage.set_index("threshold")),
        "reliability": xr.Dataset.from_dataframe(reliability.rename_axis("bin")),
    }
    return scalars, groups, points


def _ood(
    spec, session, posterior: dict[str, np.ndarray], test: PredictiveDraws, cfg: CellConfig
) -> tuple[dict[str, object], dict[str, xr.Dataset]]:
    """Refusal and in- vs out-of-distribution AUROCs for each of the spec's OOD sets.

    A set whose data are not installed is skipped with the reason in ``ood_<set>_status``.
    """
    from bnnbench.datasets.mnist import DataUnavailableError
    from bnnbench.datasets.ood import load_ood

    record: dict[str, object] = {}
    groups: dict[str, xr.Dataset] = {}
    for name in spec.ood_sets:
        try:
            X = load_ood(name, OOD_POINTS, cfg.seed)
        except DataUnavailableError as err:
            print(f"out-of-distribution set {name} skipped: {err}", file=sys.stderr)
            record[f"ood_{name}_status"] = f"skipped: {err}"
            continue
        t = time.perf_counter()
        out = posterior_predictive(
            session, X, len(test.proba), cfg.seed + 20_000, spec.predict_chunk, posterior
        )
        record[f"ood_{name}_predict_s"] = time.perf_counter() - t
        summary = uncertainty.ood_summary(test.proba, test.y, out.proba, out.y, spec.n_classes)
        record.update({f"ood_{name}_{k}": v for k, v in summary.items()})
        record[f"ood_{name}_status"] = "ok"
        points = uncertainty.per_point_uncertainty(out.proba, out.y, spec.n_classes)
        groups[f"ood_{name}"] = xr.Dataset(
            {k: ("obs_id", np.asarray(v)) for k, v in points.items()}
        )
    return record, groups


def _pareto_k(spec, session, posterior: dict[str, np.ndarray], data: Dataset) -> dict[str, float]:
    """PSIS Pareto-k of the fit over the posterior draws taken for the test predictive."""
    draws = len(next(iter(posterior.values()), []))
    if not posterior or draws < diagnostics.PSIS_MIN_DRAWS:
        return {"pareto_k": float("nan"), "pareto_draws": draws}
    t = time.perf_counter()
    log_q = diagnostics.variational_log_density(spec, posterior, session.variational_parameters())
    log_p = diagnostics.log_joint_draws(spec, posterior, data.X_train, data.y_train)
    return {
        "pareto_k": diagnostics.pareto_k(log_p - log_q),
        "pareto_draws": draws,
        "pareto_s": time.perf_counter() - t,
    }


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
    transfer_s = float(getattr(session, "transfer_s", float("nan")))
    compile_s = time.perf_counter() - t0 - (transfer_s if np.isfinite(transfer_s) else 0.0)

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
    scalars, curves, points = _uncertainty_groups(data.y_test, test, spec.n_classes)
    summary["test"] = summary["test"].assign({k: ("obs_id", v) for k, v in points.items()})
    summary.update(curves)
    ood_record, ood_groups = _ood(spec, session, test.posterior, test, cfg)
    summary.update(ood_groups)
    grid_points = spec.grid_points()
    if grid_points is not None:
        xs, ys, points_xy = grid_points
        grid = posterior_predictive(
            session, points_xy, cfg.predict_draws, cfg.seed + 10_000, spec.predict_chunk
        )
        summary["grid"] = _grid_dataset(xs, ys, grid.proba)
        summary["test_inputs"] = xr.Dataset({"X": (("obs_id", "feature"), data.X_test)})
    psis = _pareto_k(spec, session, test.posterior, data)
    mean_proba = summary["test"]["mean_proba"].values
    reference = _reference_scores(spec, mean_proba, summary.get("grid"))

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

    timing = _step_timing(chunk_ms)
    draws_taken = int(test.proba.shape[0])
    roof = _roofline(spec, cfg, run_dir, len(data.y_test))
    device_mb = session.peak_device_memory_mb()
    record.update(
        status="ok",
        error="",
        execution_path=session.execution_path,
        dtype=session.dtype,
        transfer_s=transfer_s,
        compile_s=compile_s,
        fit_s=fit_s,
        **timing,
        predict_s=predict_s,
        predict_ms_per_draw=1000.0 * predict_s / draws_taken,
        accuracy=metrics.accuracy(data.y_test, mean_proba),
        nll=metrics.negative_log_likelihood(data.y_test, mean_proba),
        **scalars,
        **psis,
        **reference,
        **ood_record,
        final_neg_elbo_per_datum=float(trace["neg_elbo_per_datum"].iloc[-1]),
        **roof,
        step_floor_ratio=timing["step_ms"] / roof["step_floor_ms"],
        draw_floor_ratio=1000.0 * predict_s / draws_taken / roof["draw_floor_ms"],
        peak_rss_mb=_peak_rss_mb(),
        peak_device_mb=float("nan") if device_mb is None else device_mb,
        cell_wall_s=time.perf_counter() - started,
        trace=trace[["step", "wall_s", "neg_elbo_per_datum"]].to_dict(orient="list"),
    )
    return record


def find_reference(spec_name: str) -> Path | None:
    """The stored reference posterior of a spec: ``$BNNBENCH_REFERENCE_DIR/<spec>/nuts.nc``,
    else ``results/reference/<spec>/nuts.nc`` under the working folder, else in the source
    checkout bnnbench runs from; ``None`` if there is none."""
    from bnnbench import reference

    roots = [Path("results"), Path(__file__).resolve().parents[1] / "results"]
    candidates = [reference.default_reference_path(spec_name, root) for root in roots]
    if os.environ.get("BNNBENCH_REFERENCE_DIR"):
        candidates.insert(0, Path(os.environ["BNNBENCH_REFERENCE_DIR"]) / spec_name / "nuts.nc")
    return next((path for path in candidates if path.exists()), None)


def _reference_scores(spec, test_p_mean: np.ndarray, grid: xr.Dataset | None) -> dict[str, float]:
    """Agreement and total variation to the spec's reference posterior, where one is stored."""
    from bnnbench import reference

    path = find_reference(spec.name)
    if path is None:
        return {}
    ref = reference.load_reference(path)
    grid_p = None if grid is None else grid["p_mean"].values.ravel()
    p = test_p_mean[:, 1] if spec.n_classes == 2 else test_p_mean
    return reference.score_against_reference(p, grid_p, ref)


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
