"""Speed never changes the answer, checked on the committed MNIST run (results/tuned_cpu).

Over three seeds, every Bayesian backend's ``tuned`` cells land on its ``matched`` cells'
final -ELBO per datum and test accuracy within seed-to-seed spread
(:func:`bnnbench.evaluate.equivalent_over_seeds`), while their execution paths differ where the
tuning chose another knob value. A stored run in which a faster path moved the answer fails here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bnnbench.evaluate import equivalent_over_seeds
from bnnbench.results import load

TUNED_CPU = Path(__file__).resolve().parents[2] / "results" / "tuned_cpu"
#: Absolute tolerance beyond seed noise: 0.5 % accuracy; -ELBO per datum in nats.
ATOL = {"accuracy": 0.005, "final_neg_elbo_per_datum": 0.05}


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    assert (TUNED_CPU / "runs.csv").exists(), "results/tuned_cpu is committed with the code"
    return load(TUNED_CPU)


def test_every_cell_of_the_stored_run_finished(runs: pd.DataFrame):
    assert (runs["status"] == "ok").all(), runs.loc[runs["status"] != "ok", ["run_id", "error"]]
    bayesian = runs[runs["backend"] != "torch-ml"]
    cells = bayesian.groupby(["model", "backend", "profile"])["seed"].nunique()
    assert set(cells.index.get_level_values("model")) == {
        "mnist_2x800",
        "mnist_2x800_hier",
        "mnist_conv",
    }
    assert (cells == 3).all(), cells


@pytest.mark.parametrize("figure", ["final_neg_elbo_per_datum", "accuracy"])
def test_tuned_lands_where_matched_lands(runs: pd.DataFrame, figure: str):
    bayesian = runs[runs["backend"] != "torch-ml"]
    for (model, backend), group in bayesian.groupby(["model", "backend"]):
        by = group.set_index("seed").groupby("profile")[figure]
        check = equivalent_over_seeds(
            by.get_group("matched"), by.get_group("tuned"), atol=ATOL[figure]
        )
        assert check.ok, (model, backend, figure, check)


def test_tuned_takes_another_path_where_the_tuning_chose_one(runs: pd.DataFrame):
    paths = (
        runs[runs["backend"] != "torch-ml"]
        .groupby(["model", "backend", "profile"])["execution_path"]
        .first()
    )
    assert paths["mnist_conv", "numpyro", "tuned"] != paths["mnist_conv", "numpyro", "matched"]
    assert "loop=host" in paths["mnist_conv", "numpyro", "tuned"]
    assert "mode=jax" in paths["mnist_2x800", "pymc", "tuned"]
    assert "mode=c" in paths["mnist_2x800", "pymc", "matched"]
