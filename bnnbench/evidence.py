r"""Evidence: the statistics that decide whether one backend beats another. Pure; no I/O.

Everything here works on values already loaded (:mod:`bnnbench.results`), so that
``bnnbench recommend`` (and a later ``bnnbench compare``) can say *how sure* each statement is.

**Times.** A run's stored trace has one point per chunk of ``trace_every`` steps (``step``,
``wall_s`` into training), so the steps of chunk :math:`c` took

.. math:: m_c = 1000\,\frac{w_c - w_{c-1}}{s_c - s_{c-1}} \quad\text{ms per step}
          \qquad (w_0 = s_0 = 0).

The first chunk also pays one-time costs that no other chunk pays (Pyro's ``JitTrace_ELBO``
traces on its first call): with at least three chunks it is left out of the steady state and its
excess over it is a fixed *warm-up* cost. A seed's steady-state step is the median of its other
chunks (as :func:`bnnbench.evaluate.step_timing`), and the end-to-end time of :math:`n` steps is

.. math:: T(n) = F + n\,\bar m / 1000, \qquad
          F = t_\mathrm{transfer} + t_\mathrm{compile} + t_\mathrm{warm\text{-}up}
              + t_\mathrm{predict},

with :math:`F` and :math:`\bar m` means over seeds. Its uncertainty is a two-level bootstrap
(:func:`bootstrap_cost_model`): resample the seeds with replacement, and within each drawn seed
resample its chunks; every replicate gives a pair :math:`(F^*, \bar m^*)`, so replicates of
:math:`T(n)` at any :math:`n`, of the steps affordable in a budget and of a crossover come from
the same draws. Two backends' times are a tie (:func:`compare_replicates`) when the 95 %
percentile interval of the difference of their replicates contains 0, or when they differ by less
than :data:`TIME_TIE_REL` (the A/A noise of a run time on a shared machine, 2-5 %: NumPyro's
benchmark harness gates at 5 %). With one seed the bootstrap sees chunk-to-chunk noise only, not
run-to-run noise (compile times swing by ~20 % between runs): say so.

**Quality.** Per-seed values (accuracy, an AUROC, a memory peak) of two backends are a tie when
their means differ by at most :math:`z_\mathrm{seed}` standard errors of the difference (Welch,
:func:`welch_tolerance`: the rule of :func:`bnnbench.evaluate.equivalent_over_seeds`) plus what
the test set itself can resolve: for an accuracy :math:`p` on :math:`n` test points the binomial
standard error :math:`\sqrt{p(1-p)/n}` (:func:`binomial_se`), for an AUROC Hanley and McNeil's
(1982) (:func:`hanley_mcneil_se`), both at :math:`z = 1.96` and unpaired (conservative: both
backends are scored on the same points). With one seed only that sampling error is tested and the
confidence is ``"low"``.

**Crossovers.** Two cost lines :math:`T_a(n) = F_a + n m_a` and :math:`T_b(n) = F_b + n m_b` with
:math:`F_a < F_b` and :math:`m_a > m_b` cross at :math:`n^* = (F_b - F_a) / (m_a - m_b)`: below
it :math:`a` finishes first, above it :math:`b` (:func:`crossover_steps`).

**Two runs of the same cells** (``bnnbench compare``, :mod:`bnnbench.compare`). A ratio
:math:`r = c/b` (candidate over baseline) gets an interval and a p-value:

* many replicates (timed chunks within seeds): the two-level bootstrap above, independently per
  side, and the two-sided Mann-Whitney U test (:func:`mann_whitney_p`), whose smallest possible
  p-value with :math:`n_a` and :math:`n_b` replicates is :math:`2/\binom{n_a+n_b}{n_a}`
  (:func:`min_mann_whitney_p`; 0.1 with 3 against 3);
* a few per-seed values (compile seconds, memory peaks): :func:`welch_log_ratio`, the ratio of
  geometric means :math:`\exp(\overline{\log c} - \overline{\log b})` with Welch's t
  interval and test on the logarithms;
* only summary statistics of timed rounds (pytest-benchmark without ``--benchmark-save-data``,
  :class:`RoundSummary`): :func:`median_bounds_from_summary` bounds each median by order
  statistics that a distribution-free interval contains, and
  :func:`mann_whitney_p_bound_from_summary` bounds the Mann-Whitney p-value from above with
  the pairs the quartiles prove ordered. Both are conservative.

**Ranks.** :func:`tiers` groups values sorted best first: an item joins the current tier when it
ties with that tier's first item, otherwise it starts the next tier, so tiers never decrease
along the sorted order (adding an item that is worse than all others never moves the others).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "BINOMIAL_Z",
    "BOOTSTRAP_REPLICATES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE_LEVEL",
    "MEMORY_TIE_REL",
    "SEED_Z",
    "TIME_TIE_REL",
    "Comparison",
    "Confidence",
    "CostModel",
    "Interval",
    "RoundSummary",
    "SeedTiming",
    "binomial_se",
    "bootstrap_cost_model",
    "bootstrap_median_ratio",
    "chunk_step_times",
    "compare_per_seed",
    "compare_replicates",
    "confidence_of",
    "crossover_steps",
    "hanley_mcneil_se",
    "mann_whitney_p",
    "mann_whitney_p_bound_from_summary",
    "median_bounds_from_summary",
    "min_mann_whitney_p",
    "pareto_front",
    "rng_for",
    "seed_timing",
    "tiers",
    "welch_log_ratio",
    "welch_tolerance",
]

#: Bootstrap replicates of every interval.
BOOTSTRAP_REPLICATES = 2000
#: The fixed seed of every bootstrap (the output is reproducible).
BOOTSTRAP_SEED = 20_261_201
#: Coverage of every interval.
CONFIDENCE_LEVEL = 0.95
#: Standard errors of seed-to-seed spread within which two means are a tie (the same ``z`` as
#: :data:`bnnbench.evaluate.EQUIVALENCE_Z`, "lands on the same ELBO within seed spread").
SEED_Z = 3.0
#: Standard errors of the test set's own sampling error (binomial, Hanley-McNeil): 95 %.
BINOMIAL_Z = 1.96
#: Times closer than this (relative to the faster) are a tie whatever the interval says: the
#: run-to-run noise of a run time on a shared machine (field notes: A/A within 2 %, gates at 5 %).
TIME_TIE_REL = 0.05
#: Memory peaks closer than this (relative to the smaller) are a tie.
MEMORY_TIE_REL = 0.05

Confidence = Literal["high", "medium", "low"]


# ------------------------------------------------------------------------------ small helpers
def confidence_of(n_seeds_a: int, n_seeds_b: int | None = None) -> Confidence:
    """``"high"`` with three or more seeds on each side, ``"medium"`` with two, ``"low"`` with
    one (seed-to-seed spread unknown)."""
    n = n_seeds_a if n_seeds_b is None else min(n_seeds_a, n_seeds_b)
    return "high" if n >= 3 else "medium" if n == 2 else "low"


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A generator seeded by ``seed`` and a stable hash of ``keys`` (e.g. the backend's name):
    each backend's replicates are the same whichever other backends are compared."""
    words = [zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng([int(seed), *words])


@dataclass(frozen=True)
class Interval:
    """A point estimate and its ``CONFIDENCE_LEVEL`` interval ``[low, high]`` (same unit)."""

    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return bool(self.low <= value <= self.high)

    @classmethod
    def of_replicates(cls, estimate: float, replicates: np.ndarray) -> Interval:
        """The percentile interval of bootstrap replicates around ``estimate``."""
        finite = np.asarray(replicates, np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            return cls(float(estimate), math.nan, math.nan)
        alpha = (1.0 - CONFIDENCE_LEVEL) / 2.0
        low, high = np.quantile(finite, [alpha, 1.0 - alpha])
        return cls(float(estimate), float(low), float(high))


# ------------------------------------------------------------------------------ step times
def chunk_step_times(traces: pd.DataFrame) -> pd.DataFrame:
    """Per-chunk step times from stored traces.

    Parameters
    ----------
    traces
        ``traces.csv`` rows: ``run_id, step, wall_s`` (more columns are ignored).

    Returns
    -------
    pandas.DataFrame
        ``run_id, chunk, steps, seconds, step_ms``: chunk :math:`c = 1, 2, \\dots` of each run
        ran ``steps`` = :math:`s_c - s_{c-1}` steps in ``seconds`` = :math:`w_c - w_{c-1}`
        (:math:`s_0 = w_0 = 0`), ``step_ms`` = 1000 seconds / steps. Points with a non-finite
        time or no new steps are dropped.
    """
    columns = ["run_id", "chunk", "steps", "seconds", "step_ms"]
    if traces is None or traces.empty:
        return pd.DataFrame(columns=columns)
    frames = []
    for run_id, points in traces.groupby("run_id", sort=False):
        points = points.sort_values("step")
        step = np.r_[0.0, points["step"].to_numpy(np.float64)]
        wall = np.r_[0.0, points["wall_s"].to_numpy(np.float64)]
        steps, seconds = np.diff(step), np.diff(wall)
        keep = (steps > 0) & np.isfinite(seconds) & (seconds >= 0)
        steps, seconds = steps[keep], seconds[keep]
        frames.append(
            pd.DataFrame(
                {
                    "run_id": run_id,
                    "chunk": np.arange(1, len(steps) + 1),
                    "steps": steps.astype(np.int64),
                    "seconds": seconds,
                    "step_ms": 1000.0 * seconds / steps,
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _finite_or_zero(value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


@dataclass(frozen=True)
class SeedTiming:
    """The timing evidence of one run (one seed).

    Attributes
    ----------
    transfer_s, compile_s, predict_s
        The record's phases; a phase not recorded (NaN, e.g. PyMC embeds the data while
        compiling) counts as 0 s.
    warmup_s
        The first chunk's excess over the steady state,
        :math:`\\max(0, t_1 - n_1 \\tilde m / 1000)` (0 with fewer than three chunks); without
        a trace, :math:`\\max(0, t_\\mathrm{fit} - n\\,m_\\mathrm{record}/1000)`.
    chunk_step_ms
        Steady-state milliseconds per step of each chunk (the first left out when there are at
        least three); the record's ``step_ms`` alone when the run has no trace.
    """

    run_id: str
    seed: int
    transfer_s: float
    compile_s: float
    warmup_s: float
    predict_s: float
    chunk_step_ms: tuple[float, ...]

    @property
    def fixed_s(self) -> float:
        """Seconds that do not grow with the number of steps."""
        return self.transfer_s + self.compile_s + self.warmup_s + self.predict_s

    @property
    def step_ms(self) -> float:
        """Median over chunks of the steady-state milliseconds per step."""
        return float(np.median(self.chunk_step_ms))


def seed_timing(record: Mapping[str, object], chunks: pd.DataFrame | None) -> SeedTiming:
    """A run's :class:`SeedTiming` from its record (a ``runs.csv`` row) and its rows of
    :func:`chunk_step_times` (``None`` or empty when it has no trace)."""
    run_id = str(record.get("run_id", ""))
    seed = int(_finite_or_zero(record.get("seed", 0)))
    transfer = _finite_or_zero(record.get("transfer_s"))
    compile_s = _finite_or_zero(record.get("compile_s"))
    predict = _finite_or_zero(record.get("predict_s"))
    if chunks is not None and len(chunks):
        chunks = chunks.sort_values("chunk")
        per_step = chunks["step_ms"].to_numpy(np.float64)
        if len(per_step) >= 3:
            steady = per_step[1:]
            first_s = float(chunks["seconds"].iloc[0])
            first_n = float(chunks["steps"].iloc[0])
            warmup = max(0.0, first_s - first_n * float(np.median(steady)) / 1000.0)
        else:
            steady, warmup = per_step, 0.0
        steady_ms = tuple(float(x) for x in steady)
        return SeedTiming(run_id, seed, transfer, compile_s, warmup, predict, steady_ms)
    step_ms = _finite_or_zero(record.get("step_ms"))
    fit_s = _finite_or_zero(record.get("fit_s"))
    steps = _finite_or_zero(record.get("steps"))
    warmup = max(0.0, fit_s - steps * step_ms / 1000.0)
    return SeedTiming(run_id, seed, transfer, compile_s, warmup, predict, (step_ms,))


@dataclass(frozen=True)
class CostModel:
    """:math:`T(n) = F + n\\,m/1000` seconds for one backend, with bootstrap replicates.

    Attributes
    ----------
    fixed_s, step_ms
        :math:`F` (mean over seeds of :attr:`SeedTiming.fixed_s`) and :math:`m` (mean over
        seeds of the per-seed median chunk step time).
    fixed_s_boot, step_ms_boot
        Paired replicates :math:`(F^*, m^*)` of the two-level bootstrap.
    n_seeds, n_chunks
        Seeds and steady-state chunks behind the estimate.
    """

    fixed_s: float
    step_ms: float
    fixed_s_boot: np.ndarray
    step_ms_boot: np.ndarray
    n_seeds: int
    n_chunks: int

    def end_to_end_s(self, steps: float) -> float:
        return self.fixed_s + steps * self.step_ms / 1000.0

    def end_to_end_s_boot(self, steps: float) -> np.ndarray:
        return self.fixed_s_boot + steps * self.step_ms_boot / 1000.0

    def end_to_end_interval(self, steps: float) -> Interval:
        return Interval.of_replicates(self.end_to_end_s(steps), self.end_to_end_s_boot(steps))

    def steps_within(self, budget_s: float) -> float:
        """Steps that fit in ``budget_s`` after the fixed costs, :math:`(S - F)\\,1000/m`
        (0 when the fixed costs alone exceed the budget)."""
        return _steps_within(budget_s, self.fixed_s, self.step_ms)

    def steps_within_boot(self, budget_s: float) -> np.ndarray:
        return _steps_within(budget_s, self.fixed_s_boot, self.step_ms_boot)

    def steps_within_interval(self, budget_s: float) -> Interval:
        return Interval.of_replicates(self.steps_within(budget_s), self.steps_within_boot(budget_s))


def _steps_within(budget_s, fixed_s, step_ms):  # type: ignore[no-untyped-def]
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = (budget_s - np.asarray(fixed_s)) * 1000.0 / np.asarray(step_ms)
    out = np.where(np.asarray(step_ms) > 0, np.maximum(steps, 0.0), np.nan)
    return float(out) if np.ndim(out) == 0 else out


def bootstrap_cost_model(
    timings: Sequence[SeedTiming],
    rng: np.random.Generator,
    replicates: int = BOOTSTRAP_REPLICATES,
) -> CostModel:
    """The :class:`CostModel` of one backend's seeds, with the two-level bootstrap.

    Replicate :math:`r` draws seeds :math:`j_1..j_S` with replacement and, within each drawn
    seed, its chunk step times with replacement; :math:`m^*_r` is the mean over the drawn seeds
    of the median of their resampled chunks, :math:`F^*_r` the mean of their fixed costs.
    """
    if not timings:
        raise ValueError("no timings to bootstrap")
    n_seeds = len(timings)
    fixed = np.array([t.fixed_s for t in timings], np.float64)
    medians = np.empty((n_seeds, replicates))
    for j, t in enumerate(timings):
        chunks = np.asarray(t.chunk_step_ms, np.float64)
        if len(chunks) > 1:
            draw = rng.integers(0, len(chunks), size=(replicates, len(chunks)))
            medians[j] = np.median(chunks[draw], axis=1)
        else:
            medians[j] = chunks[0]
    seeds = rng.integers(0, n_seeds, size=(replicates, n_seeds))
    fixed_boot = fixed[seeds].mean(axis=1)
    step_boot = medians[seeds, np.arange(replicates)[:, None]].mean(axis=1)
    return CostModel(
        fixed_s=float(fixed.mean()),
        step_ms=float(np.mean([t.step_ms for t in timings])),
        fixed_s_boot=fixed_boot,
        step_ms_boot=step_boot,
        n_seeds=n_seeds,
        n_chunks=int(sum(len(t.chunk_step_ms) for t in timings)),
    )


# ------------------------------------------------------------------------------ comparisons
@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b`` on one quantity.

    Attributes
    ----------
    difference
        :math:`a - b` with its interval (for per-seed tests: the estimate ± the tolerance).
    ratio
        :math:`a / b` with its bootstrap interval (times and steps; ``None`` otherwise).
    tie
        Whether the difference is inside the noise (see :attr:`test`).
    test
        The test used, in words.
    confidence
        From the seeds behind it (:func:`confidence_of`).
    """

    difference: Interval
    ratio: Interval | None
    tie: bool
    test: str
    confidence: Confidence


def compare_replicates(
    a_estimate: float,
    a_boot: np.ndarray,
    b_estimate: float,
    b_boot: np.ndarray,
    *,
    rel_margin: float = TIME_TIE_REL,
    n_seeds: tuple[int, int] = (1, 1),
) -> Comparison:
    """Two bootstrapped quantities (e.g. end-to-end seconds): the percentile intervals of
    :math:`a^* - b^*` and :math:`a^*/b^*` over paired replicate indices (the two bootstraps are
    independent). A tie when the difference's interval contains 0 or
    :math:`|a - b| < \\text{rel\\_margin} \\cdot \\min(|a|, |b|)`."""
    a_boot, b_boot = np.asarray(a_boot, np.float64), np.asarray(b_boot, np.float64)
    diff = Interval.of_replicates(a_estimate - b_estimate, a_boot - b_boot)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_boot = a_boot / b_boot
        ratio_hat = a_estimate / b_estimate if b_estimate else math.nan
    ratio = Interval.of_replicates(ratio_hat, ratio_boot)
    small = abs(a_estimate - b_estimate) < rel_margin * min(abs(a_estimate), abs(b_estimate))
    tie = bool(diff.contains(0.0) or small)
    level = round(100 * CONFIDENCE_LEVEL)
    test = (
        f"{level}% bootstrap interval of the difference ({len(a_boot)} replicates: seeds "
        f"resampled, then each seed's chunks) contains 0, or the gap is under "
        f"{100 * rel_margin:.0f}%"
    )
    return Comparison(diff, ratio, tie, test, confidence_of(*n_seeds))


def welch_tolerance(a: np.ndarray, b: np.ndarray, z: float = SEED_Z) -> float:
    """:math:`z\\sqrt{s_a^2/n_a + s_b^2/n_b}`: ``z`` standard errors of a difference of means
    over seeds (Welch); 0 when a side has fewer than two seeds (spread unknown)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        return 0.0
    return float(z * np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))


def binomial_se(p: float, n: int) -> float:
    """Standard error :math:`\\sqrt{p(1-p)/n}` of an accuracy ``p`` on ``n`` test points."""
    if not n or not math.isfinite(p):
        return math.nan
    p = min(max(p, 0.0), 1.0)
    return math.sqrt(p * (1.0 - p) / n)


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley and McNeil's (1982) standard error of an AUROC from ``n_pos`` positives and
    ``n_neg`` negatives:

    .. math:: \\mathrm{SE}^2 = \\frac{A(1-A) + (n_p - 1)(Q_1 - A^2) + (n_n - 1)(Q_2 - A^2)}
              {n_p n_n}, \\quad Q_1 = \\frac{A}{2-A}, \\; Q_2 = \\frac{2A^2}{1+A}.
    """
    if n_pos < 1 or n_neg < 1 or not math.isfinite(auc):
        return math.nan
    a = min(max(auc, 1e-9), 1.0 - 1e-9)
    q1, q2 = a / (2.0 - a), 2.0 * a * a / (1.0 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def compare_per_seed(
    a: Sequence[float],
    b: Sequence[float],
    *,
    sampling_se: float = 0.0,
    sampling_name: str = "",
    rel_margin: float = 0.0,
) -> Comparison:
    """Per-seed values of two backends: a tie when

    .. math:: |\\bar a - \\bar b| \\le z_\\mathrm{seed}\\,\\mathrm{SE}_\\mathrm{Welch}
              + z_{95}\\,\\mathrm{SE}_\\mathrm{sampling}
              \\quad\\text{or}\\quad |\\bar a - \\bar b| < \\text{rel\\_margin}\\cdot
              \\min(|\\bar a|, |\\bar b|),

    with ``sampling_se`` the standard error of the difference that the test set alone
    causes (binomial for accuracies, Hanley-McNeil for AUROCs; 0 for none). With fewer than two
    seeds on a side only the sampling error (and margin) is tested: confidence ``"low"``.
    """
    a_arr, b_arr = np.asarray(a, np.float64), np.asarray(b, np.float64)
    gap = float(a_arr.mean() - b_arr.mean())
    spread = welch_tolerance(a_arr, b_arr)
    sampling = BINOMIAL_Z * sampling_se if math.isfinite(sampling_se) else 0.0
    tolerance = spread + sampling
    small = abs(gap) < rel_margin * min(abs(a_arr.mean()), abs(b_arr.mean()))
    tie = bool(abs(gap) <= tolerance or small)
    if len(a_arr) >= 2 and len(b_arr) >= 2:
        test = f"|gap| <= {SEED_Z:g} Welch SEs over seeds ({len(a_arr)} vs {len(b_arr)})"
    else:
        test = "one seed: no seed-to-seed spread; |gap| <= 0"
    if sampling:
        test += f" + {BINOMIAL_Z} {sampling_name or 'sampling'} SEs of the test set"
    if rel_margin:
        test += f", or under {100 * rel_margin:.0f}%"
    return Comparison(
        Interval(gap, gap - tolerance, gap + tolerance),
        None,
        tie,
        test,
        confidence_of(len(a_arr), len(b_arr)),
    )


# ------------------------------------------------------------------------------ answers
def crossover_steps(fixed_a: float, step_a_ms: float, fixed_b: float, step_b_ms: float) -> float:
    """:math:`n^* = 1000 (F_b - F_a) / (m_a - m_b)`: the steps at which :math:`T_a = T_b`, when
    one backend has the lower fixed cost and the other the lower step; NaN otherwise (one line is
    below the other for every :math:`n \\ge 0`)."""
    d_fixed, d_step = fixed_b - fixed_a, step_a_ms - step_b_ms
    if d_step == 0 or d_fixed == 0 or (d_fixed > 0) != (d_step > 0):
        return math.nan
    return 1000.0 * d_fixed / d_step


def tiers(
    values: Sequence[float],
    tie: Callable[[int, int], bool],
    *,
    higher_is_better: bool,
) -> list[int]:
    """Tier of each value (0 best): sort best first (NaN last); walk the order, joining the
    current tier when ``tie(leader, i)`` holds for the tier's first item, else opening the next.
    Tiers are non-decreasing along the sorted order."""
    arr = np.asarray(values, np.float64)
    key = np.where(np.isnan(arr), np.inf, -arr if higher_is_better else arr)
    order = np.argsort(key, kind="stable")
    out = [0] * len(arr)
    tier, leader = -1, -1
    for i in order:
        i = int(i)
        if leader < 0 or np.isnan(arr[i]) or np.isnan(arr[leader]) or not tie(leader, i):
            tier += 1
            leader = i
        out[i] = tier
    return out


def pareto_front(
    times: Sequence[float], qualities: Sequence[float], *, higher_quality_is_better: bool = True
) -> list[bool]:
    """Which points are on the Pareto front of (lower time, better quality): no other point is
    at least as good on both and strictly better on one. NaN points are never on it."""
    t = np.asarray(times, np.float64)
    q = np.asarray(qualities, np.float64)
    q = q if higher_quality_is_better else -q
    front = []
    for i in range(len(t)):
        if not (np.isfinite(t[i]) and np.isfinite(q[i])):
            front.append(False)
            continue
        dominated = any(
            np.isfinite(t[j])
            and np.isfinite(q[j])
            and t[j] <= t[i]
            and q[j] >= q[i]
            and (t[j] < t[i] or q[j] > q[i])
            for j in range(len(t))
            if j != i
        )
        front.append(not dominated)
    return front


# ------------------------------------------------------------------------------ two runs
def _positive_finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, np.float64).ravel()
    return arr[np.isfinite(arr) & (arr > 0)]


def min_mann_whitney_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value the exact Mann-Whitney U test can give with ``n_a`` and
    ``n_b`` replicates, :math:`\\min(1, 2/\\binom{n_a+n_b}{n_a})` (all of one side above all of
    the other): 0.1 with 3 against 3, 0.029 with 4 against 4, 0.0079 with 5 against 5."""
    if n_a < 1 or n_b < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def mann_whitney_p(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value of ``a`` against ``b`` (:func:`scipy.stats.mannwhitneyu`,
    exact for small samples without ties, else the normal approximation with the tie
    correction). NaN when a side is empty; 1 when every value is the same."""
    from scipy.stats import mannwhitneyu

    a_arr = np.asarray(a, np.float64)
    b_arr = np.asarray(b, np.float64)
    a_arr, b_arr = a_arr[np.isfinite(a_arr)], b_arr[np.isfinite(b_arr)]
    if a_arr.size == 0 or b_arr.size == 0:
        return math.nan
    both = np.concatenate([a_arr, b_arr])
    if np.all(both == both[0]):
        return 1.0
    return float(mannwhitneyu(a_arr, b_arr, alternative="two-sided").pvalue)


def welch_log_ratio(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> tuple[Interval, float]:
    """The ratio of geometric means :math:`r = \\exp(\\overline{\\log a} - \\overline{\\log b})`
    with Welch's ``CONFIDENCE_LEVEL`` t interval and two-sided t-test on the logarithms.

    .. math:: \\mathrm{SE}^2 = \\frac{s_{\\log a}^2}{n_a} + \\frac{s_{\\log b}^2}{n_b}, \\quad
              \\nu = \\frac{\\mathrm{SE}^4}{\\frac{(s_{\\log a}^2/n_a)^2}{n_a-1}
              + \\frac{(s_{\\log b}^2/n_b)^2}{n_b-1}}, \\quad
              r\\,e^{\\pm t_{\\nu,0.975}\\,\\mathrm{SE}}, \\quad
              p = 2\\,P(T_\\nu > |\\log r|/\\mathrm{SE}).

    Only positive finite values count. With fewer than two values on a side there is no spread:
    the interval's bounds and the p-value are NaN (the estimate is the ratio of what there is).
    With no spread on either side (every value repeated) the interval is the point and
    :math:`p` is 1 for equal values, 0 otherwise.

    Returns
    -------
    (Interval, float)
        The ratio :math:`a/b` with its interval, and the p-value.
    """
    from scipy.stats import t as t_dist

    la, lb = np.log(_positive_finite(a)), np.log(_positive_finite(b))
    if la.size == 0 or lb.size == 0:
        return Interval(math.nan, math.nan, math.nan), math.nan
    d = float(la.mean() - lb.mean())
    ratio = math.exp(d)
    if la.size < 2 or lb.size < 2:
        return Interval(ratio, math.nan, math.nan), math.nan
    va, vb = la.var(ddof=1) / la.size, lb.var(ddof=1) / lb.size
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Interval(ratio, ratio, ratio), 1.0 if d == 0.0 else 0.0
    df = (va + vb) ** 2 / (va**2 / (la.size - 1) + vb**2 / (lb.size - 1))
    q = float(t_dist.ppf(1.0 - (1.0 - CONFIDENCE_LEVEL) / 2.0, df))
    p = float(2.0 * t_dist.sf(abs(d) / se, df))
    return Interval(ratio, math.exp(d - q * se), math.exp(d + q * se)), p


def bootstrap_median_ratio(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    rng_a: np.random.Generator,
    rng_b: np.random.Generator,
    replicates: int = BOOTSTRAP_REPLICATES,
) -> Interval:
    """:math:`\\tilde a / \\tilde b`, the ratio of the medians of two samples (e.g. the timed
    rounds of one benchmark), with the percentile interval of
    :math:`\\tilde a^*_r / \\tilde b^*_r` where each side is resampled with replacement by its
    own generator (the sides are independent)."""
    a_arr, b_arr = _positive_finite(a), _positive_finite(b)
    if a_arr.size == 0 or b_arr.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    estimate = float(np.median(a_arr) / np.median(b_arr))
    a_boot = np.median(a_arr[rng_a.integers(0, a_arr.size, (replicates, a_arr.size))], axis=1)
    b_boot = np.median(b_arr[rng_b.integers(0, b_arr.size, (replicates, b_arr.size))], axis=1)
    return Interval.of_replicates(estimate, a_boot / b_boot)


@dataclass(frozen=True)
class RoundSummary:
    """The summary of ``n`` timed rounds that pytest-benchmark stores without its data:
    ``minimum``, quartiles ``q1``, ``median``, ``q3`` and ``maximum``.

    Whatever the interpolation of the quartiles (pytest-benchmark's included), at least
    :math:`\\lfloor 3n/4 \\rfloor` rounds lie at or above ``q1`` (and at or below ``q3``), at
    least :math:`\\lfloor n/2 \\rfloor` at or above (at or below) the median, and at least
    :math:`\\lfloor n/4 \\rfloor` at or below ``q1`` (at or above ``q3``).
    """

    n: int
    minimum: float
    q1: float
    median: float
    q3: float
    maximum: float

    def at_least(self) -> list[tuple[float, int]]:
        """``(x, k)``: at least ``k`` rounds are :math:`\\ge x`."""
        n = self.n
        return [
            (self.minimum, n),
            (self.q1, (3 * n) // 4),
            (self.median, n // 2),
            (self.q3, n // 4),
            (self.maximum, min(n, 1)),
        ]

    def at_most(self) -> list[tuple[float, int]]:
        """``(y, k)``: at least ``k`` rounds are :math:`\\le y`."""
        n = self.n
        return [
            (self.maximum, n),
            (self.q3, (3 * n) // 4),
            (self.median, n // 2),
            (self.q1, n // 4),
            (self.minimum, min(n, 1)),
        ]


def _known_above(a: RoundSummary, b: RoundSummary) -> int:
    """A lower bound of :math:`U_a = \\#\\{(i, j): a_i > b_j\\}` from the summaries alone: the
    area of the union of the rectangles ``k_a × k_b`` for every ``(x, k_a)`` of
    :meth:`RoundSummary.at_least` of ``a`` and ``(y, k_b)`` of :meth:`RoundSummary.at_most` of
    ``b`` with :math:`x > y` (the ``k_a`` largest rounds of ``a`` each exceed the ``k_b``
    smallest of ``b``)."""
    rects = [(ka, kb) for x, ka in a.at_least() for y, kb in b.at_most() if x > y and ka and kb]
    return sum(max((kb for ka, kb in rects if ka >= i), default=0) for i in range(1, a.n + 1))


def _mann_whitney_sf(u: int, n_a: int, n_b: int) -> float:
    """:math:`P(U_a \\ge u)` under the null hypothesis, without ties: scipy's one-sided test on
    two samples built to have exactly :math:`U_a = u` (exact, or the normal approximation above
    8 a side, as :func:`mann_whitney_p`)."""
    from scipy.stats import mannwhitneyu

    if u <= 0:
        return 1.0
    b = np.arange(n_b, dtype=np.float64)
    counts = np.zeros(n_a)
    remaining = min(u, n_a * n_b)
    for i in range(n_a):
        counts[i] = min(n_b, remaining)
        remaining -= counts[i]
    a = counts - 0.5 + np.arange(n_a) * (0.5 / (n_a + 1))  # above exactly counts[i] of b, no ties
    # the method mann_whitney_p uses for such samples (exact up to 8 a side, else normal)
    return float(mannwhitneyu(a, b, alternative="greater").pvalue)


def mann_whitney_p_bound_from_summary(a: RoundSummary, b: RoundSummary) -> float:
    """An upper bound of the two-sided Mann-Whitney p-value of the rounds behind two summaries.

    The summaries prove at least :math:`u_a` pairs with :math:`a_i > b_j` and :math:`u_b` with
    :math:`b_j > a_i` (:func:`_known_above`); since :math:`U_a \\ge u_a`,

    .. math:: p \\le \\min\\bigl(1,\\; 2 \\min(P(U_a \\ge u_a),\\, P(U_b \\ge u_b))\\bigr).

    Conservative: a difference the test would find in the rounds themselves may not be proven.
    """
    if a.n < 1 or b.n < 1:
        return math.nan
    u_a, u_b = _known_above(a, b), _known_above(b, a)
    tail = min(_mann_whitney_sf(u_a, a.n, b.n), _mann_whitney_sf(u_b, b.n, a.n))
    return min(1.0, 2.0 * tail)


def median_bounds_from_summary(
    s: RoundSummary, level: float = 1.0 - (1.0 - CONFIDENCE_LEVEL) / 2.0
) -> tuple[float, float]:
    """Bounds that contain a distribution-free ``level`` interval of the median of the rounds.

    That interval is :math:`[x_{(k)}, x_{(n+1-k)}]` with :math:`k` the largest rank such that
    :math:`P(\\mathrm{Bin}(n, 1/2) \\le k - 1) \\le (1 - \\text{level})/2`. ``q1`` is at most
    :math:`x_{(\\lfloor n/4 \\rfloor + 2)}`, so ``[q1, q3]`` contains it when
    :math:`k \\ge \\lfloor n/4 \\rfloor + 2` (about 30 rounds and more); otherwise ``[minimum,
    maximum]`` (which, below 6 rounds at 95 %, covers only :math:`1 - 2^{1-n}`). The default
    level, 97.5 %, makes the quotient of two such intervals cover a ratio of medians with at
    least 95 %.
    """
    from scipy.stats import binom

    n = s.n
    k = 0
    for rank in range(1, n // 2 + 1):
        if binom.cdf(rank - 1, n, 0.5) <= (1.0 - level) / 2.0:
            k = rank
    if k >= n // 4 + 2:
        return s.q1, s.q3
    return s.minimum, s.maximum
