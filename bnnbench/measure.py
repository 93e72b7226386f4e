r"""Stage 1, *measure*: drive a backend's training session and return what it produced.

:func:`measure` compiles, trains in timed chunks, draws the posterior and predicts the test set,
the spec's grid and its out-of-distribution sets, and returns a typed :class:`Measurement`:
timings per chunk, the ELBO trace, posterior draws and variational parameters, predictive
probabilities and labels, the execution path and peak memory. It computes no metric (that is
:mod:`bnnbench.evaluate`) and writes no file (that is :mod:`bnnbench.results`).

Timers (``time.perf_counter``) stop only after the session has synchronised the device.

Learning curve: after the chunks that end at log-spaced steps (:func:`checkpoint_chunks`: chunk
:math:`j` when :math:`j = \operatorname{round}(2^{i/2})` for some :math:`i \ge 0`, and the last
chunk), ``CURVE_DRAWS`` parameters are drawn from the current approximation and the session
predicts ``CURVE_POINTS`` test points (:func:`curve_test_indices`) through its own API
(:func:`curve_predictive`), always with the same seed (common random numbers along the curve).
The draws come from the session's variational parameters (:func:`variational_draws`: the same
mean-field q, drawn in NumPy), because the libraries' own samplers cost 1-4 s a call on the
MNIST nets here (``approx.sample``, ``guide.sample_posterior``), ten times the predictive.
That evaluation is timed on its own clock: it is excluded from the chunk times, so from
``fit_s``, ``step_ms`` and the trace's ``wall_s``. A session's drawing and predicting must not
disturb its training (its random state included): the contract test checks it.

Divergence: a run whose chunk-mean negative ELBO per datum is not finite, or exceeds
``DIVERGENCE_FACTOR`` times the magnitude of the first step's (the loss at the initial
parameters), raises :class:`DivergedError`: the fit exploded, finite or not, on every backend.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from bnnbench.backends.base import TrainingSession
from bnnbench.config import CellConfig
from bnnbench.registry import backend_info
from bnnbench.spec import Dataset, ModelSpec

__all__ = [
    "CURVE_DRAWS",
    "CURVE_POINTS",
    "DIVERGENCE_FACTOR",
    "Checkpoint",
    "DivergedError",
    "Measurement",
    "PredictiveDraws",
    "TracePoint",
    "checkpoint_chunks",
    "chunk_sizes",
    "curve_predictive",
    "curve_test_indices",
    "measure",
    "peak_rss_mb",
    "posterior_predictive",
    "variational_draws",
]

#: A chunk whose mean -ELBO/datum exceeds this multiple of |first step's| has diverged.
DIVERGENCE_FACTOR = 100.0
#: Test points (a fixed random subset of the test set: :func:`curve_test_indices`) and
#: posterior draws of each learning-curve checkpoint: accuracy to about +-0.3 percentage points
#: at 98%, at a few percent of training.
CURVE_POINTS = 2_000
CURVE_DRAWS = 4
#: Seed of the curve's test subset: the same points in every cell, whatever its seed.
CURVE_SUBSET_SEED = 15
#: Added to the cell's seed for the checkpoints' draws (the test set uses the seed itself).
CURVE_SEED_OFFSET = 30_000


class DivergedError(FloatingPointError):
    """The negative ELBO became non-finite or exploded."""


@dataclass(frozen=True)
class TracePoint:
    """One ELBO trace point: after ``step`` steps, ``wall_s`` into training."""

    step: int
    wall_s: float
    neg_elbo_per_datum: float


@dataclass
class PredictiveDraws:
    """Posterior-predictive output for n points.

    Attributes
    ----------
    posterior
        Draws of every parameter tensor, ``(draws, *shape)``.
    proba
        Per draw, p(y = 1 | x) ``(draws, n)`` for a binary spec or class probabilities
        ``(draws, n, K)``.
    y
        One sampled label per draw and point, ``(draws, n)``.
    seconds
        Wall time of the drawing and predicting (synchronised).
    """

    posterior: dict[str, np.ndarray]
    proba: np.ndarray
    y: np.ndarray
    seconds: float = float("nan")


@dataclass
class Checkpoint:
    """One learning-curve point: the predictive on the curve's test subset after ``step``
    steps (``proba`` as in :class:`PredictiveDraws`), and the seconds it took."""

    step: int
    proba: np.ndarray
    eval_s: float


@dataclass
class Measurement:
    """Everything a cell measured, before any metric.

    Attributes
    ----------
    execution_path, dtype
        How the backend ran its steps, and in which float type.
    transfer_s, compile_s
        Seconds placing the data on the device, and building/compiling the step.
    chunk_steps, chunk_s
        Steps and wall seconds of each training chunk, in order.
    trace
        One :class:`TracePoint` per chunk.
    checkpoints
        The learning curve's :class:`Checkpoint` s, in order of step.
    test, grid, ood
        Predictive draws on the test set, the spec's grid (or ``None``) and each OOD set
        (the test draws' parameters reused).
    variational
        Per parameter tensor the mean-field ``(loc, scale)`` in unconstrained space (empty for a
        non-Bayesian backend).
    peak_device_mb, peak_rss_mb
        Peak accelerator memory (``None`` on the CPU) and peak resident host memory.
    ood_skipped
        OOD sets whose data are not installed, with the reason.
    """

    execution_path: str
    dtype: str
    transfer_s: float
    compile_s: float
    chunk_steps: list[int]
    chunk_s: list[float]
    trace: list[TracePoint]
    test: PredictiveDraws
    grid: PredictiveDraws | None
    ood: dict[str, PredictiveDraws] = field(default_factory=dict)
    ood_skipped: dict[str, str] = field(default_factory=dict)
    variational: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    peak_device_mb: float | None = None
    peak_rss_mb: float = float("nan")
    checkpoints: list[Checkpoint] = field(default_factory=list)

    @property
    def fit_s(self) -> float:
        return float(sum(self.chunk_s))

    @property
    def curve_eval_s(self) -> float:
        return float(sum(c.eval_s for c in self.checkpoints))


def chunk_sizes(steps: int, trace_every: int) -> list[int]:
    """Split ``steps`` into chunks of ``trace_every`` and a remainder."""
    sizes = [trace_every] * (steps // trace_every)
    if steps % trace_every:
        sizes.append(steps % trace_every)
    return sizes


def checkpoint_chunks(n_chunks: int) -> list[int]:
    r"""The chunks (1-based) after which the learning curve is evaluated: two per doubling of
    the step count, :math:`\operatorname{round}(2^{i/2})` = 1, 2, 3, 4, 6, 8, 11, 16, 23, 32, ...,
    and the last one; about :math:`2 \log_2 n + 1` of ``n_chunks``."""
    chosen, i = set(), 0
    while (j := round(2 ** (i / 2))) <= n_chunks:
        chosen.add(j)
        i += 1
    if n_chunks > 0:
        chosen.add(n_chunks)
    return sorted(chosen)


def curve_test_indices(n_test: int) -> np.ndarray:
    """The learning curve's test points, ascending: every one when there are at most
    ``CURVE_POINTS``, else a fixed random subset of that many (seed ``CURVE_SUBSET_SEED``). Not
    the first ones: a test set's order need not be random (MNIST's first 2,000 test digits are
    harder than the rest: 92.9 % against 94.9 % over all 10,000 for one mnist_2x800 run)."""
    if n_test <= CURVE_POINTS:
        return np.arange(n_test)
    rng = np.random.default_rng(CURVE_SUBSET_SEED)
    return np.sort(rng.choice(n_test, CURVE_POINTS, replace=False))


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def posterior_predictive(
    session: TrainingSession,
    X: np.ndarray,
    draws: int,
    seed: int,
    chunk_points: int,
    posterior: dict[str, np.ndarray] | None = None,
) -> PredictiveDraws:
    """``draws`` posterior draws and their predictive at ``X``, ``chunk_points`` points a call.

    ``posterior`` reuses draws already taken (the same parameters for the test set and the
    out-of-distribution sets); otherwise ``draws`` are sampled with ``seed``. Evaluating the
    points chunk by chunk bounds the memory a backend holds, so draws and test sets can grow.
    """
    t = time.perf_counter()
    if posterior is None:
        posterior = session.sample_posterior(draws, seed)
    probas, labels = [], []
    for start in range(0, X.shape[0], chunk_points):
        proba, y = session.predict(posterior, X[start : start + chunk_points], seed + 1 + start)
        probas.append(proba)
        labels.append(y)
    return PredictiveDraws(
        posterior=posterior,
        proba=np.concatenate(probas, axis=1),
        y=np.concatenate(labels, axis=1),
        seconds=time.perf_counter() - t,
    )


def variational_draws(
    spec: ModelSpec,
    variational: Mapping[str, tuple[np.ndarray, np.ndarray]],
    draws: int,
    seed: int,
    dtype: str = "float32",
) -> dict[str, np.ndarray]:
    r"""``draws`` draws of every parameter tensor from a mean-field approximation given, per
    tensor, as ``(loc, scale)`` in the unconstrained space (a session's
    ``variational_parameters()``): :math:`z = \mu + \sigma \odot \varepsilon` with
    :math:`\varepsilon \sim \mathcal N(0, I)`, and :math:`\theta = e^{z}` for a positive
    parameter, else :math:`\theta = z`; ``(draws, *shape)`` each, in ``dtype``."""
    rng = np.random.default_rng(seed)
    out = {}
    for param in spec.params:
        loc, scale = (np.asarray(a, np.float64) for a in variational[param.name])
        z = loc + scale * rng.standard_normal((draws, *loc.shape))
        out[param.name] = (np.exp(z) if param.positive else z).astype(dtype)
    return out


def curve_predictive(
    session: TrainingSession, spec: ModelSpec, cfg: CellConfig, X: np.ndarray
) -> PredictiveDraws:
    """One learning-curve checkpoint: ``CURVE_DRAWS`` draws from the session's current
    approximation (:func:`variational_draws`; a maximum-likelihood session's own point) and its
    predictive at ``X``, seeded with the cell's seed + ``CURVE_SEED_OFFSET``."""
    seed = cfg.seed + CURVE_SEED_OFFSET
    posterior = None
    if backend_info(cfg.backend).bayesian:
        variational = session.variational_parameters()
        posterior = variational_draws(spec, variational, CURVE_DRAWS, seed, session.dtype)
    return posterior_predictive(session, X, CURVE_DRAWS, seed, spec.predict_chunk, posterior)


def _check_finite(losses: np.ndarray, done: int) -> None:
    """Raise :class:`DivergedError` if a step's loss is NaN or infinite."""
    if not np.all(np.isfinite(losses)):
        bad = done - len(losses) + int(np.argmin(np.isfinite(losses)))
        raise DivergedError(f"negative ELBO is not finite at step {bad + 1}")


def _check_explosion(point: TracePoint, initial: float) -> None:
    """Raise :class:`DivergedError` if a chunk's mean loss exploded past the limit."""
    if point.neg_elbo_per_datum > DIVERGENCE_FACTOR * max(abs(initial), 1.0):
        raise DivergedError(
            f"negative ELBO per datum exploded to {point.neg_elbo_per_datum:.3g} by step "
            f"{point.step} (started at {initial:.3g}; limit {DIVERGENCE_FACTOR:g}x)"
        )


def measure(
    spec: ModelSpec,
    data: Dataset,
    session: TrainingSession,
    cfg: CellConfig,
    ood_inputs: Mapping[str, np.ndarray] | None = None,
    ood_skipped: Mapping[str, str] | None = None,
    on_trace: Callable[[TracePoint], None] | None = None,
) -> Measurement:
    """Compile, train, sample and predict one cell; see the module docstring.

    ``on_trace`` receives each trace point as it is taken, so a cell that fails keeps the part of
    its trace it trained.
    """
    sizes = chunk_sizes(cfg.steps, cfg.trace_every)
    t0 = time.perf_counter()
    session.compile(set(sizes))
    transfer_s = float(getattr(session, "transfer_s", float("nan")))
    compile_s = time.perf_counter() - t0 - (transfer_s if np.isfinite(transfer_s) else 0.0)

    chunk_s: list[float] = []
    trace: list[TracePoint] = []
    checkpoints: list[Checkpoint] = []
    at_chunks = set(checkpoint_chunks(len(sizes)))
    X_curve = data.X_test[curve_test_indices(len(data.X_test))]
    done, initial = 0, float("nan")
    fit_start = time.perf_counter()
    for chunk, n_steps in enumerate(sizes, start=1):
        t = time.perf_counter()
        losses = np.asarray(session.run_steps(n_steps), np.float64)
        chunk_s.append(time.perf_counter() - t)
        done += n_steps
        _check_finite(losses, done)
        if not trace:
            initial = float(losses[0]) / data.n_train
        curve_s = sum(c.eval_s for c in checkpoints)  # the training clock stops during them
        point = TracePoint(
            done, time.perf_counter() - fit_start - curve_s, float(np.mean(losses)) / data.n_train
        )
        trace.append(point)
        if on_trace is not None:
            on_trace(point)
        _check_explosion(point, initial)
        if chunk in at_chunks:
            t = time.perf_counter()
            out = curve_predictive(session, spec, cfg, X_curve)
            checkpoints.append(Checkpoint(done, out.proba, time.perf_counter() - t))

    test = posterior_predictive(
        session, data.X_test, cfg.predict_draws, cfg.seed, spec.predict_chunk
    )
    ood = {
        name: posterior_predictive(
            session, X, len(test.proba), cfg.seed + 20_000, spec.predict_chunk, test.posterior
        )
        for name, X in (ood_inputs or {}).items()
    }
    grid = None
    grid_points = spec.grid_points()
    if grid_points is not None:
        grid = posterior_predictive(
            session, grid_points[2], cfg.predict_draws, cfg.seed + 10_000, spec.predict_chunk
        )
    variational = session.variational_parameters() if backend_info(cfg.backend).bayesian else {}
    return Measurement(
        execution_path=session.execution_path,
        dtype=session.dtype,
        transfer_s=transfer_s,
        compile_s=compile_s,
        chunk_steps=sizes,
        chunk_s=chunk_s,
        trace=trace,
        test=test,
        grid=grid,
        ood=ood,
        ood_skipped=dict(ood_skipped or {}),
        variational=variational,
        peak_device_mb=session.peak_device_memory_mb(),
        peak_rss_mb=peak_rss_mb(),
        checkpoints=checkpoints,
    )
