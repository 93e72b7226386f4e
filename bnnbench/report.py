"""``bnnbench report``: one self-contained HTML page from stored results only.

Tables come from ``runs.csv`` (pandas), ELBO curves from ``traces.csv``, probability surfaces and
uncertainty maps from each run's ``inference_data.nc``. Figures are drawn with matplotlib and
embedded as SVG, so the page needs no network and no other file when it is viewed.
"""

from __future__ import annotations

import datetime as dt
import html
import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from jinja2 import Environment, PackageLoader, select_autoescape

from bnnbench.config import PROFILE_DESCRIPTIONS
from bnnbench.registry import backends as registered_backends
from bnnbench.results import (
    Damage,
    atomic_write_text,
    find_reference,
    load_all,
    load_tree,
    open_artifacts,
)
from bnnbench.spec import ModelSpec, get_spec

__all__ = ["SUMMARY_METRICS", "ReportDamageError", "render_report", "summary_table"]

#: (column, label, format) of the summary table, in order.
SUMMARY_METRICS: tuple[tuple[str, str, str], ...] = (
    ("accuracy", "test accuracy", "{:.3f}"),
    ("nll", "test NLL (nats/point)", "{:.4f}"),
    ("final_neg_elbo_per_datum", "final −ELBO / datum", "{:.4f}"),
    ("chi2_auroc", "error detection AUROC: chi-square of votes", "{:.3f}"),
    ("entropy_auroc", "error detection AUROC: predictive entropy", "{:.3f}"),
    ("mi_auroc", "error detection AUROC: mutual information", "{:.3f}"),
    ("refusal_rate", "refused (median p > 0.2 rule), test", "{:.3f}"),
    ("accepted_accuracy", "accuracy on accepted test points", "{:.3f}"),
    ("brier", "Brier score", "{:.4f}"),
    ("ece_15", "expected calibration error (15 bins)", "{:.4f}"),
    ("pareto_k", "PSIS Pareto-k of the fit", "{:.2f}"),
    ("agreement_test", "agreement with NUTS, test", "{:.3f}"),
    ("tv_test", "total variation to NUTS, test", "{:.4f}"),
    ("agreement_grid", "agreement with NUTS, grid", "{:.3f}"),
    ("tv_grid", "total variation to NUTS, grid", "{:.4f}"),
    ("compile_s", "compile (s)", "{:.2f}"),
    ("transfer_s", "data to device (s)", "{:.4f}"),
    ("step_ms", "step (ms, median over chunks)", "{:.3f}"),
    ("step_ms_iqr", "step IQR over chunks (ms)", "{:.3f}"),
    ("step_floor_ms", "roofline floor of a step (ms)", "{:.4f}"),
    ("step_floor_ratio", "step / floor", "{:.1f}"),
    ("fit_s", "training (s)", "{:.2f}"),
    ("predict_s", "posterior predictive (s)", "{:.2f}"),
    ("predict_ms_per_draw", "predictive per draw (ms)", "{:.2f}"),
    ("draw_floor_ratio", "predictive draw / floor", "{:.1f}"),
    ("peak_rss_mb", "peak host memory (MB)", "{:.0f}"),
    ("peak_device_mb", "peak device memory (MB)", "{:.0f}"),
)
#: Report colour of each backend, from the registry.
COLORS = {b.name: b.color for b in registered_backends()}
GROUP_KEYS = ["model", "profile", "device"]
#: Summary rows whose figure is a time: shown as median [IQR] over seeds, since one seed timed
#: on a busy machine would drag a mean; quality rows are mean ± sd.
TIMING_SUFFIXES = ("_s", "_ms", "_ms_iqr", "_ratio", "_mb")


class ReportDamageError(RuntimeError):
    """Results the report would silently leave out: damaged or missing rows and artifacts."""

    def __init__(self, damage: list[Damage]) -> None:
        self.damage = damage
        super().__init__("; ".join(str(d) for d in damage))


def _backend_order(backends: Sequence[str]) -> list[str]:
    known = [b.name for b in registered_backends() if b.name in set(backends)]
    return known + sorted(set(backends) - set(known))


def _spec(model: str) -> ModelSpec | None:
    try:
        return get_spec(model)
    except ValueError:
        return None


