r"""Which backend should I use? Answers from stored results only. Pure: DataFrames in, dataclasses
out (and text, Markdown or JSON from them); no file I/O.

:func:`recommend` answers one :class:`Request` (a spec, a device, a run length in steps or
seconds, constraints, a priority) from the records and traces of :mod:`bnnbench.results`:

1. **Evidence.** The records of the spec, device and profile (``matched`` unless asked; the
   other profiles present are listed and, where their answer differs, said). Among the
   *configurations* measured (steps, batch size, learning rate, initial scale, predictive draws)
   the one with the most Bayesian backends is used, then the one nearest the requested run
   length (:math:`|\log(n_\mathrm{measured}/n)|`), then the most seeds, then the most draws.
2. **Per backend** (:class:`BackendAnswer`): the end-to-end time of the requested
   :math:`n` steps, :math:`T(n) = t_\mathrm{transfer} + t_\mathrm{compile}
   + t_\mathrm{warm\text{-}up} + n\,m + t_\mathrm{predict}` with :math:`m` the steady-state
   step from the trace's chunks
   (:mod:`bnnbench.evidence`; imports and data loading are not counted), or, for a budget of
   :math:`S` seconds, the steps that fit, :math:`(S - F)/m`; quality as measured (accuracy, NLL,
   ECE, Brier, −ELBO/datum; the −ELBO at :math:`n` from the trace when :math:`n` is shorter than
   the measured run); uncertainty (the error-detection AUROCs ``entropy/mi/chi2_auroc`` and the
   out-of-distribution ``ood_<set>_*_auroc``; their mean is the *uncertainty score*); the peak
   memory (``peak_rss_mb`` on the CPU, ``peak_device_mb`` on the GPU); whether and when it
   reaches ``target_accuracy``.
3. **Exclusions** (:class:`Exclusion`): a backend with a ``failed`` or ``diverged`` cell of
   this spec, device and profile is never recommended (its errors are listed); one above
   ``max_memory_mb`` or not reaching ``target_accuracy`` is excluded and said.
4. **Ranking** by ``priority``: tiers of ties (:func:`bnnbench.evidence.tiers`) on the
   priority's quantity, then on time, then the mean time. ``quality``: accuracy;
   ``speed``: end-to-end time (or steps in the budget); ``uncertainty``: the uncertainty score;
   ``memory``: the peak. Ties share a rank; the test behind every tie is named in ``tests``.
   ``torch-ml`` (not Bayesian) is the reference of what being Bayesian costs, never ranked.
5. **Crossovers** between every two ranked backends (:func:`bnnbench.evidence.crossover_steps`),
   the **Pareto front** over (end-to-end time, accuracy), the **reasons** in words, and the
   **missing evidence** with the ``bnnbench run`` command that would provide it.

:func:`report_answers` gives the report the same answers for every spec and device: a run of
about a minute (:data:`SHORT_RUN_BUDGET_S`), the spec's full budget (its tutorial's steps, else
:data:`DEFAULT_FULL_STEPS` as in ``benchmarks/suites/full.toml``), the best uncertainty and the
least memory, with crossovers and Pareto points.

JSON (:func:`to_json`, ``schema_version`` :data:`SCHEMA_VERSION`) is :meth:`Recommendation.to_dict`:
the fields of these dataclasses, each documented below; an :class:`~bnnbench.evidence.Interval`
is ``{"estimate", "low", "high"}``; NaN is ``null``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from bnnbench import evidence as ev
from bnnbench.evidence import Comparison, Confidence, CostModel, Interval
from bnnbench.registry import backends as registered_backends
from bnnbench.types import DEVICES, PROFILES

__all__ = [
    "DEFAULT_FULL_STEPS",
    "ERROR_AUROCS",
    "EXTRAPOLATION_FACTOR",
    "OUTPUT_FORMATS",
    "PRIORITIES",
    "SCHEMA_VERSION",
    "SHORT_RUN_BUDGET_S",
    "BackendAnswer",
    "Crossover",
    "Exclusion",
    "MissingEvidence",
    "OutputFormat",
    "ParetoPoint",
    "Priority",
    "ProfileNote",
    "Recommendation",
    "Request",
    "SpecDeviceAnswers",
    "format_markdown",
    "format_text",
    "full_budget_steps",
    "infer_test_size",
    "recommend",
    "render",
    "report_answers",
    "to_json",
]

#: Version of the JSON answer (``schema_version``); bumped when a field changes meaning or goes.
SCHEMA_VERSION = 1
#: The run length of the report's "full budget" answer when the spec's tutorial states none
#: (``benchmarks/suites/full.toml``).
DEFAULT_FULL_STEPS = 50_000
#: The report's "short run": about a minute.
SHORT_RUN_BUDGET_S = 60.0
#: A run length more than this factor above or below the measured one is an extrapolation.
EXTRAPOLATION_FACTOR = 2.0
#: Error-detection AUROCs of the record that make up the uncertainty score.
ERROR_AUROCS: tuple[str, ...] = ("entropy_auroc", "mi_auroc", "chi2_auroc")
#: Settings that make two runs comparable (the backend and seed aside; runs of two machines,
#: ``host``, are never mixed either).
CONFIG_FIELDS: tuple[str, ...] = (
    "steps",
    "batch_size",
    "learning_rate",
    "init_scale",
    "predict_draws",
)

Priority = Literal["quality", "speed", "uncertainty", "memory"]
OutputFormat = Literal["text", "markdown", "json"]
AnswerStatus = Literal["answer", "no_evidence"]
TargetStatus = Literal["reached", "not reached"]
ExclusionReason = Literal[
    "failed", "diverged", "over memory", "below target accuracy", "over budget"
]
PRIORITIES: tuple[str, ...] = get_args(Priority)
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
_NOT_OK = ("failed", "diverged")
_MISSING_STATUSES = ("unavailable", "unsupported")

#: The traces' column of the learning curve's test accuracy (:mod:`bnnbench.measure`).
CURVE_ACCURACY = "curve_accuracy"


# ================================================================================ the request
@dataclass(frozen=True)
class Request:
    """What the user asks.

    Attributes
    ----------
    model, device
        The spec and ``cpu`` or ``gpu``.
    profile
        Settings profile; ``None``: ``matched`` when it has evidence, else the first that has.
    steps, budget_s
        The run length: ``steps`` optimisation steps, or as many as fit in ``budget_s`` seconds
        end to end; neither: the measured run length.
    target_accuracy
        Test accuracy (a fraction) a backend must reach; those that do not are excluded.
    max_memory_mb
        Peak memory (MiB; host RSS on the CPU, device memory on the GPU) a backend may use.
    priority
        What is ranked first (see the module docstring).
    rng_seed, replicates
        The bootstrap's fixed seed and size (the answer is reproducible).
    """

    model: str
    device: str = "cpu"
    profile: str | None = None
    steps: int | None = None
    budget_s: float | None = None
    target_accuracy: float | None = None
    max_memory_mb: float | None = None
    priority: Priority = "quality"
    rng_seed: int = ev.BOOTSTRAP_SEED
    replicates: int = ev.BOOTSTRAP_REPLICATES

    def problems(self) -> list[str]:
        """What makes the request invalid (empty when valid)."""
        out = []
        if self.steps is not None and self.budget_s is not None:
            out.append("give --steps or --budget-s, not both")
        if self.steps is not None and self.steps < 1:
            out.append(f"--steps must be >= 1, got {self.steps}")
        if self.budget_s is not None and not (math.isfinite(self.budget_s) and self.budget_s > 0):
            out.append(f"--budget-s must be a finite number of seconds > 0, got {self.budget_s}")
        if self.target_accuracy is not None and not (0.0 < self.target_accuracy <= 1.0):
            out.append(
                f"--target-accuracy must be a fraction in (0, 1], got {self.target_accuracy}"
            )
        if self.max_memory_mb is not None and not (
            math.isfinite(self.max_memory_mb) and self.max_memory_mb > 0
        ):
            out.append(f"--max-memory-mb must be a number of MiB > 0, got {self.max_memory_mb}")
        if self.priority not in PRIORITIES:
            out.append(f"unknown priority {self.priority!r}; valid: {', '.join(PRIORITIES)}")
        if self.replicates < 100:
            out.append("replicates must be >= 100")
        return out


# ================================================================================ the answer
@dataclass
class BackendAnswer:
    """One backend's evidence at the requested run length.

    Attributes
    ----------
    backend, bayesian
        Its name and whether it fits a posterior (``torch-ml``: no, the reference).
    rank
        1 = recommended; backends that tie share a rank; ``None`` for the reference.
    tied_with
        Backends with the same rank.
    seeds
        Seeds behind every figure (each a separate cell).
    measured_steps
        Steps of the measured runs (quality is measured there).
    steps
        Steps the times refer to: the requested ``steps`` (or the measured ones); with a
        ``budget_s``, the measured ones.
    end_to_end_s
        :math:`T(\\text{steps})`, seconds, with its 95 % bootstrap interval.
    steps_in_budget
        With ``budget_s``: the steps that fit in it, :math:`(S - F)/m`, with its interval.
    fixed_s, transfer_s, compile_s, warmup_s, predict_s
        The fixed costs (means over seeds, seconds); :math:`F` = their sum.
    step_ms
        Steady-state milliseconds per step, mean over seeds of the median chunk, with interval.
    accuracy, accuracy_sd, nll, ece_15, brier, neg_elbo_per_datum
        Quality at ``measured_steps``: means over seeds (sd of the accuracy over seeds, NaN with
        one seed). For ``torch-ml`` the "−ELBO" is the training NLL per datum.
    neg_elbo_per_datum_at_steps, accuracy_at_steps
        From the trace at the requested steps when they are fewer than the measured ones (the
        accuracy from the learning curve's last checkpoint there, where the traces hold one);
        NaN otherwise.
    uncertainty_score, aurocs
        Mean of the AUROCs present for every compared backend, and each AUROC's mean.
    peak_memory_mb, memory_field
        Mean peak memory, MiB, and the record field it comes from.
    target_status, time_to_target_s, time_to_target_is_bound
        With ``target_accuracy``: ``"reached"`` or ``"not reached"``; the end-to-end seconds to
        reach it (from the learning curve; without one, ``T(measured_steps)``, an upper bound).
    busy_runs
        Runs timed while other processes loaded the machine (``host_busy``).
    """

    backend: str
    bayesian: bool
    rank: int | None
    tied_with: list[str]
    seeds: list[int]
    measured_steps: int
    steps: float
    end_to_end_s: Interval
    steps_in_budget: Interval | None
    fixed_s: float
    transfer_s: float
    compile_s: float
    warmup_s: float
    predict_s: float
    step_ms: Interval
    accuracy: float
    accuracy_sd: float
    nll: float
    ece_15: float
    brier: float
    neg_elbo_per_datum: float
    neg_elbo_per_datum_at_steps: float
    accuracy_at_steps: float
    uncertainty_score: float
    aurocs: dict[str, float]
    peak_memory_mb: float
    memory_field: str
    target_status: TargetStatus | None = None
    time_to_target_s: float | None = None
    time_to_target_is_bound: bool = False
    busy_runs: int = 0


@dataclass
class Exclusion:
    """A backend left out of the ranking, and why.

    Attributes
    ----------
    backend, reason
        The backend and ``failed``, ``diverged``, ``over memory``, ``below target accuracy`` or
        ``over budget`` (its fixed costs alone exceed ``budget_s``).
    detail
        In words, with the figure or the error.
    cells
        The offending cells: ``{"run_id", "seed", "steps", "status", "error"}``.
    """

    backend: str
    reason: ExclusionReason
    detail: str
    cells: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Crossover:
    """Two ranked backends' cost lines cross.

    Attributes
    ----------
    faster_below, faster_above
        The backend with the lower fixed cost (first below the crossover) and the one with the
        lower step (first above it).
    steps
        :math:`n^* = (F_\\mathrm{above} - F_\\mathrm{below}) / (m_\\mathrm{below} -
        m_\\mathrm{above})`, with the interval of its bootstrap replicates.
    end_to_end_s
        Both backends' end-to-end seconds at :math:`n^*`.
    fixed_s_below, fixed_s_above, step_ms_below, step_ms_above
        The two lines.
    """

    faster_below: str
    faster_above: str
    steps: Interval
    end_to_end_s: float
    fixed_s_below: float
    fixed_s_above: float
    step_ms_below: float
    step_ms_above: float


@dataclass
class ParetoPoint:
    """A point of the time-quality plot: end-to-end seconds at the answer's steps against test
    accuracy; ``on_front``: no Bayesian backend is faster and at least as accurate (the
    reference is drawn but never on the front)."""

    backend: str
    bayesian: bool
    end_to_end_s: Interval
    accuracy: float
    on_front: bool


@dataclass
class MissingEvidence:
    """What is not known, and the command that would measure it (``None`` when no command can:
    e.g. a missing GPU)."""

    what: str
    command: str | None = None


@dataclass
class ProfileNote:
    """The answer under another profile present in the results."""

    profile: str
    winner: str | None
    same_as_answer: bool


@dataclass
class Recommendation:
    """The answer to one :class:`Request`.

    Attributes
    ----------
    schema_version
        :data:`SCHEMA_VERSION`.
    status
        ``"answer"`` (exit 0) or ``"no_evidence"`` (exit 3: nothing measured satisfies the
        request; ``missing`` says what would).
    model, device, profile, priority
        What was answered.
    profiles_available
        Profiles with successful Bayesian runs of this spec and device.
    requested_steps, budget_s
        The request's run length (``None`` when not given).
    steps
        The run length the times refer to (requested, else measured); with ``budget_s`` the
        measured one.
    configuration
        The measured settings used: ``steps, batch_size, learning_rate, init_scale,
        predict_draws, host, trace_every``.
    other_configurations
        Other settings measured for this spec, device and profile (not used).
    extrapolated
        The run length is more than :data:`EXTRAPOLATION_FACTOR` from the measured one (times
        follow the cost line; quality is the measured one).
    winner, tied_with, confidence
        The recommended backend (``None`` without evidence), the backends tied with it, and
        ``high`` / ``medium`` / ``low`` (three, two, one seed; lowered by extrapolation).
    headline, reasons
        The answer and its reasons, in words.
    evidence
        The headline's figures alone (run length, end-to-end time or steps in the budget,
        accuracy), without the backend's name: a table's "why" cell.
    ranking, baseline
        Every ranked Bayesian backend, best first; ``torch-ml``'s figures (``None`` if absent).
    excluded, crossovers, pareto, missing, other_profiles
        See :class:`Exclusion`, :class:`Crossover`, :class:`ParetoPoint`,
        :class:`MissingEvidence`, :class:`ProfileNote`.
    tests
        The tests behind ties, in words.
    n_test, n_test_source
        Test-set size used for the sampling errors, and ``"results"`` (read from the stored
        predictive), ``"inferred"`` (the smallest n making every stored accuracy k/n) or ``""``
        (unknown: ties are then tested against seed-to-seed spread only).
    """

    schema_version: int
    status: AnswerStatus
    model: str
    device: str
    profile: str | None
    priority: str
    profiles_available: list[str]
    requested_steps: int | None
    budget_s: float | None
    steps: float | None
    configuration: dict[str, Any]
    other_configurations: list[dict[str, Any]]
    extrapolated: bool
    winner: str | None
    tied_with: list[str]
    confidence: Confidence
    headline: str
    evidence: str
    reasons: list[str]
    ranking: list[BackendAnswer]
    baseline: BackendAnswer | None
    excluded: list[Exclusion]
    crossovers: list[Crossover]
    pareto: list[ParetoPoint]
    missing: list[MissingEvidence]
    other_profiles: list[ProfileNote]
    tests: list[str]
    n_test: int | None
    n_test_source: str

    @property
    def exit_code(self) -> int:
        """0 with an answer, 3 without evidence."""
        return 0 if self.status == "answer" else 3

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (NaN and infinities as ``None``)."""
        return _clean(asdict(self))


