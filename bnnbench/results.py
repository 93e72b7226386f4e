"""Stored results: ``runs.csv``, ``traces.csv`` and one folder of artifacts per run.

Every write replaces a file atomically (write a temporary file beside it, then ``os.replace``), and
a cell's rows are written only when the cell has ended, so a crash or Ctrl-C loses at most the cell
that was running.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
import xarray as xr

from bnnbench.types import STATUSES

__all__ = [
    "RUN_COLUMNS",
    "TRACE_COLUMNS",
    "ResultStore",
    "atomic_write_text",
    "load_runs",
    "load_traces",
    "open_artifacts",
]

#: Columns of ``runs.csv``, in order (more may follow: library versions, provenance).
RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "model",
    "backend",
    "profile",
    "device",
    "seed",
    "steps",
    "batch_size",
    "learning_rate",
    "init_scale",
    "predict_draws",
    "status",
    "error",
    "execution_path",
    "dtype",
    "compile_s",
    "fit_s",
    "step_ms",
    "predict_s",
    "accuracy",
    "nll",
    "final_neg_elbo_per_datum",
    "peak_rss_mb",
    "backend_version",
    "runtime_version",
    "python_version",
    "numpy_version",
    "bnnbench_version",
    "git_revision",
    "host",
    "cpu",
    "gpu",
    "started_at",
    "cell_wall_s",
)
TRACE_COLUMNS: tuple[str, ...] = ("run_id", "step", "wall_s", "neg_elbo_per_datum")
#: Statuses of a cell that ``--resume`` does not run again (``failed`` cells are retried).
FINISHED_STATUSES = frozenset({"ok", "unavailable", "unsupported"})


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_csv(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    if path.exists() and path.stat().st_size > 0:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    return pd.DataFrame(columns=list(columns))


class ResultStore:
    """The results folder of one or more ``bnnbench run`` invocations."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.runs_path = self.root / "runs.csv"
        self.traces_path = self.root / "traces.csv"

    def has_results(self) -> bool:
        return self.runs_path.exists()

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def runs(self) -> pd.DataFrame:
        return _read_csv(self.runs_path, RUN_COLUMNS)

    def traces(self) -> pd.DataFrame:
        return _read_csv(self.traces_path, TRACE_COLUMNS)

    def finished_run_ids(self) -> set[str]:
        runs = self.runs()
        return set(runs.loc[runs["status"].isin(FINISHED_STATUSES), "run_id"])

    def record(self, row: Mapping[str, object], trace: pd.DataFrame | None = None) -> None:
        """Add (or replace) one cell's row in ``runs.csv`` and its points in ``traces.csv``."""
        if row.get("status") not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {row.get('status')!r}")
        run_id = row["run_id"]
        self.root.mkdir(parents=True, exist_ok=True)
        traces = self.traces()
        traces = traces[traces["run_id"] != run_id]
        if trace is not None and len(trace):
            traces = pd.concat([traces, trace[list(TRACE_COLUMNS)]], ignore_index=True)
        atomic_write_text(self.traces_path, traces.to_csv(index=False))
        runs = self.runs()
        runs = runs[runs["run_id"] != run_id]
        new = pd.DataFrame([dict(row)])
        runs = new if runs.empty else pd.concat([runs, new], ignore_index=True)
        ordered = [c for c in RUN_COLUMNS if c in runs] + [c for c in runs if c not in RUN_COLUMNS]
        atomic_write_text(self.runs_path, runs[ordered].to_csv(index=False))


def load_runs(dirs: Iterable[Path]) -> pd.DataFrame:
    """``runs.csv`` of every folder, with a ``results_dir`` column."""
    frames = []
    for d in dirs:
        runs = ResultStore(Path(d)).runs()
        frames.append(runs.assign(results_dir=str(d)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RUN_COLUMNS)


def load_traces(dirs: Iterable[Path]) -> pd.DataFrame:
    """``traces.csv`` of every folder."""
    frames = [ResultStore(Path(d)).traces() for d in dirs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TRACE_COLUMNS)


def open_artifacts(
    results_dir: Path, run_id: str, name: str = "predictive_summary.nc"
) -> xr.DataTree:
    """A run's stored tree, loaded into memory: ``predictive_summary.nc`` (small: per test point
    mean probabilities, votes, chi-square; the grid maps) or ``inference_data.nc`` (ArviZ)."""
    with xr.open_datatree(Path(results_dir) / run_id / name) as tree:
        return tree.load()


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
