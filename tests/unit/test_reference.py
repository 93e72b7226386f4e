"""The NUTS reference (a tiny real run) and the competition scores against it."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from bnnbench import metrics, reference
from bnnbench.reference import (
    NUTSConfig,
    predictive_agreement,
    score_against_reference,
    total_variation,
)
from bnnbench.spec import get_spec

#: Capped trees keep the run short (early warm-up otherwise runs 1023-step trajectories).
TINY = NUTSConfig(chains=2, warmup=50, samples=40, seed=1, predictive_draws=20, max_tree_depth=6)


@pytest.fixture(scope="module")
def tiny_reference() -> xr.DataTree:
    import jax

    x64_before = jax.config.jax_enable_x64
    tree = reference.run_nuts_reference("moons_2x5", TINY)
    assert jax.config.jax_enable_x64 == x64_before, "float64 leaked out of run_nuts_reference"
    return tree


# -- scores --------------------------------------------------------------------------------------


def test_identical_predictives_agree_fully_at_zero_distance():
    p = np.array([0.1, 0.5, 0.93, 0.7])
    assert predictive_agreement(p, p) == 1.0
    assert total_variation(p, p) == 0.0


def test_hand_worked_binary_example():
    p_vi = np.array([0.2, 0.6, 0.9])  # classes 0, 1, 1
    p_ref = np.array([0.4, 0.3, 0.7])  # classes 0, 0, 1
    assert predictive_agreement(p_vi, p_ref) == pytest.approx(2 / 3)
    assert total_variation(p_vi, p_ref) == pytest.approx((0.2 + 0.3 + 0.2) / 3)


def test_hand_worked_three_class_example():
    p_vi = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])  # classes 0, 2
    p_ref = np.array([[0.2, 0.5, 0.3], [0.1, 0.2, 0.7]])  # classes 1, 2
    assert predictive_agreement(p_vi, p_ref) == pytest.approx(0.5)
    # 0.5 * (0.3 + 0.2 + 0.1) = 0.3 and 0.5 * (0 + 0.1 + 0.1) = 0.1
    assert total_variation(p_vi, p_ref) == pytest.approx(0.2)


def test_binary_and_two_class_forms_score_the_same():
    rng = np.random.default_rng(0)
    p_vi, p_ref = rng.uniform(size=50), rng.uniform(size=50)
    two = metrics.class_probabilities(np.stack([p_vi, p_ref]))
    assert predictive_agreement(p_vi, p_ref) == pytest.approx(predictive_agreement(*two))
    assert total_variation(p_vi, p_ref) == pytest.approx(total_variation(*two))
    assert total_variation(p_vi, p_ref) == pytest.approx(np.mean(np.abs(p_vi - p_ref)))


def test_scores_reject_mismatched_shapes():
    with pytest.raises(ValueError):
        total_variation(np.array([0.1, 0.2]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError):
        predictive_agreement(np.array([0.1, 0.2]), np.full((2, 3), 1 / 3))


def test_score_against_a_synthetic_reference():
    ref = xr.DataTree.from_dict(
        {
            "predictive": xr.Dataset(
                {
                    "test_p_mean": ("obs_id", np.array([0.4, 0.3, 0.7])),
                    "grid_p_mean": ("grid_point", np.array([0.1, 0.6, 0.6, 0.9])),
                }
            )
        }
    )
    grid_map = np.array([[0.1, 0.4], [0.6, 0.8]])  # (grid_y, grid_x), flattened row-major
    scores = score_against_reference(np.array([0.2, 0.6, 0.9]), grid_map, ref)
    assert set(scores) == {"agreement_test", "tv_test", "agreement_grid", "tv_grid"}
    assert scores["agreement_test"] == pytest.approx(2 / 3)
    assert scores["tv_test"] == pytest.approx(0.7 / 3)
    assert scores["agreement_grid"] == pytest.approx(0.75)
    assert scores["tv_grid"] == pytest.approx((0.0 + 0.2 + 0.0 + 0.1) / 4)
    with pytest.raises(ValueError):
        score_against_reference(np.array([0.2, 0.6, 0.9]), None, ref)


# -- NUTS run ------------------------------------------------------------------------------------


def test_config_thinning():
    assert NUTSConfig().thin == 4 and NUTSConfig().draws_per_chain_kept == 250
    assert NUTSConfig(predictive_draws=None).thin == 1
    assert TINY.thin == 4 and TINY.draws_per_chain_kept == 10
    with pytest.raises(ValueError):
        NUTSConfig(chain_method="parallel")


def test_reference_groups_and_shapes(tiny_reference):
    tree = tiny_reference
    spec = get_spec("moons_2x5")
    data = spec.load_data()
    n_test, n_grid = len(data.y_test), spec.grid[2] ** 2
    assert {"posterior", "sample_stats", "posterior_predictive", "predictive"} <= set(tree.children)
    post = tree["posterior"]
    assert set(post.data_vars) == set(spec.param_names)
    for name, shape in spec.param_shapes.items():
        assert post[name].shape == (2, 40, *shape)
        assert post[name].dtype == np.float64
    assert tree.attrs["dtype"] == "float64"
    stats = tree["sample_stats"]
    for name in ("diverging", "n_steps", "tree_depth", "acceptance_rate", "energy", "lp"):
        assert stats[name].shape == (2, 40), name
    assert np.all(stats["n_steps"].values >= 1)
    assert np.all(2 ** (stats["tree_depth"].values - 1) <= stats["n_steps"].values)
    assert np.all(stats["n_steps"].values <= 2 ** stats["tree_depth"].values - 1)
    assert tree.attrs["n_divergent"] == int(stats["diverging"].values.sum())
    assert np.all(stats["tree_depth"].values <= TINY.max_tree_depth)

    pp = tree["posterior_predictive"]["p"]
    assert pp.shape == (2, 10, n_test)
    pred = tree["predictive"]
    assert pred["test_p_mean"].shape == (n_test,)
    assert pred["test_p_rhat"].shape == (n_test,)
    assert pred["grid_p_mean"].shape == (n_grid,) and pred["grid_p_sd"].shape == (n_grid,)
    for name in ("test_p_mean", "grid_p_mean"):
        assert np.all((pred[name].values >= 0) & (pred[name].values <= 1))
    np.testing.assert_allclose(
        pred["test_p_mean"].values, pp.values.mean(axis=(0, 1)), rtol=0, atol=1e-6
    )


def test_lp_is_the_spec_log_joint_of_each_draw(tiny_reference):
    spec = get_spec("moons_2x5")
    data = spec.load_data()
    for chain, draw in [(0, 0), (1, 39)]:
        params = {k: tiny_reference["posterior"][k].values[chain, draw] for k in spec.param_names}
        log_joint = sum(spec.log_joint_terms(params, data.X_train, data.y_train).values())
        lp = tiny_reference["sample_stats"]["lp"].values[chain, draw]
        assert lp == pytest.approx(log_joint, rel=1e-9)


def test_reference_predictive_is_the_spec_predictive_over_thinned_draws(tiny_reference):
    tree = tiny_reference
    spec = get_spec("moons_2x5")
    kept = tree["posterior_predictive"]["draw"].values
    draws = {
        k: tree["posterior"][k].values[:, kept].reshape(-1, *shape)
        for k, shape in spec.param_shapes.items()
    }
    points = tree["predictive"]["grid_points"].values
    np.testing.assert_allclose(points, spec.grid_points()[2])
    idx = np.array([0, 4321, 9999])
    proba = spec.predict_proba(draws, points[idx])
    pred = tree["predictive"]
    np.testing.assert_allclose(pred["grid_p_mean"].values[idx], proba.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(pred["grid_p_sd"].values[idx], proba.std(axis=0), rtol=1e-10)
    y_test = spec.load_data().y_test
    assert tree.attrs["test_accuracy"] == metrics.accuracy(y_test, pred["test_p_mean"].values)


def test_reference_diagnostics(tiny_reference):
    attrs = tiny_reference.attrs
    for key in reference.DIAGNOSTIC_KEYS:
        assert np.isfinite(attrs[key]), key
    assert attrs["max_rhat"] >= 1.0 - 0.05 and attrs["max_rhat_predictive"] >= 1.0 - 0.05
    assert 0 < attrs["min_ess_bulk"] and 0 < attrs["min_ess_bulk_predictive"]
    assert attrs["sample_s"] > 0 and attrs["wall_s"] >= attrs["sample_s"]
    assert attrs["test_accuracy"] > 0.8  # even a tiny NUTS run separates the moons


def test_a_reference_scores_perfectly_against_itself(tiny_reference):
    pred = tiny_reference["predictive"]
    scores = score_against_reference(
        pred["test_p_mean"].values, pred["grid_p_mean"].values, tiny_reference
    )
    assert scores == {"agreement_test": 1.0, "tv_test": 0.0, "agreement_grid": 1.0, "tv_grid": 0.0}


def test_write_load_round_trip(tiny_reference, tmp_path):
    path = reference.default_reference_path("moons_2x5", tmp_path)
    assert path == tmp_path / "reference" / "moons_2x5" / "nuts.nc"
    reference.write_reference(tiny_reference, path)
    loaded = reference.load_reference(path)
    assert set(loaded.children) == set(tiny_reference.children)
    for name, node in tiny_reference.children.items():
        xr.testing.assert_identical(loaded[name].to_dataset(), node.to_dataset())
    for key, value in tiny_reference.attrs.items():
        assert loaded.attrs[key] == value, key


def test_module_entry_point(tmp_path):
    out = tmp_path / "ref.nc"
    args = ["moons_2x5", "--out", str(out), "--chains", "1", "--warmup", "20", "--samples", "20"]
    args += ["--max-tree-depth", "4", "--predictive-draws", "10"]
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "bnnbench.reference", *args, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    assert "max_rhat_predictive" in proc.stdout
    tree = reference.load_reference(out)
    assert tree["posterior"]["w_2_out"].shape == (1, 20, 5)
    assert tree["posterior_predictive"]["p"].shape == (1, 10, 500)
    assert tree.attrs["chains"] == 1
