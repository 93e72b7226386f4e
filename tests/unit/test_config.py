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