def _ood_metrics(model: str) -> list[tuple[str, str, str]]:
    """The summary rows of the spec's out-of-distribution sets, named as the spec names them."""
    spec = _spec(model)
    if spec is None:
        return []
    rows = []
    for name in spec.ood_sets:
        label = spec.ood_labels.get(name, name)
        rows += [
            (f"ood_{name}_refusal_rate", f"refused, {label}", "{:.3f}"),
            (f"ood_{name}_entropy_auroc", f"OOD AUROC (entropy), {label}", "{:.3f}"),
            (f"ood_{name}_mi_auroc", f"OOD AUROC (mutual information), {label}", "{:.3f}"),
        ]
    return rows


def _format(values: pd.Series, column: str, fmt: str) -> str:
    if values.empty:
        return "–"
    if len(values) == 1:
        return fmt.format(values.iloc[0])
    if column.endswith(TIMING_SUFFIXES):
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        return f"{fmt.format(q50)} [{fmt.format(q25)}–{fmt.format(q75)}]"
    return f"{fmt.format(values.mean())} ± {fmt.format(values.std(ddof=1))}"


def _column_label(backend: str, source: str, sources: int) -> str:
    return backend if sources < 2 else f"{backend} · {source}"


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Metrics (rows) by backend (columns; one per backend and ``source`` when there are
    several: the machine, or the folder in a comparison): quality as ``mean ± sd`` and timings
    as ``median [IQR]`` over the distinct ``ok`` seeds, with the count of seeds. A timing taken
    on a busy machine is marked ``*``."""
    ok = runs[runs["status"] == "ok"]
    metrics = list(SUMMARY_METRICS)
    insert = next(i for i, (c, _, _) in enumerate(metrics) if c == "brier")
    metrics[insert:insert] = _ood_metrics(str(runs["model"].iloc[0])) if len(runs) else []
    if "source" not in runs:
        runs = runs.assign(source=runs["host"].fillna("") if "host" in runs else "")
        ok = runs[runs["status"] == "ok"]
    sources = runs["source"].nunique()
    table = {}
    for backend in _backend_order(runs["backend"].unique()):
        for source in list(dict.fromkeys(runs.loc[runs["backend"] == backend, "source"])):
            cells = ok[(ok["backend"] == backend) & (ok["source"] == source)]
            tried = runs[(runs["backend"] == backend) & (runs["source"] == source)]
            busy = bool(
                cells.get("host_busy", pd.Series(dtype=bool)).fillna(False).astype(bool).any()
            )
            column = {}
            for col, label, fmt in metrics:
                if col not in cells:
                    continue
                values = pd.to_numeric(cells[col], errors="coerce").dropna()
                text = _format(values, col, fmt)
                if busy and col.endswith(TIMING_SUFFIXES) and text != "–":
                    text += " *"
                column[label] = text
            column["seeds ok / run"] = f"{cells['seed'].nunique()} / {tried['seed'].nunique()}"
            table[_column_label(backend, source, sources)] = column
    frame = pd.DataFrame(table)
    return frame[(frame != "–").any(axis=1)]  # metrics no backend has (e.g. OOD for moons)


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", dpi=110, metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _trace_figure(runs: pd.DataFrame, traces: pd.DataFrame) -> str | None:
    ok = runs[runs["status"] == "ok"]
    data = traces[traces["run_id"].isin(ok["run_id"])].merge(
        ok[["run_id", "backend", "seed"]], on="run_id"
    )
    if data.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for backend in _backend_order(data["backend"].unique()):
        for i, (_, run) in enumerate(data[data["backend"] == backend].groupby("run_id")):
            run = run.sort_values("step")
            label = backend if i == 0 else None
            kw = dict(color=COLORS.get(backend), alpha=0.8, lw=1.2, label=label)
            axes[0].plot(run["step"], run["neg_elbo_per_datum"], **kw)
            axes[1].plot(run["wall_s"], run["neg_elbo_per_datum"], **kw)
    values = data["neg_elbo_per_datum"].to_numpy()
    lo, hi = np.nanmin(values), np.nanpercentile(values, 95)
    axes[0].set_ylim(lo - 0.05 * (hi - lo), hi)
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("training wall time (s, compile excluded)")
    axes[1].set_xscale("log")
    axes[0].set_ylabel("negative ELBO per datum")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False)
    fig.suptitle("Negative ELBO per datum (full-data scale; one line per seed)", fontsize=10)
    return _svg(fig)


def _timing_figure(runs: pd.DataFrame) -> str | None:
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        return None
    backends = _backend_order(ok["backend"].unique())
    panels = [
        ("compile_s", "compile (s)"),
        ("step_ms", "step (ms)"),
        ("fit_s", "training (s)"),
        ("predict_s", "predictive (s)"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(11, 2.8))
    for ax, (col, label) in zip(axes, panels, strict=True):
        for i, backend in enumerate(backends):
            values = pd.to_numeric(ok.loc[ok["backend"] == backend, col], errors="coerce")
            ax.bar(i, values.median(), color=COLORS.get(backend), alpha=0.7)
            ax.scatter(np.full(len(values), i), values, color="k", s=8, zorder=3)
        ax.set_xticks(range(len(backends)), backends)
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Time per phase (bar: median over seeds; dots: seeds)", fontsize=10)
    fig.tight_layout()
    return _svg(fig)


def _surface_figure(runs: pd.DataFrame) -> str | None:
    panels = [(run, tree) for run, tree in _first_runs(runs) if "grid" in tree.children]
    if not panels:
        return None
    order = _backend_order([run["backend"] for run, _ in panels])
    panels.sort(key=lambda item: order.index(item[0]["backend"]))
    maps = [
        (f"{run['backend']} (seed {run['seed']})", tree["grid"].to_dataset(), tree)
        for run, tree in panels
    ]
    nuts = _reference_grid(panels[0][0], maps[0][1])
    if nuts is not None:
        maps.insert(0, (f"NUTS reference ({nuts.attrs['draws']} draws)", nuts, panels[0][1]))
    sd_max = max(float(grid["p_sd"].max()) for _, grid, _ in maps) or 1.0  # one scale for all
    fig, axes = plt.subplots(2, len(maps), figsize=(3.6 * len(maps), 6.6), squeeze=False)
    for j, (title, grid, tree) in enumerate(maps):
        X = tree["test_inputs"]["X"].values
        y = tree["test"]["y"].values
        gx, gy = grid["grid_x"].values, grid["grid_y"].values
        for i, (var, cmap, label, vmax) in enumerate(
            [
                ("p_mean", "RdBu_r", "posterior predictive mean of p(y=1)", 1.0),
                ("p_sd", "viridis", "posterior predictive sd of p(y=1)", sd_max),
            ]
        ):
            ax = axes[i, j]
            levels = np.linspace(0, vmax, 21)
            values = np.clip(grid[var].values, 0, vmax)
            mesh = ax.contourf(gx, gy, values, levels=levels, cmap=cmap, vmin=0, vmax=vmax)
            mesh.set_rasterized(True)
            ax.scatter(
                X[y == 0, 0],
                X[y == 0, 1],
                s=4,
                c="w",
                edgecolors="k",
                linewidths=0.3,
                rasterized=True,
            )
            ax.scatter(X[y == 1, 0], X[y == 1, 1], s=4, c="k", rasterized=True)
            ax.set_title(f"{title}\n{label}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(mesh, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _svg(fig)


def _reference_grid(run: pd.Series, like: xr.Dataset) -> xr.Dataset | None:
    """The stored NUTS reference's grid maps, laid out like a run's ``grid`` group."""
    path = find_reference(run["model"], near=[Path(run["results_dir"])])
    if path is None:
        return None
    reference = load_tree(path)
    pred = reference["predictive"].to_dataset()
    if "grid_p_mean" not in pred:
        return None
    shape = like["p_mean"].shape
    out = like.copy(
        data={
            "p_mean": pred["grid_p_mean"].values.reshape(shape),
            "p_sd": pred["grid_p_sd"].values.reshape(shape),
        }
    )
    out.attrs["draws"] = int(reference.attrs.get("predictive_draws", 0))
    return out


def _chi_square_figure(runs: pd.DataFrame) -> str | None:
    """Per backend: the chi-square of the votes for correct vs misclassified test points."""
    panels = []
    for run, tree in _first_runs(runs):
        test = tree["test"].to_dataset()
        if test.attrs.get("draws", 0) < 2:
            continue  # a point estimate has no vote spread
        panels.append((run, test))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 2.8), squeeze=False)
    for ax, (run, test) in zip(axes[0], panels, strict=True):
        chi2, correct = test["chi2"].values, test["correct"].values.astype(bool)
        bins = np.linspace(0, max(chi2.max(), 1e-9), 30)
        for mask, label, color in (
            (correct, "correct", "#2ca02c"),
            (~correct, "misclassified", "#d62728"),
        ):
            if mask.any():
                ax.hist(
                    chi2[mask],
                    bins=bins,
                    density=True,
                    alpha=0.6,
                    color=color,
                    label=f"{label} ({mask.sum()})",
                )
        ax.set_title(
            f"{run['backend']} (seed {run['seed']}), {test.attrs['draws']} draws", fontsize=8
        )
        ax.set_xlabel("chi-square of the predicted labels")
        ax.legend(frameon=False, fontsize=7)
    axes[0, 0].set_ylabel("density")
    fig.suptitle("Certainty of the posterior-predictive votes (higher = more certain)", fontsize=10)
    fig.tight_layout()
    return _svg(fig)


def _scales_figure(runs: pd.DataFrame) -> str | None:
    """Learned scales of a hierarchical spec: posterior mean +- sd per backend (first seed)."""
    rows = []
    for run in _first_ok(runs):
        path = Path(run["results_dir"]) / run["run_id"] / "scales_summary.csv"
        if path.exists():
            rows.append(pd.read_csv(path, index_col=0).assign(backend=run["backend"]))
    if not rows:
        return None
    table = pd.concat(rows)
    names = list(dict.fromkeys(table.index))
    fig, ax = plt.subplots(figsize=(9, 3))
    width = 0.8 / table["backend"].nunique()
    for i, (backend, group) in enumerate(table.groupby("backend", sort=False)):
        x = np.arange(len(names)) + (i - (table["backend"].nunique() - 1) / 2) * width
        group = group.reindex(names)
        ax.errorbar(
            x,
            group["mean"],
            yerr=group["sd"],
            fmt="o",
            color=COLORS.get(backend),
            label=backend,
            capsize=2,
        )
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("scale (posterior mean ± sd)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.suptitle("Regularisation learned per tensor", fontsize=10)
    fig.tight_layout()
    return _svg(fig)


def _first_ok(runs: pd.DataFrame) -> list[pd.Series]:
    """The first ``ok`` seed of each backend, in the registry's order."""
    ok = runs[runs["status"] == "ok"].sort_values("seed")
    return [ok[ok["backend"] == b].iloc[0] for b in _backend_order(ok["backend"].unique())]


