"""The report says what its numbers mean: rows that cannot rank the backends become notes, each
kind of loss gets its own axis, missing out-of-distribution sets and references are named, and
the page has a place for a section before everything else."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnnbench.recommend import report_answers
from bnnbench.record import OODScores, RunRecord
from bnnbench.report import (
    _log_ticks,
    _ood_section,
    _reference_note,
    _short_names,
    _timing_plot,
    _trace_plot,
    render_report,
    summarise,
)
from bnnbench.results import find_reference, load_all, n_test_per_spec
from bnnbench.spec import get_spec

COMMITTED = Path(__file__).resolve().parents[2] / "results"


def _runs(*records: dict) -> pd.DataFrame:
    """Flat ``runs.csv`` rows of real records (every column a report reads)."""
    rows = []
    for i, fields in enumerate(records):
        fields = {"model": "moons_2x5", "status": "ok", "host": "h", "seed": 0, **fields}
        fields.setdefault("run_id", f"{fields['model']}-{fields['backend']}-{i}")
        ood = fields.pop("ood", {})
        rows.append(RunRecord(**fields, ood=ood).to_row())
    return pd.DataFrame(rows)


def _two_backends(**per_backend: dict) -> pd.DataFrame:
    """Two seeds of pyro and numpyro, each with distinct accuracies and the given fields."""
    records = []
    for b, backend in enumerate(("pyro", "numpyro")):
        for seed in (0, 1):
            fields = {"accuracy": 0.9 + 0.01 * b + 0.001 * seed, **per_backend.get(backend, {})}
            records.append(dict(backend=backend, seed=seed, **fields))
    return _runs(*records)


def _notes(summary) -> str:
    return " ".join(str(n) for n in summary.notes)


# ----------------------------------------------------------------------------- the table
def test_a_metric_equal_in_every_run_becomes_a_note():
    runs = _two_backends(pyro={"refusal_rate": 0.0}, numpyro={"refusal_rate": 0.0})
    summary = summarise(runs)
    assert "test accuracy" in summary.table.index
    assert "refused (median p > 0.2 rule), test" not in summary.table.index
    assert "refused (median p &gt; 0.2 rule), test = 0.000" in _notes(summary)


def test_a_single_backend_keeps_its_rows():
    """'The same for every backend' needs two backends: one backend's row is its result."""
    runs = _runs(dict(backend="pyro", refusal_rate=0.0), dict(backend="pyro", refusal_rate=0.0))
    assert "refused (median p > 0.2 rule), test" in summarise(runs).table.index


def test_accepted_accuracy_is_left_out_only_when_it_repeats_accuracy():
    same = _two_backends(
        pyro={"refusal_rate": 0.0, "accepted_accuracy": 0.9},
        numpyro={"refusal_rate": 0.01, "accepted_accuracy": 0.93},
    )
    # accuracy is 0.9 / 0.901 for pyro's seeds: accepted accuracy differs on seed 1, so it stays
    assert "accuracy on accepted test points" in summarise(same).table.index
    runs = _two_backends()
    runs["accepted_accuracy"] = runs["accuracy"]
    runs["refusal_rate"] = [0.0, 0.0, 0.0, 0.01]
    summary = summarise(runs)
    assert "accuracy on accepted test points" not in summary.table.index
    assert "equal to <i>test accuracy</i>" in _notes(summary)


def test_roofline_rows_go_only_when_the_floor_is_under_one_percent_of_every_step():
    overhead = _two_backends(
        pyro={"step_floor_ms": 1e-4, "step_floor_ratio": 18_000.0},
        numpyro={"step_floor_ms": 1e-4, "step_floor_ratio": 660.0},
    )
    summary = summarise(overhead)
    assert "step / floor" not in summary.table.index
    assert "roofline floor of a step (ms)" not in summary.table.index
    assert "under 1% of every measured time (ratio 660–18,000)" in _notes(summary)
    bound = _two_backends(
        pyro={"step_floor_ms": 18.0, "step_floor_ratio": 3.1},
        numpyro={"step_floor_ms": 18.0, "step_floor_ratio": 660.0},
    )
    table = summarise(bound).table
    assert table.loc["step / floor", "pyro"].startswith("3.1 [")
    assert table.loc["step / floor", "numpyro"].startswith("660.0 [")


