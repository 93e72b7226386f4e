"""Stage 3, *store and load*: the only module that reads or writes results.

A results folder holds ``runs.csv`` (one :class:`~bnnbench.record.RunRecord` per row, flat),
``traces.csv`` (``run_id, step, wall_s, neg_elbo_per_datum`` per trace point, and on the
learning curve's checkpoints ``curve_accuracy, curve_nll, curve_eval_s``, else empty) and one
folder per run with
``config.json``, ``env.json``, ``cell.log``, ``result.json``, ``predictive_summary.nc`` and
``inference_data.nc`` (ArviZ layout, see :func:`inference_data`).

* Every write replaces a file atomically (a temporary file beside it, then ``os.replace``; the
  temporary file is removed if the write fails), and a cell's rows are written when it has ended,
  so a crash or Ctrl-C loses at most the running cell.
* :func:`load` reads any number of folders into one DataFrame of records: it migrates older
  schema versions it knows, refuses newer ones with a clear message, keeps one record per cell
  (the latest finished one; see :data:`bnnbench.record.FINISHED_STATUSES`) and reports damaged
  rows and artifacts instead of dropping them silently.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bnnbench.record import (
    FINISHED_STATUSES,
    SCHEMA_VERSION,
    RunRecord,
    cell_key,
    tta_key,
)
from bnnbench.types import STATUSES

__all__ = [
    "TRACE_COLUMNS",
    "Damage",
    "Loaded",
    "ResultStore",
    "SchemaVersionError",
    "atomic_write_bytes",
    "atomic_write_text",
    "find_reference",
    "inference_data",
    "load",
    "load_traces",
    "load_tree",
    "migrate_folder",
    "n_test_per_spec",
    "open_artifacts",
    "write_tree",
]

TRACE_COLUMNS: tuple[str, ...] = (
    "run_id",
    "step",
    "wall_s",
    "neg_elbo_per_datum",
    "curve_accuracy",
    "curve_nll",
    "curve_eval_s",
)
#: Per-run files the report reads; an ``ok`` run missing one is damaged.
REQUIRED_ARTIFACTS: tuple[str, ...] = ("predictive_summary.nc",)
REFERENCE_FILE = "nuts.nc"


class SchemaVersionError(ValueError):
    """A ``runs.csv`` written by a newer bnnbench than this one."""


# ------------------------------------------------------------------------------------ writing
def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half."""
    _atomic_write(path, text, "w")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half."""
    _atomic_write(path, data, "wb")


def _atomic_write(path: Path, data: str | bytes, mode: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tree(tree: xr.DataTree, path: Path) -> Path:
    """``tree`` as compressed netCDF, written beside ``path`` and renamed into place (the
    temporary file is removed if the write fails)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = {
        node.path: {name: {"zlib": True, "complevel": 4} for name in node.data_vars}
        for node in tree.subtree
        if node.data_vars
    }
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tree.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_tree(path: Path) -> xr.DataTree:
    """A stored netCDF tree, read fully into memory."""
    with xr.open_datatree(Path(path), engine="netcdf4") as tree:
        return tree.load()