def _first_runs(runs: pd.DataFrame) -> list[tuple[pd.Series, xr.DataTree]]:
    """The first ``ok`` seed of each backend with its stored predictive summary (a damaged one
    is reported by the loader before any figure is drawn)."""
    out = []
    for run in _first_ok(runs):
        try:
            out.append((run, open_artifacts(Path(run["results_dir"]), run["run_id"])))
        except (OSError, FileNotFoundError, ValueError):
            continue
    return out


def _calibration_figure(runs: pd.DataFrame) -> str | None:
    """Accuracy-coverage curves of the reject option and reliability diagrams, per backend."""
    panels = [
        (run, tree)
        for run, tree in _first_runs(runs)
        if "coverage" in tree.children and "reliability" in tree.children
    ]
    if not panels:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for run, tree in panels:
        color = COLORS.get(run["backend"])
        cov = tree["coverage"].to_dataset()
        left.plot(cov["coverage"], cov["accuracy"], "-", color=color, label=run["backend"])
        at = cov.sel(threshold=0.2, method="nearest")
        left.plot(float(at["coverage"]), float(at["accuracy"]), "o", color=color)
        rel = tree["reliability"].to_dataset()
        used = rel["count"].values > 0
        right.plot(
            rel["mean_confidence"].values[used],
            rel["accuracy"].values[used],
            "o-",
            color=color,
            ms=3,
            label=run["backend"],
        )
    left.set_xlabel("coverage (fraction of test points accepted)")
    left.set_ylabel("accuracy on accepted points")
    left.set_title("Reject option: sweep of the median threshold (dot: 0.2)", fontsize=9)
    right.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    right.set_xlabel("confidence (max predictive probability), 15 bins")
    right.set_ylabel("accuracy in bin")
    right.set_title("Reliability diagram", fontsize=9)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return _svg(fig)


