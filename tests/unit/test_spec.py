import importlib
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from bnnbench.spec import SPEC_NAMES, backend_module, get_spec

SPEC = get_spec("moons_2x5")


def test_moons_shapes_and_names():
    assert SPEC.param_shapes == {"w_in_1": (2, 5), "w_1_2": (5, 5), "w_2_out": (5,)}
    assert SPEC.n_params == 40
    assert SPEC.likelihood_site == "y"


def test_log_joint_at_zero_weights_is_hand_computed():
    # All weights 0: every logit is 0, p = 1/2, and each N(0, 1) prior term is -log(2 pi)/2.
    data = SPEC.load_data()
    zeros = {k: np.zeros(s) for k, s in SPEC.param_shapes.items()}
    terms = SPEC.log_joint_terms(zeros, data.X_train, data.y_train)
    assert terms["y"] == pytest.approx(data.n_train * np.log(0.5), rel=1e-12)
    assert terms["w_in_1"] == pytest.approx(-10 * 0.5 * np.log(2 * np.pi), rel=1e-12)
    assert terms["w_2_out"] == pytest.approx(-5 * 0.5 * np.log(2 * np.pi), rel=1e-12)


def test_log_likelihood_matches_bernoulli_by_hand():
    rng = np.random.default_rng(3)
    params = SPEC.random_params(rng)
    X = rng.standard_normal((7, 2))
    y = np.array([0, 1, 1, 0, 1, 0, 0])
    p = expit(np.tanh(np.tanh(X @ params["w_in_1"]) @ params["w_1_2"]) @ params["w_2_out"])
    expected = np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert SPEC.log_likelihood(params, X, y) == pytest.approx(expected, rel=1e-10)


def test_predict_proba_broadcasts_over_draws():
    rng = np.random.default_rng(0)
    draws = [SPEC.random_params(rng) for _ in range(4)]
    stacked = {k: np.stack([d[k] for d in draws]) for k in SPEC.param_names}
    X = rng.standard_normal((6, 2))
    batched = SPEC.predict_proba(stacked, X)
    assert batched.shape == (4, 6)
    np.testing.assert_allclose(batched[2], SPEC.predict_proba(draws[2], X))


def test_initial_means_are_one_seeded_draw():
    a, b, c = SPEC.initial_means(0), SPEC.initial_means(0), SPEC.initial_means(1)
    for name in SPEC.param_names:
        assert a[name].dtype == np.float32 and a[name].shape == SPEC.param_shapes[name]
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.allclose(a[name], c[name])


def test_grid_covers_minus_three_to_three():
    xs, _ys, points = SPEC.grid_points()
    assert xs[0] == -3 and xs[-1] == 3 and len(xs) == 100
    assert points.shape == (10_000, 2)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="moons_2x5"):
        get_spec("moons_3x7")
    with pytest.raises(ValueError, match="numpyro"):
        backend_module("moons_2x5", "stan")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_spec_implements_every_bayesian_backend_and_declares_the_rest(name):
    """Every Bayesian backend of the registry has a model file; the baseline may be left out
    (mnist_2x800_hier's maximum likelihood is mnist_2x800's) but then has no file either."""
    from bnnbench.registry import backend_names, backends

    spec = get_spec(name)
    assert set(backend_names(bayesian_only=True)) <= set(spec.implementations)
    for info in backends():
        folder = Path(spec_file(name)).parent
        has_file = (folder / f"{info.model_file}.py").exists()
        assert has_file == (info.name in spec.implementations), (name, info.name)
        if has_file:
            assert backend_module(name, info.name) is not None


def test_backend_choices_come_from_the_registry():
    from bnnbench.registry import backend_info, backend_names
    from bnnbench.types import BACKENDS, BAYESIAN_BACKENDS

    assert BACKENDS == backend_names() == ("pymc", "pyro", "numpyro", "torch-ml")
    assert BAYESIAN_BACKENDS == ("pymc", "pyro", "numpyro")
    assert backend_info("torch-ml").model_file == "torch_ml"
    with pytest.raises(ValueError, match="valid: pymc, pyro, numpyro, torch-ml"):
        backend_info("stan")


def spec_file(name: str) -> str:
    return importlib.import_module(f"bnnbench.models.{name}.spec").__file__