def test_an_infinite_pareto_k_everywhere_is_a_note_and_a_partial_one_is_marked():
    failed = _two_backends(pyro={"pareto_k": np.inf}, numpyro={"pareto_k": np.inf})
    summary = summarise(failed)
    assert "PSIS Pareto-k of the fit" not in summary.table.index
    assert "∞ in every run" in _notes(summary) and "ranks nothing" in _notes(summary)
    mixed = _two_backends(pyro={"pareto_k": np.inf}, numpyro={"pareto_k": 59.1})
    summary = summarise(mixed)
    assert summary.table.loc["PSIS Pareto-k of the fit", "pyro"] == "∞"
    assert summary.table.loc["PSIS Pareto-k of the fit", "numpyro"].startswith("59.10")
    assert "∞ where the generalised-Pareto fit" in _notes(summary)
    assert "above 0.7 for every fit" in _notes(summary)


def test_a_pareto_k_not_computed_for_want_of_draws_says_how_many_it_needs():
    runs = _two_backends(pyro={"pareto_draws": 5}, numpyro={"pareto_draws": 5})
    summary = summarise(runs)
    assert "PSIS Pareto-k of the fit" not in summary.table.index
    assert "5 posterior draws and PSIS needs at least 30" in _notes(summary)


def test_vote_scores_of_a_predictive_whose_draws_are_equal_read_na():
    runs = _runs(
        dict(backend="pyro", chi2_auroc=0.93, mi_auroc=0.89, mean_mi_nats=0.015),
        dict(backend="torch-ml", chi2_auroc=0.5, mi_auroc=0.5, mean_mi_nats=0.0),
    )
    summary = summarise(runs)
    row = summary.table.loc["error detection AUROC: chi-square of votes"]
    assert row["pyro"] == "0.930" and row["torch-ml"] == "n/a"
    assert "draws of torch-ml are all equal" in _notes(summary)


def test_a_tiny_timing_keeps_its_significant_digits():
    runs = _runs(
        *(dict(backend="torch-ml", seed=s, predict_s=v) for s, v in enumerate([3e-4, 3.5e-4, 7e-4]))
    )
    cell = summarise(runs).table.loc["posterior predictive (s)", "torch-ml"]
    assert cell.startswith("0.00035 [") and "0.00 " not in cell


# ----------------------------------------------------------------------------- figures
def test_a_maximum_likelihood_baseline_gets_its_own_loss_axis():
    """On MNIST the −ELBO per datum is ~52 and torch-ml's NLL ~0.26: on one axis the Bayesian
    curves collapse into a line at the top."""
    runs = _runs(dict(backend="pyro"), dict(backend="torch-ml"))
    steps = np.arange(1, 6) * 20
    traces = pd.concat(
        [
            pd.DataFrame(
                {
                    "run_id": run_id,
                    "step": steps,
                    "wall_s": steps / 10,
                    "neg_elbo_per_datum": level * (1 + 1 / steps),
                }
            )
            for run_id, level in zip(runs["run_id"], (52.0, 0.26), strict=True)
        ]
    )
    fig = _trace_plot(runs, traces)
    assert len(fig.axes) == 4  # (Bayesian, baseline) x (step, wall time)
    bayesian, baseline = fig.axes[0], fig.axes[2]
    assert bayesian.get_ylim()[0] > 50 and baseline.get_ylim()[1] < 1
    assert "−ELBO" in bayesian.get_ylabel() and "NLL" in baseline.get_ylabel()
    only_bayesian = _trace_plot(runs.iloc[:1], traces)
    assert len(only_bayesian.axes) == 2


def test_bar_labels_turn_and_the_figure_widens_with_the_number_of_bars():
    backends = ("pymc", "pyro", "numpyro", "torch-ml")
    runs = _runs(
        *(
            dict(backend=b, compile_s=1.0 + i, step_ms=0.06 * 10**i, fit_s=2.0, predict_s=3e-4 * i)
            for i, b in enumerate(backends)
        )
    )
    fig = _timing_plot(runs)
    labels = fig.axes[0].get_xticklabels()
    assert [t.get_text() for t in labels] == list(backends)
    assert all(t.get_rotation() > 0 for t in labels)  # "numpyrotorch-ml" no more
    step = fig.axes[1]
    assert step.get_yscale() == "log"  # 0.06 to 60 ms
    assert len(step.get_yticks()) <= 6 and not step.yaxis.get_minorticklocs().size
    compare = runs.assign(source="bench")
    compare = pd.concat([compare, runs.assign(source="default")], ignore_index=True)
    wide = _timing_plot(compare)

    def panel_width_in(figure):
        return figure.axes[0].get_position().width * figure.get_size_inches()[0]

    assert panel_width_in(wide) > 1.5 * panel_width_in(fig)  # room for twice the bars
    assert len(wide.axes[0].get_xticks()) == 8
    assert wide.get_size_inches()[0] <= 12  # two rows of panels rather than one too wide


