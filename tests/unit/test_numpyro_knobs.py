"""NumPyro's execution knobs change how the work is dispatched, never what is computed."""

from __future__ import annotations

import numpy as np
import pytest

from bnnbench.config import CellConfig
from bnnbench.spec import get_spec

jax = pytest.importorskip("jax")


def _session(monkeypatch, loop: str, predictive: str):
    from bnnbench.backends import numpyro_backend as nb

    monkeypatch.setenv("BNNBENCH_NUMPYRO_LOOP", loop)
    monkeypatch.setenv("BNNBENCH_NUMPYRO_PREDICTIVE", predictive)
    spec = get_spec("moons_2x5")
    cfg = CellConfig.from_defaults("moons_2x5", "numpyro", "matched", "cpu", 3, trace_every=25)
    session = nb.NumPyroSession(spec, spec.load_data(), cfg)
    session.compile({25})
    return spec, session


def test_host_loop_takes_the_same_steps_as_the_scan(monkeypatch):
    _, scan = _session(monkeypatch, "scan", "map")
    _, host = _session(monkeypatch, "host", "map")
    assert "lax.scan" in scan.execution_path and "loop=scan" in scan.execution_path
    assert "Python loop" in host.execution_path and "loop=host" in host.execution_path
    losses_scan = np.concatenate([scan.run_steps(25) for _ in range(4)])
    losses_host = np.concatenate([host.run_steps(25) for _ in range(4)])
    assert losses_host.shape == (100,)
    np.testing.assert_allclose(losses_host, losses_scan, rtol=1e-4)
    for name, (loc, scale) in scan.variational_parameters().items():
        loc_h, scale_h = host.variational_parameters()[name]
        np.testing.assert_allclose(loc_h, loc, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(scale_h, scale, rtol=1e-3, atol=1e-5)


def test_per_draw_predictive_gives_predictives_probabilities(monkeypatch):
    spec, mapped = _session(monkeypatch, "scan", "map")
    _, per_draw = _session(monkeypatch, "scan", "draws")
    mapped.run_steps(25)
    posterior = mapped.sample_posterior(6, seed=1)
    X = spec.load_data().X_test
    p_map, y_map = mapped.predict(posterior, X, seed=2)
    p_draws, y_draws = per_draw.predict(posterior, X, seed=2)
    assert p_draws.shape == p_map.shape and y_draws.shape == y_map.shape
    np.testing.assert_allclose(p_draws, p_map, rtol=1e-5, atol=1e-6)
    # Labels are drawn from those probabilities (with other keys): y ~ Bernoulli(p) per draw.
    assert set(np.unique(y_draws)) <= {0, 1}
    assert abs(y_draws.mean() - p_map.mean()) < 4 * np.sqrt(0.25 / y_draws.size)
