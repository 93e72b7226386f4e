r"""Stage 2, *evaluate*: turn a :class:`~bnnbench.measure.Measurement` into metrics. No I/O.

Everything here is a function of the measurement, the spec, the data and, passed in as values,
the machine's roofline ceilings and the spec's reference posterior. With :math:`\bar p_n` the
posterior-predictive mean probability of test point :math:`n` over the :math:`S` draws:

* accuracy :math:`\frac1n\sum_n [\arg\max_k \bar p_{nk} = y_n]`, NLL
  :math:`-\frac1n\sum_n \log \bar p_{n y_n}` (:mod:`bnnbench.metrics`);
* uncertainty (chi-square of the votes, entropy, mutual information, reject option, Brier,
  ECE) and out-of-distribution scores (:mod:`bnnbench.uncertainty`);
* the PSIS Pareto-k of :math:`\log p(\theta, y) - \log q(\theta)` (:mod:`bnnbench.diagnostics`);
* agreement and total variation to a reference posterior (:mod:`bnnbench.reference`);
* the roofline floors :math:`\max(F/\pi, B/\beta)` of a step and a draw (:mod:`bnnbench.roofline`);
* ``step_ms``: the median over full chunks of :math:`1000\,t_c / n_c`, with its IQR;
* the learning curve: accuracy and NLL of each checkpoint's predictive mean on the curve's test
  subset, and time-to-accuracy (:func:`time_to_accuracy`): per target :math:`a^*` of the spec,
  the first checkpoint with accuracy :math:`\ge a^*`, its step and its training seconds
  :math:`\sum_{c \le j} t_c` (compile and curve evaluation excluded), or "not reached".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from bnnbench import diagnostics, metrics, roofline, uncertainty
from bnnbench.config import CellConfig
from bnnbench.measure import Measurement, PredictiveDraws, curve_test_indices
from bnnbench.record import OODScores, TimeToAccuracy, tta_key
from bnnbench.reference import score_against_reference
from bnnbench.spec import Dataset, ModelSpec

__all__ = [
    "EQUIVALENCE_ATOL",
    "EQUIVALENCE_Z",
    "Equivalence",
    "Evaluation",
    "equivalent_over_seeds",
    "evaluate",
    "learning_curve",
    "step_timing",
    "summary_dataset",
    "time_to_accuracy",
]

#: The stated tolerance of "lands on the same ELBO": the gap of the means over seeds may be at
#: most ``EQUIVALENCE_Z`` standard errors of that gap plus ``EQUIVALENCE_ATOL`` (nats per datum).
EQUIVALENCE_Z = 3.0
EQUIVALENCE_ATOL = 0.005


@dataclass
class Evaluation:
    """Metrics of one cell.

    Attributes
    ----------
    scores
        :class:`~bnnbench.record.RunRecord` field -> value.
    ood
        One :class:`~bnnbench.record.OODScores` per out-of-distribution set.
    summary
        The per-point and per-curve datasets of ``predictive_summary.nc``: ``test`` (mean
        probabilities, votes, chi-square, correctness, entropy, MI, reject decisions), ``coverage``,
        ``reliability``, ``ood_<set>`` and, for 2-D specs, ``grid`` and ``test_inputs``.
    curve
        The learning curve (:func:`learning_curve`), columns ``step``, ``curve_accuracy``,
        ``curve_nll``, ``curve_eval_s``.
    tta
        Time-to-accuracy per target of the spec (key :func:`~bnnbench.record.tta_key`).
    """

    scores: dict[str, Any]
    ood: dict[str, OODScores] = field(default_factory=dict)
    summary: dict[str, xr.Dataset] = field(default_factory=dict)
    curve: dict[str, list[float]] = field(default_factory=dict)
    tta: dict[str, TimeToAccuracy] = field(default_factory=dict)


@dataclass(frozen=True)
class Equivalence:
    """Whether two sets of per-seed values come from one distribution, within tolerance."""

    gap: float
    tolerance: float
    n_a: int
    n_b: int

    @property
    def ok(self) -> bool:
        return bool(self.gap <= self.tolerance)


def equivalent_over_seeds(
    a: np.ndarray, b: np.ndarray, z: float = EQUIVALENCE_Z, atol: float = EQUIVALENCE_ATOL
) -> Equivalence:
    r"""Do per-seed values ``a`` (e.g. ``matched``) and ``b`` (``tuned``) agree?

    With means :math:`\bar a, \bar b`, sample variances :math:`s_a^2, s_b^2` over
    :math:`n_a, n_b \ge 2` seeds, they agree when

    .. math:: |\bar a - \bar b| \le z \sqrt{s_a^2 / n_a + s_b^2 / n_b} + \mathrm{atol}:

    the gap is within ``z`` standard errors of a difference of means (Welch's), plus an
    absolute tolerance so that two bit-identical paths (zero spread) still agree, and a path
    that moves the answer by more than ``atol`` beyond seed noise does not.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("need at least two seeds on each side to compare distributions")
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    return Equivalence(float(abs(a.mean() - b.mean())), z * se + atol, len(a), len(b))


def step_timing(chunk_steps: list[int], chunk_s: list[float], trace_every: int) -> dict[str, float]:
    """Median and interquartile range of milliseconds per step over the full chunks (all
    chunks when none is full)."""
    full = [1000.0 * s / n for n, s in zip(chunk_steps, chunk_s, strict=True) if n == trace_every]
    per_step = full or [1000.0 * sum(chunk_s) / max(sum(chunk_steps), 1)]
    q25, q50, q75 = np.percentile(per_step, [25, 50, 75])
    return {"step_ms": float(q50), "step_ms_iqr": float(q75 - q25)}


def summary_dataset(y_true: np.ndarray, pred: PredictiveDraws, n_classes: int) -> xr.Dataset:
    """Per test point: mean class probabilities, vote counts, the chi-square and correctness."""
    mean = metrics.predictive_mean(pred.proba)
    counts = metrics.vote_counts(pred.y, n_classes)
    return xr.Dataset(
        {
            "mean_proba": (("obs_id", "class"), mean.astype(np.float32)),
            "votes": (("obs_id", "class"), counts.astype(np.int32)),
            "chi2": ("obs_id", metrics.chi_square_of_votes(counts)),
            "correct": ("obs_id", (mean.argmax(axis=-1) == y_true).astype(np.int8)),
            "y": ("obs_id", y_true),
        },
        attrs={"draws": int(pred.proba.shape[0])},
    )


def _grid_dataset(spec: ModelSpec, proba: np.ndarray) -> xr.Dataset:
    """Predictive mean and sd of p(y = 1) over the grid (the tutorial's two maps)."""
    grid = spec.grid_points()
    assert grid is not None
    xs, ys, _ = grid
    n = len(xs)
    return xr.Dataset(
        {
            "p_mean": (("grid_y", "grid_x"), proba.mean(axis=0).reshape(n, n)),
            "p_sd": (("grid_y", "grid_x"), proba.std(axis=0).reshape(n, n)),
        },
        coords={"grid_x": xs, "grid_y": ys},
    )


def _roofline(
    spec: ModelSpec, cfg: CellConfig, n_test: int, ceilings: roofline.Ceilings | None
) -> dict[str, Any]:
    step = roofline.training_step_cost(spec, cfg.batch_size)
    draw = roofline.predictive_draw_cost(spec, n_test)
    out: dict[str, Any] = {
        "step_gflop": step.flops / 1e9,
        "step_mbytes": step.bytes / 1e6,
        "draw_gflop": draw.flops / 1e9,
    }
    if ceilings is not None:
        out["step_floor_ms"] = roofline.floor_ms(step, ceilings)
        out["draw_floor_ms"] = roofline.floor_ms(draw, ceilings)
        out["step_bound"] = roofline.bound(step, ceilings)
    return out


def learning_curve(m: Measurement, y_test: np.ndarray) -> dict[str, list[float]]:
    """Per checkpoint: its step, the accuracy and NLL (nats per point) of its predictive mean
    on the curve's test points (:func:`~bnnbench.measure.curve_test_indices`), and its
    seconds."""
    curve: dict[str, list[float]] = {
        "step": [],
        "curve_accuracy": [],
        "curve_nll": [],
        "curve_eval_s": [],
    }
    for c in m.checkpoints:
        mean_proba = np.asarray(c.proba, np.float64).mean(axis=0)
        y = y_test[curve_test_indices(len(y_test))]
        curve["step"].append(c.step)
        curve["curve_accuracy"].append(metrics.accuracy(y, mean_proba))
        curve["curve_nll"].append(metrics.negative_log_likelihood(y, mean_proba))
        curve["curve_eval_s"].append(c.eval_s)
    return curve


def time_to_accuracy(
    steps: np.ndarray, train_s: np.ndarray, accuracy: np.ndarray, targets: tuple[float, ...]
) -> dict[str, TimeToAccuracy]:
    """For each target, the first curve point (in order of step) with ``accuracy >= target``:
    its step and training seconds, status ``reached``; else ``not reached``; with no curve
    point at all, ``no curve``.

    Parameters
    ----------
    steps, train_s, accuracy
        The curve: steps, training seconds (compile and curve evaluation excluded) and test
        accuracy at each checkpoint.
    targets
        Target accuracies (fractions).
    """
    steps, train_s = np.asarray(steps, np.float64), np.asarray(train_s, np.float64)
    accuracy = np.asarray(accuracy, np.float64)
    order = np.argsort(steps, kind="stable")
    steps, train_s, accuracy = steps[order], train_s[order], accuracy[order]
    out = {}
    for target in targets:
        if steps.size == 0:
            out[tta_key(target)] = TimeToAccuracy("no curve", target)
            continue
        hit = np.flatnonzero(accuracy >= target)
        if hit.size == 0:
            out[tta_key(target)] = TimeToAccuracy("not reached", target)
        else:
            j = int(hit[0])
            out[tta_key(target)] = TimeToAccuracy(
                "reached", target, float(steps[j]), float(train_s[j])
            )
    return out


def _pareto_k(spec: ModelSpec, m: Measurement, data: Dataset) -> dict[str, Any]:
    """PSIS Pareto-k over the test draws (NaN below ``diagnostics.PSIS_MIN_DRAWS`` draws)."""
    posterior = m.test.posterior
    draws = len(next(iter(posterior.values()), []))
    if not posterior or not m.variational or draws < diagnostics.PSIS_MIN_DRAWS:
        return {"pareto_draws": draws}
    import time

    t = time.perf_counter()
    log_q = diagnostics.variational_log_density(spec, posterior, m.variational)
    log_p = diagnostics.log_joint_draws(spec, posterior, data.X_train, data.y_train)
    return {
        "pareto_k": diagnostics.pareto_k(log_p - log_q),
        "pareto_draws": draws,
        "pareto_s": time.perf_counter() - t,
    }


def evaluate(
    m: Measurement,
    spec: ModelSpec,
    data: Dataset,
    cfg: CellConfig,
    *,
    ceilings: roofline.Ceilings | None = None,
    reference: xr.DataTree | None = None,
) -> Evaluation:
    """Every metric of one cell (see the module docstring)."""
    test = m.test
    summary: dict[str, xr.Dataset] = {"test": summary_dataset(data.y_test, test, spec.n_classes)}
    scalars = uncertainty.uncertainty_summary(data.y_test, test.proba, test.y, spec.n_classes)
    scalars["ece_15"] = scalars.pop("ece")
    points = uncertainty.per_point_uncertainty(test.proba, test.y, spec.n_classes)
    summary["test"] = summary["test"].assign({k: ("obs_id", v) for k, v in points.items()})
    mean_proba = summary["test"]["mean_proba"].values
    coverage = uncertainty.accuracy_coverage_curve(test.proba, data.y_test)
    reliability = uncertainty.reliability_diagram(mean_proba, data.y_test)
    summary["coverage"] = xr.Dataset.from_dataframe(coverage.set_index("threshold"))
    summary["reliability"] = xr.Dataset.from_dataframe(reliability.rename_axis("bin"))

    ood: dict[str, OODScores] = {
        name: OODScores(status=f"skipped: {why}") for name, why in m.ood_skipped.items()
    }
    for name, out in m.ood.items():
        scores = uncertainty.ood_summary(test.proba, test.y, out.proba, out.y, spec.n_classes)
        ood[name] = OODScores(status="ok", predict_s=out.seconds, **scores)
        per_point = uncertainty.per_point_uncertainty(out.proba, out.y, spec.n_classes)
        summary[f"ood_{name}"] = xr.Dataset(
            {k: ("obs_id", np.asarray(v)) for k, v in per_point.items()}
        )

    grid = None
    if m.grid is not None:
        grid = _grid_dataset(spec, m.grid.proba)
        summary["grid"] = grid
        summary["test_inputs"] = xr.Dataset({"X": (("obs_id", "feature"), data.X_test)})

    reference_scores: dict[str, float] = {}
    if reference is not None:
        grid_p = None if grid is None else grid["p_mean"].values.ravel()
        p = mean_proba[:, 1] if spec.n_classes == 2 else mean_proba
        reference_scores = score_against_reference(p, grid_p, reference)

    timing = step_timing(m.chunk_steps, m.chunk_s, cfg.trace_every)
    draws_taken = int(test.proba.shape[0])
    predict_ms_per_draw = 1000.0 * test.seconds / draws_taken
    roof = _roofline(spec, cfg, len(data.y_test), ceilings)
    scores: dict[str, Any] = dict(
        status="ok",
        error="",
        execution_path=m.execution_path,
        dtype=m.dtype,
        transfer_s=m.transfer_s,
        compile_s=m.compile_s,
        fit_s=m.fit_s,
        **timing,
        predict_s=test.seconds,
        predict_ms_per_draw=predict_ms_per_draw,
        accuracy=metrics.accuracy(data.y_test, mean_proba),
        nll=metrics.negative_log_likelihood(data.y_test, mean_proba),
        final_neg_elbo_per_datum=m.trace[-1].neg_elbo_per_datum,
        **scalars,
        **_pareto_k(spec, m, data),
        **reference_scores,
        **roof,
        peak_rss_mb=m.peak_rss_mb,
        peak_device_mb=float("nan") if m.peak_device_mb is None else m.peak_device_mb,
    )
    if "step_floor_ms" in roof:
        scores["step_floor_ratio"] = timing["step_ms"] / roof["step_floor_ms"]
        scores["draw_floor_ratio"] = predict_ms_per_draw / roof["draw_floor_ms"]

    curve = learning_curve(m, data.y_test)
    train_s_at = dict(zip(np.cumsum(m.chunk_steps).tolist(), np.cumsum(m.chunk_s), strict=True))
    tta = time_to_accuracy(
        np.asarray(curve["step"]),
        np.asarray([train_s_at[s] for s in curve["step"]]),
        np.asarray(curve["curve_accuracy"]),
        spec.accuracy_targets,
    )
    scores.update(
        curve_points=len(m.checkpoints),
        curve_eval_s=m.curve_eval_s,
        curve_overhead_pct=100.0 * m.curve_eval_s / m.fit_s if m.fit_s > 0 else float("nan"),
    )
    return Evaluation(scores=scores, ood=ood, summary=summary, curve=curve, tta=tta)