def inference_data(
    *,
    param_dims: Mapping[str, tuple[str, ...]],
    posterior: Mapping[str, np.ndarray],
    variational: Mapping[str, tuple[np.ndarray, np.ndarray]],
    y_test: np.ndarray,
    proba: np.ndarray,
    labels: np.ndarray,
    trace: pd.DataFrame,
    X_test: np.ndarray | None,
    posterior_floats_limit: int,
) -> xr.DataTree:
    """One canonical ArviZ layout for every backend.

    * ``posterior``: each parameter tensor ``(chain=1, draw, *named dims)``, coordinates
      ``0..n-1`` on every dim; tensors of more than ``posterior_floats_limit`` floats are left
      out (their names in the attribute ``omitted_posterior``) and regenerate from
    * ``variational``: the mean-field ``loc`` and ``scale`` of every tensor (unconstrained
      space; ``<name>_loc``, ``<name>_scale``), with the cell's seed in ``config.json``;
    * ``predictions``: the test-set predictive, ``y`` (a sampled label) and ``p`` (p(y = 1) or
      the class probabilities) per draw, dims ``(chain, draw, obs_id[, class])``;
    * ``log_likelihood``: ``y`` = log p(y_n | theta_s) of each test label,
      ``(chain, draw, obs_id)``;
    * ``observed_data``: the test labels ``y`` (``obs_id``), against which the predictions are
      scored; ``predictions_constant_data``: the test inputs ``X`` when small;
    * ``sample_stats``: the ELBO trace over ``step``.

    ``obs_id`` is the test point's index, shared with ``predictive_summary.nc``.
    """
    n_draws, n_obs = proba.shape[:2]
    coords = {"chain": [0], "draw": np.arange(n_draws), "obs_id": np.arange(n_obs)}
    kept = {k: v for k, v in posterior.items() if v.size <= posterior_floats_limit}
    post = xr.Dataset(
        {k: (("chain", "draw", *param_dims[k]), v[None]) for k, v in kept.items()},
        coords={"chain": [0], "draw": np.arange(n_draws)},
    )
    post = post.assign_coords({d: np.arange(post.sizes[d]) for d in post.dims if d not in coords})
    var = xr.Dataset(
        {
            f"{k}_{part}": (
                param_dims[k],
                np.asarray(arr, np.float32).reshape(posterior[k].shape[1:]),
            )
            for k, (loc, scale) in variational.items()
            if k in param_dims
            for part, arr in (("loc", loc), ("scale", scale))
        }
    )
    var = var.assign_coords({d: np.arange(var.sizes[d]) for d in var.dims})
    class_dims = ("class",) if proba.ndim == 3 else ()
    p_dims = ("chain", "draw", "obs_id", *class_dims)
    picked = (
        np.where(y_test[None] == 1, proba, 1.0 - proba)
        if proba.ndim == 2
        else np.take_along_axis(proba, y_test[None, :, None].astype(np.int64), axis=-1)[..., 0]
    )
    groups = {
        "posterior": post,
        "variational": var,
        "predictions": xr.Dataset(
            {
                "y": (("chain", "draw", "obs_id"), labels.astype(np.int8)[None]),
                "p": (p_dims, proba.astype(np.float32)[None]),
            },
            coords=coords,
        ),
        "log_likelihood": xr.Dataset(
            {"y": (("chain", "draw", "obs_id"), np.log(np.clip(picked, 1e-30, None))[None])},
            coords=coords,
        ),
        "observed_data": xr.Dataset({"y": ("obs_id", y_test)}, coords={"obs_id": coords["obs_id"]}),
        "sample_stats": xr.Dataset(
            {
                "neg_elbo_per_datum": ("step", trace["neg_elbo_per_datum"].to_numpy()),
                "wall_s": ("step", trace["wall_s"].to_numpy()),
            },
            coords={"step": trace["step"].to_numpy()},
        ),
    }
    if X_test is not None:
        groups["predictions_constant_data"] = xr.Dataset(
            {"X": (("obs_id", "feature"), X_test)}, coords={"obs_id": coords["obs_id"]}
        )
    tree = xr.DataTree.from_dict(groups)
    tree.attrs["omitted_posterior"] = ",".join(sorted(set(posterior) - set(kept)))
    return tree