@dataclass
class SpecDeviceAnswers:
    """The report's answers for one spec and device (:func:`report_answers`).

    Attributes
    ----------
    model, device, profile
        What they answer; ``profile`` is the default one (``matched`` when measured).
    evidence
        Whether any Bayesian backend ran successfully here (else every answer is
        ``no_evidence`` and ``missing`` says how to measure it).
    short_run_budget_s, full_steps
        The two run lengths: about a minute, and the spec's full budget.
    short_run, full_budget, best_uncertainty, least_memory
        :class:`Recommendation` for a ``short_run_budget_s`` budget (priority quality), for
        ``full_steps`` steps (quality), and with priority ``uncertainty`` and ``memory`` at the
        measured run length.
    crossovers, pareto
        Of the full-budget answer: where the cost lines cross (in steps), and the time-accuracy
        points with the Pareto front.
    missing
        Every missing evidence of the four answers, once.
    """

    model: str
    device: str
    profile: str | None
    evidence: bool
    short_run_budget_s: float
    full_steps: int
    short_run: Recommendation
    full_budget: Recommendation
    best_uncertainty: Recommendation
    least_memory: Recommendation
    crossovers: list[Crossover]
    pareto: list[ParetoPoint]
    missing: list[MissingEvidence]


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


def _backend_facts() -> dict[str, tuple[int, bool]]:
    return {b.name: (b.order, b.bayesian) for b in registered_backends()}


def _order(name: str) -> int:
    return _backend_facts().get(name, (99, True))[0]


def _is_bayesian(name: str) -> bool:
    return _backend_facts().get(name, (99, True))[1]


