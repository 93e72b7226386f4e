"""``bnnbench report``: one self-contained HTML page from stored results only.

Tables come from ``runs.csv`` (pandas), loss curves from ``traces.csv``, probability surfaces and
uncertainty maps from each run's ``predictive_summary.nc``. Figures are drawn with matplotlib and
embedded as SVG, so the page needs no network and no other file when it is viewed.

The page says in words what it leaves out and why, decided from the data alone (never from a
spec's or a backend's name): a row with the same value in every run, a row that cannot rank the
backends (a roofline floor under 1% of the measured time, a Pareto-k whose tail fit failed, the
vote and mutual-information scores of a predictive whose draws are all equal), an
out-of-distribution set without scores, a missing NUTS reference. Each becomes a sentence under
the table or in place of the figure, instead of a number that looks informative or an empty frame.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from bnnbench.config import PROFILE_DESCRIPTIONS
from bnnbench.diagnostics import PSIS_MIN_DRAWS
from bnnbench.measure import CURVE_DRAWS, CURVE_POINTS
from bnnbench.recommend import Recommendation, SpecDeviceAnswers, report_answers
from bnnbench.record import tta_key
from bnnbench.registry import backends as registered_backends
from bnnbench.results import (
    Damage,
    atomic_write_text,
    find_reference,
    load_all,
    load_tree,
    n_test_per_spec,
    open_artifacts,
)
from bnnbench.spec import ModelSpec, get_spec

__all__ = [
    "PARETO_K_OK",
    "ROOFLINE_MIN_FRACTION",
    "SUMMARY_METRICS",
    "ReportDamageError",
    "Summary",
    "render_report",
    "summarise",
    "summary_table",
]

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
    ("step_floor_ratio", "step / floor", "{:,.1f}"),
    ("fit_s", "training (s)", "{:.2f}"),
    ("predict_s", "posterior predictive (s)", "{:.2f}"),
    ("predict_ms_per_draw", "predictive per draw (ms)", "{:.2f}"),
    ("draw_floor_ratio", "predictive draw / floor", "{:,.1f}"),
    ("peak_rss_mb", "peak host memory (MB)", "{:,.0f}"),
    ("peak_device_mb", "peak device memory (MB)", "{:,.0f}"),
)
#: Report colour of each backend, from the registry.
COLORS = {b.name: b.color for b in registered_backends()}
GROUP_KEYS = ["model", "profile", "device"]
#: Summary rows whose figure is a time: shown as median [IQR] over seeds, since one seed timed
#: on a busy machine would drag a mean; quality rows are mean ± sd.
TIMING_SUFFIXES = ("_s", "_ms", "_ms_iqr", "_ratio", "_mb")
#: A roofline floor below this fraction of the measured time says nothing about that time (the
#: step is overhead, not arithmetic or memory traffic): when every run is below it, the roofline
#: rows are left out with a note.
ROOFLINE_MIN_FRACTION = 0.01
#: Roofline ratio (measured / floor) -> the summary rows it decides.
ROOFLINE_ROWS: dict[str, tuple[str, ...]] = {
    "step_floor_ratio": ("step_floor_ms", "step_floor_ratio"),
    "draw_floor_ratio": ("draw_floor_ratio",),
}
#: Above this Pareto-k, q does not cover the posterior (Yao et al. 2018).
PARETO_K_OK = 0.7
#: What an infinite value of a column means, for its note.
NONFINITE_MEANING: dict[str, str] = {
    "pareto_k": (
        "the generalised-Pareto fit to the tail of log p(θ, y) − log q(θ) over the draws failed "
        "(the ratios spread over too many orders of magnitude for a tail fit)"
    ),
}
#: Row -> an earlier row it repeats in some runs (accuracy on accepted points is the test
#: accuracy when nothing is refused): left out, with a note, when the two are equal in every run.
REPEATS: dict[str, str] = {"accepted_accuracy": "accuracy"}
#: Where a trace's loss comes from, by whether the backend is Bayesian.
LOSS_LABELS: dict[bool, tuple[str, str]] = {
    True: ("Bayesian backends: full-data −ELBO / N", "−ELBO per datum"),
    False: ("maximum likelihood: training NLL / N (no prior, no entropy)", "NLL per datum"),
}
#: Out-of-distribution refusal rates all below this are not drawn (the bars would not show):
#: the page says how many were refused instead.
OOD_VISIBLE_FRACTION = 0.01
#: The most ticks a log axis of the report gets.
MAX_LOG_TICKS = 6


class ReportDamageError(RuntimeError):
    """Results the report would silently leave out: damaged or missing rows and artifacts."""

    def __init__(self, damage: list[Damage]) -> None:
        self.damage = damage
        super().__init__("; ".join(str(d) for d in damage))


@dataclass(frozen=True)
class Summary:
    """The summary table of one section and the sentences that say what it leaves out.

    Attributes
    ----------
    table
        Metrics (rows) by backend (columns), formatted.
    notes
        HTML sentences (escaped) for the rows left out or marked, in table order.
    """

    table: pd.DataFrame
    notes: tuple[Markup, ...] = ()


def _backend_order(backends: Sequence[str]) -> list[str]:
    known = [b.name for b in registered_backends() if b.name in set(backends)]
    return known + sorted(set(backends) - set(known))


def _is_bayesian(backend: str) -> bool:
    """Whether a backend fits a posterior (the registry's word; unknown ones are assumed to)."""
    return next((b.bayesian for b in registered_backends() if b.name == backend), True)


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


def _needs_spread(column: str) -> bool:
    """Scores that rank points by how much the posterior draws disagree."""
    return column in ("chi2_auroc", "mi_auroc") or column.endswith(("_mi_auroc", "_chi2_auroc"))


def _code_spans(text: str) -> Markup:
    """``text`` escaped, with its `backticked` spans set as code."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(Markup.escape(text))))


def _number(fmt: str, value: float) -> str:
    """``fmt`` of ``value``; two significant digits where ``fmt`` would round it to zero."""
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    text = fmt.format(value)
    if value != 0 and not re.search(r"[1-9]", text):
        text = f"{value:#.2g}"
    return text


def _format(values: pd.Series, column: str, fmt: str) -> str:
    """Seeds of one cell of the table: mean ± sd (quality) or median [IQR] (timings); an
    infinite value is shown as such, with how many seeds had it."""
    values = values.dropna()
    if values.empty:
        return "–"
    finite = values[np.isfinite(values)]
    if finite.empty:
        return "∞" if (values > 0).all() else "−∞"
    infinite = "" if len(finite) == len(values) else f" (∞ in {len(values) - len(finite)} of "
    infinite += f"{len(values)})" if infinite else ""
    if len(finite) == 1:
        return _number(fmt, float(finite.iloc[0])) + infinite
    if column.endswith(TIMING_SUFFIXES):
        q25, q50, q75 = (_number(fmt, float(q)) for q in np.percentile(finite, [25, 50, 75]))
        return f"{q50} [{q25}–{q75}]{infinite}"
    return f"{_number(fmt, float(finite.mean()))} ± {fmt.format(finite.std(ddof=1))}{infinite}"


def _column_label(backend: str, source: str, sources: int) -> str:
    return backend if sources < 2 else f"{backend} · {source}"


def _columns_of(runs: pd.DataFrame, *, several: bool) -> list[str]:
    """The table columns ``runs`` fall in, in order: ``backend``, or ``backend · source`` when
    the table has ``several`` sources."""
    return [
        _column_label(b, s, 2 if several else 1)
        for b in _backend_order(runs["backend"].unique())
        for s in dict.fromkeys(runs.loc[runs["backend"] == b, "source"])
    ]


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce")


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _span(values: pd.Series, fmt: str) -> str:
    lo, hi = float(values.min()), float(values.max())
    return _number(fmt, lo) if lo == hi else f"{_number(fmt, lo)}–{_number(fmt, hi)}"


def _roofline_notes(
    ok: pd.DataFrame, labels: dict[str, tuple[str, str]]
) -> tuple[set[str], list[Markup]]:
    """Roofline rows that say nothing: the floor is under 1% of every run's measured time."""
    hidden, notes = set(), []
    for ratio_column, rows in ROOFLINE_ROWS.items():
        ratios = _numeric(ok, ratio_column).dropna()
        if ratios.empty or not (ratios > 1 / ROOFLINE_MIN_FRACTION).all():
            continue
        hidden.update(rows)
        floor_column = rows[0] if rows[0] != ratio_column else None
        floor = (
            f" ({_span(_numeric(ok, floor_column).dropna(), labels[floor_column][1])} ms)"
            if floor_column in labels
            else ""
        )
        what = labels[ratio_column][0]
        notes.append(
            Markup(
                "<i>{}</i> and its roofline floor{} left out: the floor is under {:.0%} of every "
                "measured time (ratio {}), so the time is overhead (Python, launches, "
                "synchronisation), not arithmetic or memory traffic, and the hardware's limit "
                "says nothing about it."
            ).format(what, floor, ROOFLINE_MIN_FRACTION, _span(ratios, "{:,.0f}"))
        )
    return hidden, notes


def summarise(runs: pd.DataFrame) -> Summary:
    """Metrics (rows) by backend (columns; one per backend and ``source`` when there are
    several: the machine, or the folder in a comparison): quality as ``mean ± sd`` and timings
    as ``median [IQR]`` over the distinct ``ok`` seeds, with the count of seeds. A timing taken
    on a busy machine is marked ``*``.

    Rows that carry no information are left out, each with a note saying why, decided from the
    values alone: a roofline floor under :data:`ROOFLINE_MIN_FRACTION` of every measured time;
    a metric infinite in every run (a failed Pareto fit); a metric with the same value in every
    run of at least two columns; a metric equal to the row it repeats in every run
    (:data:`REPEATS`: accuracy on accepted points when nothing was refused). The vote and
    mutual-information scores of a run whose posterior draws are all equal (mean mutual
    information 0) read ``n/a``.
    """
    runs = _with_source(runs)
    ok = runs[runs["status"] == "ok"]
    metrics = list(SUMMARY_METRICS)
    insert = next(i for i, (c, _, _) in enumerate(metrics) if c == "brier")
    metrics[insert:insert] = _ood_metrics(str(runs["model"].iloc[0])) if len(runs) else []
    metrics = [m for m in metrics if m[0] in runs]
    labels = {c: (label, fmt) for c, label, fmt in metrics}
    no_spread = ok["run_id"][_numeric(ok, "mean_mi_nats") == 0]
    scored = {  # per metric, the runs whose value means something
        c: ok[~ok["run_id"].isin(no_spread)] if _needs_spread(c) else ok for c, _, _ in metrics
    }
    notes: list[Markup] = []
    hidden, roofline_notes = _roofline_notes(ok, labels)

    # infinite in every run: the metric ranks nothing
    for column, _, _ in metrics:
        values = _numeric(scored[column], column).dropna()
        if column in hidden or values.empty:
            continue
        meaning = NONFINITE_MEANING.get(column, "it is not finite")
        if not np.isfinite(values).any():
            hidden.add(column)
            notes.append(
                Markup("<i>{}</i> left out: ∞ in every run: {}; it ranks nothing here.").format(
                    labels[column][0], meaning
                )
            )
        elif not np.isfinite(values).all():
            notes.append(Markup("<i>{}</i>: ∞ where {}.").format(labels[column][0], meaning))
        if column == "pareto_k" and column not in hidden and (values > PARETO_K_OK).all():
            notes.append(
                Markup(
                    "<i>{}</i> is above {} for every fit: q does not cover the posterior for any "
                    "backend (usual for mean-field BNNs); compare the backends relatively."
                ).format(labels[column][0], PARETO_K_OK)
            )

    # not computed at all: too few draws for PSIS
    pareto = _numeric(ok, "pareto_k")
    draws = _numeric(ok, "pareto_draws")
    fitted = ok["backend"].map(_is_bayesian)
    if fitted.any() and pareto[fitted].isna().all() and (draws[fitted] < PSIS_MIN_DRAWS).all():
        notes.append(
            Markup(
                "<i>{}</i> not computed: the fits have {} posterior draws and PSIS needs at least "
                "{} (<code>--draws {}</code>)."
            ).format(
                labels.get("pareto_k", ("Pareto-k",))[0],
                _span(draws[fitted], "{:.0f}"),
                PSIS_MIN_DRAWS,
                PSIS_MIN_DRAWS,
            )
        )

    # the same value everywhere (in at least two columns), or the same as an earlier row
    columns_with = {
        c: scored[c]
        .loc[_numeric(scored[c], c).notna(), ["backend", "source"]]
        .drop_duplicates()
        .shape[0]
        for c, _, _ in metrics
    }
    same: list[str] = []
    shown: list[str] = []
    for column, label, fmt in metrics:
        values = _numeric(scored[column], column).dropna()
        if column in hidden or values.empty:
            continue
        if columns_with[column] >= 2 and values.nunique() == 1:
            hidden.add(column)
            same.append(f"{label} = {_number(fmt, float(values.iloc[0]))}")
            continue
        twin = REPEATS.get(column)
        if twin in shown and np.array_equal(
            _numeric(scored[column], twin).reindex(values.index).to_numpy(), values.to_numpy()
        ):
            hidden.add(column)
            notes.append(
                Markup("<i>{}</i> left out: equal to <i>{}</i> in every run.").format(
                    label, labels[twin][0]
                )
            )
            continue
        shown.append(column)
    if same:
        notes.insert(
            0,
            Markup("The same in every run, so left out of the table: {}.").format("; ".join(same)),
        )
    notes += roofline_notes

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
                if col in hidden:
                    continue
                mine = scored[col][(scored[col]["backend"] == backend)]
                mine = mine[mine["source"] == source]
                if mine.empty and not cells.empty and _needs_spread(col):
                    column[label] = "n/a"
                    continue
                text = _format(_numeric(mine, col), col, fmt)
                if busy and col.endswith(TIMING_SUFFIXES) and text != "–":
                    text += " *"
                column[label] = text
            column["seeds ok / run"] = f"{cells['seed'].nunique()} / {tried['seed'].nunique()}"
            table[_column_label(backend, source, sources)] = column
    frame = pd.DataFrame(table)
    if frame.empty:
        return Summary(frame, tuple(notes))
    frame = frame[(~frame.isin(["–", "n/a"])).any(axis=1)]  # rows no backend has
    if (frame == "n/a").any().any():
        flat = _backend_order(ok.loc[ok["run_id"].isin(no_spread), "backend"].unique())
        notes.append(
            Markup(
                "n/a: the posterior-predictive draws of {} are all equal (mutual information 0 "
                "at every test point, e.g. a single draw), so the chi-square of the votes and "
                "the mutual information cannot tell points apart (their AUROC is 0.5 by "
                "construction)."
            ).format(_join(flat))
        )
    return Summary(frame, tuple(notes))


def _cell_html(text: str) -> str:
    """A table cell that wraps, if it must, first between its value and its spread
    (``0.956 | ± 0.004``, ``1.27 | [1.25–1.34]``), then after an interval's dash; never inside
    a number."""
    for sep in (" [", " ± "):
        at = text.find(sep)
        if at > 0:
            return str(
                Markup('<span class="nw">{}</span> <span class="nw">{}</span>').format(
                    text[:at], text[at + 1 :]
                )
            ).replace("–", '</span>–<span class="nw">', 1)
    return str(Markup.escape(text))


def _table_html(table: pd.DataFrame) -> str:
    """``table`` as HTML, every label and cell escaped, cells wrapping as :func:`_cell_html`."""
    cells = table.map(_cell_html)
    cells.index = [html.escape(str(i)) for i in table.index]
    cells.columns = [  # long folder names may break after _ and /
        re.sub(r"([_/])", r"\1<wbr>", html.escape(str(c))) for c in table.columns
    ]
    return cells.to_html(classes="summary", border=0, escape=False)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The table of :func:`summarise`, without its notes."""
    return summarise(runs).table


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", dpi=110, metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _percent(fraction: float, digits: int = 1) -> str:
    """12.5%, 95%: up to ``digits`` decimals, trailing zeros dropped."""
    text = f"{fraction:.{digits}%}"[:-1]
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"


def _short_number(value: float) -> str:
    return f"{value:.2g}" if value < 100 else f"{value:,.0f}"


def _log_ticks(ax: plt.Axes, axis: str = "y") -> None:
    """At most :data:`MAX_LOG_TICKS` labelled ticks on a log axis, as plain numbers from the
    densest fitting series (1-9, 1-2-5, then powers of ten, every one, second, third, ...), and
    no minor tick labels (matplotlib's own labels the minor ticks of a short range, and they
    overlap)."""
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    series: list[tuple[tuple[float, ...], int]] = [
        ((1, 2, 3, 4, 5, 6, 7, 8, 9), 1),
        ((1, 2, 5), 1),
        *(((1,), stride) for stride in (1, 2, 3, 5, 10)),
    ]
    ticks: list[float] = []
    for mantissas, stride in series:
        ticks = [m * 10.0**e for e in range(first, last + 1, stride) for m in mantissas]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) <= MAX_LOG_TICKS:
            break
    if len(ticks) < 2:  # a range of less than ~10%: its two ends, rounded
        ticks = sorted({float(f"{lo:.2g}"), float(f"{hi:.2g}")})
    which = ax.yaxis if axis == "y" else ax.xaxis
    which.set_major_locator(FixedLocator(ticks))
    which.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    which.set_minor_locator(NullLocator())


def _tick_labels(ax: plt.Axes, labels: list[str], slot_in: float) -> None:
    """Category labels under bars, rotated when the longest does not fit its bar's slot."""
    longest = max((len(line) for label in labels for line in label.split("\n")), default=0)
    rotate = longest * 0.075 > slot_in  # ~0.075 in per character at 8 pt
    ax.set_xticks(
        range(len(labels)),
        labels,
        rotation=30 if rotate else 0,
        ha="right" if rotate else "center",
        rotation_mode="anchor",
        fontsize=8,
    )


def _short_names(folders: Sequence[str]) -> dict[str, str]:
    """Each folder's shortest trailing path that tells it from the others (``bench`` and
    ``default`` for ``.results/bench`` and ``results/default``), for column labels."""
    unique = list(dict.fromkeys(folders))
    parts = {f: Path(f).parts or (f,) for f in unique}
    for n in range(1, max((len(p) for p in parts.values()), default=1) + 1):
        names = {f: str(Path(*p[-n:])) for f, p in parts.items()}
        if len(set(names.values())) == len(names):
            return names
    return {f: f for f in unique}


def _with_source(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with a ``source`` column (the machine) where the caller gave none."""
    if "source" in runs:
        return runs
    return runs.assign(source=runs["host"].fillna("") if "host" in runs else "")


def _trace_figure(runs: pd.DataFrame, traces: pd.DataFrame) -> str | None:
    fig = _trace_plot(runs, traces)
    return None if fig is None else _svg(fig)


def _run_lines(data: pd.DataFrame, sources: list[str], **style: object):
    """Each run of ``data`` (points with ``run_id``, ``backend``, ``source``), sorted by step,
    with its line style: the backend's colour, a dash per source, a label on its first run."""
    dashes = ["-", "--", ":", "-."]
    for backend in _backend_order(data["backend"].unique()):
        mine = data[data["backend"] == backend]
        for source in list(dict.fromkeys(mine["source"])):
            runs_of = mine[mine["source"] == source].groupby("run_id", sort=False)
            for i, (_, run) in enumerate(runs_of):
                label = None
                if i == 0:
                    label = backend if len(sources) < 2 else f"{backend} · {source}"
                ls = dashes[sources.index(source) % len(dashes)]
                yield (
                    run.sort_values("step"),
                    dict(color=COLORS.get(backend), ls=ls, label=label, **style),
                )


def _trace_plot(runs: pd.DataFrame, traces: pd.DataFrame) -> plt.Figure | None:
    """Loss per datum against step and wall time, one row of panels per kind of loss: the
    Bayesian backends' −ELBO and a maximum-likelihood baseline's NLL have different scales (on
    MNIST ~50 against ~0.3), so each gets its own axis."""
    runs = _with_source(runs)
    ok = runs[runs["status"] == "ok"]
    on = ["run_id", "results_dir"] if {"results_dir"} <= set(traces) & set(ok) else ["run_id"]
    data = traces.merge(ok[[*on, "backend", "seed", "source"]], on=on)
    if data.empty:
        return None
    kinds = [k for k in (True, False) if data["backend"].map(_is_bayesian).eq(k).any()]
    sources = list(dict.fromkeys(data["source"]))
    fig, axes = plt.subplots(
        len(kinds), 2, figsize=(11, 3.3 * len(kinds)), sharey="row", sharex="col", squeeze=False
    )
    for row, kind in enumerate(kinds):
        part = data[data["backend"].map(_is_bayesian) == kind]
        left, right = axes[row]
        for run, kw in _run_lines(part, sources, alpha=0.8, lw=1.2):
            left.plot(run["step"], run["neg_elbo_per_datum"], **kw)
            right.plot(run["wall_s"], run["neg_elbo_per_datum"], **kw)
        # zoom past the first steps' drop, but keep every run's second half in view
        values = part["neg_elbo_per_datum"].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        late = [
            float(np.nanmax(run.sort_values("step")["neg_elbo_per_datum"].iloc[len(run) // 2 :]))
            for _, run in part.groupby("run_id")
        ]
        if values.size:
            lo = float(values.min())
            hi = max([float(np.percentile(values, 95)), *(v for v in late if np.isfinite(v))])
            if hi > lo:
                left.set_ylim(lo - 0.05 * (hi - lo), hi + 0.03 * (hi - lo))
        title, ylabel = LOSS_LABELS[kind]
        if not kind:
            title = f"{_join(_backend_order(part['backend'].unique()))}, {title}"
        left.set_title(title, loc="left", fontsize=9)
        left.set_ylabel(ylabel)
        right.set_xscale("log")
        for ax in (left, right):
            ax.grid(alpha=0.3)
        left.legend(frameon=False, fontsize=8)
    axes[-1, 0].set_xlabel("step")
    axes[-1, 1].set_xlabel("training wall time (s, compile excluded)")
    _log_ticks(axes[-1, 1], axis="x")
    fig.suptitle("Training loss per datum (one line per seed; lower is better)", fontsize=10)
    fig.tight_layout()
    return fig


def _curve_points(runs: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    """The learning-curve points of the ``ok`` runs, with their backend, seed and source."""
    runs = _with_source(runs)
    ok = runs[runs["status"] == "ok"]
    if "curve_accuracy" not in traces or ok.empty:
        return pd.DataFrame()
    on = ["run_id", "results_dir"] if {"results_dir"} <= set(traces) & set(ok) else ["run_id"]
    points = traces[pd.to_numeric(traces["curve_accuracy"], errors="coerce").notna()]
    return points.merge(ok[[*on, "backend", "seed", "source"]], on=on)


def _curve_figure(runs: pd.DataFrame, traces: pd.DataFrame) -> str | None:
    fig = _curve_plot(runs, traces)
    return None if fig is None else _svg(fig)


def _curve_plot(runs: pd.DataFrame, traces: pd.DataFrame) -> plt.Figure | None:
    """Test accuracy of the learning-curve checkpoints against step and against training wall
    time (compile and the checkpoints excluded), one line per run, the spec's accuracy targets
    dotted."""
    data = _curve_points(runs, traces)
    if data.empty:
        return None
    spec = _spec(str(runs["model"].iloc[0]))
    sources = list(dict.fromkeys(data["source"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True)
    for run, kw in _run_lines(data, sources, alpha=0.85, lw=1.3, marker="."):
        accuracy = 100 * run["curve_accuracy"].astype(float)
        left.plot(run["step"], accuracy, **kw)
        right.plot(run["wall_s"], accuracy, **kw)
    lo = float(100 * data["curve_accuracy"].astype(float).quantile(0.1))
    for target in spec.accuracy_targets if spec is not None else ():
        for ax in (left, right):
            ax.axhline(100 * target, color="0.5", lw=0.8, ls=":")
        right.annotate(
            f"{100 * target:g}%",
            (1.0, 100 * target),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            color="0.4",
            va="bottom",
            ha="right",
        )
    top = max(
        100 * max(spec.accuracy_targets, default=0) if spec else 0,
        100 * data["curve_accuracy"].astype(float).max(),
    )
    left.set_ylim(max(lo - 2, 0), min(top + 1, 100))
    for ax in (left, right):
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    left.set_ylabel("test accuracy (%)")
    left.set_xlabel("step")
    right.set_xlabel("training wall time (s; compile and checkpoints excluded)")
    _log_ticks(left, axis="x")
    _log_ticks(right, axis="x")
    left.legend(frameon=False, fontsize=8)
    fig.suptitle(
        f"Learning curve: accuracy of {CURVE_DRAWS} posterior draws on {CURVE_POINTS} test "
        "points (one line per seed; dotted: the spec's targets)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _tta_cell(group: pd.DataFrame, key: str) -> str:
    """Median steps and training time to one target over the seeds that reached it, with how
    many did; else why none did."""
    status = group.get(f"tta_{key}_status", pd.Series(dtype=object)).fillna("no curve")
    reached = group[status == "reached"]
    n = len(group)
    if reached.empty:
        if (status == "not reached").any():
            return f"not reached ({int((status == 'not reached').sum())}/{n})"
        return "no curve"
    steps = float(reached[f"tta_{key}_steps"].astype(float).median())
    seconds = float(reached[f"tta_{key}_train_s"].astype(float).median())
    where = f"{steps:,.0f} steps · {_duration(seconds)}"
    return where if len(reached) == n else f"{where} ({len(reached)}/{n} seeds)"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "—"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def tta_table(runs: pd.DataFrame) -> pd.DataFrame | None:
    """Time-to-accuracy of one spec's ``ok`` runs: a row per backend (and source), a column per
    accuracy target, each the median steps and training time (compile excluded) over the seeds
    that reached it, or "not reached (n/m)" / "no curve"."""
    runs = _with_source(runs)
    ok = runs[runs["status"] == "ok"]
    spec = _spec(str(runs["model"].iloc[0])) if len(runs) else None
    if ok.empty or spec is None or not spec.accuracy_targets:
        return None
    if "curve_points" not in ok or not (ok["curve_points"].fillna(0).astype(float) > 0).any():
        return None
    several = ok["source"].nunique() > 1
    rows = {}
    for (backend, source), group in ok.groupby(["backend", "source"], sort=False):
        label = f"{backend} · {source}" if several else backend
        rows[label] = {f"{100 * t:g}%": _tta_cell(group, tta_key(t)) for t in spec.accuracy_targets}
        rows[label]["final accuracy"] = _percent(float(group["accuracy"].median()))
    order = [b for b in _backend_order(ok["backend"].unique())]
    table = pd.DataFrame(rows).T
    table = table.loc[sorted(table.index, key=lambda r: order.index(r.split(" · ")[0]))]
    return table.rename_axis("time to accuracy")


def _seeds(n: int) -> str:
    return "1 seed" if n == 1 else f"{n} seeds"


def versus_tutorials(runs: pd.DataFrame) -> pd.DataFrame | None:
    """Each tutorial's figure beside ours: per spec, the tutorial (accuracy, steps, time,
    hardware) and each backend's best cell (highest median final accuracy over its seeds, per
    profile and device): accuracy, steps, time (compile plus training) and machine."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    for model in dict.fromkeys(ok["model"]):
        spec = _spec(model)
        if spec is None:
            continue
        for anchor in spec.tutorials:
            if anchor.accuracy is None or anchor.refusal:
                continue
            rows.append(
                {
                    "spec": model,
                    "who": anchor.source,
                    "accuracy": _percent(anchor.accuracy),
                    "steps": f"{anchor.steps:,}" if anchor.steps else "not stated",
                    "time": (
                        _duration(3600 * anchor.wall_time_h) if anchor.wall_time_h else "not stated"
                    ),
                    "hardware": anchor.hardware or "not stated",
                }
            )
        mine = ok[ok["model"] == model]
        for backend in _backend_order(mine["backend"].unique()):
            cells = mine[mine["backend"] == backend].groupby(["profile", "device", "steps"])
            best = max(cells, key=lambda kv: float(kv[1]["accuracy"].median()))[1]
            seconds = (best["compile_s"].astype(float) + best["fit_s"].astype(float)).median()
            device = str(best["device"].iloc[0])
            machine = best["cpu" if device == "cpu" else "gpu"].iloc[0]
            rows.append(
                {
                    "spec": model,
                    "who": f"bnnbench {backend} ({best['profile'].iloc[0]}, {_seeds(len(best))})",
                    "accuracy": _percent(float(best["accuracy"].median())),
                    "steps": f"{int(best['steps'].iloc[0]):,}",
                    "time": _duration(float(seconds)),
                    "hardware": f"{device}: {machine}",
                }
            )
    return pd.DataFrame(rows) if rows else None


def _timing_figure(runs: pd.DataFrame) -> str | None:
    fig = _timing_plot(runs)
    return None if fig is None else _svg(fig)


def _timing_plot(runs: pd.DataFrame) -> plt.Figure | None:
    """Bars of the median time per phase over seeds (dots: the seeds), one bar per column of the
    table, values written over them; a log axis only where the bars span more than 20x; the
    figure widens with the number of bars and labels turn when they would run together."""
    runs = _with_source(runs)
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        return None
    keys = [
        (backend, source)
        for backend in _backend_order(ok["backend"].unique())
        for source in dict.fromkeys(ok.loc[ok["backend"] == backend, "source"])
    ]
    several = ok["source"].nunique() > 1
    labels = [f"{b}\n{s}" if several else b for b, s in keys]
    panels = [
        ("compile_s", "compile (s)"),
        ("step_ms", "step (ms)"),
        ("fit_s", "training (s)"),
        ("predict_s", "posterior predictive (s)"),
    ]
    panel_w = max(2.6, 0.5 * len(keys) + 0.9)
    ncols = len(panels) if panel_w * len(panels) <= 12 else 2
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_w * ncols, 3.0 * nrows), squeeze=False)
    for ax, (col, title) in zip(axes.flat, panels, strict=True):
        medians, tops = [], []
        for i, (backend, source) in enumerate(keys):
            mine = ok[(ok["backend"] == backend) & (ok["source"] == source)]
            values = _numeric(mine, col).dropna()
            median = float(values.median()) if len(values) else np.nan
            medians.append(median)
            tops.append(float(values.max()) if len(values) else np.nan)
            hatch = "//" if several and source != keys[0][1] else None
            ax.bar(i, median, color=COLORS.get(backend), alpha=0.7, hatch=hatch, width=0.7)
            ax.scatter(np.full(len(values), i), values, color="k", s=8, zorder=3)
        positive = [m for m in medians if m > 0]
        if positive and max(positive) / min(positive) > 20:
            ax.set_yscale("log")
            ax.set_ylim(min(positive) / 2, max(positive) * 4)
            _log_ticks(ax)
        else:
            ax.set_ylim(0, np.nanmax([*tops, 0]) * 1.2 or 1)
        for i, (median, top) in enumerate(zip(medians, tops, strict=True)):
            if median > 0:
                ax.annotate(
                    _short_number(median),
                    (i, max(median, top)),
                    xytext=(0, 4),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        _tick_labels(ax, labels, slot_in=(panel_w - 0.8) / len(keys))
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Time per phase (bar and number: median over seeds; dots: seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def _surface_figure(runs: pd.DataFrame, reference: Path | None) -> str | None:
    panels = [(run, tree) for run, tree in _first_runs(runs) if "grid" in tree.children]
    if not panels:
        return None
    order = _backend_order([run["backend"] for run, _ in panels])
    panels.sort(key=lambda item: order.index(item[0]["backend"]))
    maps = [
        (f"{run['backend']} (seed {run['seed']})", tree["grid"].to_dataset(), tree)
        for run, tree in panels
    ]
    nuts = _reference_grid(reference, maps[0][1]) if reference is not None else None
    if nuts is not None:
        maps.insert(0, (f"NUTS reference ({nuts.attrs['draws']} draws)", nuts, panels[0][1]))
    sd_max = max(float(grid["p_sd"].max()) for _, grid, _ in maps) or 1.0  # one scale for all
    fig, axes = plt.subplots(
        2, len(maps), figsize=(2.6 * len(maps) + 1.2, 5.6), squeeze=False, layout="constrained"
    )
    rows = [
        ("p_mean", "RdBu_r", "posterior predictive mean of p(y = 1)", 1.0),
        ("p_sd", "viridis", "its sd over posterior draws", sd_max),
    ]
    for i, (var, cmap, label, vmax) in enumerate(rows):
        for j, (title, grid, tree) in enumerate(maps):
            X = tree["test_inputs"]["X"].values
            y = tree["test"]["y"].values
            gx, gy = grid["grid_x"].values, grid["grid_y"].values
            ax = axes[i, j]
            levels = np.linspace(0, vmax, 21)
            values = np.clip(grid[var].values, 0, vmax)
            mesh = ax.contourf(gx, gy, values, levels=levels, cmap=cmap, vmin=0, vmax=vmax)
            mesh.set_rasterized(True)
            ax.scatter(
                X[y == 0, 0],
                X[y == 0, 1],
                s=3,
                c="w",
                edgecolors="k",
                linewidths=0.3,
                rasterized=True,
            )
            ax.scatter(X[y == 1, 0], X[y == 1, 1], s=3, c="k", rasterized=True)
            flat = var == "p_sd" and float(grid[var].max()) == 0
            if i == 0:
                ax.set_title(title, fontsize=9)
            elif flat:
                ax.set_title("sd 0 everywhere: the draws are equal", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
        fig.colorbar(
            mesh,
            ax=axes[i, :].tolist(),
            fraction=0.02,
            pad=0.01,
            ticks=np.linspace(0, vmax, 5),
            format="%.2f",
        )
    return _svg(fig)


def _reference_grid(path: Path, like: xr.Dataset) -> xr.Dataset | None:
    """The stored NUTS reference's grid maps, laid out like a run's ``grid`` group."""
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


def _reference_path(group: pd.DataFrame) -> Path | None:
    """The spec's NUTS reference, looked for around every results folder of the section."""
    folders = [Path(d) for d in dict.fromkeys(group["results_dir"])]
    return find_reference(str(group["model"].iloc[0]), near=folders)


def _reference_note(spec: ModelSpec | None, reference: Path | None, group: pd.DataFrame) -> Markup:
    """What the section lacks for want of a NUTS reference, with the command that makes one; an
    empty string when the spec has none or nothing is missing."""
    if spec is None or not spec.nuts_reference:
        return Markup("")
    ok = group[(group["status"] == "ok") & group["backend"].map(_is_bayesian)]
    scored = _numeric(ok, "agreement_test").notna().any() or ok.empty
    command = f"bnnbench reference {spec.name}"
    if reference is None:
        return Markup(
            "<b>No NUTS reference posterior found</b> for {spec} (<code>reference/{spec}/{file}"
            "</code>, looked for in and beside the results folders, in <code>results/</code> of "
            "every folder above them and of the current folder, and in the bnnbench checkout), "
            "so the maps do not show the exact posterior{rows}. Make one with <code>{command}"
            "</code> (it writes <code>results/reference/{spec}/{file}</code> under the current "
            "folder) and render again{rerun}."
        ).format(
            spec=spec.name,
            file="nuts.nc",
            rows="" if scored else " and the agreement and total-variation rows are missing",
            command=command,
            rerun="" if scored else "; the runs must be run again to be scored against it",
        )
    if not scored:
        return Markup(
            "These runs were not scored against the NUTS reference (none was found when they "
            "ran), so the agreement and total-variation rows are missing: run them again now "
            "that <code>{}</code> exists."
        ).format(str(reference))
    return Markup("")


def _chi_square_figure(runs: pd.DataFrame) -> tuple[str | None, Markup]:
    """Per backend: the chi-square of the votes for correct vs misclassified test points, and a
    sentence naming the backends left out (a single draw has no spread of votes)."""
    panels, flat = [], []
    for run, tree in _first_runs(runs):
        test = tree["test"].to_dataset()
        if test.attrs.get("draws", 0) < 2:
            flat.append(run["backend"])
            continue
        panels.append((run, test))
    note = (
        Markup("Not shown: {} (one predictive draw: every vote agrees, nothing to spread).").format(
            _join(flat)
        )
        if flat
        else Markup("")
    )
    if not panels:
        return None, note
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
    return _svg(fig), note


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
    _log_ticks(ax)
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


@dataclass(frozen=True)
class OODSection:
    """What the out-of-distribution part of a section shows.

    Attributes
    ----------
    intro
        The rule and the sets, with the tutorials' figures where the spec states them.
    svg
        The refusal bars, or ``None`` (no set has scores, or every refusal is 0).
    notes
        Sentences: the sets without scores and why (the records' ``ood_<set>_status``), or
        that nothing was refused.
    """

    intro: Markup
    svg: str | None
    notes: tuple[Markup, ...]


def _ood_section(runs: pd.DataFrame) -> OODSection | None:
    """Refusal rates (reject option) on the test set and each OOD set, mean over seeds, with a
    sentence for every set that has no scores and for a chart that would be all zeros."""
    spec = _spec(str(runs["model"].iloc[0]))
    if spec is None or not spec.ood_sets:
        return None
    runs = _with_source(runs)
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        return None
    anchors = spec.tutorial_refusal
    sets = [("refusal_rate", spec.test_label, "")] + [
        (f"ood_{name}_refusal_rate", spec.ood_labels.get(name, name), name)
        for name in spec.ood_sets
    ]
    described = []
    for column, label, _ in sets[1:]:
        anchor = anchors.get(column)
        described.append(
            label if anchor is None else f"{label} (tutorial: {_percent(anchor)} refused)"
        )
    test_anchor = anchors.get("refusal_rate")
    intro = Markup(
        "The reject option on inputs the network never saw: {}. A useful uncertainty refuses "
        "them far more often than the in-distribution test set, {}{}."
    ).format(
        "; ".join(described),
        spec.test_label,
        "" if test_anchor is None else f" (tutorial: {_percent(test_anchor)} refused)",
    )
    notes: list[Markup] = []
    columns = []
    for column, label, name in sets:
        values = _numeric(ok, column)
        missing = ok.loc[values.isna(), "backend"]
        if name and len(missing):
            statuses = (
                ok.loc[values.isna(), f"ood_{name}_status"].fillna("").astype(str)
                if f"ood_{name}_status" in ok
                else pd.Series("", index=missing.index)
            )
            why = sorted({s for s in statuses if s and s != "ok"})
            who = (
                "any run"
                if len(missing) == len(ok)
                else _join(_columns_of(ok[values.isna()], several=ok["source"].nunique() > 1))
            )
            reason = (
                Markup("; ").join(_code_spans(w) for w in why)
                if why
                else Markup("the records do not say why (see each cell's <code>cell.log</code>)")
            )
            notes.append(Markup("<b>{}: no scores for {}</b>: {}.").format(label, who, reason))
        if values.notna().any():
            columns.append((column, label))
    if len(columns) < 2:  # the test set alone is not an out-of-distribution figure
        return OODSection(intro, None, tuple(notes))
    backends = _backend_order(ok["backend"].unique())
    means = {
        b: [float(_numeric(ok[ok["backend"] == b], c).mean()) for c, _ in columns] for b in backends
    }
    finite = [v for vals in means.values() for v in vals if np.isfinite(v)]
    if finite and max(finite) < OOD_VISIBLE_FRACTION:  # bars too low to see: say it instead
        tutorial = [f"{label} {_percent(anchors[c])}" for c, label in columns if c in anchors]
        most = max(finite)
        notes.append(
            Markup("{} of any set ({}), so there is no figure{}.").format(
                "No backend refused a single input"
                if most == 0
                else f"No backend refused more than {_percent(most, 2)}",
                _join([label for _, label in columns]),
                f"; the tutorial refused {_join(tutorial)}" if tutorial else "",
            )
        )
        return OODSection(intro, None, tuple(notes))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(columns) * len(backends) + 2.5), 2.9))
    width = 0.8 / len(backends)
    for i, backend in enumerate(backends):
        x = np.arange(len(columns)) + (i - (len(backends) - 1) / 2) * width
        ax.bar(x, means[backend], width, color=COLORS.get(backend), label=backend)
        for xi, v in zip(x, means[backend], strict=True):
            if np.isfinite(v):
                ax.annotate(
                    f"{v:.0%}" if v == 0 or v >= 0.01 else "<1%",
                    (xi, v),
                    xytext=(0, 1),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=6,
                )
    drew_anchor = False
    for x, (column, _) in enumerate(columns):  # the tutorials' figures, as the spec states them
        if column in anchors:
            ax.hlines(anchors[column], x - 0.45, x + 0.45, color="k", ls="--", lw=1)
            drew_anchor = True
    ax.set_xticks(range(len(columns)), [label for _, label in columns])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction refused")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(
        "Refused when no class's median probability > 0.2"
        + (" (dashes: tutorial)" if drew_anchor else ""),
        fontsize=9,
    )
    fig.tight_layout()
    return OODSection(intro, _svg(fig), tuple(notes))


def _spec_reference(model: str) -> str:
    spec = _spec(model)
    return "" if spec is None else spec.reference


def _anchor(model: str, profile: str, device: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", f"{model}-{profile}-{device}")


def _sections(runs: pd.DataFrame, traces: pd.DataFrame) -> list[dict]:
    sections = []
    for key, group in runs.groupby(GROUP_KEYS, sort=False):
        model, profile, device = key
        failures = group[group["status"] != "ok"][["run_id", "status", "error"]]
        ok = group[group["status"] == "ok"]
        paths = ok.groupby("backend")["execution_path"].first()
        paths = {b: paths[b] for b in _backend_order(paths.index)}
        summary = summarise(group)
        spec = _spec(model)
        reference = _reference_path(group) if spec is not None and spec.nuts_reference else None
        chi_square_svg, vote_note = _chi_square_figure(group)
        sections.append(
            dict(
                anchor=_anchor(model, profile, device),
                model=model,
                profile=profile,
                device=device,
                profile_description=PROFILE_DESCRIPTIONS.get(profile, ""),
                reference=_spec_reference(model),
                settings=group.iloc[0][
                    ["steps", "batch_size", "learning_rate", "init_scale", "predict_draws"]
                ].to_dict(),
                summary_html=_table_html(summary.table),
                table_notes=summary.notes,
                reference_note=_reference_note(spec, reference, group),
                execution_paths=paths,
                failures=failures.to_dict(orient="records"),
                trace_svg=_trace_figure(group, traces),
                curve_svg=_curve_figure(group, traces),
                tta_html=(lambda t: None if t is None else _table_html(t))(tta_table(group)),
                timing_svg=_timing_figure(group),
                surface_svg=_surface_figure(group, reference),
                chi_square_svg=chi_square_svg,
                vote_note=vote_note,
                calibration_svg=_calibration_figure(group),
                ood=_ood_section(group),
                scales_svg=_scales_figure(group),
            )
        )
    return sections


def _pareto_figure(answers: SpecDeviceAnswers) -> str | None:
    """End-to-end time at the full budget (log axis, 95% bootstrap interval) against test
    accuracy, one point per backend; the Pareto front (no backend both faster and more
    accurate) joined by a line; a non-Bayesian reference drawn hollow."""
    points = [p for p in answers.pareto if math.isfinite(p.end_to_end_s.estimate)]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    for p in points:
        t = p.end_to_end_s
        err = [[max(t.estimate - t.low, 0.0)], [max(t.high - t.estimate, 0.0)]]
        finite = math.isfinite(t.low) and math.isfinite(t.high)
        ax.errorbar(
            [t.estimate],
            [p.accuracy],
            xerr=err if finite else None,
            fmt="o",
            color=COLORS.get(p.backend),
            mfc=COLORS.get(p.backend) if p.bayesian else "white",
            ms=8,
            capsize=3,
            label=p.backend + ("" if p.bayesian else " (reference, not Bayesian)"),
        )
        ax.annotate(p.backend, (t.estimate, p.accuracy), xytext=(6, 4), textcoords="offset points")
    front = sorted((p for p in points if p.on_front), key=lambda p: p.end_to_end_s.estimate)
    if len(front) > 1:
        ax.plot(
            [p.end_to_end_s.estimate for p in front],
            [p.accuracy for p in front],
            color="0.6",
            lw=1,
            ls="--",
            zorder=0,
            label="Pareto front",
        )
    times = [p.end_to_end_s.estimate for p in points]
    log = max(times) / max(min(times), 1e-12) > 10  # a log axis only across decades
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    scale = " (log)" if log else ""
    ax.set_xlabel(f"end-to-end seconds for {answers.full_steps:,} steps{scale}")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7, loc="best", frameon=False)
    ax.grid(alpha=0.3)
    return _svg(fig)


@dataclass(frozen=True)
class AnswerRow:
    """One question of the "which backend?" table and its answer."""

    question: str
    answer: str
    confidence: str
    evidence: str


def _answer_text(rec: Recommendation) -> str:
    if rec.winner is None:
        return "no answer"
    return rec.winner + (f" (tied with {', '.join(rec.tied_with)})" if rec.tied_with else "")


def _why(rec: Recommendation) -> str:
    """The answer's figures and its first comparison with the runner-up (to the first ';')."""
    versus = next((r for r in rec.reasons if rec.winner and r.startswith(f"{rec.winner} vs ")), "")
    return rec.evidence + (f". {versus.split(';')[0]}" if versus else "")


def _answer_rows(a: SpecDeviceAnswers) -> list[AnswerRow]:
    questions = [
        (f"a short run (about {a.short_run_budget_s:g} s)", a.short_run),
        (f"the full budget ({a.full_steps:,} steps)", a.full_budget),
        ("the best uncertainty", a.best_uncertainty),
        ("the least memory", a.least_memory),
    ]
    return [AnswerRow(q, _answer_text(rec), rec.confidence, _why(rec)) for q, rec in questions]


def _sig(n: float, digits: int = 2) -> str:
    """``n`` rounded to ``digits`` significant figures, with thousands separators."""
    if not math.isfinite(n) or n == 0:
        return f"{n:,.0f}"
    return f"{round(n, digits - 1 - math.floor(math.log10(abs(n)))):,.0f}"


def recommendation_html(answers: Sequence[SpecDeviceAnswers]) -> str:
    """The report's opening section, "Which backend should I use?", from
    :func:`bnnbench.recommend.report_answers` (the answers ``bnnbench recommend`` gives): per
    spec and device with evidence, the four answers with their confidence, the compile/step
    crossovers and a time-accuracy Pareto plot; devices without evidence are named with the
    command that would measure them."""
    blocks, unmeasured = [], []
    for a in answers:
        if not a.evidence:
            command = next((m.command for m in a.missing if m.command), None)
            unmeasured.append((a.model, a.device, command))
            continue
        blocks.append(
            dict(
                model=a.model,
                device=a.device,
                profile=a.profile,
                rows=_answer_rows(a),
                crossovers=[
                    f"{c.faster_below} is faster below about {_sig(c.steps.estimate)} steps "
                    f"(95% interval {_sig(c.steps.low)}–{_sig(c.steps.high)}), "
                    f"{c.faster_above} above: fixed cost {c.fixed_s_below:.3g} s against "
                    f"{c.fixed_s_above:.3g} s, step {c.step_ms_below:.3g} ms against "
                    f"{c.step_ms_above:.3g} ms"
                    for c in a.crossovers
                    if all(math.isfinite(v) for v in (c.steps.low, c.steps.high))
                ],
                pareto_svg=_pareto_figure(a),
                missing=[(m.what, m.command) for m in a.missing],
            )
        )
    env = Environment(
        loader=PackageLoader("bnnbench", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    return env.get_template("recommend.html.j2").render(blocks=blocks, unmeasured=unmeasured)


def render_report(
    dirs: Sequence[Path],
    out: Path,
    title: str = "bnnbench report",
    *,
    allow_partial: bool = False,
    compare: bool = False,
    preamble_html: str = "",
    recommend: bool = True,
) -> tuple[Path, list[Damage]]:
    """Render the report of the results in ``dirs`` to ``out`` (self-contained HTML).

    Parameters
    ----------
    dirs
        Results folders.
    out
        The HTML file to write (replaced atomically).
    title
        The page's title and heading.
    allow_partial
        Write the page even when rows or artifacts are damaged or missing, listing them;
        otherwise :class:`ReportDamageError` is raised instead of writing a page that leaves
        them out.
    compare
        Each folder is its own column (``backend · folder``), e.g. a user's run beside the
        committed reference; otherwise a cell found in several folders counts once.
    preamble_html
        Trusted HTML placed right after the title, before everything else but the "which
        backend should I use?" section; empty by default.
    recommend
        Open the page with the "which backend should I use?" section
        (:func:`recommendation_html`; every cell counts once, also with ``compare``).

    Returns
    -------
    tuple[Path, list[Damage]]
        The page's path and the damage found.
    """
    loaded = load_all(dirs, per_folder=compare)
    if loaded.damage and not allow_partial:
        raise ReportDamageError(loaded.damage)
    runs, traces = loaded.runs, loaded.traces
    if recommend:
        once = load_all(dirs, check_artifacts=False) if compare else loaded
        answers = report_answers(once.runs, once.traces, n_test=n_test_per_spec(once.runs))
        preamble_html = recommendation_html(answers) + preamble_html
    host = runs["host"].fillna("") if "host" in runs else pd.Series("", index=runs.index)
    folders = runs["results_dir"].astype(str)
    runs = runs.assign(source=folders.map(_short_names(list(folders))) if compare else host)
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
        preamble_html=Markup(preamble_html),
        generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        sources=[html.escape(str(d)) for d in dirs],
        n_runs=len(runs),
        superseded=loaded.superseded,
        damage=[str(d) for d in loaded.damage],
        busy=int(runs.get("host_busy", pd.Series(dtype=bool)).fillna(False).astype(bool).sum()),
        status_counts=runs["status"].value_counts().to_dict(),
        sections=_sections(runs, traces),
        tutorials_html=(lambda t: None if t is None else _table_html(t.set_index("spec")))(
            versus_tutorials(runs)
        ),
        provenance_html=provenance,
    )
    out = Path(out)
    atomic_write_text(out, page)
    return out, loaded.damage
