import shutil
from pathlib import Path

import pandas as pd
import pytest

from bnnbench.record import SCHEMA_VERSION, RunRecord
from bnnbench.results import ResultStore, SchemaVersionError, atomic_write_text, load, load_all

COMMITTED = Path(__file__).resolve().parents[2] / "results"


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
    store.record(_row("b", "unavailable"))
    # failed (and unsupported: the machine may have changed) cells are run again by --resume
    assert store.finished_run_ids() == {"b"}
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


def _cell(run_id, seed=0, started="2026-01-01T00:00:00", status="ok", **extra):
    return _row(
        run_id,
        status,
        profile="matched",
        device="cpu",
        seed=seed,
        steps=100,
        batch_size=50,
        learning_rate=0.01,
        init_scale=0.1,
        trace_every=10,
        predict_draws=30,
        host="h",
        started_at=started,
        **extra,
    )


def test_a_cell_recorded_twice_counts_once_and_the_latest_finished_wins(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ResultStore(a).record(_cell("x-1", started="2026-01-01T00:00:00", accuracy=0.8))
    ResultStore(a).record(_cell("x-2", started="2026-01-02T00:00:00", status="failed"))
    ResultStore(b).record(_cell("x-3", started="2026-01-03T00:00:00", accuracy=0.9))
    ResultStore(b).record(_cell("y", seed=1, accuracy=0.7))
    loaded = load_all([a, b], check_artifacts=False)
    assert sorted(loaded.runs["run_id"]) == ["x-3", "y"]
    assert loaded.superseded == 2
    assert load([a])["run_id"].tolist() == ["x-1"]  # a later failure never replaces a result
    # set side by side on purpose (report --compare): one record per cell and folder
    beside = load_all([a, b], check_artifacts=False, per_folder=True).runs
    assert sorted(beside["run_id"]) == ["x-1", "x-3", "y"]


def test_every_committed_results_folder_loads_at_the_current_schema():
    folders = [p.parent for p in COMMITTED.glob("*/runs.csv")]
    assert folders
    runs = load(folders)
    assert (runs["schema_version"] == SCHEMA_VERSION).all()
    assert runs["cell_key"].str.len().eq(12).all()
    for row in runs.head(5).to_dict(orient="records"):
        assert RunRecord.from_row(row).run_id == row["run_id"]


def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path):
    ResultStore(tmp_path).record(_cell("x"))
    runs = pd.read_csv(tmp_path / "runs.csv")
    runs["schema_version"] = SCHEMA_VERSION + 1
    runs.to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(SchemaVersionError, match="upgrade bnnbench"):
        load(tmp_path)


def test_damage_is_reported_not_hidden(tmp_path):
    source = next(p.parent for p in COMMITTED.glob("default/runs.csv"))
    copy = tmp_path / "default"
    shutil.copytree(source, copy)
    runs = pd.read_csv(copy / "runs.csv")
    ok = runs[runs["status"] == "ok"]["run_id"].tolist()
    shutil.rmtree(copy / ok[0])  # a deleted run folder
    summary = copy / ok[1] / "predictive_summary.nc"
    summary.write_bytes(summary.read_bytes()[:200])  # a truncated netCDF
    text = (copy / "runs.csv").read_text().rstrip("\n")
    (copy / "runs.csv").write_text(text[: text.rindex(",") - 3] + "\n")  # last row cut
    problems = [str(d) for d in load_all([copy]).damage]
    assert any(ok[0] in p and "folder is missing" in p for p in problems)
    assert any(ok[1] in p and "unreadable" in p for p in problems)
    assert any("cut short" in p for p in problems)


def test_a_record_round_trips_through_a_flat_row():
    record = RunRecord(
        run_id="r", model="moons_2x5", backend="pyro", status="ok", seed=3, host_busy=True
    )
    record.ood["white_noise"] = record.ood.get("white_noise") or __import__(
        "bnnbench.record", fromlist=["OODScores"]
    ).OODScores(status="ok", refusal_rate=0.5)
    row = record.to_row()
    assert row["ood_white_noise_refusal_rate"] == 0.5
    back = RunRecord.from_row(row)
    assert back.ood["white_noise"].refusal_rate == 0.5 and back.seed == 3 and back.host_busy
    assert all(doc for _, doc in RunRecord.describe())
    with pytest.raises(ValueError, match="status"):
        RunRecord(status="done")


