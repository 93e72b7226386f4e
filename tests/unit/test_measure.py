import dataclasses

import numpy as np

from bnnbench.evaluate import summary_dataset
from bnnbench.measure import chunk_sizes, posterior_predictive


class _Session:
    """Draws are the integers 0..S-1; the 'probability' of a point is draw / S for class 1."""

    def __init__(self):
        self.calls = []

    def sample_posterior(self, draws, seed):
        return {"w": np.arange(draws, dtype=float)[:, None]}

    def predict(self, posterior, X, seed):
        self.calls.append(X.shape[0])
        w = posterior["w"]
        proba = np.broadcast_to(w / len(w), (len(w), X.shape[0])).copy()
        return proba, (proba > 0.5).astype(int)


def test_chunks_cover_every_point_with_the_same_draws():
    session = _Session()
    X = np.zeros((10, 2))
    pred = posterior_predictive(session, X, draws=4, seed=0, chunk_points=4)
    assert session.calls == [4, 4, 2]
    assert pred.proba.shape == (4, 10) and pred.y.shape == (4, 10)
    np.testing.assert_array_equal(pred.proba[:, 0], pred.proba[:, 9])  # same draws everywhere


def test_summary_of_a_binary_predictive():
    pred = posterior_predictive(_Session(), np.zeros((3, 2)), draws=4, seed=0, chunk_points=8)
    summary = summary_dataset(np.array([0, 1, 0]), pred, n_classes=2)
    np.testing.assert_allclose(summary["mean_proba"].values[0], [1 - 0.375, 0.375])
    np.testing.assert_array_equal(summary["votes"].values[0], [3, 1])
    assert summary["correct"].values.tolist() == [1, 0, 1]
    np.testing.assert_allclose(summary["chi2"].values, 1.0)  # (3-2)^2/2 + (1-2)^2/2


def test_sample_labels_follow_the_probabilities():
    from bnnbench.metrics import sample_labels

    rng = np.random.default_rng(0)
    proba = np.broadcast_to([0.1, 0.6, 0.3], (4000, 2, 3))
    labels = sample_labels(proba, rng)
    assert labels.shape == (4000, 2)
    np.testing.assert_allclose(
        np.bincount(labels.ravel(), minlength=3) / labels.size, [0.1, 0.6, 0.3], atol=0.02
    )
    binary = sample_labels(np.full((4000, 3), 0.25), rng)
    assert set(np.unique(binary)) == {0, 1} and abs(binary.mean() - 0.25) < 0.02
    certain = sample_labels(np.array([[[0.0, 1.0, 0.0]]]), rng)
    assert certain.tolist() == [[1]]


def test_chunk_sizes_cover_every_step():
    assert chunk_sizes(250, 100) == [100, 100, 50]
    assert chunk_sizes(200, 100) == [100, 100]
    assert chunk_sizes(30, 100) == [30]


def test_checkpoints_are_two_per_doubling_and_the_last_chunk():
    from bnnbench.measure import checkpoint_chunks

    assert checkpoint_chunks(0) == []
    assert checkpoint_chunks(1) == [1]
    assert checkpoint_chunks(10) == [1, 2, 3, 4, 6, 8, 10]
    assert checkpoint_chunks(64) == [1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64]
    n = 1000
    assert len(checkpoint_chunks(n)) <= 2 * np.log2(n) + 2


class _TimedSession(_Session):
    """A session whose steps and predictions take known time (sleeps)."""

    execution_path, dtype, transfer_s = "fake", "float32", 0.0
    step_s, predict_s = 0.002, 0.05

    def __init__(self):
        super().__init__()
        self.steps_taken = []

    def compile(self, chunk_sizes):
        pass

    def synchronize(self):
        pass

    def peak_device_memory_mb(self):
        return None

    def variational_parameters(self):
        return {}

    def run_steps(self, n_steps):
        import time

        time.sleep(self.step_s * n_steps)
        self.steps_taken.append(n_steps)
        return np.full(n_steps, 100.0)

    def predict(self, posterior, X, seed):
        import time

        time.sleep(self.predict_s)
        return super().predict(posterior, X, seed)


def test_the_learning_curve_is_timed_on_its_own_clock():
    """Checkpoints come after the scheduled chunks, on the curve's test subset, and their time
    is in none of the chunk times nor the trace's wall time."""
    from bnnbench.config import CellConfig
    from bnnbench.measure import CURVE_DRAWS, CURVE_POINTS, measure
    from bnnbench.spec import Dataset, get_spec

    spec = get_spec("moons_2x5")
    rng = np.random.default_rng(0)
    data = Dataset(
        "fake",
        rng.normal(size=(50, 2)),
        rng.integers(0, 2, 50),
        rng.normal(size=(CURVE_POINTS + 7, 2)),
        rng.integers(0, 2, CURVE_POINTS + 7),
    )
    cfg = CellConfig.from_defaults(
        "moons_2x5", "torch-ml", "matched", "cpu", 0, steps=100, trace_every=10, predict_draws=3
    )
    session = _TimedSession()
    m = measure(spec, data, session, cfg)
    assert [c.step for c in m.checkpoints] == [10, 20, 30, 40, 60, 80, 100]
    assert all(c.proba.shape == (CURVE_DRAWS, CURVE_POINTS) for c in m.checkpoints)
    assert m.curve_eval_s >= 7 * session.predict_s
    assert max(m.chunk_s) < 10 * session.step_s + 0.04  # no chunk holds a checkpoint
    assert m.trace[-1].wall_s < m.fit_s + 0.04  # the trace's clock stopped during them


def test_variational_draws_follow_the_mean_field_approximation():
    """Every tensor of the hierarchical net, real and positive: shapes, dtype, seeding, and
    the moments of z (log of a positive one) within five standard errors of the sample."""
    from bnnbench.measure import variational_draws
    from bnnbench.spec import get_spec

    spec = get_spec("mnist_2x800_hier")
    assert any(p.positive for p in spec.params)
    variational = {p.name: (np.full(p.shape, 0.5), np.full(p.shape, 0.2)) for p in spec.params}
    draws = variational_draws(spec, variational, 8, seed=1)
    # the small tensors (biases, scales) get enough draws for their moments
    small = tuple(p for p in spec.params if np.prod(p.shape) < 1000)
    assert any(p.positive for p in small)
    many = variational_draws(dataclasses.replace(spec, params=small), variational, 4000, seed=2)
    for p in spec.params:
        assert draws[p.name].dtype == np.float32 and draws[p.name].shape == (8, *p.shape)
        d = many.get(p.name, draws[p.name])
        z = np.log(d) if p.positive else d  # positive ones are log-normal
        se = 0.2 / np.sqrt(z.size)
        assert abs(z.mean() - 0.5) < 5 * se, p.name
        assert abs(z.std() - 0.2) < 5 * se, p.name
    again = variational_draws(spec, variational, 8, seed=1)
    for p in spec.params:
        np.testing.assert_array_equal(again[p.name], draws[p.name])