def _num(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v


def _mean(values: Iterable[Any]) -> float:
    arr = np.array([_num(v) for v in values], np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan


def _sd(values: Iterable[Any]) -> float:
    arr = np.array([_num(v) for v in values], np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.std(ddof=1)) if arr.size >= 2 else math.nan


def _steps_text(n: float) -> str:
    if not math.isfinite(n):
        return "?"
    return f"{round(n):,}"


def _approx_steps(n: float) -> str:
    """Steps to three significant digits (a number of steps that fit in a budget)."""
    if not math.isfinite(n) or n <= 0:
        return _steps_text(n)
    digits = max(math.floor(math.log10(n)) - 2, 0)
    return f"{round(n, -digits):,.0f}"


def _round_steps(n: float) -> str:
    """Steps rounded to two significant digits (a crossover is not known better)."""
    if not math.isfinite(n) or n <= 0:
        return "?"
    digits = max(math.floor(math.log10(n)) - 1, 0)
    return f"{round(n, -digits):,.0f}"


def _s(x: float) -> str:
    if not math.isfinite(x):
        return "?"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.2g}" if x else "0"


def _ms(x: float) -> str:
    if not math.isfinite(x):
        return "?"
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _times(r: float) -> str:
    return f"{r:.1f}×" if r < 10 else f"{r:.0f}×"


def _acc(x: float) -> str:
    return "?" if not math.isfinite(x) else f"{x:.4f}"


def _implemented(model: str) -> tuple[str, ...]:
    """The backends the spec implements (every registered one when the spec is unknown)."""
    try:
        from bnnbench.spec import get_spec

        return tuple(get_spec(model).implementations)
    except (ValueError, ImportError):
        return tuple(_backend_facts())


def full_budget_steps(model: str) -> int:
    """The spec's full budget: its tutorial's steps (the largest stated), else
    :data:`DEFAULT_FULL_STEPS`."""
    try:
        from bnnbench.spec import get_spec

        stated = [t.steps for t in get_spec(model).tutorials if t.steps]
    except (ValueError, ImportError):
        stated = []
    return int(max(stated)) if stated else DEFAULT_FULL_STEPS


def infer_test_size(accuracies: Iterable[float], limit: int = 200_000) -> int | None:
    """The smallest :math:`n \\le` ``limit`` for which every accuracy is :math:`k/n` (within
    1e-6): a lower bound of the test-set size when the stored predictive is not at hand (it
    only makes the binomial error larger, so ties more likely)."""
    acc = np.array([_num(a) for a in accuracies], np.float64)
    acc = np.unique(acc[np.isfinite(acc)])
    if acc.size == 0:
        return None
    for start in range(1, limit + 1, 10_000):
        n = np.arange(start, min(start + 10_000, limit + 1), dtype=np.float64)[:, None]
        scaled = acc[None, :] * n
        ok = (np.abs(scaled - np.round(scaled)) < 1e-6).all(axis=1)
        if ok.any():
            return int(n[np.argmax(ok), 0])
    return None


def _run_command(
    model: str,
    device: str,
    profile: str,
    *,
    backends: Sequence[str] = (),
    steps: int | None = None,
    draws: int | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    suffix: str = "",
) -> str:
    parts = ["bnnbench run", f"--models {model}"]
    if backends:
        parts.append("--backends " + " ".join(backends))
    parts += [f"--profile {profile}", f"--device {device}"]
    parts.append("--seeds " + " ".join(str(s) for s in seeds))
    if steps is not None:
        parts.append(f"--steps {steps}")
    if draws is not None:
        parts.append(f"--draws {draws}")
    name = "-".join(p for p in (model, device, profile, suffix) if p)
    parts.append(f"--out results/{name}")
    return " ".join(parts)


# ================================================================================ evidence
@dataclass
class _Backend:
    """Internal: one backend's records in the chosen configuration and what follows."""

    name: str
    rows: pd.DataFrame
    cost: CostModel
    timings: list[ev.SeedTiming]
    memory_field: str

    def values(self, column: str) -> np.ndarray:
        if column not in self.rows:
            return np.full(len(self.rows), np.nan)
        return pd.to_numeric(self.rows[column], errors="coerce").to_numpy(np.float64)

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.rows["seed"])

    @property
    def n_seeds(self) -> int:
        return len(self.rows)


def _config_key(row: Mapping[str, Any]) -> tuple:
    """The settings of :data:`CONFIG_FIELDS`, then the machine (``host``): times measured on
    two machines are never mixed."""
    host = row.get("host")
    host = host if isinstance(host, str) else ""
    return (*(_num(row.get(k)) for k in CONFIG_FIELDS), host)


def _config_dict(key: tuple, rows: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in zip(CONFIG_FIELDS, key[: len(CONFIG_FIELDS)], strict=True):
        out[name] = int(value) if math.isfinite(value) and float(value).is_integer() else value
    out["host"] = key[-1]
    every = sorted(
        {int(v) for v in pd.to_numeric(rows.get("trace_every"), errors="coerce") if v > 0}
    )
    out["trace_every"] = every[0] if len(every) == 1 else every
    return out


def _choose_config(ok: pd.DataFrame, target_steps: float | None) -> tuple | None:
    """The configuration key to answer from (see the module docstring)."""
    bayes = ok[ok["backend"].map(_is_bayesian)]
    if bayes.empty:
        return None
    scored = []
    for key, rows in bayes.groupby(bayes.apply(_config_key, axis=1), sort=False):
        n_backends = rows["backend"].nunique()
        seeds = rows.groupby("backend")["seed"].nunique().min()
        steps, draws = key[0], key[4]
        near = -abs(math.log(steps / target_steps)) if target_steps and steps > 0 else 0.0
        scored.append(((n_backends, near, seeds, steps, draws), key))
    scored.sort(key=lambda item: item[0], reverse=True)
    return scored[0][1]


def _backend_evidence(
    name: str, rows: pd.DataFrame, chunks: pd.DataFrame, device: str, request: Request, salt: str
) -> _Backend:
    timings = []
    for record in rows.to_dict(orient="records"):
        mine = chunks[chunks["run_id"] == record["run_id"]] if len(chunks) else None
        timings.append(ev.seed_timing(record, mine))
    rng = ev.rng_for(request.rng_seed, name, salt)
    cost = ev.bootstrap_cost_model(timings, rng, request.replicates)
    memory_field = "peak_device_mb" if device == "gpu" else "peak_rss_mb"
    return _Backend(name, rows.sort_values("seed"), cost, timings, memory_field)


def _auroc(a: BackendAnswer, column: str) -> str:
    value = a.aurocs.get(column, math.nan)
    return f"{value:.3f}" if math.isfinite(value) else "?"


def _trace_value_at(traces: pd.DataFrame, run_ids: Sequence[str], column: str, steps: float):
    """Mean over runs of ``column`` at the last trace point at or before ``steps`` that holds a
    value of it (the learning curve's columns are empty between checkpoints)."""
    if traces is None or traces.empty or column not in traces:
        return math.nan
    values = []
    traces = traces[pd.to_numeric(traces[column], errors="coerce").notna()]
    for run_id in run_ids:
        points = traces[(traces["run_id"] == run_id) & (traces["step"] <= steps)]
        if len(points):
            values.append(_num(points.sort_values("step")[column].iloc[-1]))
    return _mean(values)


def _uncertainty_columns(backends: Sequence[_Backend]) -> list[str]:
    """AUROC columns with a value in every compared backend's runs."""
    candidates = list(ERROR_AUROCS)
    for b in backends:
        candidates += [
            c
            for c in b.rows.columns
            if c.startswith("ood_") and c.endswith("_auroc") and c not in candidates
        ]
    return [
        c
        for c in candidates
        if backends and all(c in b.rows and np.isfinite(b.values(c)).all() for b in backends)
    ]


def _uncertainty_per_seed(b: _Backend, columns: Sequence[str]) -> np.ndarray:
    if not columns:
        return np.full(b.n_seeds, np.nan)
    return np.mean([b.values(c) for c in columns], axis=0)


# ================================================================================ comparisons
@dataclass
class _Judge:
    """Internal: the pairwise tests of one answer."""

    backends: dict[str, _Backend]
    n_test: int | None
    steps: float
    budget_s: float | None
    uncertainty_columns: list[str]

    def time_values(self, b: _Backend) -> tuple[float, np.ndarray]:
        """The time quantity, oriented so that lower is better."""
        if self.budget_s is not None:
            return -b.cost.steps_within(self.budget_s), -b.cost.steps_within_boot(self.budget_s)
        return b.cost.end_to_end_s(self.steps), b.cost.end_to_end_s_boot(self.steps)

    def time(self, a: _Backend, b: _Backend) -> Comparison:
        ta, ta_boot = self.time_values(a)
        tb, tb_boot = self.time_values(b)
        return ev.compare_replicates(ta, ta_boot, tb, tb_boot, n_seeds=(a.n_seeds, b.n_seeds))

    def accuracy(self, a: _Backend, b: _Backend) -> Comparison:
        pa, pb = _mean(a.values("accuracy")), _mean(b.values("accuracy"))
        se = math.nan
        if self.n_test:
            se = math.hypot(ev.binomial_se(pa, self.n_test), ev.binomial_se(pb, self.n_test))
        return ev.compare_per_seed(
            a.values("accuracy"), b.values("accuracy"), sampling_se=se, sampling_name="binomial"
        )

    def uncertainty(self, a: _Backend, b: _Backend) -> Comparison:
        sa = _uncertainty_per_seed(a, self.uncertainty_columns)
        sb = _uncertainty_per_seed(b, self.uncertainty_columns)
        se = math.nan
        if self.n_test:
            parts = []
            for x, score in ((a, sa), (b, sb)):
                errors = round((1.0 - _mean(x.values("accuracy"))) * self.n_test)
                parts.append(ev.hanley_mcneil_se(_mean(score), errors, self.n_test - errors))
            se = math.hypot(*parts)
        return ev.compare_per_seed(sa, sb, sampling_se=se, sampling_name="Hanley-McNeil")

    def memory(self, a: _Backend, b: _Backend) -> Comparison:
        return ev.compare_per_seed(
            a.values(a.memory_field), b.values(b.memory_field), rel_margin=ev.MEMORY_TIE_REL
        )

    # --------------------------------------------------------------- tiers
    def tier_map(self, names: Sequence[str], quantity: str) -> dict[str, int]:
        bs = [self.backends[n] for n in names]
        if quantity == "time":
            values = [self.time_values(b)[0] for b in bs]
            better_high, test = False, self.time
        elif quantity == "quality":
            values = [_mean(b.values("accuracy")) for b in bs]
            better_high, test = True, self.accuracy
        elif quantity == "uncertainty":
            values = [_mean(_uncertainty_per_seed(b, self.uncertainty_columns)) for b in bs]
            better_high, test = True, self.uncertainty
        else:
            values = [_mean(b.values(b.memory_field)) for b in bs]
            better_high, test = False, self.memory
        tiers = ev.tiers(values, lambda i, j: test(bs[i], bs[j]).tie, higher_is_better=better_high)
        return dict(zip(names, tiers, strict=True))


_PRIMARY = {"quality": "quality", "speed": "time", "uncertainty": "uncertainty", "memory": "memory"}


def _rank(judge: _Judge, names: Sequence[str], priority: str) -> list[tuple[str, int]]:
    """``(backend, rank)`` best first; equal ranks tie on the priority and on time."""
    if not names:
        return []
    primary = _PRIMARY[priority]
    secondary = "quality" if primary == "time" else "time"
    first, second = judge.tier_map(names, primary), judge.tier_map(names, secondary)

    def last_key(n: str) -> float:
        b = judge.backends[n]
        if primary == "memory":
            return _mean(b.values(b.memory_field))
        return judge.time_values(b)[0]

    ordered = sorted(names, key=lambda n: (first[n], second[n], last_key(n), _order(n)))
    out, rank = [], 0
    for i, name in enumerate(ordered):
        prev = ordered[i - 1] if i else None
        if prev is None or (first[name], second[name]) != (first[prev], second[prev]):
            rank = i + 1
        out.append((name, rank))
    return out


# ================================================================================ the engine
def _own_traces(runs: pd.DataFrame, traces: pd.DataFrame | None) -> pd.DataFrame:
    """Each record's own trace points. Two folders can hold the same ``run_id`` (the same
    cell run twice, e.g. ``results/default`` and ``results/profiles``): when both frames carry
    ``results_dir`` the points are taken from the record's own folder only; otherwise the first
    point of each ``(run_id, step)`` is kept."""
    if traces is None or traces.empty:
        return pd.DataFrame(columns=["run_id", "step", "wall_s", "neg_elbo_per_datum"])
    if "results_dir" in traces and "results_dir" in runs:
        kept = runs[["run_id", "results_dir"]].astype(str).drop_duplicates()
        traces = traces.astype({"run_id": str, "results_dir": str}).merge(
            kept, on=["run_id", "results_dir"]
        )
    return traces.drop_duplicates(["run_id", "step"]).reset_index(drop=True)


def _no_evidence(
    request: Request,
    why: str,
    missing: list[MissingEvidence],
    *,
    profile: str | None = None,
    profiles: Sequence[str] = (),
    excluded: Sequence[Exclusion] = (),
    baseline: BackendAnswer | None = None,
    configuration: dict[str, Any] | None = None,
    n_test: int | None = None,
    n_test_source: str = "",
) -> Recommendation:
    return Recommendation(
        schema_version=SCHEMA_VERSION,
        status="no_evidence",
        model=request.model,
        device=request.device,
        profile=profile,
        priority=request.priority,
        profiles_available=list(profiles),
        requested_steps=request.steps,
        budget_s=request.budget_s,
        steps=None,
        configuration=configuration or {},
        other_configurations=[],
        extrapolated=False,
        winner=None,
        tied_with=[],
        confidence="low",
        headline=f"No answer for {request.model} on {request.device}: {why}",
        evidence=why,
        reasons=[why],
        ranking=[],
        baseline=baseline,
        excluded=list(excluded),
        crossovers=[],
        pareto=[],
        missing=missing,
        other_profiles=[],
        tests=[],
        n_test=n_test,
        n_test_source=n_test_source,
    )


def _profiles_with_evidence(runs: pd.DataFrame) -> list[str]:
    ok = runs[(runs["status"] == "ok") & runs["backend"].map(_is_bayesian)]
    present = set(ok["profile"].astype(str))
    return [p for p in PROFILES if p in present] + sorted(present - set(PROFILES))


def _int(value: Any, default: int) -> int:
    v = _num(value)
    return int(v) if math.isfinite(v) else default


def _cells(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "run_id": str(r.get("run_id", "")),
            "seed": _int(r.get("seed"), -1),
            "steps": _int(r.get("steps"), 0),
            "status": str(r.get("status", "")),
            "error": str(r.get("error") or ""),
        }
        for r in rows.to_dict(orient="records")
    ]


