r"""Did it get slower? Two runs of the same cells, compared. Pure: DataFrames and parsed JSON in,
dataclasses out (and text, Markdown or JSON from them); no file I/O.

``bnnbench compare BASELINE CANDIDATE`` compares two results folders (:func:`compare_results`,
fed by :func:`bnnbench.results.load_all`) or two pytest-benchmark JSON files
(:func:`compare_benchmarks`, ``benchmarks/perf``).

**Pairing.** Results: a *cell* is a record's :data:`~bnnbench.record.CELL_KEY_FIELDS` without
the seed (:data:`PAIR_FIELDS`: spec, backend, profile, device and settings); its seeds are its
replicates. A cell on one side only is ``missing`` (which side is said); when the other side has
the same spec, backend, profile and device with other settings, the two are paired as ``not
comparable`` with the settings that differ. Benchmarks: by the benchmark's ``name``.

**Same machine.** Cells whose records name another ``cpu``, ``host`` or ``gpu``, or whose
folders' ``calibration-<device>.json`` differ by more than :data:`CALIBRATION_TOLERANCE` in
matmul FLOP/s, or benchmark files whose ``machine_info.cpu.brand_raw`` differ, are ``not
comparable`` (the reason is said); ``allow_other_machine`` compares them anyway and says so.

**Metrics.** Each a ratio :math:`r = c/b`, candidate over baseline, with a
``CONFIDENCE_LEVEL`` interval and a p-value (:mod:`bnnbench.evidence`):

* ``step_ms``, the steady-state step: per seed the median of the timed chunks' step times
  (the first chunk left out with three or more, as :func:`~bnnbench.evidence.seed_timing`), the
  side's value the mean over seeds; interval: the two-level bootstrap (seeds, then each seed's
  chunks; :data:`~bnnbench.evidence.BOOTSTRAP_REPLICATES` replicates, fixed seed, each side by
  its own generator); p: two-sided Mann-Whitney U on the pooled steady chunks. With two or
  more seeds on each side the seeds are the replicates of the run: the interval is widened to
  contain Welch's t interval of the per-seed medians (:func:`~bnnbench.evidence.welch_log_ratio`)
  and p is the larger of the two tests' (a bootstrap over three seeds has ten distinct means and
  is too narrow; the chunks of one seed share its run's conditions). With one seed on a side
  the interval sees chunk-to-chunk noise only, not run-to-run noise: the note says so.
* ``compile_s``, ``predict_s``, ``peak_memory_mb`` (``peak_rss_mb`` on the CPU,
  ``peak_device_mb`` on the GPU): one value per seed, so the ratio of geometric means with
  Welch's t interval and test on the logarithms
  (:func:`~bnnbench.evidence.welch_log_ratio`). Not Mann-Whitney: with three seeds against
  three its smallest p-value is 0.1, it could never reach ``alpha``. **One seed on a side**
  leaves no spread: no interval, no p-value, verdict ``inconclusive`` ("one replicate: add
  seeds"), however large the ratio; a regression of the steady step is still found from the
  chunks.
* Benchmarks: seconds per call (milliseconds per step or draw with ``steps_per_call`` or
  ``draws_per_call``). With the rounds saved (``--benchmark-save-data``) the ratio of medians with
  a bootstrap over rounds and Mann-Whitney on the rounds; with the summary only, conservative
  bounds (:func:`~bnnbench.evidence.median_bounds_from_summary`,
  :func:`~bnnbench.evidence.mann_whitney_p_bound_from_summary`).

**Verdict of a metric** with threshold :math:`t` and significance level :math:`\alpha`:

* ``slower`` when the interval lies above 1, :math:`p < \alpha` and :math:`r > 1 + t`
  (``worse`` for memory); ``faster`` when it lies below 1, :math:`p < \alpha` and
  :math:`r < 1/(1+t)` (``better``): a statistic and a factor together, as asv decides;
* ``unchanged`` when the interval lies within :math:`[1/(1+t),\ 1+t]`;
* ``inconclusive`` otherwise: re-run (more seeds, an idle machine).

Thresholds: steady step :data:`DEFAULT_THRESHOLD` (the CI gate's: no false alarm in its 10
measured A/A runs, results/gate_quality), compile :data:`DEFAULT_COMPILE_THRESHOLD` (compile
times swing far more), predictive :data:`DEFAULT_PREDICT_THRESHOLD` (a one-shot phase too), memory
:data:`DEFAULT_MEMORY_THRESHOLD`.

**Verdict of a cell**: the worst of its *gated* metrics, ``step_ms`` and ``compile_s`` (slower >
inconclusive > faster > unchanged); ``predict_s`` and the memory peak are compared and reported
but do not set it (torch-ml's predictive is a single forward pass of ~0.3 ms whose seed-to-seed
spread is 2×). ``failed`` when the candidate has a failed or diverged seed that the baseline ran.
Two sides holding the same measurements (the same records: run id, start time and times) are
``unchanged`` by construction, ratio exactly 1: they are one sample, not two.

**Quality guards.** Accuracy drops, or −ELBO/datum rises, beyond the noise
(:func:`~bnnbench.evidence.compare_per_seed`: :data:`~bnnbench.evidence.SEED_Z` Welch standard
errors over seeds, plus for accuracy :data:`~bnnbench.evidence.BINOMIAL_Z` binomial standard
errors of the test set, :math:`\sqrt{p_b(1-p_b)/(n S_b) + p_c(1-p_c)/(n S_c)}`; for −ELBO also
more than :data:`ELBO_REL_MARGIN`): verdict ``worse``, and the cell's ``quality_regression``.
Reported always; it makes the exit code 1 only with ``fail_on_quality`` (quality is a guard of a
performance comparison: a different numerical path moves it on purpose).

**Exit code** (:attr:`ComparisonReport.exit_code`): 1 when a cell is ``slower`` or ``failed``
(or has a quality regression, with ``fail_on_quality``); 2 when no cell could be compared
(nothing in common, or every pair not comparable; :attr:`ComparisonReport.error` says why); 0
otherwise.

JSON (:func:`to_json`, ``schema_version`` :data:`SCHEMA_VERSION`) is
:meth:`ComparisonReport.to_dict`: the fields of these dataclasses; an interval is
``{"estimate", "low", "high"}``; NaN is ``null``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from bnnbench import evidence as ev
from bnnbench.evidence import Interval
from bnnbench.record import CELL_KEY_FIELDS

__all__ = [
    "CALIBRATION_TOLERANCE",
    "DEFAULT_ALPHA",
    "DEFAULT_COMPILE_THRESHOLD",
    "DEFAULT_MEMORY_THRESHOLD",
    "DEFAULT_PREDICT_THRESHOLD",
    "DEFAULT_THRESHOLD",
    "ELBO_REL_MARGIN",
    "GATED_METRICS",
    "OUTPUT_FORMATS",
    "PAIR_FIELDS",
    "SCHEMA_VERSION",
    "CellComparison",
    "CellVerdict",
    "CompareInputError",
    "ComparisonReport",
    "MetricComparison",
    "MetricVerdict",
    "Options",
    "OutputFormat",
    "ResultsSide",
    "SideSummary",
    "compare_benchmarks",
    "compare_results",
    "format_markdown",
    "format_text",
    "metric_verdict",
    "render",
    "to_json",
]

#: Version of the JSON report (``schema_version``); bumped when a field changes meaning or goes.
SCHEMA_VERSION = 1
#: Steady-step threshold: a ratio beyond ``1 + t`` (or below ``1/(1 + t)``). Provisional: the
#: gate's false-alarm measurement sets it.
DEFAULT_THRESHOLD = 0.10
#: Compile-time threshold (compile swings by ~20 % between runs of the same code).
DEFAULT_COMPILE_THRESHOLD = 0.5
#: Posterior-predictive threshold (a one-shot phase, like compile).
DEFAULT_PREDICT_THRESHOLD = 0.5
#: Peak-memory threshold.
DEFAULT_MEMORY_THRESHOLD = 0.10
#: Significance level of every test.
DEFAULT_ALPHA = 0.01
#: Calibrations (matmul FLOP/s) further apart than this are another machine. One 2-core VM
#: measured 148 to 183 GFLOP/s on one day (results/*/calibration-cpu.json and issue 14's
#: 148): a single calibration swings by up to ~24 % on the same machine, so only a larger gap
#: says "another machine" (a different CPU model is caught by the ``cpu`` field anyway).
CALIBRATION_TOLERANCE = 0.35
#: −ELBO/datum rises smaller than this (relative) are never a quality regression.
ELBO_REL_MARGIN = 0.05
#: The settings that pair two results' cells: the cell key without the seed.
PAIR_FIELDS: tuple[str, ...] = tuple(f for f in CELL_KEY_FIELDS if f != "seed")
#: What names a cell whatever its settings.
IDENTITY_FIELDS: tuple[str, ...] = ("model", "backend", "profile", "device")
#: Record fields that name the machine.
MACHINE_FIELDS: tuple[str, ...] = ("cpu", "host", "gpu")
#: Metrics whose verdict sets the cell's (results); a benchmark's one metric always does.
GATED_METRICS: tuple[str, ...] = ("step_ms", "compile_s")

OutputFormat = Literal["text", "markdown", "json"]
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
InputKind = Literal["results", "pytest-benchmark"]
MetricVerdict = Literal[
    "slower", "faster", "worse", "better", "unchanged", "inconclusive", "no data"
]
CellVerdict = Literal[
    "failed", "slower", "inconclusive", "faster", "unchanged", "not comparable", "missing"
]
#: Severity of a cell verdict, worst first (the report lists cells in this order).
CELL_ORDER: tuple[str, ...] = get_args(CellVerdict)
_NOT_RUN = ("unsupported", "unavailable")
_BROKEN = ("failed", "diverged")


class CompareInputError(ValueError):
    """Input that cannot be compared (not a pytest-benchmark file, ...): one line, exit 2."""


@dataclass(frozen=True)
class Options:
    """How to compare.

    Attributes
    ----------
    threshold, compile_threshold, predict_threshold, memory_threshold
        Relative changes that matter: steady step (and benchmarks), compile, predictive, memory.
    alpha
        Significance level of the tests.
    allow_other_machine
        Compare cells of different machines or calibrations anyway (each says so).
    fail_on_quality
        A quality regression makes the exit code 1.
    """

    threshold: float = DEFAULT_THRESHOLD
    compile_threshold: float = DEFAULT_COMPILE_THRESHOLD
    predict_threshold: float = DEFAULT_PREDICT_THRESHOLD
    memory_threshold: float = DEFAULT_MEMORY_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    allow_other_machine: bool = False
    fail_on_quality: bool = False

    def problems(self) -> list[str]:
        """What is wrong with these options (empty when they are valid)."""
        out = []
        for name in ("threshold", "compile_threshold", "predict_threshold", "memory_threshold"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                out.append(f"{name} must be a finite fraction > 0, got {value!r}")
        if not 0.0 < self.alpha < 1.0:
            out.append(f"alpha must be in (0, 1), got {self.alpha!r}")
        return out

    def thresholds(self) -> dict[str, float]:
        return {
            "step_ms": self.threshold,
            "compile_s": self.compile_threshold,
            "predict_s": self.predict_threshold,
            "peak_memory_mb": self.memory_threshold,
            "benchmark": self.threshold,
            "benchmark_compile": self.compile_threshold,
        }


@dataclass(frozen=True)
class ResultsSide:
    """One side of a results comparison, as loaded (:func:`bnnbench.results.load_all`).

    Attributes
    ----------
    label
        How to name it (the folder).
    runs, traces
        The records (``runs.csv`` rows) and their trace points (``run_id, step, wall_s, ...``).
    calibration
        Per device, the folder's measured matmul FLOP/s (``calibration-<device>.json``); empty
        when not calibrated.
    n_test
        Per spec, the test-set size (binomial errors of accuracies); a spec left out is tested
        against seed-to-seed spread only.
    """

    label: str
    runs: pd.DataFrame
    traces: pd.DataFrame
    calibration: Mapping[str, float] = field(default_factory=dict)
    n_test: Mapping[str, int] = field(default_factory=dict)


@dataclass
class SideSummary:
    """One side's value of a metric.

    Attributes
    ----------
    estimate
        ``step_ms``: mean over seeds of the seed's median chunk; per-seed metrics: geometric mean
        over seeds; accuracy and −ELBO: mean over seeds; benchmarks: median of the rounds.
    seeds
        Seeds behind it (benchmarks: 1).
    replicates
        Values the test used: chunks (``step_ms``), seeds, or rounds.
    """

    estimate: float
    seeds: int
    replicates: int


@dataclass
class MetricComparison:
    """Candidate against baseline on one metric.

    Attributes
    ----------
    metric, label, unit
        ``step_ms``, ``compile_s``, ``predict_s``, ``peak_memory_mb``, ``accuracy``,
        ``neg_elbo_per_datum`` or, for a benchmark, ``step_ms``/``draw_ms``/``call_ms``; how
        it is shown; its unit.
    baseline, candidate
        Each side's value (:class:`SideSummary`).
    ratio
        :math:`c/b` with its interval (bounds NaN: no spread to build one from).
    difference
        Quality metrics: :math:`c - b` with the tolerance of the noise as its bounds.
    p_value
        Of the test named in ``test`` (NaN when none was possible).
    threshold
        Relative change that matters (NaN for quality guards).
    gated
        Whether its verdict sets the cell's.
    verdict
        See the module's docstring.
    test, note
        The test, in words; what limits it (one seed, too few replicates for ``alpha``...).
    """

    metric: str
    label: str
    unit: str
    baseline: SideSummary
    candidate: SideSummary
    ratio: Interval
    difference: Interval | None
    p_value: float
    threshold: float
    gated: bool
    verdict: MetricVerdict
    test: str
    note: str = ""


@dataclass
class CellComparison:
    """One cell of both sides.

    Attributes
    ----------
    name
        How it is shown: ``model backend profile device`` (with its settings when needed), or
        the benchmark's name.
    key
        The pairing fields and their values (:data:`PAIR_FIELDS`; benchmarks: ``name``,
        ``group``, ``device``); for a ``not comparable`` pair of different settings, the
        baseline's.
    verdict
        See the module's docstring; ``missing`` says in ``side`` which side has it.
    reason
        The verdict in words (why not comparable, what is slower, what to re-run).
    side
        ``both``, or for ``missing`` the side that has it: ``baseline only``/``candidate only``.
    seeds_baseline, seeds_candidate
        The seeds of each side (benchmarks: empty).
    metrics
        Every metric compared.
    quality_regression
        Whether a quality guard is ``worse``.
    notes
        Anything else worth knowing (busy host, failures on the baseline, another machine
        allowed).
    """

    name: str
    key: dict[str, Any]
    verdict: CellVerdict
    reason: str
    side: str = "both"
    seeds_baseline: list[int] = field(default_factory=list)
    seeds_candidate: list[int] = field(default_factory=list)
    metrics: list[MetricComparison] = field(default_factory=list)
    quality_regression: bool = False
    notes: list[str] = field(default_factory=list)

    def metric(self, name: str) -> MetricComparison | None:
        return next((m for m in self.metrics if m.metric == name), None)


@dataclass
class ComparisonReport:
    """The comparison of two runs.

    Attributes
    ----------
    schema_version
        :data:`SCHEMA_VERSION`.
    kind
        ``results`` (two results folders) or ``pytest-benchmark`` (two JSON files).
    baseline, candidate
        Their labels (paths).
    thresholds
        Per metric, the relative change that matters (``benchmark`` for benchmark files).
    alpha, allow_other_machine, fail_on_quality
        The options used.
    cells
        Every cell, worst verdict first.
    counts
        Cells per verdict.
    tests
        The tests behind the verdicts, in words.
    exit_code
        0, 1 (a regression) or 2 (nothing could be compared).
    error
        Why the exit code is 2 (one line), else empty.
    """

    schema_version: int
    kind: InputKind
    baseline: str
    candidate: str
    thresholds: dict[str, float]
    alpha: float
    allow_other_machine: bool
    fail_on_quality: bool
    cells: list[CellComparison]
    counts: dict[str, int]
    tests: list[str]
    exit_code: int
    error: str = ""

    @property
    def regressions(self) -> list[CellComparison]:
        """The cells that make the exit code 1."""
        return [
            c
            for c in self.cells
            if c.verdict in ("slower", "failed") or (self.fail_on_quality and c.quality_regression)
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (NaN and infinities as ``None``)."""
        return _clean(asdict(self))


