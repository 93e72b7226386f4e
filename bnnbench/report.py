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
from bnnbench.results import atomic_write_text, load_runs, load_traces, open_artifacts
from bnnbench.spec import get_spec
from bnnbench.types import BACKENDS

__all__ = ["SUMMARY_METRICS", "render_report", "summary_table"]

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
    ("ood_white_noise_refusal_rate", "refused, white noise", "{:.3f}"),
    ("ood_fashion_mnist_refusal_rate", "refused, Fashion-MNIST", "{:.3f}"),
    ("ood_white_noise_entropy_auroc", "OOD AUROC (entropy), white noise", "{:.3f}"),
    ("ood_fashion_mnist_entropy_auroc", "OOD AUROC (entropy), Fashion-MNIST", "{:.3f}"),
    ("ood_fashion_mnist_mi_auroc", "OOD AUROC (mutual information), Fashion-MNIST", "{:.3f}"),
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
COLORS = {"pymc": "#1f77b4", "pyro": "#d62728", "numpyro": "#2ca02c", "torch-ml": "#7f7f7f"}
GROUP_KEYS = ["model", "profile", "device"]
#: The Pyro tutorial's refusal rates (test digits, white noise, notMNIST letters), drawn as dashes.
TUTORIAL_REFUSAL = {
    "refusal_rate": 0.125,
    "ood_white_noise_refusal_rate": 0.95,
    "ood_fashion_mnist_refusal_rate": 0.80,
}


def _backend_order(backends: Sequence[str]) -> list[str]:
    known = [b for b in BACKENDS if b in set(backends)]
    return known + sorted(set(backends) - set(known))


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Metrics (rows) by backend (columns): ``mean ± sd`` over the ``ok`` seeds, with ``n``."""
    ok = runs[runs["status"] == "ok"]
    backends = _backend_order(runs["backend"].unique())
    table = {}
    for backend in backends:
        cells = ok[ok["backend"] == backend]
        column = {}
        for col, label, fmt in SUMMARY_METRICS:
            if col not in cells:
                continue
            values = pd.to_numeric(cells[col], errors="coerce").dropna()
            if values.empty:
                column[label] = "–"
            elif len(values) == 1:
                column[label] = fmt.format(values.iloc[0])
            else:
                column[label] = f"{fmt.format(values.mean())} ± {fmt.format(values.std(ddof=1))}"
        column["seeds ok / run"] = f"{len(cells)} / {int((runs['backend'] == backend).sum())}"
        table[backend] = column
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
    ok = runs[runs["status"] == "ok"].sort_values("seed")
    firsts = ok.groupby("backend", sort=False).head(1)
    panels = []
    for _, run in firsts.iterrows():
        try:
            tree = open_artifacts(Path(run["results_dir"]), run["run_id"])
        except (OSError, FileNotFoundError):
            continue
        if "grid" not in tree.children:
            continue
        panels.append((run, tree))
    if not panels:
        return None
    order = _backend_order([run["backend"] for run, _ in panels])
    panels.sort(key=lambda item: order.index(item[0]["backend"]))
    maps = [
        (f"{run['backend']} (seed {run['seed']})", tree["grid"].to_dataset(), tree)
        for run, tree in panels
    ]
    nuts = _reference_grid(panels[0][0]["model"], maps[0][1])
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


def _reference_grid(model: str, like: xr.Dataset) -> xr.Dataset | None:
    """The stored NUTS reference's grid maps, laid out like a run's ``grid`` group."""
    from bnnbench.cell import find_reference
    from bnnbench.reference import load_reference

    path = find_reference(model)
    if path is None:
        return None
    reference = load_reference(path)
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
    ok = runs[runs["status"] == "ok"].sort_values("seed")
    panels = []
    for backend in _backend_order(ok["backend"].unique()):
        run = ok[ok["backend"] == backend].iloc[0]
        try:
            test = open_artifacts(Path(run["results_dir"]), run["run_id"])["test"].to_dataset()
        except (OSError, KeyError):
            continue
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
    ok = runs[runs["status"] == "ok"].sort_values("seed")
    rows = []
    for backend in _backend_order(ok["backend"].unique()):
        run = ok[ok["backend"] == backend].iloc[0]
        path = Path(run["results_dir"]) / run["run_id"] / "scales_summary.csv"
        if path.exists():
            rows.append(pd.read_csv(path, index_col=0).assign(backend=backend))
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


def _first_runs(runs: pd.DataFrame) -> list[tuple[pd.Series, object]]:
    """The first ``ok`` seed of each backend with its stored predictive summary."""
    ok = runs[runs["status"] == "ok"].sort_values("seed")
    out = []
    for backend in _backend_order(ok["backend"].unique()):
        run = ok[ok["backend"] == backend].iloc[0]
        try:
            out.append((run, open_artifacts(Path(run["results_dir"]), run["run_id"])))
        except (OSError, FileNotFoundError):
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
    columns = [("refusal_rate", "MNIST test")] + [
        (f"ood_{name}_refusal_rate", label)
        for name, label in (("white_noise", "white noise"), ("fashion_mnist", "Fashion-MNIST"))
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
    for x, (column, _) in enumerate(columns):  # the tutorial's figures (notMNIST for Fashion)
        if column in TUTORIAL_REFUSAL:
            ax.hlines(TUTORIAL_REFUSAL[column], x - 0.45, x + 0.45, color="k", ls="--", lw=1)
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
    try:
        return get_spec(model).reference
    except ValueError:
        return ""


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


def render_report(dirs: Sequence[Path], out: Path, title: str = "bnnbench report") -> Path:
    """Render the report of the results in ``dirs`` to ``out`` (self-contained HTML)."""
    runs = load_runs(dirs)
    traces = load_traces(dirs)
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
        status_counts=runs["status"].value_counts().to_dict(),
        sections=_sections(runs, traces),
        provenance_html=provenance,
    )
    out = Path(out)
    atomic_write_text(out, page)
    return out