def recommend(
    runs: pd.DataFrame,
    traces: pd.DataFrame | None,
    request: Request,
    *,
    n_test: Mapping[str, int] | None = None,
    compare_profiles: bool = True,
) -> Recommendation:
    """Answer ``request`` from loaded results.

    Parameters
    ----------
    runs, traces
        :func:`bnnbench.results.load_all`'s ``runs`` and the ``traces.csv`` rows (``traces``
        may be ``None`` or empty: step times then come from the records alone). Give
        ``traces`` a ``results_dir`` column (as :func:`bnnbench.results.load_all` gives it; or per
        folder) so that a ``run_id`` stored in two folders keeps its own folder's trace.
    request
        The question (:class:`Request`; ``ValueError`` if it is invalid).
    n_test
        Test-set size per spec (from a stored ``predictive_summary.nc``); when a spec is not
        in it, inferred from the stored accuracies (:func:`infer_test_size`).
    compare_profiles
        Also answer under every other profile present and say whether the winner changes.
    """
    problems = request.problems()
    if problems:
        raise ValueError("; ".join(problems))
    traces = _own_traces(runs, traces)
    model, device = request.model, request.device
    model_runs = runs[runs["model"] == model] if len(runs) else runs
    size = (n_test or {}).get(model)
    size_source = "results" if size else ""
    if not size and "accuracy" in model_runs:
        size = infer_test_size(model_runs["accuracy"])
        size_source = "inferred" if size else ""
    if model_runs.empty:
        cmd = _run_command(model, device, request.profile or "matched")
        return _no_evidence(
            request,
            f"the results hold no runs of {model}",
            [MissingEvidence(f"any run of {model}", cmd)],
        )
    dev_runs = model_runs[model_runs["device"] == device]
    profiles = _profiles_with_evidence(dev_runs) if len(dev_runs) else []
    if not profiles:
        why = f"no successful Bayesian run of {model} on the {device}"
        missing = [
            MissingEvidence(f"{r['backend']} on the {device}: {r['status']}: {r.get('error')}")
            for r in dev_runs.to_dict(orient="records")
            if r["status"] in _MISSING_STATUSES
        ]
        measured = sorted(set(model_runs.loc[model_runs["status"] == "ok", "device"]))
        if measured:
            why += f" (measured on: {', '.join(measured)})"
        missing.append(
            MissingEvidence(
                f"{model} on the {device}",
                _run_command(model, device, request.profile or "matched"),
            )
        )
        return _no_evidence(request, why, missing, n_test=size, n_test_source=size_source)
    profile = request.profile or ("matched" if "matched" in profiles else profiles[0])
    if profile not in profiles:
        why = (
            f"no successful Bayesian run of {model} on the {device} with profile {profile} "
            f"(profiles measured: {', '.join(profiles)})"
        )
        cmd = _run_command(model, device, profile)
        return _no_evidence(
            request,
            why,
            [MissingEvidence(f"profile {profile}", cmd)],
            profile=profile,
            profiles=profiles,
            n_test=size,
            n_test_source=size_source,
        )
    rec = _answer(dev_runs, traces, request, profile, profiles, size, size_source)
    if compare_profiles and rec.status == "answer":
        notes = []
        for other in profiles:
            if other == profile:
                continue
            alt = _answer(
                dev_runs,
                traces,
                replace(request, profile=other),
                other,
                profiles,
                size,
                size_source,
            )
            notes.append(ProfileNote(other, alt.winner, alt.winner == rec.winner))
        rec.other_profiles = notes
        for note in notes:
            if not note.same_as_answer:
                rec.reasons.append(
                    f"Under the {note.profile} profile the answer would be "
                    f"{note.winner or 'none'} (bnnbench recommend --profile {note.profile})."
                )
    return rec


