import numpy as np

from bnnbench.datasets.moons import load_moons


def test_moons_split_is_the_tutorials():
    data = load_moons()
    assert data.X_train.shape == (500, 2) and data.X_test.shape == (500, 2)
    assert set(np.unique(data.y_train)) == {0, 1}
    both = np.vstack([data.X_train, data.X_test])
    np.testing.assert_allclose(both.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(both.std(axis=0), 1, atol=1e-12)
    assert abs(data.y_train.mean() - 0.5) < 0.01


def test_moons_is_deterministic():
    a, b = load_moons(), load_moons()
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
