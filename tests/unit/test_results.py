import pandas as pd
import pytest

from bnnbench.results import ResultStore, atomic_write_text


def _row(run_id, status="ok", **extra):
    return {
        "run_id": run_id,
        "model": "moons_2x5",
        "backend": "pyro",
        "status": status,
        "error": "",
        **extra,
    }


def test_record_appends_and_replaces(tmp_path):
    store = ResultStore(tmp_path)
    trace = pd.DataFrame(
        {
            "run_id": ["a", "a"],
            "step": [10, 20],
            "wall_s": [0.1, 0.2],
            "neg_elbo_per_datum": [1.0, 0.5],
        }
    )
    store.record(_row("a", "failed"), trace)
    store.record(_row("b", "unsupported"))
    assert store.finished_run_ids() == {"b"}  # failed cells are run again by --resume
    store.record(_row("a", "ok", accuracy=0.9), trace.assign(neg_elbo_per_datum=[2.0, 0.4]))
    runs = store.runs()
    assert list(runs["run_id"]) == ["b", "a"]
    assert runs.set_index("run_id").loc["a", "accuracy"] == 0.9
    traces = store.traces()
    assert len(traces) == 2 and traces["neg_elbo_per_datum"].tolist() == [2.0, 0.4]
    assert store.finished_run_ids() == {"a", "b"}


def test_record_rejects_unknown_status(tmp_path):
    with pytest.raises(ValueError, match="status"):
        ResultStore(tmp_path).record(_row("a", "done"))


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path):
    path = tmp_path / "runs.csv"
    atomic_write_text(path, "old\n")

    with pytest.raises(TypeError):
        atomic_write_text(path, 123)  # type: ignore[arg-type]  # fails mid-write
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["runs.csv"]  # no temporary left behind