def _answer(
    dev_runs: pd.DataFrame,
    traces: pd.DataFrame,
    request: Request,
    profile: str,
    profiles: list[str],
    n_test: int | None,
    n_test_source: str,
) -> Recommendation:
    model, device = request.model, request.device
    group = dev_runs[dev_runs["profile"] == profile]
    ok = group[group["status"] == "ok"]
    missing: list[MissingEvidence] = []
    excluded: list[Exclusion] = []

    # failed or diverged cells: never recommended
    bad = group[group["status"].isin(_NOT_OK) & group["backend"].map(_is_bayesian)]
    faulty = set()
    for backend, rows in bad.groupby("backend", sort=False):
        faulty.add(backend)
        statuses = sorted(set(rows["status"]))
        reason = "diverged" if "diverged" in statuses else "failed"
        cells = _cells(rows)
        errors = "; ".join(
            f"seed {c['seed']} ({c['steps']:,} steps) {c['status']}: {c['error'] or 'no error'}"
            for c in cells
        )
        excluded.append(Exclusion(str(backend), reason, errors, cells))
    for r in group[group["status"].isin(_MISSING_STATUSES)].to_dict(orient="records"):
        missing.append(
            MissingEvidence(f"{r['backend']} seed {r['seed']}: {r['status']}: {r.get('error')}")
        )

    # the configuration
    target = float(request.steps) if request.steps is not None else None
    key = _choose_config(ok, target)
    if key is not None and request.budget_s is not None:
        # what fits in the budget, under the first choice, decides which run length is nearest
        first = _configured(ok, key, traces, device, request)
        fit = [b.cost.steps_within(request.budget_s) for b in first.values()]
        fit = [f for f in fit if math.isfinite(f) and f > 0]
        if fit:
            key = _choose_config(ok, float(np.median(fit)))
    if key is None:
        return _no_evidence(request, "no successful Bayesian run", missing, profile=profile)
    chosen = ok[ok.apply(_config_key, axis=1) == key]
    configuration = _config_dict(key, chosen)
    others = [
        _config_dict(k, rows)
        for k, rows in ok.groupby(ok.apply(_config_key, axis=1), sort=False)
        if k != key
    ]
    measured_steps = int(configuration["steps"])
    steps = float(request.steps if request.steps is not None else measured_steps)
    backends = _configured(ok, key, traces, device, request)
    bayes = {n: b for n, b in backends.items() if _is_bayesian(n) and n not in faulty}
    reference = next((b for n, b in backends.items() if not _is_bayesian(n)), None)
    judge = _Judge(
        {**bayes, **({reference.name: reference} if reference else {})},
        n_test,
        steps,
        request.budget_s,
        _uncertainty_columns(list(bayes.values())),
    )

    answers = {n: _backend_answer(b, judge, request, steps, traces) for n, b in backends.items()}

    # constraints
    candidates = sorted(bayes, key=_order)
    if request.max_memory_mb is not None:
        for name in list(candidates):
            peak = answers[name].peak_memory_mb
            if math.isfinite(peak) and peak > request.max_memory_mb:
                candidates.remove(name)
                excluded.append(
                    Exclusion(
                        name,
                        "over memory",
                        f"peak {answers[name].memory_field} {peak:,.0f} MiB > "
                        f"--max-memory-mb {request.max_memory_mb:,.0f}",
                    )
                )
            elif not math.isfinite(peak):
                missing.append(
                    MissingEvidence(f"{name}: {answers[name].memory_field} not measured")
                )
    if request.budget_s is not None:
        for name in list(candidates):
            fit = answers[name].steps_in_budget
            if fit is not None and not fit.estimate >= 1:
                candidates.remove(name)
                excluded.append(
                    Exclusion(
                        name,
                        "over budget",
                        f"its fixed costs alone ({_s(answers[name].fixed_s)} s: compile, "
                        f"warm-up, predictive) exceed --budget-s {request.budget_s:g}",
                    )
                )
    if request.target_accuracy is not None:
        for name in list(candidates):
            if answers[name].target_status != "reached":
                candidates.remove(name)
                excluded.append(
                    Exclusion(
                        name,
                        "below target accuracy",
                        f"accuracy {_acc(answers[name].accuracy)} < --target-accuracy "
                        f"{request.target_accuracy:g}: not reached within "
                        f"{measured_steps:,} steps",
                    )
                )

    baseline = answers.get(reference.name) if reference else None
    extrapolated = request.budget_s is None and (
        steps > EXTRAPOLATION_FACTOR * measured_steps
        or steps < measured_steps / EXTRAPOLATION_FACTOR
    )
    if request.budget_s is not None and candidates:
        fit = [answers[n].steps_in_budget for n in candidates]
        extrapolated = any(
            f is not None
            and (
                f.estimate > EXTRAPOLATION_FACTOR * measured_steps
                or f.estimate < measured_steps / EXTRAPOLATION_FACTOR
            )
            for f in fit
        )

    # missing evidence that does not prevent an answer
    missing += _missing(
        model,
        device,
        profile,
        profiles,
        configuration,
        backends,
        faulty,
        steps,
        extrapolated,
        request,
        [
            f.estimate
            for n in candidates
            if (f := answers[n].steps_in_budget) is not None and f.estimate > 0
        ],
    )

    if not candidates:
        kinds = ", ".join(dict.fromkeys(e.reason for e in excluded))
        why = f"every Bayesian backend measured is excluded ({kinds})"
        if request.target_accuracy is not None and any(
            e.reason == "below target accuracy" for e in excluded
        ):
            why += (
                f"; none reaches accuracy {request.target_accuracy:g} within "
                f"{measured_steps:,} steps"
            )
        if not bayes:
            why = "no Bayesian backend ran without failing or diverging"
        if request.target_accuracy is not None and bayes:
            missing.insert(
                0,
                MissingEvidence(
                    f"a run long enough to reach accuracy {request.target_accuracy:g}",
                    _run_command(model, device, profile, steps=2 * measured_steps),
                ),
            )
        return _no_evidence(
            request,
            why,
            missing,
            profile=profile,
            profiles=profiles,
            excluded=excluded,
            baseline=baseline,
            configuration=configuration,
            n_test=n_test,
            n_test_source=n_test_source,
        )

    ranked = _rank(judge, candidates, request.priority)
    ranking = []
    for name, rank in ranked:
        a = answers[name]
        a.rank = rank
        a.tied_with = [n for n, r in ranked if r == rank and n != name]
        ranking.append(a)
    winner = ranking[0]
    seeds_min = min(a_.seeds.__len__() for a_ in ranking)
    confidence: Confidence = ev.confidence_of(seeds_min)
    if extrapolated and confidence == "high":
        confidence = "medium"
    crossovers = _crossovers(judge, [a.backend for a in ranking])
    pareto = _pareto(ranking, baseline)
    tests = _tests_used(judge, request, seeds_min)
    reasons = _reasons(
        judge, ranking, baseline, crossovers, request, configuration, extrapolated, excluded
    )
    if any(a.busy_runs for a in ranking):
        busy = ", ".join(f"{a.backend} ({a.busy_runs})" for a in ranking if a.busy_runs)
        reasons.append(f"Timings taken on a busy machine (host_busy): {busy}.")
    return Recommendation(
        schema_version=SCHEMA_VERSION,
        status="answer",
        model=model,
        device=device,
        profile=profile,
        priority=request.priority,
        profiles_available=profiles,
        requested_steps=request.steps,
        budget_s=request.budget_s,
        steps=steps if request.budget_s is None else float(measured_steps),
        configuration=configuration,
        other_configurations=others,
        extrapolated=bool(extrapolated),
        winner=winner.backend,
        tied_with=list(winner.tied_with),
        confidence=confidence,
        headline=_headline(winner, request, steps, confidence),
        evidence=_evidence(winner, request, steps),
        reasons=reasons,
        ranking=ranking,
        baseline=baseline,
        excluded=excluded,
        crossovers=crossovers,
        pareto=pareto,
        missing=missing,
        other_profiles=[],
        tests=tests,
        n_test=n_test,
        n_test_source=n_test_source,
    )


def _configured(
    ok: pd.DataFrame, key: tuple, traces: pd.DataFrame, device: str, request: Request
) -> dict[str, _Backend]:
    chosen = ok[ok.apply(_config_key, axis=1) == key]
    run_traces = traces[traces["run_id"].isin(chosen["run_id"])] if len(traces) else traces
    chunks = ev.chunk_step_times(run_traces)
    salt = "/".join(str(k) for k in key)
    return {
        str(name): _backend_evidence(str(name), rows, chunks, device, request, salt)
        for name, rows in sorted(chosen.groupby("backend"), key=lambda item: _order(item[0]))
    }


