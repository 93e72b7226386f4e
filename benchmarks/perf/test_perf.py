r"""Performance benchmarks on pytest-benchmark: the steady state of every backend.

One benchmark per backend for

- ``train``: the steady-state training step of ``moons_2x5`` (batch 50) and ``mnist_2x800``
  (batch 100), timed as a chunk of ``STEPS_PER_CALL`` steps (one call of the session's
  ``run_steps``, which returns after the device has finished);
- ``compile``: building and compiling the ``moons_2x5`` step, a new session each round;
- ``conv``: one forward/backward step of ``mnist_conv`` (batch 32);
- ``predictive``: posterior-predictive draws (sampling the approximation and predicting a fixed
  set of test points) of ``moons_2x5`` and ``mnist_2x800``.

Building the model, compiling (jit, trace, C or XLA compilation) and loading the data happen in
the fixtures, outside the timer; a warm-up round runs before timing. pytest-benchmark reports
seconds per call; ``extra_info["steps_per_call"]`` (or ``draws_per_call``) divides it into
milliseconds per step or draw:

.. math:: \text{step\_ms} = 1000 \cdot t_\text{call} / \text{steps\_per\_call}.

``tox -e perf`` runs the suite with one thread per library and saves each run in
``.results/perf`` (``--benchmark-autosave``); pytest-benchmark's ``--benchmark-compare`` and
``--benchmark-compare-fail=median:10%`` work on those saves as usual.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest

from bnnbench.config import CellConfig
from bnnbench.registry import backend_info, backend_names
from bnnbench.spec import Dataset, get_spec

DEVICE = os.environ.get("BNNBENCH_PERF_DEVICE", "cpu")


@dataclass(frozen=True)
class Workload:
    """One benchmarked training workload.

    Attributes
    ----------
    model, batch_size
        The spec and its minibatch.
    steps_per_call
        Steps in one timed call (enough that a call lasts milliseconds, not microseconds).
    rounds
        Timed calls per benchmark (after one warm-up call).
    """

    model: str
    batch_size: int
    steps_per_call: int
    rounds: int


TRAIN = {
    "moons_2x5": Workload("moons_2x5", batch_size=50, steps_per_call=200, rounds=15),
    "mnist_2x800": Workload("mnist_2x800", batch_size=100, steps_per_call=5, rounds=10),
}
CONV = Workload("mnist_conv", batch_size=32, steps_per_call=1, rounds=5)
#: Timed compilations (a new session each) per backend.
COMPILE_ROUNDS = 3
#: Posterior draws and test points of one predictive call.
PREDICTIVE_DRAWS, PREDICTIVE_POINTS = 20, 1000


@cache
def _data(model: str) -> Dataset:
    return get_spec(model).load_data()


def _implemented(model: str) -> list[str]:
    return [b for b in backend_names() if b in get_spec(model).implementations]


def _session(model: str, backend: str, workload: Workload, compiled: bool = True):
    """A (compiled) training session of ``backend`` for ``workload``, or a skip with the
    reason."""
    info = backend_info(backend)
    if info.missing_packages():
        pytest.skip(info.install_hint())
    from bnnbench.backends import get_backend

    module = get_backend(backend)
    problem = module.device_problem(DEVICE)
    if problem is not None:
        pytest.skip(problem)
    cfg = CellConfig.from_defaults(
        model,
        backend,  # type: ignore[arg-type]
        "matched",
        DEVICE,  # type: ignore[arg-type]
        0,
        batch_size=workload.batch_size,
        steps=workload.steps_per_call * (workload.rounds + 1),
        trace_every=workload.steps_per_call,
    )
    session = module.TrainingSession(get_spec(model), _data(model), cfg)
    if compiled:
        session.compile({workload.steps_per_call})
    return session


def _timed_steps(session, n_steps: int) -> Callable[[], np.ndarray]:
    def call() -> np.ndarray:
        losses = session.run_steps(n_steps)
        session.synchronize()
        return losses

    return call


def _cases(models: list[str]) -> list:
    return [
        pytest.param(model, backend, id=f"{model}-{backend}")
        for model in models
        for backend in _implemented(model)
    ]


@pytest.mark.parametrize(("model", "backend"), _cases(list(TRAIN)))
def test_train(benchmark, model: str, backend: str) -> None:
    """Steady-state training steps: ``steps_per_call`` Adam steps on minibatches."""
    workload = TRAIN[model]
    session = _session(model, backend, workload)
    benchmark.group = f"train {model}"
    benchmark.extra_info.update(steps_per_call=workload.steps_per_call, device=DEVICE)
    losses = benchmark.pedantic(
        _timed_steps(session, workload.steps_per_call),
        rounds=workload.rounds,
        iterations=1,
        warmup_rounds=1,
    )
    assert losses.shape == (workload.steps_per_call,) and np.isfinite(losses).all()


@pytest.mark.parametrize("backend", _implemented("moons_2x5"))
def test_compile(benchmark, backend: str) -> None:
    """Building the model, guide and optimizer and compiling the training step (``compile``),
    a new session each round: what a user waits for before the first step. The warm-up round
    takes the cold caches (pytensor's on-disk C cache, first imports); the rounds after it are
    warm. ``extra_info["kind"] == "compile"``: ``bnnbench compare`` judges it against its own,
    wider, threshold (compile times swing far more than steps)."""
    workload = TRAIN["moons_2x5"]
    _session("moons_2x5", backend, workload, compiled=False)  # skips if unavailable
    sessions: list = []

    def fresh() -> tuple[tuple, dict]:
        sessions.append(_session("moons_2x5", backend, workload, compiled=False))
        return (sessions[-1],), {}

    benchmark.group = "compile moons_2x5"
    benchmark.extra_info.update(kind="compile", device=DEVICE)
    benchmark.pedantic(
        lambda session: session.compile({workload.steps_per_call}),
        setup=fresh,
        rounds=COMPILE_ROUNDS,
        warmup_rounds=1,
    )
    losses = sessions[-1].run_steps(workload.steps_per_call)  # the compiled step works
    assert np.isfinite(losses).all()


@pytest.mark.parametrize("backend", _implemented(CONV.model))
def test_conv(benchmark, backend: str) -> None:
    """One forward/backward step of the Bayesian conv net."""
    session = _session(CONV.model, backend, CONV)
    benchmark.group = f"train {CONV.model}"
    benchmark.extra_info.update(steps_per_call=CONV.steps_per_call, device=DEVICE)
    losses = benchmark.pedantic(
        _timed_steps(session, CONV.steps_per_call),
        rounds=CONV.rounds,
        iterations=1,
        warmup_rounds=1,
    )
    assert np.isfinite(losses).all()


@pytest.mark.parametrize(("model", "backend"), _cases(list(TRAIN)))
def test_predictive(benchmark, model: str, backend: str) -> None:
    """Posterior-predictive draws: sample the approximation, predict fixed test points."""
    workload = TRAIN[model]
    session = _session(model, backend, workload)
    session.run_steps(workload.steps_per_call)  # a fitted (not initial) approximation
    X = _data(model).X_test[:PREDICTIVE_POINTS]
    draws = 1 if not backend_info(backend).bayesian else PREDICTIVE_DRAWS

    def call() -> np.ndarray:
        posterior = session.sample_posterior(draws, 0)
        proba, _ = session.predict(posterior, X, 1)
        return proba

    benchmark.group = f"predictive {model}"
    benchmark.extra_info.update(draws_per_call=draws, points=len(X), device=DEVICE)
    proba = benchmark.pedantic(call, rounds=workload.rounds, iterations=1, warmup_rounds=1)
    assert proba.shape[:2] == (draws, len(X)) and np.isfinite(proba).all()