def test_log_ticks_are_few_and_plain():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_yscale("log")
    for lo, hi in [(1e-4, 10), (36, 110), (0.085, 0.12)]:
        ax.set_ylim(lo, hi)
        _log_ticks(ax)
        ticks = ax.get_yticks()
        assert 2 <= len(ticks) <= 6 and all(lo <= t <= hi for t in ticks)
        labels = [ax.yaxis.get_major_formatter()(t, 0) for t in ticks]
        assert not any("10^" in label or "times" in label for label in labels), labels
    plt.close(fig)


def _mnist_runs(fashion: OODScores, noise_refusal: float) -> pd.DataFrame:
    return _runs(
        *(
            dict(
                model="mnist_2x800",
                backend=b,
                refusal_rate=0.0,
                ood={
                    "white_noise": OODScores(status="ok", refusal_rate=noise_refusal),
                    "fashion_mnist": fashion,
                },
            )
            for b in ("pyro", "numpyro")
        )
    )


def test_an_ood_set_without_scores_is_named_with_the_reason_not_drawn_empty():
    why = "skipped: Fashion-MNIST is not installed: `sudo apt-get install dataset-fashion-mnist`"
    section = _ood_section(_mnist_runs(OODScores(status=why), noise_refusal=0.6))
    notes = " ".join(map(str, section.notes))
    assert "Fashion-MNIST: no scores for any run" in notes
    assert "<code>sudo apt-get install dataset-fashion-mnist</code>" in notes
    assert section.svg is not None and "Fashion-MNIST" not in section.svg.split("-->")[0]
    assert "<!-- white noise -->" in section.svg and "<!-- Fashion-MNIST -->" not in section.svg


def test_ood_bars_too_low_to_see_become_a_sentence():
    ok = OODScores(status="ok", refusal_rate=0.0)
    section = _ood_section(_mnist_runs(ok, noise_refusal=0.0))
    assert section.svg is None
    notes = " ".join(map(str, section.notes))
    assert "No backend refused a single input of any set" in notes
    assert "white noise 95%" in notes  # the tutorial's figure, from the spec
    assert _ood_section(_runs(dict(backend="pyro"))) is None  # moons has no OOD sets


# ----------------------------------------------------------------------------- the reference
def test_the_reference_is_found_beside_or_above_the_results_wherever_the_report_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("BNNBENCH_REFERENCE_DIR", raising=False)
    checkout = tmp_path / "checkout"
    stored = checkout / "results" / "reference" / "moons_2x5" / "nuts.nc"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # .results/bench of a checkout: the reference is in results/ of a folder above it
    assert find_reference("moons_2x5", near=[checkout / ".results" / "bench"]) == stored
    # a results folder beside results/reference, given relative to the current folder
    monkeypatch.chdir(checkout)
    assert find_reference("moons_2x5", near=[Path("results/default")]) == stored.resolve()
    # a folder that holds its own reference/
    own = tmp_path / "mine" / "reference" / "moons_2x5" / "nuts.nc"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"")
    assert find_reference("moons_2x5", near=[tmp_path / "mine"]) == own
    assert find_reference("no_such_spec", near=[tmp_path / "mine"]) is None


def test_a_missing_reference_is_said_with_the_command_that_makes_one():
    moons = get_spec("moons_2x5")
    scored = _runs(dict(backend="pyro", agreement_test=0.98))
    note = str(_reference_note(moons, None, scored))
    assert "No NUTS reference posterior found" in note
    assert "<code>bnnbench reference moons_2x5</code>" in note
    unscored = _runs(dict(backend="pyro"))
    assert "agreement and total-variation rows are missing" in str(
        _reference_note(moons, None, unscored)
    )
    assert str(_reference_note(moons, Path("nuts.nc"), scored)) == ""
    assert "run them again" in str(_reference_note(moons, Path("nuts.nc"), unscored))
    assert str(_reference_note(get_spec("mnist_2x800"), None, scored)) == ""  # none offered


