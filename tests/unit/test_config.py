import re

import pytest

from bnnbench.config import CellConfig


def test_defaults_come_from_the_spec():
    cfg = CellConfig.from_defaults("moons_2x5", "pyro", "matched", "cpu", 0)
    assert (cfg.batch_size, cfg.predict_draws) == (50, 500)


def test_run_id_is_deterministic_and_tracks_settings():
    a = CellConfig.from_defaults("moons_2x5", "pyro", "matched", "cpu", 0, steps=100)
    b = CellConfig.from_defaults("moons_2x5", "pyro", "matched", "cpu", 0, steps=100)
    c = CellConfig.from_defaults("moons_2x5", "pyro", "matched", "cpu", 0, steps=200)
    assert a.run_id == b.run_id != c.run_id
    assert a.run_id.startswith("moons_2x5-pyro-matched-cpu-seed0-")


def test_json_round_trip():
    cfg = CellConfig.from_defaults("moons_2x5", "numpyro", "native", "gpu", 2, learning_rate=0.1)
    assert CellConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("bad", [dict(steps=0), dict(batch_size=-1), dict(learning_rate=0.0)])
def test_invalid_settings_raise(bad):
    with pytest.raises(ValueError):
        CellConfig.from_defaults("moons_2x5", "pymc", "matched", "cpu", 0, **bad)


def test_run_id_ignores_settings_that_do_not_change_the_result():
    short = CellConfig.from_defaults("moons_2x5", "pyro", "matched", "cpu", 0, timeout_s=60)
    long = CellConfig.from_defaults("moons_2x5", "pyro", "matched", "cpu", 0, timeout_s=7200)
    assert short.run_id == long.run_id
    assert "timeout_s" not in short.result_settings()
    digest = short.run_id.rsplit("-", 1)[1]
    assert len(digest) == 8 and int(digest, 16) >= 0  # same digest format as before


def test_integer_and_float_learning_rates_are_one_cell():
    a = CellConfig.from_defaults("moons_2x5", "pyro", "matched", "cpu", 0, learning_rate=1)
    b = CellConfig.from_defaults("moons_2x5", "pyro", "matched", "cpu", 0, learning_rate=1.0)
    assert a.run_id == b.run_id and isinstance(a.learning_rate, float)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(learning_rate=float("nan")), "learning_rate must be a finite number > 0"),
        (dict(learning_rate=float("inf")), "learning_rate must be a finite number > 0"),
        (dict(learning_rate=-1e-3), "learning_rate must be a finite number > 0"),
        (dict(init_scale=0.0), "init_scale must be a finite number > 0"),
        (dict(timeout_s=0), "timeout_s must be a finite number > 0"),
        (dict(timeout_s=-5.0), "timeout_s must be a finite number > 0"),
        (dict(timeout_s=float("nan")), "timeout_s must be a finite number > 0"),
        (dict(learning_rate="fast"), "learning_rate must be a number"),
        (dict(steps=0), "steps must be >= 1"),
        (dict(steps=2.5), "steps must be an integer"),
        (dict(steps=True), "steps must be an integer"),
        (dict(predict_draws=0), "predict_draws must be >= 1"),
        (dict(trace_every=0), "trace_every must be >= 1"),
        (dict(batch_size=501), "larger than moons_2x5's training set (500 points)"),
    ],
)
def test_invalid_settings_name_the_setting(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        CellConfig.from_defaults("moons_2x5", "pymc", "matched", "cpu", 0, **bad)


@pytest.mark.parametrize(
    ("seed", "message"),
    [(-1, "seed must be >= 0"), (1.5, "seed must be an integer"), (2**32, "seed must be <=")],
)
def test_invalid_seeds(seed, message):
    with pytest.raises(ValueError, match=message):
        CellConfig.from_defaults("moons_2x5", "pymc", "matched", "cpu", seed)


def test_batch_as_large_as_the_training_set_is_fine():
    cfg = CellConfig.from_defaults("moons_2x5", "pymc", "matched", "cpu", 0, batch_size=500)
    assert cfg.batch_size == 500
