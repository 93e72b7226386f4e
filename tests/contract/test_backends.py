"""Every spec x backend: the file exists, the sites are the spec's, and the densities agree."""

import numpy as np
import pytest

from bnnbench.backends import get_backend
from bnnbench.cli import main
from bnnbench.spec import SPEC_NAMES, backend_module, get_spec
from bnnbench.types import BAYESIAN_BACKENDS
from bnnbench.verify import RTOL, verify

CASES = [(s, b) for s in SPEC_NAMES for b in BAYESIAN_BACKENDS]


@pytest.mark.parametrize(("spec_name", "backend"), CASES)
def test_backend_terms_match_the_spec(spec_name, backend):
    spec = get_spec(spec_name)
    X, y = spec.verification_data()
    point = spec.random_params(np.random.default_rng(7))
    terms, grads = get_backend(backend).log_joint_terms(spec, point, X, y)
    expected = spec.log_joint_terms(point, X, y)
    assert set(terms) == set(expected)
    for name, value in expected.items():
        assert terms[name] == pytest.approx(value, rel=RTOL)
    assert {k: g.shape for k, g in grads.items()} == spec.param_shapes


def test_verify_cli_passes(capsys):
    """The CLI end to end on moons (every spec's densities are checked one by one above)."""
    assert main(["verify", "--models", "moons_2x5"]) == 0
    assert "OK" in capsys.readouterr().out


def test_verify_catches_an_altered_prior(monkeypatch):
    """A NumPyro model whose first layer has a Normal(0, 2) prior must be named as the culprit."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    module = backend_module("moons_2x5", "numpyro")

    def altered(X, y=None, batch_size=None):  # moons_2x5/numpyro.py with one prior changed
        w_in_1 = numpyro.sample("w_in_1", dist.Normal(0.0, 2.0).expand((2, 5)).to_event(2))
        w_1_2 = numpyro.sample("w_1_2", dist.Normal(0.0, 1.0).expand((5, 5)).to_event(2))
        w_2_out = numpyro.sample("w_2_out", dist.Normal(0.0, 1.0).expand((5,)).to_event(1))
        with numpyro.plate("data", X.shape[0], subsample_size=batch_size):
            x = numpyro.subsample(X, event_dim=1)
            logit = jnp.tanh(jnp.tanh(x @ w_in_1) @ w_1_2) @ w_2_out
            numpyro.deterministic("p", jax.nn.sigmoid(logit))
            numpyro.sample("y", dist.Bernoulli(logits=logit), obs=y)

    monkeypatch.setattr(module, "model", altered)
    report = verify(["moons_2x5"], ["pymc", "pyro", "numpyro"], n_points=2)
    assert not report.ok
    culprits = {(m.backend, m.kind, m.term) for m in report.mismatches}
    assert ("numpyro", "log density", "w_in_1") in culprits
    assert all(m.backend == "numpyro" for m in report.mismatches)
    assert "numpyro" in str(report.mismatches[0]) and "w_in_1" in str(report.mismatches[0])


def test_verify_cli_exits_1_on_mismatch(monkeypatch, capsys):
    from bnnbench.backends import pyro_backend

    real = pyro_backend.log_joint_terms

    def off_by_a_constant(spec, params, X, y):
        terms, grads = real(spec, params, X, y)
        return {**terms, "y": terms["y"] + 1.0}, grads

    monkeypatch.setattr(pyro_backend, "log_joint_terms", off_by_a_constant)
    assert main(["verify", "--models", "moons_2x5"]) == 1
    err = capsys.readouterr().err
    assert "MISMATCH" in err and "'pyro'" in err and "'y'" in err


#: Every backend on its default path, and PyMC's JAX mode (its generators are copied into the
#: compiled graph). NumPyro's paths pass explicit keys, and Pyro's ELBO choice does not touch
#: how it draws.
PATHS = [(b, {}) for b in get_spec("moons_2x5").implementations] + [
    ("pymc", {"BNNBENCH_PYMC_BACKEND": "jax"}),
]


@pytest.mark.parametrize(("backend", "knobs"), PATHS, ids=lambda v: str(v or "default"))
def test_drawing_and_predicting_leave_training_as_it_was(backend, knobs, monkeypatch):
    """A learning-curve checkpoint between two chunks (draws and a predictive, with their own
    seeds) changes none of the next chunk's losses: its minibatches and noise are as they would
    have been without it. So does the library's own drawing (the final predictive's)."""
    from bnnbench.config import CellConfig
    from bnnbench.measure import curve_predictive

    for name, value in knobs.items():
        monkeypatch.setenv(name, value)

    spec = get_spec("moons_2x5")
    data = spec.load_data()
    cfg = CellConfig.from_defaults("moons_2x5", backend, "matched", "cpu", 5, trace_every=10)

    def losses(checkpoint: bool) -> np.ndarray:
        session = get_backend(backend).TrainingSession(spec, data, cfg)
        session.compile({10})
        first = session.run_steps(10)
        if checkpoint:  # what a learning-curve checkpoint does, and the final predictive
            curve_predictive(session, spec, cfg, data.X_test[:50])
            posterior = session.sample_posterior(4, seed=123)
            session.predict(posterior, data.X_test[:50], seed=124)
        return np.concatenate([first, session.run_steps(10), session.run_steps(10)])

    straight, interrupted = losses(False), losses(True)
    np.testing.assert_allclose(interrupted, straight, rtol=1e-6)