# ------------------------------------------------------------------------------------ the store
def _read_csv(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    if path.exists() and path.stat().st_size > 0:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    return pd.DataFrame(columns=list(columns))


class ResultStore:
    """The results folder of one or more ``bnnbench run`` invocations (one writer at a time:
    the harness holds the folder's lock while it records)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.runs_path = self.root / "runs.csv"
        self.traces_path = self.root / "traces.csv"

    def has_results(self) -> bool:
        return self.runs_path.exists()

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def runs(self) -> pd.DataFrame:
        return _read_csv(self.runs_path, [f for f, _ in RunRecord.describe()])

    def traces(self) -> pd.DataFrame:
        """The trace points; a folder written before the learning curve (schema < 3) has
        empty curve columns."""
        traces = _read_csv(self.traces_path, TRACE_COLUMNS)
        extra = [c for c in traces if c not in TRACE_COLUMNS]
        return traces.reindex(columns=[*TRACE_COLUMNS, *extra])

    def finished_run_ids(self) -> set[str]:
        runs = self.runs()
        return set(runs.loc[runs["status"].isin(FINISHED_STATUSES), "run_id"])

    def record(
        self, record: RunRecord | Mapping[str, object], trace: pd.DataFrame | None = None
    ) -> RunRecord:
        """Add (or replace) one cell's row in ``runs.csv`` and its points in ``traces.csv``.

        A mapping is validated into a :class:`RunRecord` first (unknown keys are an error).
        """
        if not isinstance(record, RunRecord):
            row = dict(record)
            if row.get("status") not in STATUSES:
                raise ValueError(f"status must be one of {STATUSES}, got {row.get('status')!r}")
            known = {f for f, _ in RunRecord.describe()}
            unknown = sorted(k for k in row if k not in known and not k.startswith("ood_"))
            if unknown:
                raise ValueError(f"not fields of RunRecord: {', '.join(unknown)}")
            record = RunRecord.from_row(row)
        run_id = record.run_id
        self.root.mkdir(parents=True, exist_ok=True)
        traces = self.traces()
        traces = traces[traces["run_id"] != run_id]
        if trace is not None and len(trace):
            new = trace.reindex(columns=list(TRACE_COLUMNS))
            traces = new if traces.empty else pd.concat([traces, new], ignore_index=True)
        atomic_write_text(self.traces_path, traces.to_csv(index=False))
        runs = self.runs()
        runs = runs[runs["run_id"] != run_id]
        new = pd.DataFrame([record.to_row()])
        runs = new if runs.empty else pd.concat([runs, new], ignore_index=True)
        order = [f for f, _ in RunRecord.describe() if f in runs]
        runs = runs[order + [c for c in runs if c not in order]]
        atomic_write_text(self.runs_path, runs.to_csv(index=False))
        return record


# ------------------------------------------------------------------------------------ loading
@dataclass
class Damage:
    """A problem found while loading: which folder, which run (if any), what."""

    results_dir: str
    run_id: str
    problem: str

    def __str__(self) -> str:
        where = f"{self.results_dir}/{self.run_id}" if self.run_id else self.results_dir
        return f"{where}: {self.problem}"


@dataclass
class Loaded:
    """What :func:`load_all` found: the records, the traces, and every damage.

    ``traces`` holds the trace points of the kept records only, each from the record's own
    folder (column ``results_dir``, as in ``runs``).
    """

    runs: pd.DataFrame
    traces: pd.DataFrame
    damage: list[Damage] = field(default_factory=list)
    superseded: int = 0


def _migrate_1_to_2(runs: pd.DataFrame) -> pd.DataFrame:
    """Version 1 (unversioned) -> 2: add the version, the cell key and empty new fields."""
    runs = runs.copy()
    runs["schema_version"] = 2
    runs["cell_key"] = [cell_key(row) for row in runs.to_dict(orient="records")]
    for name in ("git_diff_sha256",):
        runs[name] = ""
    runs["host_busy"] = False
    return runs


def _migrate_2_to_3(runs: pd.DataFrame) -> pd.DataFrame:
    """Version 2 -> 3: no learning curve was taken, so no curve points, and every accuracy
    target of the record's spec reads ``no curve``."""
    from bnnbench.spec import SPEC_NAMES, get_spec

    runs = runs.copy()
    runs["schema_version"] = 3
    runs["curve_points"] = 0
    runs["curve_eval_s"] = np.nan
    runs["curve_overhead_pct"] = np.nan
    for model in runs["model"].dropna().unique():
        if model not in SPEC_NAMES:
            continue
        mine = runs["model"] == model
        for target in get_spec(model).accuracy_targets:
            prefix = f"tta_{tta_key(target)}_"
            for name in ("status", "target", "steps", "train_s"):
                if prefix + name not in runs:
                    runs[prefix + name] = "" if name == "status" else np.nan
            runs.loc[mine, prefix + "status"] = "no curve"
            runs.loc[mine, prefix + "target"] = target
    return runs


#: Known migrations: version -> function to the next version.
MIGRATIONS = {1: _migrate_1_to_2, 2: _migrate_2_to_3}


def _migrate(runs: pd.DataFrame, source: Path) -> pd.DataFrame:
    """Every row at :data:`~bnnbench.record.SCHEMA_VERSION`: each older row through the known
    migrations (a folder written by several versions, e.g. resumed after an upgrade, holds rows
    of each); a newer row raises :class:`SchemaVersionError`."""
    if runs.empty:
        return runs
    versions = (
        pd.to_numeric(runs["schema_version"], errors="coerce").fillna(1).astype(int)
        if "schema_version" in runs
        else pd.Series(1, index=runs.index)
    )
    newest = int(versions.max())
    if newest > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{source} has result schema version {newest}; this bnnbench reads up to "
            f"{SCHEMA_VERSION}: upgrade bnnbench to read it"
        )
    parts = []
    for version in sorted(versions.unique()):
        part = runs[versions == version]
        while version < SCHEMA_VERSION:
            part = MIGRATIONS[version](part)
            version += 1
        parts.append(part)
    migrated = pd.concat(parts) if len(parts) > 1 else parts[0]
    return migrated.loc[runs.index]