def test_short_names_tell_folders_apart():
    assert _short_names([".results/bench", "results/default"]) == {
        ".results/bench": "bench",
        "results/default": "default",
    }
    assert _short_names(["a/results", "b/results"]) == {
        "a/results": "a/results",
        "b/results": "b/results",
    }


# ----------------------------------------------------------------------------- the page
@pytest.fixture(scope="module")
def mnist_without_fashion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed ``uncertainty_mnist_2x800`` results as if Fashion-MNIST had been absent."""
    out = tmp_path_factory.mktemp("results") / "ood"
    shutil.copytree(COMMITTED / "uncertainty_mnist_2x800", out)
    runs = pd.read_csv(out / "runs.csv")
    for column in [c for c in runs if c.startswith("ood_fashion_mnist_")]:
        runs[column] = np.nan
    runs["ood_fashion_mnist_status"] = "skipped: no /usr/share/datasets/fashion-mnist"
    runs.to_csv(out / "runs.csv", index=False)
    return out


def test_the_page_opens_with_the_preamble_and_names_what_it_leaves_out(
    mnist_without_fashion: Path, tmp_path: Path
):
    preamble = '<section id="which-backend"><h2>Which backend should I use?</h2></section>'
    page, damage = render_report(
        [mnist_without_fashion], tmp_path / "r.html", title="T", preamble_html=preamble
    )
    text = page.read_text()
    assert not damage
    assert text.index("<h1>T</h1>") < text.index(preamble) < text.index("How to read this page")
    assert text.index(preamble) < text.index('<h2 id="mnist_2x800-matched-cpu">')
    assert "Fashion-MNIST: no scores for any run</b>: skipped: no /usr/share/datasets" in text
    assert "PSIS Pareto-k of the fit</i> left out: ∞ in every run" in text
    assert ">nan<" not in text.lower() and ">inf<" not in text.lower()
    no_preamble, _ = render_report(
        [mnist_without_fashion], tmp_path / "plain.html", recommend=False
    )
    assert 'class="preamble"' not in no_preamble.read_text()


def test_the_page_opens_with_the_answers_of_bnnbench_recommend(
    mnist_without_fashion: Path, tmp_path: Path
):
    """One source of truth: the page's "which backend?" rows are report_answers' answers."""
    page, _ = render_report([mnist_without_fashion], tmp_path / "r.html", title="T")
    text = page.read_text()
    first_section = text.index('<h2 id="mnist_2x800-matched-cpu">')
    assert text.index("<h1>T</h1>") < text.index("Which backend should I use?") < first_section
    loaded = load_all([mnist_without_fashion])
    answers = report_answers(loaded.runs, loaded.traces, n_test=n_test_per_spec(loaded.runs))
    cpu = next(a for a in answers if a.device == "cpu")
    assert cpu.evidence and cpu.full_budget.winner in {"pymc", "pyro", "numpyro"}
    opening = text[:first_section]
    for rec in (cpu.short_run, cpu.full_budget, cpu.best_uncertainty, cpu.least_memory):
        assert f"<b>{rec.winner}" in opening and html.escape(rec.evidence) in opening
    # the Pareto plot is drawn, and the missing GPU evidence is named with its command
    assert '<figure class="pareto"><svg' in opening
    gpu = next(a for a in answers if a.device == "gpu")
    assert not gpu.evidence and "mnist_2x800 on the gpu" in opening
    assert html.escape(next(m.command for m in gpu.missing if m.command)) in opening


def test_a_failed_backend_is_never_the_answer_on_the_page(tmp_path: Path):
    """A results folder whose fastest backend failed: the page recommends a backend that ran."""
    out = tmp_path / "results"
    shutil.copytree(COMMITTED / "uncertainty_mnist_2x800", out)
    runs = pd.read_csv(out / "runs.csv").astype({"status": object, "error": object})
    loaded = load_all([out])
    before = report_answers(loaded.runs, loaded.traces)
    winner = next(a for a in before if a.device == "cpu").full_budget.winner
    runs.loc[runs["backend"] == winner, ["status", "error"]] = ["failed", "RuntimeError: boom"]
    runs.to_csv(out / "runs.csv", index=False)
    page, _ = render_report([out], tmp_path / "r.html", allow_partial=True)
    opening = page.read_text().split('<h2 id="mnist_2x800-matched-cpu">')[0]
    rows = opening.split("<tbody>")[1].split("</tbody>")[0]
    assert f"<b>{winner}" not in rows and "<b>" in rows


# ------------------------------------------------------------------ learning curve and tutorials
def _curve_runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two backends, two seeds of moons: pyro reaches 90% at step 20 (seed 0) or 40 (seed 1)
    and never 94.2%; numpyro never reaches 90%."""
    from bnnbench.evaluate import time_to_accuracy

    records, traces = [], []
    for backend, curves in {
        "pyro": [[0.8, 0.91, 0.92, 0.93], [0.8, 0.85, 0.88, 0.9]],
        "numpyro": [[0.7, 0.8, 0.85, 0.86], [0.7, 0.8, 0.84, 0.86]],
    }.items():
        for seed, accuracy in enumerate(curves):
            run_id = f"moons_2x5-{backend}-{seed}"
            steps, train_s = [10, 20, 30, 40], [1.0, 2.0, 3.0, 4.0]
            tta = time_to_accuracy(
                np.array(steps), np.array(train_s), np.array(accuracy), (0.9, 0.942)
            )
            records.append(
                dict(
                    run_id=run_id,
                    backend=backend,
                    seed=seed,
                    accuracy=accuracy[-1],
                    steps=40,
                    profile="matched",
                    device="cpu",
                    compile_s=1.0,
                    fit_s=4.0,
                    cpu="cpu X",
                    curve_points=4,
                    tta=tta,
                )
            )
            traces.append(
                pd.DataFrame(
                    dict(
                        run_id=run_id,
                        step=steps,
                        wall_s=train_s,
                        neg_elbo_per_datum=1.0,
                        curve_accuracy=accuracy,
                        curve_nll=0.3,
                        curve_eval_s=0.01,
                    )
                )
            )
    return _runs(*records), pd.concat(traces, ignore_index=True)