def _ood_figure(runs: pd.DataFrame) -> str | None:
    """Refusal rates (reject option) on the test set and each OOD set, mean over seeds."""
    ok = runs[runs["status"] == "ok"]
    spec = _spec(str(runs["model"].iloc[0]))
    if spec is None:
        return None
    columns = [("refusal_rate", spec.test_label)] + [
        (f"ood_{name}_refusal_rate", spec.ood_labels.get(name, name)) for name in spec.ood_sets
    ]
    columns = [(c, label) for c, label in columns if c in ok and ok[c].notna().any()]
    if len(columns) < 2:
        return None
    backends = _backend_order(ok["backend"].unique())
    fig, ax = plt.subplots(figsize=(7, 2.8))
    width = 0.8 / len(backends)
    for i, backend in enumerate(backends):
        means = [pd.to_numeric(ok[ok["backend"] == backend][c]).mean() for c, _ in columns]
        x = np.arange(len(columns)) + (i - (len(backends) - 1) / 2) * width
        ax.bar(x, means, width, color=COLORS.get(backend), label=backend)
    anchors = spec.tutorial_refusal
    for x, (column, _) in enumerate(columns):  # the tutorials' figures, as the spec states them
        if column in anchors:
            ax.hlines(anchors[column], x - 0.45, x + 0.45, color="k", ls="--", lw=1)
    ax.set_xticks(range(len(columns)), [label for _, label in columns])
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction refused")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(frameon=False, fontsize=7)
    fig.suptitle(
        "'I don't know': refused when no class's median probability > 0.2 (dashes: tutorial)",
        fontsize=9,
    )
    fig.tight_layout()
    return _svg(fig)


