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