def _backend_answer(
    b: _Backend, judge: _Judge, request: Request, steps: float, traces: pd.DataFrame
) -> BackendAnswer:
    measured = int(_num(b.rows["steps"].iloc[0]))
    at_steps = steps if request.budget_s is None else float(measured)
    in_budget = b.cost.steps_within_interval(request.budget_s) if request.budget_s else None
    # the run length whose quality is asked: the steps, or those that fit in the budget
    quality_steps = at_steps if in_budget is None else in_budget.estimate
    run_ids = list(b.rows["run_id"])
    elbo_at = acc_at = math.nan
    if quality_steps < measured:
        elbo_at = _trace_value_at(traces, run_ids, "neg_elbo_per_datum", quality_steps)
        acc_at = _trace_value_at(traces, run_ids, CURVE_ACCURACY, quality_steps)
    columns = judge.uncertainty_columns or [c for c in ERROR_AUROCS if c in b.rows]
    step_boot = b.cost.step_ms_boot
    answer = BackendAnswer(
        backend=b.name,
        bayesian=_is_bayesian(b.name),
        rank=None,
        tied_with=[],
        seeds=b.seeds,
        measured_steps=measured,
        steps=at_steps,
        end_to_end_s=b.cost.end_to_end_interval(at_steps),
        steps_in_budget=in_budget,
        fixed_s=b.cost.fixed_s,
        transfer_s=_mean(t.transfer_s for t in b.timings),
        compile_s=_mean(t.compile_s for t in b.timings),
        warmup_s=_mean(t.warmup_s for t in b.timings),
        predict_s=_mean(t.predict_s for t in b.timings),
        step_ms=Interval.of_replicates(b.cost.step_ms, step_boot),
        accuracy=_mean(b.values("accuracy")),
        accuracy_sd=_sd(b.values("accuracy")),
        nll=_mean(b.values("nll")),
        ece_15=_mean(b.values("ece_15")),
        brier=_mean(b.values("brier")),
        neg_elbo_per_datum=_mean(b.values("final_neg_elbo_per_datum")),
        neg_elbo_per_datum_at_steps=elbo_at,
        accuracy_at_steps=acc_at,
        uncertainty_score=_mean(_uncertainty_per_seed(b, columns)),
        aurocs={c: _mean(b.values(c)) for c in columns},
        peak_memory_mb=_mean(b.values(b.memory_field)),
        memory_field=b.memory_field,
        busy_runs=int(
            b.rows.get("host_busy", pd.Series(dtype=bool)).fillna(False).astype(bool).sum()
        ),
    )
    if request.target_accuracy is not None:
        _target(answer, b, request.target_accuracy, traces)
    return answer


def _target(answer: BackendAnswer, b: _Backend, target: float, traces: pd.DataFrame) -> None:
    """Whether and when ``b`` reaches ``target``. From the learning curve (``curve_accuracy`` in
    the traces) where every run of ``b`` has one: the first checkpoint at or above it, per seed
    (every seed must reach it), costs transfer + compile + the trace's ``wall_s`` there +
    predictive. Otherwise from the final accuracy: reached means at most the measured
    end-to-end time; else "not reached"."""
    curves = None
    if traces is not None and len(traces) and CURVE_ACCURACY in traces:
        mine = traces[traces["run_id"].isin(b.rows["run_id"])]
        mine = mine[pd.to_numeric(mine[CURVE_ACCURACY], errors="coerce").notna()]
        if set(mine["run_id"]) == set(b.rows["run_id"]):
            curves = mine
    if curves is not None:
        times = []
        for timing in b.timings:
            points = curves[curves["run_id"] == timing.run_id].sort_values("step")
            points = points[pd.to_numeric(points[CURVE_ACCURACY]) >= target]
            if points.empty:
                answer.target_status = "not reached"
                return
            wall = float(points["wall_s"].iloc[0])
            times.append(timing.transfer_s + timing.compile_s + wall + timing.predict_s)
        answer.target_status = "reached"
        answer.time_to_target_s = float(np.mean(times))
        return
    if math.isfinite(answer.accuracy) and answer.accuracy >= target:
        answer.target_status = "reached"
        answer.time_to_target_s = b.cost.end_to_end_s(answer.measured_steps)
        answer.time_to_target_is_bound = True
    else:
        answer.target_status = "not reached"


def _crossovers(judge: _Judge, names: Sequence[str]) -> list[Crossover]:
    """Crossovers of every two cost lines whose fixed costs and steps both differ beyond the
    noise (:func:`bnnbench.evidence.compare_replicates`); lines whose fixed costs or steps tie
    do not cross in any sense that the evidence supports."""
    out = []
    for i, a_name in enumerate(names):
        for b_name in names[i + 1 :]:
            a, b = judge.backends[a_name].cost, judge.backends[b_name].cost
            n = ev.crossover_steps(a.fixed_s, a.step_ms, b.fixed_s, b.step_ms)
            if not math.isfinite(n):
                continue
            fixed = ev.compare_replicates(a.fixed_s, a.fixed_s_boot, b.fixed_s, b.fixed_s_boot)
            step = ev.compare_replicates(a.step_ms, a.step_ms_boot, b.step_ms, b.step_ms_boot)
            if fixed.tie or step.tie:
                continue
            below, above = (a_name, b_name) if a.fixed_s < b.fixed_s else (b_name, a_name)
            lo, hi = judge.backends[below].cost, judge.backends[above].cost
            with np.errstate(divide="ignore", invalid="ignore"):
                boot = (hi.fixed_s_boot - lo.fixed_s_boot) / (lo.step_ms_boot - hi.step_ms_boot)
            boot = 1000.0 * np.where(boot > 0, boot, np.inf)
            out.append(
                Crossover(
                    faster_below=below,
                    faster_above=above,
                    steps=Interval.of_replicates(n, boot),
                    end_to_end_s=lo.end_to_end_s(n),
                    fixed_s_below=lo.fixed_s,
                    fixed_s_above=hi.fixed_s,
                    step_ms_below=lo.step_ms,
                    step_ms_above=hi.step_ms,
                )
            )
    return out


def _pareto(ranking: Sequence[BackendAnswer], baseline: BackendAnswer | None) -> list[ParetoPoint]:
    front = ev.pareto_front(
        [a.end_to_end_s.estimate for a in ranking], [a.accuracy for a in ranking]
    )
    points = [
        ParetoPoint(a.backend, True, a.end_to_end_s, a.accuracy, on)
        for a, on in zip(ranking, front, strict=True)
    ]
    if baseline is not None:
        points.append(
            ParetoPoint(baseline.backend, False, baseline.end_to_end_s, baseline.accuracy, False)
        )
    return points


def _missing(
    model: str,
    device: str,
    profile: str,
    profiles: Sequence[str],
    configuration: Mapping[str, Any],
    backends: Mapping[str, _Backend],
    faulty: set[str],
    steps: float,
    extrapolated: bool,
    request: Request,
    budget_steps: Sequence[float] = (),
) -> list[MissingEvidence]:
    out = []
    measured = int(configuration["steps"])
    draws = int(configuration["predict_draws"])
    bayes = [b for b in backends.values() if _is_bayesian(b.name)]
    single = [b.name for b in bayes if b.n_seeds < 2]
    if single:
        out.append(
            MissingEvidence(
                f"seed-to-seed spread: one seed only for {', '.join(single)} (ties are tested "
                f"against the test set's sampling error and chunk-to-chunk timing noise only; "
                f"confidence low)",
                _run_command(model, device, profile, steps=measured, draws=draws, suffix="seeds"),
            )
        )
    absent = [
        n
        for n in sorted(_backend_facts(), key=_order)
        if n not in backends and n not in faulty and n in _implemented(model)
    ]
    if absent:
        out.append(
            MissingEvidence(
                f"no successful {', '.join(absent)} run with these settings "
                f"({measured:,} steps, {draws} draws)",
                _run_command(model, device, profile, backends=absent, steps=measured, draws=draws),
            )
        )
    if extrapolated:
        if request.budget_s is None:
            wanted = int(steps)
            what = (
                f"quality at {wanted:,} steps: measured at {measured:,} steps only (times follow "
                f"the cost line; accuracy, NLL and uncertainty are those of {measured:,} steps)"
            )
        else:
            fit = float(np.median(budget_steps)) if budget_steps else float(measured)
            wanted = int(float(_round_steps(fit).replace(",", "")))
            what = (
                f"quality at the steps that fit in {request.budget_s:g} s (about "
                f"{_round_steps(fit)}): measured at {measured:,} steps only"
            )
        out.append(
            MissingEvidence(what, _run_command(model, device, profile, steps=wanted, draws=draws))
        )
    for other in PROFILES:
        if other not in profiles:
            out.append(
                MissingEvidence(
                    f"profile {other} not run for {model} on the {device}",
                    _run_command(model, device, other, steps=measured, draws=draws),
                )
            )
    return out


# ================================================================================ words
def _tests_used(judge: _Judge, request: Request, seeds_min: int) -> list[str]:
    level = round(100 * ev.CONFIDENCE_LEVEL)
    out = [
        f"times: {level}% percentile bootstrap of T(n) = transfer + compile + warm-up + "
        f"n × step + predictive ({request.replicates} replicates, seed {request.rng_seed}): seeds "
        f"resampled, then each seed's timed chunks; a tie when the interval of the difference "
        f"contains 0 or the gap is under {100 * ev.TIME_TIE_REL:.0f}%",
        f"accuracy: a tie when the gap of the means is within {ev.SEED_Z:g} Welch standard "
        f"errors over seeds plus {ev.BINOMIAL_Z} binomial standard errors of the test set "
        f"(n = {judge.n_test or '?'})",
        f"uncertainty score (mean of {', '.join(judge.uncertainty_columns) or 'no AUROC'}): "
        f"the same rule with Hanley-McNeil standard errors",
        f"memory: {ev.SEED_Z:g} Welch standard errors over seeds, or under "
        f"{100 * ev.MEMORY_TIE_REL:.0f}%",
    ]
    if seeds_min < 2:
        out.append(
            "one seed: no seed-to-seed spread is known; the time intervals cover only "
            "chunk-to-chunk noise (not run-to-run noise such as compile-time swings) and "
            "quality only the test set's sampling error: confidence low"
        )
    return out