def test_a_runs_csv_that_is_not_a_bnnbench_record_is_damage_not_a_crash(tmp_path):
    """A folder whose runs.csv holds another table (e.g. a script's output) is named, not read."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "runs.csv").write_text("scenario,run,ratio\naa,0,1.0\n")
    loaded = load_all([other])
    assert loaded.runs.empty
    assert [str(d) for d in loaded.damage] == [
        f"{other}: runs.csv is not a bnnbench record (no run_id, model, backend, status column)"
    ]


def test_a_time_to_accuracy_round_trips_and_other_specs_targets_are_left_out():
    from bnnbench.record import TimeToAccuracy

    record = RunRecord(run_id="r", model="moons_2x5", backend="pyro", status="ok")
    record.tta["94_2"] = TimeToAccuracy("reached", 0.942, 300.0, 1.5)
    record.tta["90"] = TimeToAccuracy("not reached", 0.9)
    row = record.to_row()
    assert row["tta_94_2_steps"] == 300.0 and row["tta_90_status"] == "not reached"
    # a table of several specs holds the other spec's target columns, empty for this row
    row.update({"tta_98_status": float("nan"), "tta_98_steps": float("nan")})
    back = RunRecord.from_row(row)
    assert set(back.tta) == {"94_2", "90"}
    assert back.tta["94_2"] == record.tta["94_2"]
    assert back.tta["90"].status == "not reached" and pd.isna(back.tta["90"].steps)


def _version_2_folder(root):
    """A folder written by schema version 2 (no curve fields, a 4-column traces.csv)."""
    store = ResultStore(root)
    store.record(
        _cell("x"),
        pd.DataFrame({"run_id": ["x"], "step": [10], "wall_s": [0.1], "neg_elbo_per_datum": [1.0]}),
    )
    runs = pd.read_csv(store.runs_path)
    runs = runs[[c for c in runs if not c.startswith(("curve_", "tta_"))]]
    runs["schema_version"] = 2
    runs.to_csv(store.runs_path, index=False)
    traces = pd.read_csv(store.traces_path)[["run_id", "step", "wall_s", "neg_elbo_per_datum"]]
    traces.to_csv(store.traces_path, index=False)
    return store


def test_version_2_records_migrate_to_no_curve_for_each_target_of_their_spec(tmp_path):
    from bnnbench.spec import get_spec

    store = _version_2_folder(tmp_path)
    loaded = load_all([tmp_path], check_artifacts=False)
    row = loaded.runs.iloc[0]
    assert row["schema_version"] == SCHEMA_VERSION and row["curve_points"] == 0
    record = RunRecord.from_row(row.to_dict())
    targets = get_spec("moons_2x5").accuracy_targets
    assert [t.target for t in record.tta.values()] == list(targets)
    assert {t.status for t in record.tta.values()} == {"no curve"}
    assert loaded.traces["curve_accuracy"].isna().all()
    # a run resumed after the upgrade adds a version-3 row: each row migrates on its own
    store.record(_cell("y", seed=1, curve_points=3))
    mixed = load(tmp_path)
    assert (mixed["schema_version"] == SCHEMA_VERSION).all()
    assert mixed.set_index("run_id").loc["x", "tta_90_status"] == "no curve"


def test_migrate_rewrites_a_folder_at_the_current_schema(tmp_path, capsys):
    from bnnbench.cli import main

    _version_2_folder(tmp_path)
    before = load(tmp_path)
    assert main(["migrate", str(tmp_path)]) == 0
    assert "1 records migrated" in capsys.readouterr().out
    on_disk = pd.read_csv(tmp_path / "runs.csv")
    assert (on_disk["schema_version"] == SCHEMA_VERSION).all()
    assert "curve_accuracy" in pd.read_csv(tmp_path / "traces.csv")
    pd.testing.assert_frame_equal(load(tmp_path), before, check_like=True)
    assert main(["migrate", str(tmp_path)]) == 0  # idempotent
    assert "0 records migrated" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["migrate", str(tmp_path / "nothing")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_every_committed_runs_csv_is_stored_at_the_current_schema():
    """Committed folders are migrated in the change that bumps the schema (bnnbench migrate),
    not only on load."""
    paths = list(COMMITTED.glob("**/runs.csv"))
    assert len(paths) > 10
    for path in paths:
        versions = pd.read_csv(path)["schema_version"]
        assert (versions == SCHEMA_VERSION).all(), path