def test_time_to_accuracy_table_gives_medians_of_the_seeds_that_reached_and_says_who_did_not():
    from bnnbench.report import tta_table

    runs, _ = _curve_runs()
    table = tta_table(runs)
    assert list(table.columns) == ["90%", "94.2%", "final accuracy"]
    assert table.loc["pyro", "90%"] == "30 steps · 3 s"  # median of 20 and 40 steps
    assert table.loc["pyro", "94.2%"] == "not reached (2/2)"
    assert table.loc["numpyro", "90%"] == "not reached (2/2)"
    one = runs[~((runs["backend"] == "pyro") & (runs["seed"] == 1))]
    assert tta_table(one).loc["pyro", "90%"] == "20 steps · 2 s"
    partial = runs.copy()
    partial.loc[partial["run_id"] == "moons_2x5-pyro-1", "tta_90_status"] = "not reached"
    assert tta_table(partial).loc["pyro", "90%"] == "20 steps · 2 s (1/2 seeds)"
    old = runs.assign(curve_points=0)  # records from before the learning curve
    assert tta_table(old) is None


def test_the_curve_figure_draws_each_run_and_the_targets():
    from bnnbench.report import _curve_plot

    runs, traces = _curve_runs()
    fig = _curve_plot(runs, traces)
    left, _ = fig.axes
    assert len([line for line in left.lines if line.get_marker() == "."]) == 4
    targets = {round(line.get_ydata()[0], 1) for line in left.lines if line.get_linestyle() == ":"}
    assert targets == {90.0, 94.2}
    assert _curve_plot(runs, traces.assign(curve_accuracy=np.nan)) is None


def test_versus_the_tutorials_puts_each_backends_best_cell_beside_the_tutorial():
    from bnnbench.report import versus_tutorials

    runs, _ = _curve_runs()
    table = versus_tutorials(runs)
    tutorial = table[table["who"].str.contains("PyMC3")].iloc[0]
    assert (tutorial["accuracy"], tutorial["steps"]) == ("94.2%", "50,000")
    ours = table[table["who"].str.startswith("bnnbench pyro")].iloc[0]
    assert ours["accuracy"] == "91.5%" and ours["steps"] == "40" and ours["time"] == "5 s"
    assert ours["hardware"] == "cpu: cpu X"