def _evidence(winner: BackendAnswer, request: Request, steps: float) -> str:
    if request.budget_s is not None:
        fit = winner.steps_in_budget
        length = (
            f"about {_approx_steps(fit.estimate)} steps in {request.budget_s:g} s"
            if fit is not None
            else f"{request.budget_s:g} s"
        )
    else:
        length = f"{_steps_text(steps)} steps: {_s(winner.end_to_end_s.estimate)} s end to end"
    return f"{length}, accuracy {_acc(winner.accuracy)}"


def _headline(winner: BackendAnswer, request: Request, steps: float, conf: Confidence) -> str:
    tie = f" (tied with {', '.join(winner.tied_with)})" if winner.tied_with else ""
    return (
        f"Use {winner.backend}{tie} for {request.model} on the {request.device}: "
        f"{_evidence(winner, request, steps)} (confidence {conf})."
    )


def _quality_clause(judge: _Judge, w: _Backend, b: _Backend) -> str:
    cmp = judge.accuracy(w, b)
    aw, ab = _mean(w.values("accuracy")), _mean(b.values("accuracy"))
    if cmp.tie:
        return f"at equal accuracy ({_acc(aw)} vs {_acc(ab)}, a tie)"
    word = "higher" if aw > ab else "lower"
    return f"with {word} accuracy ({_acc(aw)} vs {_acc(ab)}, beyond the noise)"


def _fixed_words(b: _Backend) -> str:
    t = b.timings
    compile_s = _mean(x.compile_s for x in t)
    warm = _mean(x.warmup_s for x in t)
    predict = _mean(x.predict_s for x in t)
    parts = [f"compile {_s(compile_s)} s"]
    if warm >= 0.05:
        parts.append(f"first-chunk warm-up {_s(warm)} s")
    parts.append(f"predictive {_s(predict)} s")
    return ", ".join(parts)


def _pair_reason(
    judge: _Judge,
    w: _Backend,
    b: _Backend,
    crossovers: Sequence[Crossover],
    request: Request,
) -> str:
    steps = judge.steps
    cmp = judge.time(w, b)
    if request.budget_s is not None:
        nw, nb = w.cost.steps_within(request.budget_s), b.cost.steps_within(request.budget_s)
        within = f"in {request.budget_s:g} s"
        if cmp.tie:
            both = f"{_approx_steps(nw)} vs {_approx_steps(nb)}"
            time = f"{within} both run about as many steps ({both})"
        else:
            time = f"{within} {w.name} runs {_approx_steps(nw)} steps, {b.name} {_approx_steps(nb)}"
    else:
        tw, tb = w.cost.end_to_end_s(steps), b.cost.end_to_end_s(steps)
        figures = f"({_s(tw)} vs {_s(tb)} s for {_steps_text(steps)} steps)"
        if cmp.tie:
            time = f"end to end they tie {figures}"
        elif tw < tb:
            time = f"{_times(tb / tw)} faster end to end {figures}"
        else:
            time = f"{_times(tw / tb)} slower end to end {figures}"
    mw, mb = w.cost.step_ms, b.cost.step_ms
    if mw <= mb:
        step = f"{_times(mb / mw)} faster per step ({_ms(mw)} vs {_ms(mb)} ms)"
    else:
        step = f"{_times(mw / mb)} slower per step ({_ms(mw)} vs {_ms(mb)} ms)"
    fixed_tie = ev.compare_replicates(
        w.cost.fixed_s, w.cost.fixed_s_boot, b.cost.fixed_s, b.cost.fixed_s_boot
    ).tie
    fixed = (
        f"fixed cost {_s(w.cost.fixed_s)} vs {_s(b.cost.fixed_s)} s"
        + (", a tie" if fixed_tie else "")
        + f" ({w.name}: {_fixed_words(w)}; {b.name}: {_fixed_words(b)})"
    )
    text = f"{w.name} vs {b.name}: {time}; {step}, {fixed}; {_quality_clause(judge, w, b)}"
    for c in crossovers:
        if {c.faster_below, c.faster_above} == {w.name, b.name}:
            lo, hi = c.steps.low, c.steps.high
            interval = (
                f" [95%: {_round_steps(lo)}–{_round_steps(hi)}]"
                if math.isfinite(lo) and math.isfinite(hi)
                else ""
            )
            text += (
                f"; {c.faster_below} finishes first below about {_round_steps(c.steps.estimate)} "
                f"steps{interval} because its fixed cost is {_s(c.fixed_s_below)} s instead of "
                f"{_s(c.fixed_s_above)} s, {c.faster_above} above"
            )
    # the priority's own comparison leads (the ranking's first key)
    lead = ""
    if request.priority == "uncertainty":
        u = judge.uncertainty(w, b)
        su = _mean(_uncertainty_per_seed(w, judge.uncertainty_columns))
        sb = _mean(_uncertainty_per_seed(b, judge.uncertainty_columns))
        lead = f"uncertainty score {su:.3f} vs {sb:.3f}" + (", a tie" if u.tie else "")
    if request.priority == "memory":
        mem = judge.memory(w, b)
        pw, pb = _mean(w.values(w.memory_field)), _mean(b.values(b.memory_field))
        lead = f"peak memory {pw:,.0f} vs {pb:,.0f} MiB" + (", a tie" if mem.tie else "")
    if lead:
        head = f"{w.name} vs {b.name}: "
        text = f"{head}{lead}; {text.removeprefix(head)}"
    return text + "."


def _reasons(
    judge: _Judge,
    ranking: Sequence[BackendAnswer],
    baseline: BackendAnswer | None,
    crossovers: Sequence[Crossover],
    request: Request,
    configuration: Mapping[str, Any],
    extrapolated: bool,
    excluded: Sequence[Exclusion],
) -> list[str]:
    order = {
        "quality": "test accuracy first (ties within the noise are equal), then end-to-end time",
        "speed": "end-to-end time first (ties within the noise are equal), then accuracy",
        "uncertainty": "the uncertainty score first (mean AUROC), then end-to-end time",
        "memory": "peak memory first, then end-to-end time",
    }[request.priority]
    if request.budget_s is not None:
        order = order.replace("end-to-end time", f"steps that fit in {request.budget_s:g} s")
    measured = int(configuration["steps"])
    host = f" on {configuration['host']}" if configuration.get("host") else ""
    seeds = sorted({len(a.seeds) for a in ranking})
    seeds_text = "/".join(str(s) for s in seeds)
    out = [
        f"Ranked by {order}; measured{host} at {measured:,} steps, batch "
        f"{configuration['batch_size']}, {configuration['predict_draws']} predictive draws, "
        f"{seeds_text} seed(s) per backend."
    ]
    w = judge.backends[ranking[0].backend]
    if len(ranking) == 1:
        out.append(f"{w.name} is the only Bayesian backend left to recommend.")
    for other in ranking[1:]:
        out.append(_pair_reason(judge, w, judge.backends[other.backend], crossovers, request))
    for c in crossovers:
        if w.name not in (c.faster_below, c.faster_above):
            out.append(
                f"{c.faster_below} finishes before {c.faster_above} below about "
                f"{_round_steps(c.steps.estimate)} steps, after it above."
            )
    elbo = [a.neg_elbo_per_datum for a in ranking]
    if len(ranking) > 1 and all(math.isfinite(x) for x in elbo):
        spread = max(elbo) - min(elbo)
        values = ", ".join(f"{a.backend} {a.neg_elbo_per_datum:.4f}" for a in ranking)
        out.append(f"Final −ELBO/datum: {values} (range {spread:.4f}).")
    if extrapolated:
        if request.budget_s is None:
            out.append(
                f"Extrapolated: {_steps_text(judge.steps)} steps is more than "
                f"{EXTRAPOLATION_FACTOR:g}× from the {measured:,} steps measured; the times follow "
                f"each cost line, the quality is the one measured at {measured:,} steps."
            )
        else:
            out.append(
                f"Extrapolated: the steps that fit in {request.budget_s:g} s are more than "
                f"{EXTRAPOLATION_FACTOR:g}× from the {measured:,} steps measured; quality is "
                f"the one measured at {measured:,} steps."
            )
    if request.budget_s is not None:
        for a in ranking:
            fit = a.steps_in_budget
            if fit is not None and fit.estimate < measured:
                extra = (
                    f" (−ELBO/datum there, from its trace: {a.neg_elbo_per_datum_at_steps:.4f})"
                    if math.isfinite(a.neg_elbo_per_datum_at_steps)
                    else ""
                )
                out.append(
                    f"{a.backend} fits only {_approx_steps(fit.estimate)} of the {measured:,} "
                    f"measured steps in {request.budget_s:g} s: its quality at the budget is "
                    f"below the one shown{extra}."
                )
    if baseline is not None and math.isfinite(baseline.end_to_end_s.estimate):
        wa = ranking[0]
        ratio = wa.end_to_end_s.estimate / baseline.end_to_end_s.estimate
        d_acc = wa.accuracy - baseline.accuracy
        out.append(
            f"Reference, not Bayesian: {baseline.backend} (maximum likelihood) takes "
            f"{_s(baseline.end_to_end_s.estimate)} s for {_steps_text(wa.steps)} steps with "
            f"accuracy {_acc(baseline.accuracy)}; being Bayesian with {wa.backend} takes "
            f"{ratio:.2g}× its time and {d_acc:+.4f} accuracy, and buys a posterior: "
            f"error-detection entropy AUROC {_auroc(wa, 'entropy_auroc')} vs "
            f"{_auroc(baseline, 'entropy_auroc')}; uncertainty score {wa.uncertainty_score:.3f} "
            f"vs {baseline.uncertainty_score:.3f} (a point estimate has no mutual information "
            f"and a single vote)."
        )
    for e in excluded:
        out.append(f"Excluded: {e.backend} ({e.reason}): {e.detail}.")
    return out