def _spec_reference(model: str) -> str:
    spec = _spec(model)
    return "" if spec is None else spec.reference


def _sections(runs: pd.DataFrame, traces: pd.DataFrame) -> list[dict]:
    sections = []
    for key, group in runs.groupby(GROUP_KEYS, sort=False):
        model, profile, device = key
        failures = group[group["status"] != "ok"][["run_id", "status", "error"]]
        paths = group[group["status"] == "ok"].groupby("backend")["execution_path"].first()
        sections.append(
            dict(
                model=model,
                profile=profile,
                device=device,
                profile_description=PROFILE_DESCRIPTIONS.get(profile, ""),
                reference=_spec_reference(model),
                settings=group.iloc[0][
                    ["steps", "batch_size", "learning_rate", "init_scale", "predict_draws"]
                ].to_dict(),
                summary_html=summary_table(group).to_html(classes="summary", border=0),
                execution_paths=paths.to_dict(),
                failures=failures.to_dict(orient="records"),
                trace_svg=_trace_figure(group, traces),
                timing_svg=_timing_figure(group),
                surface_svg=_surface_figure(group),
                chi_square_svg=_chi_square_figure(group),
                calibration_svg=_calibration_figure(group),
                ood_svg=_ood_figure(group),
                scales_svg=_scales_figure(group),
            )
        )
    return sections


def render_report(
    dirs: Sequence[Path],
    out: Path,
    title: str = "bnnbench report",
    *,
    allow_partial: bool = False,
    compare: bool = False,
) -> tuple[Path, list[Damage]]:
    """Render the report of the results in ``dirs`` to ``out`` (self-contained HTML).

    Damaged or missing rows and artifacts are listed in the page; unless ``allow_partial``,
    :class:`ReportDamageError` is raised instead of writing a page that leaves them out.
    With ``compare``, each folder is its own column (``backend · folder``), e.g. a user's run
    beside the committed reference; otherwise a cell found in several folders counts once.
    Returns the page's path and the damage found.
    """
    loaded = load_all(dirs, per_folder=compare)
    if loaded.damage and not allow_partial:
        raise ReportDamageError(loaded.damage)
    runs, traces = loaded.runs, loaded.traces
    host = runs["host"].fillna("") if "host" in runs else pd.Series("", index=runs.index)
    runs = runs.assign(source=runs["results_dir"] if compare else host)
    provenance_cols = [
        "host",
        "cpu",
        "gpu",
        "git_revision",
        "python_version",
        "backend",
        "backend_version",
        "runtime_version",
    ]
    provenance = (
        runs[[c for c in provenance_cols if c in runs]]
        .drop_duplicates()
        .fillna("")
        .to_html(index=False, border=0, classes="provenance")
    )
    env = Environment(
        loader=PackageLoader("bnnbench", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    page = env.get_template("report.html.j2").render(
        title=title,
        generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        sources=[html.escape(str(d)) for d in dirs],
        n_runs=len(runs),
        superseded=loaded.superseded,
        damage=[str(d) for d in loaded.damage],
        busy=int(runs.get("host_busy", pd.Series(dtype=bool)).fillna(False).astype(bool).sum()),
        status_counts=runs["status"].value_counts().to_dict(),
        sections=_sections(runs, traces),
        provenance_html=provenance,
    )
    out = Path(out)
    atomic_write_text(out, page)
    return out, loaded.damage