def migrate_folder(root: Path) -> int:
    """Rewrite ``root/runs.csv`` at the current schema version (atomically; the records and
    their values are kept, new fields take their migrated values); the rows migrated.

    Raises :class:`SchemaVersionError` for a newer version, ``FileNotFoundError`` without
    ``runs.csv``.
    """
    store = ResultStore(root)
    if not store.has_results():
        raise FileNotFoundError(f"{root} has no runs.csv")
    runs = store.runs()
    before = (
        pd.to_numeric(runs["schema_version"], errors="coerce").fillna(1)
        if "schema_version" in runs
        else pd.Series(1, index=runs.index)
    )
    migrated = _migrate(runs, store.runs_path)
    order = [f for f, _ in RunRecord.describe() if f in migrated]
    migrated = migrated[order + [c for c in migrated if c not in order]]
    atomic_write_text(store.runs_path, migrated.to_csv(index=False))
    if store.traces_path.exists():
        atomic_write_text(store.traces_path, store.traces().to_csv(index=False))
    return int((before < SCHEMA_VERSION).sum())


def _short_rows(path: Path) -> set[int]:
    """Indices (0-based, data rows) of ``runs.csv`` rows with fewer fields than the header."""
    text = path.read_text(errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return set()
    width = len(rows[0])
    return {i for i, r in enumerate(rows[1:]) if len(r) != width}


def _check_artifacts(runs: pd.DataFrame, root: Path) -> list[Damage]:
    damage = []
    for run_id in runs.loc[runs["status"] == "ok", "run_id"]:
        run_dir = root / str(run_id)
        if not run_dir.is_dir():
            damage.append(Damage(str(root), str(run_id), "run folder is missing"))
            continue
        for name in REQUIRED_ARTIFACTS:
            path = run_dir / name
            if not path.exists():
                damage.append(Damage(str(root), str(run_id), f"{name} is missing"))
                continue
            try:
                with xr.open_datatree(path, engine="netcdf4"):
                    pass
            except Exception as err:
                damage.append(Damage(str(root), str(run_id), f"{name} is unreadable ({err})"))
    return damage


def _latest_per_cell(runs: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, int]:
    """One record per ``keys`` (the cell key, and more): the latest finished one, else the
    latest."""
    if runs.empty:
        return runs, 0
    ranked = runs.assign(
        _finished=runs["status"].isin(FINISHED_STATUSES),
        _when=runs["started_at"].fillna("").astype(str),
    ).sort_values(["_finished", "_when"], kind="stable")
    kept = ranked.drop_duplicates(keys, keep="last")
    kept = kept.sort_index().drop(columns=["_finished", "_when"])
    return kept, len(runs) - len(kept)


def load_all(
    dirs: Iterable[Path], *, check_artifacts: bool = True, per_folder: bool = False
) -> Loaded:
    """Records and traces of every folder (see :func:`load`), with what was damaged.

    A cell counts once per machine (``host``), or, with ``per_folder``, once per folder (to
    set two runs of the same cells side by side).
    """
    frames, trace_frames, damage = [], [], []
    for d in dirs:
        root = Path(d)
        store = ResultStore(root)
        if not store.runs_path.exists():
            damage.append(Damage(str(root), "", "holds no runs.csv"))
            continue
        try:
            runs = store.runs()
        except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
            damage.append(Damage(str(root), "", f"runs.csv is unreadable ({err})"))
            continue
        lacking = [c for c in ("run_id", "model", "backend", "status") if c not in runs]
        if lacking and len(runs.columns):
            problem = f"runs.csv is not a bnnbench record (no {', '.join(lacking)} column)"
            damage.append(Damage(str(root), "", problem))
            continue
        short = _short_rows(store.runs_path)
        if short:
            for i in sorted(short):
                rid = str(runs["run_id"].iloc[i]) if i < len(runs) else f"row {i + 1}"
                damage.append(Damage(str(root), rid, "runs.csv row is cut short (dropped)"))
            runs = runs.drop(index=[i for i in short if i < len(runs)])
        bad_status = ~runs["status"].isin(STATUSES)
        for rid in runs.loc[bad_status, "run_id"]:
            damage.append(Damage(str(root), str(rid), "runs.csv row has an unknown status"))
        runs = _migrate(runs[~bad_status], store.runs_path)
        if check_artifacts:
            damage += _check_artifacts(runs, root)
        frames.append(runs.assign(results_dir=str(root)))
        try:  # tagged with its folder: a run_id stored in two folders keeps its own trace
            trace_frames.append(store.traces().assign(results_dir=str(root)))
        except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
            damage.append(Damage(str(root), "", f"traces.csv is unreadable ({err})"))
    runs = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[f for f, _ in RunRecord.describe()] + ["results_dir"])
    )
    keys = ["cell_key", "host"] + (["results_dir"] if per_folder else [])
    runs, superseded = _latest_per_cell(runs, keys)
    traces = (
        pd.concat(trace_frames, ignore_index=True)
        if trace_frames
        else pd.DataFrame(columns=[*TRACE_COLUMNS, "results_dir"])
    )
    kept = runs[["run_id", "results_dir"]].drop_duplicates()
    traces = traces.merge(kept, on=["run_id", "results_dir"]).drop_duplicates(
        ["run_id", "results_dir", "step"]
    )
    return Loaded(runs.reset_index(drop=True), traces, damage, superseded)


