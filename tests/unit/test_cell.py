"""The cell process's logic, in this process, with a fake backend where a fault is needed."""

import json
import types

import numpy as np
import pytest

from bnnbench import cell
from bnnbench.config import CellConfig


class _Predicts:
    """Draws and a predictive of a fake session (one weight; p(y = 1) = 1/2 everywhere), for
    the learning curve's checkpoints."""

    def variational_parameters(self):
        from bnnbench.spec import get_spec

        shapes = get_spec("moons_2x5").param_shapes
        return {k: (np.zeros(shape), np.ones(shape)) for k, shape in shapes.items()}

    def sample_posterior(self, draws, seed):
        return {"w": np.zeros((draws, 1))}

    def predict(self, posterior, X, seed):
        draws = len(next(iter(posterior.values())))
        proba = np.full((draws, X.shape[0]), 0.5)
        return proba, np.zeros(proba.shape, int)


def _fake_backend(losses):
    class Session(_Predicts):
        execution_path, dtype = "fake", "float32"

        def __init__(self, spec, data, cfg):
            pass

        def compile(self, sizes):
            pass

        def run_steps(self, n):
            return np.full(n, losses)

    return types.SimpleNamespace(
        library_versions=lambda: {"fake": "1", "rt": "2"},
        device_problem=lambda device: "no such device" if device == "gpu" else None,
        TrainingSession=Session,
    )


def _run_main(tmp_path, monkeypatch, losses, device="cpu"):
    import bnnbench.backends

    monkeypatch.setattr(bnnbench.backends, "get_backend", lambda name: _fake_backend(losses))
    cfg = CellConfig.from_defaults(
        "moons_2x5", "pyro", "matched", device, 0, steps=30, trace_every=10
    )
    (tmp_path / "config.json").write_text(cfg.to_json())
    assert cell.main([str(tmp_path)]) == 0
    return json.loads((tmp_path / "result.json").read_text())


def test_nan_elbo_is_a_divergence(tmp_path, monkeypatch):
    result = _run_main(tmp_path, monkeypatch, np.nan)
    assert result["status"] == "diverged"
    assert "DivergedError" in result["error"] and "step 1" in result["error"]


def test_a_finite_blow_up_is_a_divergence_too(tmp_path, monkeypatch):
    import bnnbench.backends

    class Exploding(_Predicts):
        """Starts at -ELBO 5 per datum, then jumps to 1e29 per datum (lr 1e30 on torch-ml)."""

        execution_path, dtype = "fake", "float32"

        def __init__(self, spec, data, cfg):
            self.calls, self.n = 0, data.n_train

        def compile(self, sizes):
            pass

        def run_steps(self, n):
            self.calls += 1
            return np.full(n, (5.0 if self.calls == 1 else 1e29) * self.n)

    fake = _fake_backend(1.0)
    fake.TrainingSession = Exploding
    monkeypatch.setattr(bnnbench.backends, "get_backend", lambda name: fake)
    cfg = CellConfig.from_defaults(
        "moons_2x5", "torch-ml", "matched", "cpu", 0, steps=30, trace_every=10
    )
    (tmp_path / "config.json").write_text(cfg.to_json())
    cell.main([str(tmp_path)])
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "diverged"
    assert "exploded" in result["error"] and "step 20" in result["error"]
    assert result["trace"]["step"] == [10, 20]


def test_diverged_cell_keeps_the_trace_it_reached(tmp_path, monkeypatch):
    import bnnbench.backends

    class Diverging(_Predicts):
        execution_path, dtype = "fake", "float32"

        def __init__(self, spec, data, cfg):
            self.calls = 0

        def compile(self, sizes):
            pass

        def run_steps(self, n):
            self.calls += 1
            return np.full(n, 5.0 if self.calls < 3 else np.nan)

    fake = _fake_backend(1.0)
    fake.TrainingSession = Diverging
    monkeypatch.setattr(bnnbench.backends, "get_backend", lambda name: fake)
    cfg = CellConfig.from_defaults(
        "moons_2x5", "pyro", "matched", "cpu", 0, steps=50, trace_every=10
    )
    (tmp_path / "config.json").write_text(cfg.to_json())
    cell.main([str(tmp_path)])
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "diverged" and "step 21" in result["error"]
    assert result["trace"]["step"] == [10, 20]
    assert result["trace"]["neg_elbo_per_datum"] == [5.0 / 500, 5.0 / 500]


def test_device_problem_makes_the_cell_unsupported(tmp_path, monkeypatch):
    result = _run_main(tmp_path, monkeypatch, 1.0, device="gpu")
    assert result == {**result, "status": "unsupported", "error": "no such device"}


@pytest.mark.parametrize("name", ["env.json", "result.json"])
def test_cell_always_writes_provenance_and_result(tmp_path, monkeypatch, name):
    _run_main(tmp_path, monkeypatch, np.inf)
    assert (tmp_path / name).exists()
