"""The result record: one typed, versioned row per benchmark cell.

A cell's process *measures* (:mod:`bnnbench.measure`), a pure module *evaluates*
(:mod:`bnnbench.evaluate`), and :mod:`bnnbench.results` *stores and loads* a :class:`RunRecord`:
one row of ``runs.csv``. Every field names its unit (``_s`` seconds, ``_ms`` milliseconds, ``_mb``
MiB, ``_pct`` percent, ``_nats``) and documents itself (``RunRecord.describe()``); NaN means
"not measured" (a failed cell, a metric the spec has none of). Out-of-distribution scores are one
:class:`OODScores` per set, stored flat as ``ood_<set>_<field>`` columns.

Versions of the schema (``schema_version``):

* 1: the unversioned ``runs.csv`` of bnnbench 0.1 (no ``schema_version`` column).
* 2: adds ``schema_version``, ``cell_key``, ``git_diff_sha256``, the host-load fields
  (``host_*``) and the status ``diverged``. :func:`bnnbench.results.load` migrates 1 to 2.
* 3: adds the learning curve's cost (``curve_points``, ``curve_eval_s``,
  ``curve_overhead_pct``) and time-to-accuracy, one :class:`TimeToAccuracy` per target of the
  spec, stored flat as ``tta_<percent>_<field>`` (``tta_89_8_steps``); the curve's points are
  columns of ``traces.csv``. Records of version 2 have no curve: migrated, their targets read
  ``no curve``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from bnnbench.types import STATUSES

__all__ = [
    "CELL_KEY_FIELDS",
    "FINISHED_STATUSES",
    "SCHEMA_VERSION",
    "TTA_STATUSES",
    "OODScores",
    "RunRecord",
    "TimeToAccuracy",
    "cell_key",
    "tta_key",
]

SCHEMA_VERSION = 3
#: What a time-to-accuracy says: the curve reached the target, did not, or there is no curve
#: (a record from before schema 3, or a cell that did not finish).
TTA_STATUSES = ("reached", "not reached", "no curve")
#: Statuses that a rerun with the same settings would reproduce: ``--resume`` skips them and a
#: later record of the same cell with one of them supersedes an earlier one.
FINISHED_STATUSES = frozenset({"ok", "diverged", "unavailable"})
#: The settings that identify a cell's result: two records with equal values of these are the
#: same measurement taken twice (the later supersedes the earlier).
CELL_KEY_FIELDS: tuple[str, ...] = (
    "model",
    "backend",
    "profile",
    "device",
    "seed",
    "steps",
    "batch_size",
    "learning_rate",
    "init_scale",
    "trace_every",
    "predict_draws",
)

NAN = float("nan")


def _f(doc: str, default: Any = NAN) -> Any:
    """A record field with its docstring (``metadata["doc"]``)."""
    return field(default=default, metadata={"doc": doc})


#: Fields of :class:`RunRecord` stored flat as ``<field>_<key>_<subfield>`` columns.
NESTED = ("ood", "tta")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _nested(
    row: dict[str, Any], prefix: str, kind: type, *, drop_empty: bool = False
) -> dict[str, dict[str, Any]]:
    """``{key: {subfield: value}}`` from a row's ``<prefix>_<key>_<subfield>`` columns (or its
    nested ``<prefix>`` mapping); a key whose status is not text takes the default status.
    ``drop_empty`` leaves out keys whose every value is missing (in a table of several specs,
    the columns of another spec's keys)."""
    names = sorted((f.name for f in fields(kind)), key=len, reverse=True)
    out: dict[str, dict[str, Any]] = {
        k: dict(v) for k, v in (row.get(prefix) or {}).items() if isinstance(v, dict)
    }
    for column, v in row.items():
        if not column.startswith(f"{prefix}_"):
            continue
        for name in names:
            if column.endswith(f"_{name}"):
                out.setdefault(column[len(prefix) + 1 : -len(name) - 1], {})[name] = v
                break
    if drop_empty:
        out = {k: d for k, d in out.items() if any(not _missing(v) for v in d.values())}
    status_default = next(f.default for f in fields(kind) if f.name == "status")
    for d in out.values():
        if not isinstance(d.get("status"), str):
            d["status"] = status_default
    return out


def cell_key(values: dict[str, Any]) -> str:
    """A short hash of the :data:`CELL_KEY_FIELDS` of a record (numbers normalised)."""

    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return v

    key = {k: norm(values.get(k)) for k in CELL_KEY_FIELDS}
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class OODScores:
    """How one run treats one out-of-distribution input set (:mod:`bnnbench.uncertainty`)."""

    status: str = _f("ok, or 'skipped: <reason>' when the set's data are not installed", "")
    predict_s: float = _f("seconds to predict the set with the test draws")
    refusal_rate: float = _f("fraction refused by the reject option (median p > 0.2 rule)")
    entropy_auroc: float = _f("AUROC of predictive entropy, in- vs out-of-distribution")
    mi_auroc: float = _f("AUROC of mutual information, in- vs out-of-distribution")
    chi2_auroc: float = _f("AUROC of the votes' chi-square, in- vs out-of-distribution")


def tta_key(target: float) -> str:
    """The name of an accuracy target in columns: its percentage, ``_`` for the point
    (0.898 -> ``89_8``, 0.95 -> ``95``)."""
    return f"{round(100 * target, 3):g}".replace(".", "_")


@dataclass
class TimeToAccuracy:
    """When a cell's learning curve first reached one test-accuracy target
    (:func:`bnnbench.evaluate.time_to_accuracy`)."""

    status: str = _f("reached, not reached (within the cell's steps) or no curve", "no curve")
    target: float = _f("the target test accuracy, a fraction")
    steps: float = _f("training steps at the first checkpoint at or above it (NaN unless reached)")
    train_s: float = _f(
        "training seconds to that checkpoint: compile and curve evaluation excluded (NaN "
        "unless reached)"
    )


@dataclass
class RunRecord:
    """One cell's result: its settings, outcome, timings, quality and provenance."""

    # identity and settings
    run_id: str = _f("<model>-<backend>-<profile>-<device>-seed<seed>-<hash of settings>", "")
    model: str = _f("spec name (models/<model>/)", "")
    backend: str = _f("backend name (bnnbench.registry)", "")
    profile: str = _f("settings profile: matched, tuned or native", "")
    device: str = _f("cpu or gpu", "")
    seed: int = _f("seed of the initial means, minibatches and draws", 0)
    steps: int = _f("optimisation steps", 0)
    batch_size: int = _f("minibatch size (points per step)", 0)
    learning_rate: float = _f("optimizer step size")
    init_scale: float = _f("initial sd of every variational factor (matched)")
    trace_every: int = _f("steps per timed chunk and per ELBO trace point", 0)
    predict_draws: int = _f("posterior draws for the test-set predictive", 0)
    schema_version: int = _f("version of this record's schema", SCHEMA_VERSION)
    cell_key: str = _f("hash of the settings that identify the result (record.CELL_KEY_FIELDS)", "")
    # outcome
    status: str = _f("ok, failed, diverged, unavailable or unsupported", "failed")
    error: str = _f("why the cell is not ok (empty when ok)", "")
    execution_path: str = _f("how the backend ran its steps (jitted scan, compiled step, ...)", "")
    dtype: str = _f("floating-point type training ran in", "")
    # timing
    transfer_s: float = _f("seconds placing the training data on the device (synchronised)")
    compile_s: float = _f("seconds building the model and compiling/tracing the step")
    fit_s: float = _f("seconds of all training chunks (compile excluded)")
    step_ms: float = _f("median over timed chunks of milliseconds per steady-state step")
    step_ms_iqr: float = _f("interquartile range over chunks of milliseconds per step")
    predict_s: float = _f("seconds drawing the posterior and predicting the test set")
    predict_ms_per_draw: float = _f("predict_s per posterior draw, in milliseconds")
    cell_wall_s: float = _f("seconds of the whole cell process")
    # the learning curve (points in traces.csv: curve_accuracy, curve_nll, curve_eval_s)
    curve_points: int = _f(
        "learning-curve checkpoints: test accuracy and NLL of a few posterior draws on a fixed "
        "test subset, at log-spaced steps (0: none)",
        0,
    )
    curve_eval_s: float = _f("seconds evaluating the checkpoints (excluded from fit_s, step_ms)")
    curve_overhead_pct: float = _f("curve_eval_s / fit_s, %")
    # memory
    peak_rss_mb: float = _f("peak resident host memory of the cell process, MiB")
    peak_device_mb: float = _f("peak accelerator memory of the cell process, MiB (NaN on CPU)")
    # quality
    accuracy: float = _f("test accuracy of the posterior-predictive mean")
    nll: float = _f("test negative log-likelihood of the predictive mean, nats per point")
    final_neg_elbo_per_datum: float = _f("full-data -ELBO / N, mean over the last chunk")
    brier: float = _f("Brier score of the predictive mean")
    ece_15: float = _f("expected calibration error, 15 equal-width bins")
    # uncertainty of the test predictive
    chi2_auroc: float = _f("error-detection AUROC of the votes' chi-square")
    entropy_auroc: float = _f("error-detection AUROC of the predictive entropy")
    mi_auroc: float = _f("error-detection AUROC of the mutual information")
    refusal_rate: float = _f("fraction of test points refused (median p > 0.2 rule)")
    accepted_accuracy: float = _f("accuracy on the accepted test points")
    mean_entropy_nats: float = _f("mean predictive entropy over the test set, nats")
    mean_mi_nats: float = _f("mean mutual information over the test set, nats")
    # diagnostics of the fit
    pareto_k: float = _f("PSIS Pareto-k of log p(theta, y) - log q(theta) over the draws")
    pareto_draws: int = _f("draws the Pareto-k used", 0)
    pareto_s: float = _f("seconds computing the Pareto-k")
    # against a reference posterior
    agreement_test: float = _f("agreement of predicted classes with NUTS, test set")
    tv_test: float = _f("total variation of the predictive to NUTS, test set")
    agreement_grid: float = _f("agreement with NUTS on the input grid")
    tv_grid: float = _f("total variation to NUTS on the input grid")
    # roofline
    step_gflop: float = _f("GFLOP of one training step (spec.step_cost)")
    step_mbytes: float = _f("fewest MB a training step moves (spec.step_cost)")
    draw_gflop: float = _f("GFLOP of one predictive draw over the test set")
    step_floor_ms: float = _f("roofline floor of a step on this machine, ms")
    draw_floor_ms: float = _f("roofline floor of a predictive draw, ms")
    step_bound: str = _f("compute or memory: which ceiling sets the step floor", "")
    step_floor_ratio: float = _f("step_ms / step_floor_ms")
    draw_floor_ratio: float = _f("predict_ms_per_draw / draw_floor_ms")
    # the machine while the cell ran
    host_load_avg_1m: float = _f("1-minute load average of the host during the cell")
    host_other_cpu_pct: float = _f(
        "CPU used by processes other than bnnbench and its cell, % of the CPUs it may use"
    )
    host_steal_pct: float = _f("CPU time stolen by the hypervisor during the cell, %")
    host_busy: bool = _f(
        "others used >= half a core on average, or steal >= 5%: timings not clean", False
    )
    # provenance
    backend_version: str = _f("version of the backend's library", "")
    runtime_version: str = _f("version of its runtime (pytensor, torch, jax)", "")
    python_version: str = _f("Python version", "")
    numpy_version: str = _f("NumPy version", "")
    bnnbench_version: str = _f("bnnbench version", "")
    git_revision: str = _f("git describe of the source (-dirty when modified)", "")
    git_diff_sha256: str = _f("sha256 of `git diff HEAD` when the tree was dirty, else empty", "")
    host: str = _f("machine name", "")
    cpu: str = _f("CPU model", "")
    gpu: str = _f("GPU model (empty without one)", "")
    started_at: str = _f("when the cell started, ISO 8601 UTC", "")
    # per out-of-distribution set
    ood: dict[str, OODScores] = field(default_factory=dict, metadata={"doc": "per OOD set"})
    # per accuracy target of the spec (key: tta_key(target))
    tta: dict[str, TimeToAccuracy] = field(
        default_factory=dict, metadata={"doc": "per accuracy target of the spec"}
    )

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if not self.cell_key:
            self.cell_key = cell_key(asdict(self))

    # ----------------------------------------------------------------------------- flat rows
    def to_row(self) -> dict[str, Any]:
        """The flat ``runs.csv`` row: every field, then ``ood_<set>_<field>`` and
        ``tta_<target>_<field>``."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in NESTED}
        for name, scores in self.ood.items():
            row.update({f"ood_{name}_{k}": v for k, v in asdict(scores).items()})
        for name, tta in self.tta.items():
            row.update({f"tta_{name}_{k}": v for k, v in asdict(tta).items()})
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunRecord:
        """Inverse of :meth:`to_row` (NaN text fields become empty; unknown keys are ignored)."""
        known = {f.name: f for f in fields(cls) if f.name not in NESTED}
        values: dict[str, Any] = {}
        for name, f in known.items():
            if name not in row:
                continue
            v = row[name]
            default = f.default if f.default is not MISSING else None
            if isinstance(default, str) and (v is None or (isinstance(v, float) and math.isnan(v))):
                v = ""
            elif isinstance(default, bool):
                v = bool(v) if not (isinstance(v, float) and math.isnan(v)) else False
            elif isinstance(default, int) and not isinstance(default, bool):
                v = int(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else 0
            values[name] = v
        values["ood"] = {k: OODScores(**d) for k, d in _nested(row, "ood", OODScores).items()}
        values["tta"] = {
            k: TimeToAccuracy(**d)
            for k, d in _nested(row, "tta", TimeToAccuracy, drop_empty=True).items()
        }
        return cls(**values)

    @classmethod
    def describe(cls) -> list[tuple[str, str]]:
        """``(field, doc)`` for every field, in order (the schema as a table)."""
        return [(f.name, f.metadata.get("doc", "")) for f in fields(cls)]