def load(paths: Path | Iterable[Path]) -> pd.DataFrame:
    """Every record of any number of results folders as one DataFrame (one row per cell).

    Columns are the :class:`~bnnbench.record.RunRecord` fields (``ood_<set>_<field>`` flat)
    plus ``results_dir``. Older schema versions are migrated; a newer one raises
    :class:`SchemaVersionError`. A cell recorded more than once (a rerun, ``--resume`` with
    other settings that do not change the result, two folders holding the same cells) counts
    once: the latest finished record wins. Damaged rows are dropped; use :func:`load_all` to
    see them.
    """
    dirs = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    return load_all(dirs, check_artifacts=False).runs


def load_traces(dirs: Iterable[Path]) -> pd.DataFrame:
    """``traces.csv`` of every folder."""
    frames = [ResultStore(Path(d)).traces() for d in dirs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TRACE_COLUMNS)


def open_artifacts(
    results_dir: Path, run_id: str, name: str = "predictive_summary.nc"
) -> xr.DataTree:
    """A run's stored tree, loaded into memory: ``predictive_summary.nc`` (small: per test point
    mean probabilities, votes, chi-square, entropy, MI, reject decisions; curves; grid maps) or
    ``inference_data.nc`` (ArviZ)."""
    return load_tree(Path(results_dir) / run_id / name)


def n_test_per_spec(runs: pd.DataFrame) -> dict[str, int]:
    """Per spec in ``runs``, its test-set size, read from the first finished run's stored
    ``predictive_summary.nc`` that can be read (specs without one are left out)."""
    sizes: dict[str, int] = {}
    ok = runs[runs["status"] == "ok"] if "status" in runs else runs.iloc[0:0]
    for row in ok.itertuples():
        if row.model in sizes:
            continue
        try:
            tree = open_artifacts(Path(str(row.results_dir)), str(row.run_id))
            sizes[str(row.model)] = int(tree["test"].sizes["obs_id"])
        except (OSError, KeyError, ValueError):  # missing or damaged: the size is inferred
            continue
    return sizes


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def find_reference(spec_name: str, near: Iterable[Path] = ()) -> Path | None:
    """The stored reference posterior of a spec, ``reference/<spec>/nuts.nc``, or ``None``.

    Parameters
    ----------
    spec_name
        The spec.
    near
        Results folders the reference belongs with (relative paths are taken from the current
        folder).

    Returns
    -------
    Path or None
        The first file found, looking in this order: ``$BNNBENCH_REFERENCE_DIR/<spec>/``; for
        each folder in ``near``, its own ``reference/``, its parent's ``reference/`` (e.g.
        ``results/reference`` beside ``results/default``) and ``results/reference`` of every
        folder above it (a checkout whose ``.results/bench`` sits beside ``results/``); the
        current folder's ``results/reference`` (where ``bnnbench reference`` writes by default);
        and ``results/reference`` of the checkout this package is installed from (an editable
        install, or a virtual environment inside the checkout: any folder above the package
        that holds a ``pyproject.toml``). ``None`` if there is none, so that the caller can say so.
    """
    tail = Path("reference") / spec_name / REFERENCE_FILE
    candidates = []
    if os.environ.get("BNNBENCH_REFERENCE_DIR"):
        candidates.append(Path(os.environ["BNNBENCH_REFERENCE_DIR"]) / spec_name / REFERENCE_FILE)
    for d in near:
        folder = Path(d).resolve()
        candidates += [folder / tail, folder.parent / tail]
        candidates += [above / "results" / tail for above in folder.parents]
    try:
        candidates.append(Path.cwd() / "results" / tail)
    except OSError:  # the current folder was removed
        pass
    package = Path(__file__).resolve().parent
    candidates += [
        above / "results" / tail
        for above in package.parents
        if (above / "pyproject.toml").is_file()
    ]
    return next((path for path in candidates if path.is_file()), None)