# ================================================================================ helpers
def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _norm(value: Any) -> Any:
    """A setting's value as a comparable key (1.0 == 1, NaN == None, 0.010 == 0.01)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else float(f"{value:.12g}")
    return value


def _text(value: Any) -> str:
    """A machine field as text ('' for NaN or None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _band(threshold: float) -> tuple[float, float]:
    return 1.0 / (1.0 + threshold), 1.0 + threshold


def _ratio_text(i: Interval) -> str:
    if not math.isfinite(i.estimate):
        return "–"
    if math.isfinite(i.low) and math.isfinite(i.high):
        return f"{i.estimate:.2f}× [{i.low:.2f}, {i.high:.2f}]"
    return f"{i.estimate:.2f}×"


def _p_text(p: float) -> str:
    if not math.isfinite(p):
        return "–"
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def _p_phrase(p: float) -> str:
    text = _p_text(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def _value_text(x: float) -> str:
    if not math.isfinite(x):
        return "?"
    return f"{x:.4g}"


def metric_verdict(
    ratio: Interval,
    p_value: float,
    threshold: float,
    alpha: float,
    words: tuple[MetricVerdict, MetricVerdict] = ("slower", "faster"),
) -> MetricVerdict:
    """The verdict of a ratio :math:`r = c/b` (see the module's docstring): ``words[0]``
    (``slower``) when its interval lies above 1, :math:`p < \\alpha` and :math:`r > 1 + t`;
    ``words[1]`` (``faster``) when below 1, :math:`p < \\alpha` and :math:`r < 1/(1+t)`;
    ``unchanged`` when the interval lies within :math:`[1/(1+t), 1+t]`; else ``inconclusive``
    (also without an interval). ``no data`` without an estimate."""
    if not math.isfinite(ratio.estimate):
        return "no data"
    if not (math.isfinite(ratio.low) and math.isfinite(ratio.high)):
        return "inconclusive"
    low, high = _band(threshold)
    significant = math.isfinite(p_value) and p_value < alpha
    if ratio.low > 1.0 and significant and ratio.estimate > high:
        return words[0]
    if ratio.high < 1.0 and significant and ratio.estimate < low:
        return words[1]
    if low <= ratio.low and ratio.high <= high:
        return "unchanged"
    return "inconclusive"


def _explain(m: MetricComparison, alpha: float) -> str:
    """Why a metric got its verdict, in a few words."""
    head = f"{m.label} {_ratio_text(m.ratio)}"
    if m.difference is not None:  # a quality guard
        b, c = m.baseline.estimate, m.candidate.estimate
        tol = m.difference.high - m.difference.estimate
        return f"{m.label} {_value_text(b)} → {_value_text(c)} (noise ±{tol:.3g})"
    low, high = _band(m.threshold)
    if m.verdict in ("slower", "worse"):
        return f"{head} {m.verdict} ({_p_phrase(m.p_value)}, beyond +{_pct(m.threshold)})"
    if m.verdict in ("faster", "better"):
        return f"{head} {m.verdict} ({_p_phrase(m.p_value)})"
    if m.verdict == "unchanged":
        return f"{head} within ±{_pct(m.threshold)}"
    if m.verdict == "no data":
        return f"{m.label}: no data"
    if not (math.isfinite(m.ratio.low) and math.isfinite(m.ratio.high)):
        return f"{head}: one replicate on a side, no spread to test: add seeds"
    significant = math.isfinite(m.p_value) and m.p_value < alpha
    band = f"±{_pct(m.threshold)}"
    if low <= m.ratio.estimate <= high:
        why = f"the interval reaches beyond {band}"
        if not significant:
            why += f" ({_p_phrase(m.p_value)})"
    elif not significant:
        why = f"beyond {band} but not significant ({_p_phrase(m.p_value)} ≥ {alpha:g})"
    else:
        why = f"beyond {band} but the interval contains 1"
    return f"{head}: {why}"


# ================================================================================ results
def _pair_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(_norm(row.get(f)) for f in PAIR_FIELDS)


def _cells(runs: pd.DataFrame) -> dict[tuple[Any, ...], pd.DataFrame]:
    if runs.empty:
        return {}
    groups: dict[tuple[Any, ...], list[int]] = {}
    for position, row in enumerate(runs.to_dict(orient="records")):
        groups.setdefault(_pair_key(row), []).append(position)
    return {key: runs.iloc[positions] for key, positions in groups.items()}


def _seeds(rows: pd.DataFrame) -> list[int]:
    return sorted({int(_num(s)) for s in rows["seed"] if math.isfinite(_num(s))})


def _cell_name(key: tuple[Any, ...], ambiguous: bool) -> str:
    values = dict(zip(PAIR_FIELDS, key, strict=True))
    name = " ".join(str(values[f]) for f in IDENTITY_FIELDS)
    if ambiguous:
        name += (
            f" ({values['steps']} steps, batch {values['batch_size']}, "
            f"lr {values['learning_rate']}, init {values['init_scale']}, "
            f"every {values['trace_every']}, {values['predict_draws']} draws)"
        )
    return name


def _machine_differences(
    b_rows: pd.DataFrame, c_rows: pd.DataFrame, device: str, b: ResultsSide, c: ResultsSide
) -> tuple[list[str], list[str]]:
    """What says the two sides ran on different machines, and notes (calibration unknown)."""
    diffs, notes = [], []
    for f in MACHINE_FIELDS:
        bv = sorted({_text(v) for v in b_rows.get(f, pd.Series(dtype=object))})
        cv = sorted({_text(v) for v in c_rows.get(f, pd.Series(dtype=object))})
        if bv != cv:
            diffs.append(f"{f} {' / '.join(map(repr, bv))} vs {' / '.join(map(repr, cv))}")
    b_cal, c_cal = b.calibration.get(device), c.calibration.get(device)
    if b_cal and c_cal and math.isfinite(b_cal) and math.isfinite(c_cal):
        rel = c_cal / b_cal - 1.0
        if abs(rel) > CALIBRATION_TOLERANCE:
            diffs.append(
                f"calibration matmul {b_cal / 1e9:.1f} vs {c_cal / 1e9:.1f} GFLOP/s "
                f"({100 * rel:+.0f} %, more than {_pct(CALIBRATION_TOLERANCE)})"
            )
    elif bool(b_cal) != bool(c_cal):
        notes.append(f"calibration-{device}.json on one side only: calibration not compared")
    return diffs, notes


def _identical(b_ok: pd.DataFrame, c_ok: pd.DataFrame) -> bool:
    """Whether both sides hold the same measurements (same records, same times)."""
    cols = [
        c
        for c in ("run_id", "seed", "started_at", "step_ms", "compile_s", "predict_s")
        if c in b_ok and c in c_ok
    ]
    if len(b_ok) != len(c_ok) or "started_at" not in cols or b_ok.empty:
        return False

    def rows(df: pd.DataFrame) -> list[tuple[Any, ...]]:
        return sorted(
            (tuple(None if pd.isna(v) else _norm(v) for v in r) for r in df[cols].values),
            key=str,
        )

    return rows(b_ok) == rows(c_ok)


def _chunks_of(traces: pd.DataFrame, run_id: str) -> pd.DataFrame | None:
    if traces is None or traces.empty or "run_id" not in traces:
        return None
    points = traces[traces["run_id"] == run_id]
    return ev.chunk_step_times(points) if len(points) else None


def _timings(rows: pd.DataFrame, traces: pd.DataFrame) -> list[ev.SeedTiming]:
    out = []
    for record in rows.to_dict(orient="records"):
        t = ev.seed_timing(record, _chunks_of(traces, str(record.get("run_id", ""))))
        steady = tuple(x for x in t.chunk_step_ms if math.isfinite(x) and x > 0)
        if steady:
            out.append(
                ev.SeedTiming(
                    t.run_id, t.seed, t.transfer_s, t.compile_s, t.warmup_s, t.predict_s, steady
                )
            )
    return out


def _no_data(metric: str, label: str, unit: str, threshold: float, gated: bool) -> MetricComparison:
    return MetricComparison(
        metric,
        label,
        unit,
        SideSummary(math.nan, 0, 0),
        SideSummary(math.nan, 0, 0),
        Interval(math.nan, math.nan, math.nan),
        None,
        math.nan,
        threshold,
        gated,
        "no data",
        "",
        "not measured on a side",
    )


def _same(
    metric: str, label: str, unit: str, value: float, n: int, gated: bool, threshold: float
) -> MetricComparison:
    """A metric of two sides that hold the same measurements: ratio exactly 1."""
    return MetricComparison(
        metric,
        label,
        unit,
        SideSummary(value, n, n),
        SideSummary(value, n, n),
        Interval(1.0, 1.0, 1.0) if math.isfinite(value) else Interval(math.nan, math.nan, math.nan),
        None,
        1.0 if math.isfinite(value) else math.nan,
        threshold,
        gated,
        "unchanged" if math.isfinite(value) else "no data",
        "the same measurements on both sides",
        "",
    )


def _step_metric(
    key: tuple[Any, ...],
    b_ok: pd.DataFrame,
    c_ok: pd.DataFrame,
    b: ResultsSide,
    c: ResultsSide,
    options: Options,
) -> MetricComparison:
    label, unit, t = "steady step", "ms", options.threshold
    tb, tc = _timings(b_ok, b.traces), _timings(c_ok, c.traces)
    if not tb or not tc:
        return _no_data("step_ms", label, unit, t, True)
    mb = ev.bootstrap_cost_model(tb, ev.rng_for(ev.BOOTSTRAP_SEED, *key, "baseline"))
    mc = ev.bootstrap_cost_model(tc, ev.rng_for(ev.BOOTSTRAP_SEED, *key, "candidate"))
    comp = ev.compare_replicates(mc.step_ms, mc.step_ms_boot, mb.step_ms, mb.step_ms_boot)
    ratio = comp.ratio or Interval(math.nan, math.nan, math.nan)
    pooled_b = np.concatenate([t_.chunk_step_ms for t_ in tb])
    pooled_c = np.concatenate([t_.chunk_step_ms for t_ in tc])
    p = ev.mann_whitney_p(pooled_c, pooled_b)
    notes = []
    if min(len(tb), len(tc)) == 1:
        notes.append("one seed on a side: the interval sees chunk-to-chunk noise only")
    else:  # seeds are the replicates: never surer than Welch on the per-seed medians
        seed_ratio, seed_p = ev.welch_log_ratio(
            [t_.step_ms for t_ in tc], [t_.step_ms for t_ in tb]
        )
        if math.isfinite(seed_ratio.low) and math.isfinite(ratio.low):
            ratio = Interval(
                ratio.estimate, min(ratio.low, seed_ratio.low), max(ratio.high, seed_ratio.high)
            )
        if math.isfinite(seed_p) and math.isfinite(p):
            p = max(p, seed_p)
    floor = ev.min_mann_whitney_p(len(pooled_b), len(pooled_c))
    if floor >= options.alpha:
        notes.append(
            f"{len(pooled_b)} vs {len(pooled_c)} chunks: Mann-Whitney cannot go below "
            f"p = {floor:.2g} ≥ alpha {options.alpha:g}"
        )
    verdict = metric_verdict(ratio, p, t, options.alpha)
    return MetricComparison(
        "step_ms",
        label,
        unit,
        SideSummary(mb.step_ms, mb.n_seeds, mb.n_chunks),
        SideSummary(mc.step_ms, mc.n_seeds, mc.n_chunks),
        ratio,
        None,
        p,
        t,
        True,
        verdict,
        "ratio of means over seeds of median chunk step times; two-level bootstrap interval "
        "and two-sided Mann-Whitney U on the pooled chunks, with two or more seeds a side "
        "widened to Welch's t on the per-seed medians",
        "; ".join(notes),
    )


def _per_seed_metric(
    metric: str,
    label: str,
    unit: str,
    b_values: Sequence[float],
    c_values: Sequence[float],
    threshold: float,
    gated: bool,
    alpha: float,
    words: tuple[MetricVerdict, MetricVerdict] = ("slower", "faster"),
) -> MetricComparison:
    bv = np.asarray([_num(v) for v in b_values], np.float64)
    cv = np.asarray([_num(v) for v in c_values], np.float64)
    bv, cv = bv[np.isfinite(bv) & (bv > 0)], cv[np.isfinite(cv) & (cv > 0)]
    if bv.size == 0 or cv.size == 0:
        return _no_data(metric, label, unit, threshold, gated)
    ratio, p = ev.welch_log_ratio(cv, bv)
    verdict = metric_verdict(ratio, p, threshold, alpha, words)
    note = ""
    if min(bv.size, cv.size) < 2:
        note = f"one replicate ({bv.size} vs {cv.size} seeds): no spread, no test; add seeds"
    return MetricComparison(
        metric,
        label,
        unit,
        SideSummary(float(np.exp(np.log(bv).mean())), int(bv.size), int(bv.size)),
        SideSummary(float(np.exp(np.log(cv).mean())), int(cv.size), int(cv.size)),
        ratio,
        None,
        p,
        threshold,
        gated,
        verdict,
        "ratio of geometric means over seeds; Welch t interval and test on the logarithms",
        note,
    )


def _quality_metric(
    metric: str,
    label: str,
    b_values: Sequence[float],
    c_values: Sequence[float],
    *,
    higher_is_better: bool,
    n_test: int | None = None,
) -> MetricComparison:
    bv = np.asarray([_num(v) for v in b_values], np.float64)
    cv = np.asarray([_num(v) for v in c_values], np.float64)
    bv, cv = bv[np.isfinite(bv)], cv[np.isfinite(cv)]
    if bv.size == 0 or cv.size == 0:
        return _no_data(metric, label, "", math.nan, False)
    se, name, margin = 0.0, "", 0.0
    if higher_is_better and n_test:  # an accuracy: the test set's binomial error
        pb, pc = float(bv.mean()), float(cv.mean())
        se = math.sqrt(
            ev.binomial_se(pb, n_test) ** 2 / bv.size + ev.binomial_se(pc, n_test) ** 2 / cv.size
        )
        name = f"binomial (n = {n_test:,})"
    if not higher_is_better:
        margin = ELBO_REL_MARGIN
    comp = ev.compare_per_seed(cv, bv, sampling_se=se, sampling_name=name, rel_margin=margin)
    gap = comp.difference.estimate
    worse = (gap < 0) if higher_is_better else (gap > 0)
    verdict: MetricVerdict = "unchanged" if comp.tie else ("worse" if worse else "better")
    b_mean, c_mean = float(bv.mean()), float(cv.mean())
    note = "" if n_test or not higher_is_better else "test-set size unknown: seed spread only"
    return MetricComparison(
        metric,
        label,
        "",
        SideSummary(b_mean, int(bv.size), int(bv.size)),
        SideSummary(c_mean, int(cv.size), int(cv.size)),
        Interval(c_mean / b_mean if b_mean else math.nan, math.nan, math.nan),
        comp.difference,
        math.nan,
        math.nan,
        False,
        verdict,
        comp.test,
        note,
    )


def _cell_verdict(
    metrics: Sequence[MetricComparison], gated: Iterable[str]
) -> tuple[CellVerdict | None, list[MetricComparison]]:
    """The worst verdict of the gated metrics that have data, and the metrics that set it."""
    rank = {"slower": 0, "inconclusive": 1, "faster": 2, "unchanged": 3}
    considered = [m for m in metrics if m.metric in gated and m.verdict in rank]
    if not considered:
        return None, []
    worst = min(considered, key=lambda m: rank[m.verdict]).verdict
    return worst, [m for m in considered if m.verdict == worst]  # type: ignore[return-value]


def _reason(
    verdict: CellVerdict,
    deciding: Sequence[MetricComparison],
    metrics: Sequence[MetricComparison],
    options: Options,
) -> str:
    if deciding and deciding[0].test == "the same measurements on both sides":
        parts = ["the same measurements on both sides"]
    elif verdict == "unchanged":
        parts = [
            "within the thresholds: " + "; ".join(_explain(m, options.alpha) for m in deciding)
        ]
    elif verdict == "inconclusive":
        parts = ["re-run: " + "; ".join(_explain(m, options.alpha) for m in deciding)]
    else:
        parts = ["; ".join(_explain(m, options.alpha) for m in deciding)]
    informative = [
        m
        for m in metrics
        if not m.gated and m.difference is None and m.verdict not in ("unchanged", "no data")
    ]
    if informative:
        parts.append("not gated: " + "; ".join(_explain(m, options.alpha) for m in informative))
    worse = [m for m in metrics if m.difference is not None and m.verdict == "worse"]
    if worse:
        parts.append("quality regression: " + "; ".join(_explain(m, options.alpha) for m in worse))
    return "; ".join(parts)


def _errors(rows: pd.DataFrame) -> str:
    errs = sorted({_text(e) for e in rows.get("error", pd.Series(dtype=object)) if _text(e)})
    return f" ({'; '.join(errs)[:200]})" if errs else ""


def _compare_cell(
    key: tuple[Any, ...],
    name: str,
    b_rows: pd.DataFrame,
    c_rows: pd.DataFrame,
    b: ResultsSide,
    c: ResultsSide,
    options: Options,
) -> CellComparison:
    values = dict(zip(PAIR_FIELDS, key, strict=True))
    device, model = str(values["device"]), str(values["model"])
    cell = CellComparison(
        name,
        values,
        "not comparable",
        "",
        seeds_baseline=_seeds(b_rows),
        seeds_candidate=_seeds(c_rows),
    )
    diffs, notes = _machine_differences(b_rows, c_rows, device, b, c)
    cell.notes += notes
    if diffs:
        if not options.allow_other_machine:
            cell.reason = (
                "another machine: " + "; ".join(diffs) + " (--allow-other-machine compares anyway)"
            )
            return cell
        cell.notes.append(
            "another machine, compared anyway (--allow-other-machine): " + "; ".join(diffs)
        )
    for side, rows in (("baseline", b_rows), ("candidate", c_rows)):
        not_run = rows[rows["status"].isin(_NOT_RUN)]
        if len(not_run) == len(rows):
            cell.reason = f"{side}: {not_run['status'].iloc[0]}{_errors(not_run)}"
            return cell
    b_ok, c_ok = b_rows[b_rows["status"] == "ok"], c_rows[c_rows["status"] == "ok"]
    b_bad = set(_seeds(b_rows[b_rows["status"].isin(_BROKEN)]))
    c_broken = c_rows[c_rows["status"].isin(_BROKEN)]
    new_failures = sorted(set(_seeds(c_broken)) - b_bad)
    if b_bad:
        cell.notes.append(
            f"baseline seed(s) {', '.join(map(str, sorted(b_bad)))} failed or diverged"
            + _errors(b_rows[b_rows["status"].isin(_BROKEN)])
        )
    for side, rows in (("baseline", b_ok), ("candidate", c_ok)):
        busy = rows.get("host_busy", pd.Series(dtype=bool)).fillna(False).astype(bool)
        if busy.any():
            cell.notes.append(
                f"{side}: {int(busy.sum())} seed(s) timed on a busy machine (host_busy): "
                "timings not clean"
            )
    if b_ok.empty or c_ok.empty:
        if new_failures:
            cell.verdict = "failed"
            cell.reason = (
                f"candidate seed(s) {', '.join(map(str, new_failures))} "
                f"{'/'.join(sorted(set(c_broken['status'])))}{_errors(c_broken)}"
            )
        else:
            empty = "baseline" if b_ok.empty else "candidate"
            cell.reason = (
                f"no ok run on the {empty} side{_errors(b_rows if b_ok.empty else c_rows)}"
            )
        return cell

    thresholds = options.thresholds()
    memory_field = "peak_device_mb" if device == "gpu" else "peak_rss_mb"
    if _identical(b_ok, c_ok):
        n = len(b_ok)
        timings = _timings(b_ok, b.traces)
        metrics = [
            _same(
                "step_ms",
                "steady step",
                "ms",
                float(np.mean([t_.step_ms for t_ in timings])) if timings else math.nan,
                n,
                True,
                thresholds["step_ms"],
            ),
            _same(
                "compile_s",
                "compile",
                "s",
                _num(b_ok["compile_s"].mean()),
                n,
                True,
                thresholds["compile_s"],
            ),
            _same(
                "predict_s",
                "predictive",
                "s",
                _num(b_ok["predict_s"].mean()),
                n,
                False,
                thresholds["predict_s"],
            ),
            _same(
                "peak_memory_mb",
                "peak memory",
                "MiB",
                _num(b_ok.get(memory_field, pd.Series([math.nan])).mean()),
                n,
                False,
                thresholds["peak_memory_mb"],
            ),
        ]
    else:
        metrics = [
            _step_metric(key, b_ok, c_ok, b, c, options),
            _per_seed_metric(
                "compile_s",
                "compile",
                "s",
                b_ok["compile_s"],
                c_ok["compile_s"],
                thresholds["compile_s"],
                True,
                options.alpha,
            ),
            _per_seed_metric(
                "predict_s",
                "predictive",
                "s",
                b_ok["predict_s"],
                c_ok["predict_s"],
                thresholds["predict_s"],
                False,
                options.alpha,
            ),
            _per_seed_metric(
                "peak_memory_mb",
                "peak memory",
                "MiB",
                b_ok.get(memory_field, pd.Series(dtype=float)),
                c_ok.get(memory_field, pd.Series(dtype=float)),
                thresholds["peak_memory_mb"],
                False,
                options.alpha,
                ("worse", "better"),
            ),
        ]
    n_test = b.n_test.get(model) or c.n_test.get(model)
    metrics += [
        _quality_metric(
            "accuracy",
            "accuracy",
            b_ok.get("accuracy", []),
            c_ok.get("accuracy", []),
            higher_is_better=True,
            n_test=n_test,
        ),
        _quality_metric(
            "neg_elbo_per_datum",
            "−ELBO/datum",
            b_ok.get("final_neg_elbo_per_datum", []),
            c_ok.get("final_neg_elbo_per_datum", []),
            higher_is_better=False,
        ),
    ]
    cell.metrics = metrics
    cell.quality_regression = any(
        m.difference is not None and m.verdict == "worse" for m in metrics
    )
    verdict, deciding = _cell_verdict(metrics, GATED_METRICS)
    if new_failures:
        cell.verdict = "failed"
        cell.reason = (
            f"candidate seed(s) {', '.join(map(str, new_failures))} "
            f"{'/'.join(sorted(set(c_broken['status'])))}{_errors(c_broken)}; the others: "
            + (_reason(verdict, deciding, metrics, options) if verdict else "no timing data")
        )
    elif verdict is None:
        cell.reason = "no timing data on a side (no step, compile)"
    else:
        cell.verdict = verdict
        cell.reason = _reason(verdict, deciding, metrics, options)
    return cell


def _settings_diff(bk: tuple[Any, ...], ck: tuple[Any, ...]) -> str:
    parts = [
        f"{f} {bv} vs {cv}"
        for f, bv, cv in zip(PAIR_FIELDS, bk, ck, strict=True)
        if f not in IDENTITY_FIELDS and bv != cv
    ]
    return ", ".join(parts)


def compare_results(
    baseline: ResultsSide, candidate: ResultsSide, options: Options | None = None
) -> ComparisonReport:
    """Compare two results folders' records cell by cell (see the module's docstring).

    Parameters
    ----------
    baseline, candidate
        The two sides (:class:`ResultsSide`).
    options
        Thresholds, ``alpha`` and the flags (:class:`Options`).

    Returns
    -------
    ComparisonReport
        Every cell of either side, with its verdict; ``exit_code`` 2 (and ``error``) when no
        cell could be compared.
    """
    options = options or Options()
    problems = options.problems()
    if problems:
        raise CompareInputError("; ".join(problems))
    b_cells, c_cells = _cells(baseline.runs), _cells(candidate.runs)
    identities = [k[:4] for k in {*b_cells, *c_cells}]
    ambiguous = {i for i in identities if identities.count(i) > 1}
    cells: list[CellComparison] = []
    for key in sorted(set(b_cells) & set(c_cells), key=str):
        name = _cell_name(key, key[:4] in ambiguous)
        cells.append(
            _compare_cell(key, name, b_cells[key], c_cells[key], baseline, candidate, options)
        )
    b_only = sorted(set(b_cells) - set(c_cells), key=str)
    c_only = sorted(set(c_cells) - set(b_cells), key=str)
    for key in b_only:
        others = [k for k in c_only if k[:4] == key[:4]]
        mine = [k for k in b_only if k[:4] == key[:4]]
        values = dict(zip(PAIR_FIELDS, key, strict=True))
        name = _cell_name(key, key[:4] in ambiguous)
        if len(others) == 1 and len(mine) == 1:
            c_only.remove(others[0])
            cells.append(
                CellComparison(
                    _cell_name(key, False),
                    values,
                    "not comparable",
                    f"settings differ: {_settings_diff(key, others[0])}",
                    seeds_baseline=_seeds(b_cells[key]),
                    seeds_candidate=_seeds(c_cells[others[0]]),
                )
            )
            continue
        reason = "only in the baseline"
        if others:
            reason += f" (the candidate has it with other settings: {len(others)} configurations)"
        cells.append(
            CellComparison(
                name,
                values,
                "missing",
                reason,
                "baseline only",
                seeds_baseline=_seeds(b_cells[key]),
            )
        )
    for key in c_only:
        values = dict(zip(PAIR_FIELDS, key, strict=True))
        name = _cell_name(key, key[:4] in ambiguous)
        others = [k for k in b_only if k[:4] == key[:4]]
        reason = "only in the candidate"
        if others:
            reason += f" (the baseline has it with other settings: {len(others)} configurations)"
        cells.append(
            CellComparison(
                name,
                values,
                "missing",
                reason,
                "candidate only",
                seeds_candidate=_seeds(c_cells[key]),
            )
        )
    tests = [
        "steady step (step_ms): per seed the median of the timed chunks' ms per step (the "
        "first chunk left out with three or more); a side's value is the mean over seeds; "
        f"{round(100 * ev.CONFIDENCE_LEVEL)} % interval of the ratio: bootstrap "
        f"({ev.BOOTSTRAP_REPLICATES} replicates, fixed seed) resampling seeds, then each seed's "
        "chunks, each side independently; p: two-sided Mann-Whitney U on the pooled chunks; "
        "with two or more seeds on each side, the interval is widened to contain Welch's t "
        "interval on the logarithms of the per-seed medians and p is the larger of the two "
        "tests' (a bootstrap over three seeds is too narrow, and chunks of one seed are not "
        "independent replicates of the run)",
        "compile, predictive, peak memory: one value per seed; ratio of geometric means with "
        "Welch's t interval and test on the logarithms; one seed on a side: no spread, "
        "inconclusive",
        "accuracy: worse when the mean over seeds drops by more than "
        f"{ev.SEED_Z:g} Welch SEs over seeds + {ev.BINOMIAL_Z} binomial SEs of the test set; "
        f"−ELBO/datum: worse when it rises by more than {ev.SEED_Z:g} Welch SEs and "
        f"{_pct(ELBO_REL_MARGIN)}",
    ]
    return _report("results", baseline.label, candidate.label, cells, options, tests)


# ================================================================================ benchmarks
def _benchmarks(doc: Any, label: str) -> dict[str, dict[str, Any]]:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("benchmarks"), list):
        raise CompareInputError(
            f"{label} is not a pytest-benchmark JSON file (no 'benchmarks' list)"
        )
    out: dict[str, dict[str, Any]] = {}
    for i, bench in enumerate(doc["benchmarks"]):
        name = bench.get("name") if isinstance(bench, Mapping) else None
        stats = bench.get("stats") if isinstance(bench, Mapping) else None
        if not isinstance(name, str) or not isinstance(stats, Mapping):
            raise CompareInputError(f"{label}: benchmark {i + 1} has no 'name' or 'stats'")
        for s in ("median", "rounds"):
            if not math.isfinite(_num(stats.get(s))):
                raise CompareInputError(f"{label}: benchmark {name!r} has no stats.{s}")
        if name in out:
            raise CompareInputError(f"{label}: benchmark {name!r} appears twice")
        out[name] = dict(bench)
    if not out:
        raise CompareInputError(f"{label} holds no benchmarks")
    return out


def _cpu_brand(doc: Mapping[str, Any]) -> str:
    machine = doc.get("machine_info") or {}
    cpu = machine.get("cpu") if isinstance(machine, Mapping) else None
    return _text(cpu.get("brand_raw")) if isinstance(cpu, Mapping) else ""


def _per_call(extra: Mapping[str, Any]) -> tuple[str, str, float, str]:
    """``(metric, label, scale, per)``: seconds per call to ms per step/draw, ms per compile
    (``extra_info["kind"] == "compile"``: judged against the compile threshold), or ms per
    call."""
    if extra.get("kind") == "compile":
        return "compile_ms", "ms per compile", 1000.0, ""
    for key, metric, per in (
        ("steps_per_call", "step_ms", "step"),
        ("draws_per_call", "draw_ms", "draw"),
    ):
        n = _num(extra.get(key))
        if math.isfinite(n) and n > 0:
            return metric, f"ms per {per}", 1000.0 / n, key
    return "call_ms", "ms per call", 1000.0, ""


def _summary(stats: Mapping[str, Any]) -> ev.RoundSummary:
    return ev.RoundSummary(
        int(_num(stats.get("rounds"))),
        _num(stats.get("min")),
        _num(stats.get("q1")),
        _num(stats.get("median")),
        _num(stats.get("q3")),
        _num(stats.get("max")),
    )


def _data(stats: Mapping[str, Any]) -> np.ndarray | None:
    data = stats.get("data")
    if not isinstance(data, list) or len(data) < 2:
        return None
    arr = np.asarray([_num(x) for x in data], np.float64)
    arr = arr[np.isfinite(arr)]
    return arr if arr.size >= 2 else None


def _benchmark_metric(
    name: str, bb: Mapping[str, Any], cb: Mapping[str, Any], options: Options
) -> MetricComparison:
    metric, label, scale, _ = _per_call(bb.get("extra_info") or {})
    bs, cs = bb["stats"], cb["stats"]
    b_data, c_data = _data(bs), _data(cs)
    t = options.compile_threshold if metric == "compile_ms" else options.threshold
    b_med, c_med = _num(bs.get("median")) * scale, _num(cs.get("median")) * scale
    if b_data is not None and c_data is not None:
        ratio = ev.bootstrap_median_ratio(
            c_data,
            b_data,
            ev.rng_for(ev.BOOTSTRAP_SEED, name, "candidate"),
            ev.rng_for(ev.BOOTSTRAP_SEED, name, "baseline"),
        )
        p = ev.mann_whitney_p(c_data, b_data)
        test = (
            "ratio of medians of the rounds; bootstrap interval over rounds; two-sided "
            "Mann-Whitney U on the rounds"
        )
        note = ""
        floor = ev.min_mann_whitney_p(b_data.size, c_data.size)
        if floor >= options.alpha:
            note = f"{b_data.size} vs {c_data.size} rounds: p cannot go below {floor:.2g}"
        nb, nc = int(b_data.size), int(c_data.size)
    else:
        sb, sc = _summary(bs), _summary(cs)
        (bl, bh), (cl, ch) = ev.median_bounds_from_summary(sb), ev.median_bounds_from_summary(sc)
        bounds_ok = all(math.isfinite(x) and x > 0 for x in (bl, bh, cl, ch))
        ratio = Interval(
            c_med / b_med if b_med else math.nan,
            cl / bh if bounds_ok else math.nan,
            ch / bl if bounds_ok else math.nan,
        )
        p = ev.mann_whitney_p_bound_from_summary(sc, sb)
        test = (
            "summary statistics only (conservative): interval from order-statistic bounds of "
            "each median (quartiles or min/max), p an upper bound of Mann-Whitney's from the "
            "pairs the quartiles prove ordered"
        )
        note = "rounds not saved: re-run with --benchmark-save-data for a sharper test"
        nb, nc = sb.n, sc.n
    verdict = metric_verdict(ratio, p, t, options.alpha)
    return MetricComparison(
        metric,
        label,
        "ms",
        SideSummary(b_med, 1, nb),
        SideSummary(c_med, 1, nc),
        ratio,
        None,
        p,
        t,
        True,
        verdict,
        test,
        note,
    )


def compare_benchmarks(
    baseline: Mapping[str, Any],
    candidate: Mapping[str, Any],
    options: Options | None = None,
    labels: tuple[str, str] = ("baseline", "candidate"),
) -> ComparisonReport:
    """Compare two pytest-benchmark JSON documents benchmark by benchmark.

    Parameters
    ----------
    baseline, candidate
        The parsed files (``machine_info``, ``commit_info``, ``benchmarks[]`` with ``name``,
        ``stats`` {``min``, ``q1``, ``median``, ``q3``, ``max``, ``rounds``, ``data`` when saved}
        and ``extra_info`` {``steps_per_call`` or ``draws_per_call``, ``device``}).
    options
        Thresholds and flags (:class:`Options`; ``threshold`` applies to every benchmark).
    labels
        How to name the two sides.

    Raises
    ------
    CompareInputError
        A document that is not a pytest-benchmark file, or holds no benchmarks.
    """
    options = options or Options()
    problems = options.problems()
    if problems:
        raise CompareInputError("; ".join(problems))
    b_bench, c_bench = _benchmarks(baseline, labels[0]), _benchmarks(candidate, labels[1])
    b_cpu, c_cpu = _cpu_brand(baseline), _cpu_brand(candidate)
    same_run = baseline.get("datetime") is not None and baseline.get("datetime") == candidate.get(
        "datetime"
    )
    cells: list[CellComparison] = []
    for name in sorted(set(b_bench) | set(c_bench)):
        bb, cb = b_bench.get(name), c_bench.get(name)
        ref = bb or cb or {}
        extra = ref.get("extra_info") or {}
        key = {"name": name, "group": ref.get("group"), "device": extra.get("device")}
        if bb is None or cb is None:
            side = "baseline only" if cb is None else "candidate only"
            where = "baseline" if cb is None else "candidate"
            cells.append(CellComparison(name, key, "missing", f"only in the {where}", side))
            continue
        cell = CellComparison(name, key, "not comparable", "")
        if b_cpu != c_cpu:
            diff = f"cpu {b_cpu or '?'!r} vs {c_cpu or '?'!r}"
            if not options.allow_other_machine:
                cell.reason = f"another machine: {diff} (--allow-other-machine compares anyway)"
                cells.append(cell)
                continue
            cell.notes.append(f"another machine, compared anyway (--allow-other-machine): {diff}")
        b_extra, c_extra = bb.get("extra_info") or {}, cb.get("extra_info") or {}
        settings = [
            f"{k} {b_extra.get(k)!r} vs {c_extra.get(k)!r}"
            for k in ("device", "steps_per_call", "draws_per_call")
            if _norm(b_extra.get(k)) != _norm(c_extra.get(k))
        ]
        if settings:
            cell.reason = "settings differ: " + ", ".join(settings)
            cells.append(cell)
            continue
        if same_run and bb.get("stats") == cb.get("stats"):
            metric, label, scale, _ = _per_call(b_extra)
            m = _same(
                metric,
                label,
                "ms",
                _num(bb["stats"].get("median")) * scale,
                1,
                True,
                options.compile_threshold if metric == "compile_ms" else options.threshold,
            )
        else:
            m = _benchmark_metric(name, bb, cb, options)
        cell.metrics = [m]
        if m.verdict == "no data":
            cell.reason = "no timing data"
        else:
            cell.verdict = m.verdict  # type: ignore[assignment]
            cell.reason = _reason(cell.verdict, [m], [m], options)
        cells.append(cell)
    tests = [
        "per benchmark: seconds per call as ms per step (steps_per_call) or draw "
        "(draws_per_call); with the rounds saved: ratio of medians, bootstrap interval over "
        f"rounds ({ev.BOOTSTRAP_REPLICATES} replicates, fixed seed), two-sided Mann-Whitney U on "
        "the rounds; with the summary only: the conservative bounds (order statistics of each "
        "median, Mann-Whitney p bounded from the quartiles)",
    ]
    return _report("pytest-benchmark", labels[0], labels[1], cells, options, tests)


# ================================================================================ the report
def _report(
    kind: InputKind,
    baseline: str,
    candidate: str,
    cells: list[CellComparison],
    options: Options,
    tests: list[str],
) -> ComparisonReport:
    order = {v: i for i, v in enumerate(CELL_ORDER)}
    cells = sorted(cells, key=lambda c: (order[c.verdict], c.name))
    counts = {v: sum(c.verdict == v for c in cells) for v in CELL_ORDER}
    counts = {k: v for k, v in counts.items() if v}
    tests = [
        *tests,
        "verdict: slower when the interval lies above 1, p < alpha and the ratio exceeds "
        "1 + threshold; faster when below 1, p < alpha and under 1/(1 + threshold); unchanged "
        "when the interval lies within [1/(1 + threshold), 1 + threshold]; else inconclusive "
        "(re-run)",
    ]
    report = ComparisonReport(
        schema_version=SCHEMA_VERSION,
        kind=kind,
        baseline=baseline,
        candidate=candidate,
        thresholds={
            k: v
            for k, v in options.thresholds().items()
            if k.startswith("benchmark") == (kind == "pytest-benchmark")
        },
        alpha=options.alpha,
        allow_other_machine=options.allow_other_machine,
        fail_on_quality=options.fail_on_quality,
        cells=cells,
        counts=counts,
        tests=tests,
        exit_code=0,
    )
    compared = [c for c in cells if c.verdict not in ("not comparable", "missing")]
    if not compared:
        report.exit_code = 2
        report.error = _nothing_comparable(cells, baseline, candidate)
    elif report.regressions:
        report.exit_code = 1
    return report


def _nothing_comparable(cells: Sequence[CellComparison], baseline: str, candidate: str) -> str:
    paired = [c for c in cells if c.verdict == "not comparable"]
    b_only = [c for c in cells if c.side == "baseline only"]
    c_only = [c for c in cells if c.side == "candidate only"]
    if paired:
        first = paired[0]
        more = f" (and {len(paired) - 1} more)" if len(paired) > 1 else ""
        return f"nothing comparable: {first.name}: {first.reason}{more}"
    if not cells:
        return f"nothing to compare: {baseline} and {candidate} hold no cells"

    def names(cs: Sequence[CellComparison]) -> str:
        shown = sorted({c.name.split(" (")[0] for c in cs})
        return ", ".join(shown[:3]) + (f", … ({len(shown)})" if len(shown) > 3 else "")

    return (
        f"no cell in common: {baseline} has {len(b_only)} ({names(b_only) or 'none'}), "
        f"{candidate} has {len(c_only)} ({names(c_only) or 'none'}): different specs or settings"
    )


# ================================================================================ formats
_MARK = {
    "slower": "+",
    "worse": "+",
    "faster": "-",
    "better": "-",
    "inconclusive": "~",
    "unchanged": "",
    "no data": "",
}


def to_json(report: ComparisonReport) -> str:
    """The report as JSON (schema :data:`SCHEMA_VERSION`, fields as the dataclasses)."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)


def _metric_cell(m: MetricComparison | None) -> str:
    if m is None or m.verdict == "no data":
        return "–"
    if m.difference is not None:
        return {"worse": "worse", "better": "better"}.get(m.verdict, "ok")
    mark = _MARK.get(m.verdict, "")
    return f"{_ratio_text(m.ratio)}{' ' + mark if mark else ''}"


def _quality_cell(c: CellComparison) -> str:
    guards = [m for m in c.metrics if m.difference is not None and m.verdict != "no data"]
    if not guards:
        return "–"
    worse = [m.label for m in guards if m.verdict == "worse"]
    return "worse: " + ", ".join(worse) if worse else "ok"


def _table(report: ComparisonReport) -> tuple[list[str], list[list[str]]]:
    if report.kind == "pytest-benchmark":
        header = ["benchmark", "baseline ms", "candidate ms", "ratio [95 %]", "p", "verdict"]
        rows = []
        for c in report.cells:
            if c.verdict == "missing":
                continue
            m = c.metrics[0] if c.metrics else None
            rows.append(
                [
                    c.name,
                    _value_text(m.baseline.estimate) if m else "–",
                    _value_text(m.candidate.estimate) if m else "–",
                    _metric_cell(m),
                    _p_text(m.p_value) if m else "–",
                    _verdict_text(c),
                ]
            )
        return header, rows
    header = [
        "cell",
        "seeds",
        "step ms",
        "step ×[95 %]",
        "p",
        "compile ×",
        "predictive ×",
        "memory ×",
        "quality",
        "verdict",
    ]
    rows = []
    for c in report.cells:
        if c.verdict == "missing":
            continue
        step = c.metric("step_ms")
        seeds = f"{len(c.seeds_baseline)}/{len(c.seeds_candidate)}"
        step_ms = (
            f"{_value_text(step.baseline.estimate)} → {_value_text(step.candidate.estimate)}"
            if step and step.verdict != "no data"
            else "–"
        )
        rows.append(
            [
                c.name,
                seeds,
                step_ms,
                _metric_cell(step),
                _p_text(step.p_value) if step else "–",
                _metric_cell(c.metric("compile_s")),
                _metric_cell(c.metric("predict_s")),
                _metric_cell(c.metric("peak_memory_mb")),
                _quality_cell(c),
                _verdict_text(c),
            ]
        )
    return header, rows


def _verdict_text(c: CellComparison) -> str:
    if c.verdict == "missing":
        return f"missing ({c.side})"
    return c.verdict + (" + quality" if c.quality_regression else "")


def _summary_line(report: ComparisonReport) -> str:
    counts = ", ".join(f"{n} {v}" for v, n in report.counts.items())
    n = len(report.cells)
    if report.exit_code == 2:
        return f"{n} cells: {counts}. Exit 2: {report.error}"
    if report.exit_code == 1:
        names = ", ".join(c.name for c in report.regressions)
        return f"{n} cells: {counts}. Exit 1: regression in {names}"
    tail = ""
    if report.counts.get("inconclusive"):
        tail = " (inconclusive: re-run with more seeds or on an idle machine)"
    quality = [c for c in report.cells if c.quality_regression]
    if quality:
        tail += f"; {len(quality)} quality regression(s), not failing without --fail-on-quality"
    return f"{n} cells: {counts}. Exit 0: no significant regression beyond the thresholds{tail}"


def _thresholds_text(report: ComparisonReport) -> str:
    names = {
        "step_ms": "steady step",
        "compile_s": "compile",
        "predict_s": "predictive",
        "peak_memory_mb": "memory",
        "benchmark": "per call",
    }
    parts = [f"{names.get(k, k)} ±{_pct(v)}" for k, v in report.thresholds.items()]
    return f"thresholds: {', '.join(parts)}; alpha {report.alpha:g}"


def _details(report: ComparisonReport) -> list[str]:
    """A line per cell that is not plainly unchanged; cells not compared grouped by reason."""
    out = []
    grouped: dict[tuple[str, str], list[str]] = {}
    for c in report.cells:
        if c.verdict in ("missing", "not comparable"):
            grouped.setdefault((c.verdict, c.reason), []).append(c.name)
            continue
        if c.verdict == "unchanged" and not c.notes and not c.quality_regression:
            continue
        line = f"{c.name}: {_verdict_text(c)}: {c.reason}"
        notes = [m.note for m in c.metrics if m.note and m.gated] + c.notes
        if notes:
            line += f" [{'; '.join(notes)}]"
        out.append(line)
    for (verdict, reason), names in grouped.items():
        if len(names) == 1:
            out.append(f"{names[0]}: {verdict}: {reason}")
        else:
            out.append(f"{verdict}, {len(names)} cells ({', '.join(names)}): {reason}")
    return out


def format_text(report: ComparisonReport) -> str:
    """Plain text for a terminal: the table (``+`` slower/worse, ``-`` faster/better, ``~``
    inconclusive), then a line per cell that is not plainly unchanged, then the summary."""
    lines = [
        f"bnnbench compare: {report.baseline} (baseline) → {report.candidate} (candidate)",
        _thresholds_text(report),
    ]
    header, rows = _table(report)
    if rows:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines.append("")
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        for r in rows:
            lines.append("  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip())
        lines.append(
            "(ratios candidate/baseline; + slower or worse, - faster or better, ~ inconclusive)"
        )
    details = _details(report)
    if details:
        lines += ["", "Verdicts:"] + [f"  - {d}" for d in details]
    lines += ["", "Tests:"] + [f"  - {t}" for t in report.tests]
    lines += ["", _summary_line(report)]
    return "\n".join(lines) + "\n"


def format_markdown(report: ComparisonReport) -> str:
    """Markdown for a CI job summary: a heading, the summary, the table, the verdicts."""
    lines = [
        f"### bnnbench compare: `{report.baseline}` → `{report.candidate}`",
        "",
        f"**{_summary_line(report)}**",
        "",
        _thresholds_text(report),
    ]
    header, rows = _table(report)
    if rows:
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(x.replace("|", "\\|") for x in r) + " |" for r in rows]
        lines += [
            "",
            "Ratios candidate/baseline; + slower or worse, - faster or better, ~ inconclusive.",
        ]
    details = _details(report)
    if details:
        lines += ["", "**Verdicts**", ""] + [f"- {d}" for d in details]
    lines += ["", "**Tests**", ""] + [f"- {t}" for t in report.tests]
    return "\n".join(lines) + "\n"


def render(report: ComparisonReport, fmt: OutputFormat = "text") -> str:
    """The report as ``text``, ``markdown`` or ``json``."""
    if fmt == "json":
        return to_json(report) + "\n"
    if fmt == "markdown":
        return format_markdown(report)
    if fmt == "text":
        return format_text(report)
    raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(OUTPUT_FORMATS)}")