# ================================================================================ report
def report_answers(
    runs: pd.DataFrame,
    traces: pd.DataFrame | None,
    *,
    n_test: Mapping[str, int] | None = None,
    short_run_budget_s: float = SHORT_RUN_BUDGET_S,
    full_steps: Mapping[str, int] | None = None,
    rng_seed: int = ev.BOOTSTRAP_SEED,
) -> list[SpecDeviceAnswers]:
    """The report's answers for every spec in ``runs`` and every device (see
    :class:`SpecDeviceAnswers`). Pure: no HTML, no I/O.

    ``full_steps`` maps a spec to its full budget (default :func:`full_budget_steps`); ``n_test``
    as in :func:`recommend`; ``traces`` with a ``results_dir`` column, as in :func:`recommend`.
    """
    from bnnbench.spec import SPEC_NAMES

    if runs is None or runs.empty:
        return []
    present = list(dict.fromkeys(runs["model"].astype(str)))
    models = [m for m in SPEC_NAMES if m in present] + [m for m in present if m not in SPEC_NAMES]
    out = []
    for model in models:
        steps_full = (full_steps or {}).get(model) or full_budget_steps(model)
        for device in DEVICES:
            base = Request(model=model, device=device, rng_seed=rng_seed)
            short = recommend(
                runs, traces, replace(base, budget_s=short_run_budget_s), n_test=n_test
            )
            full = recommend(runs, traces, replace(base, steps=steps_full), n_test=n_test)
            unc = recommend(runs, traces, replace(base, priority="uncertainty"), n_test=n_test)
            mem = recommend(runs, traces, replace(base, priority="memory"), n_test=n_test)
            seen: dict[tuple[str, str | None], MissingEvidence] = {}
            for r in (short, full, unc, mem):
                for m in r.missing:
                    seen.setdefault((m.what, m.command), m)
            out.append(
                SpecDeviceAnswers(
                    model=model,
                    device=device,
                    profile=full.profile,
                    evidence=full.status == "answer",
                    short_run_budget_s=short_run_budget_s,
                    full_steps=int(steps_full),
                    short_run=short,
                    full_budget=full,
                    best_uncertainty=unc,
                    least_memory=mem,
                    crossovers=full.crossovers,
                    pareto=full.pareto,
                    missing=list(seen.values()),
                )
            )
    return out


# ================================================================================ formats
def to_json(rec: Recommendation) -> str:
    """The answer as JSON (schema :data:`SCHEMA_VERSION`, fields as the dataclasses)."""
    return json.dumps(rec.to_dict(), indent=2, ensure_ascii=False)


def _interval_text(i: Interval | None, fmt=_s) -> str:  # type: ignore[no-untyped-def]
    if i is None:
        return "–"
    if math.isfinite(i.low) and math.isfinite(i.high) and i.low != i.high:
        return f"{fmt(i.estimate)} [{fmt(i.low)}, {fmt(i.high)}]"
    return fmt(i.estimate)


def _table(rec: Recommendation) -> tuple[list[str], list[list[str]]]:
    answers = list(rec.ranking) + ([rec.baseline] if rec.baseline else [])
    budget = rec.budget_s is not None
    elbo_at = any(math.isfinite(a.neg_elbo_per_datum_at_steps) for a in answers)
    target = any(a.target_status for a in answers)
    header = ["rank", "backend"]
    if budget:
        header.append(f"steps in {rec.budget_s:g} s")
    header += [
        f"end-to-end s ({_steps_text(rec.steps or 0)} steps)",
        "step ms",
        "fixed s",
        "accuracy",
        "NLL",
        "ECE",
        "−ELBO/datum",
    ]
    if elbo_at:
        header.append("−ELBO/datum at the run length")
    header += ["unc. score", "peak MiB", "seeds"]
    if target:
        header.append("target accuracy")
    rows = []
    for a in answers:
        acc = _acc(a.accuracy) + (f" ± {a.accuracy_sd:.4f}" if math.isfinite(a.accuracy_sd) else "")
        row = [str(a.rank) if a.rank is not None else "ref", a.backend]
        if budget:
            row.append(_interval_text(a.steps_in_budget, _approx_steps))
        row += [
            _interval_text(a.end_to_end_s),
            _interval_text(a.step_ms, _ms),
            _s(a.fixed_s),
            acc,
            _fixed4(a.nll),
            _fixed4(a.ece_15),
            _fixed4(a.neg_elbo_per_datum),
        ]
        if elbo_at:
            row.append(_fixed4(a.neg_elbo_per_datum_at_steps))
        row += [
            f"{a.uncertainty_score:.3f}" if math.isfinite(a.uncertainty_score) else "?",
            f"{a.peak_memory_mb:,.0f}" if math.isfinite(a.peak_memory_mb) else "?",
            str(len(a.seeds)),
        ]
        if target:
            if a.target_status == "reached" and a.time_to_target_s is not None:
                bound = "≤ " if a.time_to_target_is_bound else ""
                row.append(f"reached, {bound}{_s(a.time_to_target_s)} s")
            else:
                row.append(a.target_status or "–")
        rows.append(row)
    return header, rows


def _fixed4(x: float) -> str:
    return f"{x:.4f}" if math.isfinite(x) else "?"


def _sections(rec: Recommendation) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    out.append(("Why", rec.reasons))
    if rec.crossovers:
        out.append(
            (
                "Crossovers (T(n) = fixed + n × step)",
                [
                    f"{c.faster_below} (fixed {_s(c.fixed_s_below)} s, step "
                    f"{_ms(c.step_ms_below)} ms) is faster below about "
                    f"{_round_steps(c.steps.estimate)} steps "
                    f"[95%: {_round_steps(c.steps.low)}–{_round_steps(c.steps.high)}], "
                    f"{c.faster_above} (fixed {_s(c.fixed_s_above)} s, step "
                    f"{_ms(c.step_ms_above)} ms) above"
                    for c in rec.crossovers
                ],
            )
        )
    if rec.pareto:
        front = [p.backend for p in rec.pareto if p.on_front]
        out.append(
            (
                "Pareto front (end-to-end time, accuracy)",
                [
                    f"on the front: {', '.join(front) or 'none'}; points: "
                    + "; ".join(
                        f"{p.backend} {_s(p.end_to_end_s.estimate)} s / {_acc(p.accuracy)}"
                        + ("" if p.bayesian else " (reference)")
                        for p in rec.pareto
                    )
                ],
            )
        )
    if rec.excluded:
        out.append(("Excluded", [f"{e.backend} ({e.reason}): {e.detail}" for e in rec.excluded]))
    if rec.missing:
        out.append(
            (
                "Missing evidence",
                [m.what + (f": `{m.command}`" if m.command else "") for m in rec.missing],
            )
        )
    profiles = [f"available: {', '.join(rec.profiles_available) or 'none'}"]
    profiles += [
        f"{n.profile}: {n.winner or 'no answer'}"
        + (" (same)" if n.same_as_answer else " (differs)")
        for n in rec.other_profiles
    ]
    out.append(("Profiles", profiles))
    if rec.other_configurations:
        out.append(
            (
                "Also measured (not used)",
                [
                    f"{c['steps']:,} steps, batch {c['batch_size']}, {c['predict_draws']} draws"
                    + (f", host {c['host']}" if c["host"] != rec.configuration.get("host") else "")
                    for c in rec.other_configurations
                ],
            )
        )
    if rec.tests:
        out.append(("Tests", rec.tests))
    return out


def format_text(rec: Recommendation) -> str:
    """Plain text for a terminal."""
    lines = [
        f"bnnbench recommend {rec.model} --device {rec.device} --profile {rec.profile or '?'} "
        f"--priority {rec.priority}",
        rec.headline,
    ]
    if rec.ranking or rec.baseline:
        header, rows = _table(rec)
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines.append("")
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for r in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    for title, items in _sections(rec):
        lines.append("")
        lines.append(f"{title}:")
        lines += [f"  - {item}" for item in items]
    return "\n".join(lines) + "\n"


def format_markdown(rec: Recommendation) -> str:
    """Markdown (a heading, the table, the sections as lists)."""
    lines = [
        f"### {rec.model} on the {rec.device} ({rec.profile or 'no profile'}, "
        f"priority {rec.priority})",
        "",
        f"**{rec.headline}**",
    ]
    if rec.ranking or rec.baseline:
        header, rows = _table(rec)
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    for title, items in _sections(rec):
        lines += ["", f"**{title}**", ""]
        lines += [f"- {item}" for item in items]
    return "\n".join(lines) + "\n"


def render(rec: Recommendation, fmt: OutputFormat = "text") -> str:
    """The answer as ``text``, ``markdown`` or ``json``."""
    if fmt == "json":
        return to_json(rec) + "\n"
    if fmt == "markdown":
        return format_markdown(rec)
    if fmt == "text":
        return format_text(rec)
    raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(OUTPUT_FORMATS)}")
