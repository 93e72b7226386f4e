"""Pareto-k of a variational fit: log q, the log joint over draws, and PSIS."""

import numpy as np
import pytest
from scipy.stats import norm

from bnnbench import diagnostics
from bnnbench.spec import get_spec


def test_variational_log_density_of_real_parameters_is_the_normal_density():
    spec = get_spec("moons_2x5")
    rng = np.random.default_rng(0)
    posterior = {p.name: rng.standard_normal((3, *p.shape)) for p in spec.params}
    variational = {p.name: (np.full(p.shape, 0.5), np.full(p.shape, 2.0)) for p in spec.params}
    expected = sum(
        norm.logpdf(posterior[k], 0.5, 2.0).reshape(3, -1).sum(axis=1) for k in posterior
    )
    got = diagnostics.variational_log_density(spec, posterior, variational)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_variational_log_density_of_a_scale_includes_the_log_jacobian():
    """A positive parameter theta = exp(z), z ~ N(mu, s): q(theta) = N(log theta; mu, s) / theta."""
    spec = get_spec("mnist_2x800_hier")
    positive = [p for p in spec.params if p.positive]
    assert positive
    theta = {p.name: np.full((1, *p.shape), 0.25) for p in spec.params}
    variational = {p.name: (np.zeros(p.shape), np.ones(p.shape)) for p in spec.params}
    got = diagnostics.variational_log_density(spec, theta, variational)[0]
    expected = 0.0
    for p in spec.params:
        size = int(np.prod(p.shape))
        if p.positive:
            expected += size * (norm.logpdf(np.log(0.25)) - np.log(0.25))
        else:
            expected += size * norm.logpdf(0.25)
    assert got == pytest.approx(expected, rel=1e-10)


def test_log_joint_draws_equals_the_spec_log_joint():
    spec = get_spec("moons_2x5")
    data = spec.load_data()
    rng = np.random.default_rng(1)
    points = [spec.random_params(rng) for _ in range(2)]
    posterior = {k: np.stack([p[k] for p in points]) for k in points[0]}
    got = diagnostics.log_joint_draws(spec, posterior, data.X_train, data.y_train, np.float64)
    for s, point in enumerate(points):
        terms = spec.log_joint_terms(point, np.asarray(data.X_train, np.float64), data.y_train)
        assert got[s] == pytest.approx(sum(terms.values()), rel=1e-12)
    # float32, the fit's precision, stays close
    got32 = diagnostics.log_joint_draws(spec, posterior, data.X_train, data.y_train)
    np.testing.assert_allclose(got32, got, rtol=1e-5)


def test_pareto_k_flags_a_q_narrower_than_p_and_passes_a_good_fit():
    """q = N(0, 1). If p = N(0, 2^2) the ratios p/q have a heavy tail (k near 0.75, Yao et al.);
    if p = q they are constant-ish and k is low."""
    theta = np.random.default_rng(0).standard_normal(4000)
    wide = norm.logpdf(theta, 0, 2) - norm.logpdf(theta)
    assert diagnostics.pareto_k(wide) > 0.5
    narrow = norm.logpdf(theta, 0, 0.8) - norm.logpdf(theta)
    assert diagnostics.pareto_k(narrow) < 0.5


def test_pareto_k_is_nan_for_too_few_or_non_finite_ratios():
    assert np.isnan(diagnostics.pareto_k(np.zeros(diagnostics.PSIS_MIN_DRAWS - 1)))
    ratios = np.zeros(100)
    ratios[3] = -np.inf
    assert np.isnan(diagnostics.pareto_k(ratios))


def test_pareto_k_is_infinite_when_the_ratios_span_too_many_orders():
    """Ratios with a spread of 1e4 nats (a fit far from the posterior) break the Pareto fit."""
    ratios = 1e4 * np.random.default_rng(0).standard_normal(30)
    assert diagnostics.pareto_k(ratios) == np.inf
