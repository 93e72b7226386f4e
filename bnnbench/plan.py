r"""What a suite will cost on a cluster, from stored measurements (``bnnbench plan``).

Each planned cell's duration is predicted from the stored records (:func:`bnnbench.results.
load_all`) of the same spec and backend:

.. math::

    T = T_{\text{overhead}} + T_{\text{compile}} + n_{\text{steps}}\, t_{\text{step}}
        + n_{\text{draws}}\, t_{\text{draw}},

with :math:`t_{\text{step}}` the median steady ``step_ms``, :math:`t_{\text{draw}}` the median
``predict_ms_per_draw``, :math:`T_{\text{compile}}` the median ``compile_s`` and
:math:`T_{\text{overhead}}` the median of ``cell_wall_s − compile_s − fit_s − predict_s`` (process
start, data, evaluation, writing) of the matching records. Which records match, best first (the
``basis`` of every estimate says which was used, so that nothing extrapolated passes for a
measurement):

1. ``measured``: same spec, backend, profile, device and batch size;
2. ``other profile``: the same with the other profile (``tuned`` for ``matched``...);
3. ``scaled batch``: another batch size on the same device, the step time scaled by
   :math:`B / B_{\text{stored}}` (the step's work is linear in the batch);
4. ``CPU figure for GPU``: no GPU record at all; the CPU cell's figures are used as they are
   (on a GPU these cells are usually faster: an upper bound, said so);
5. ``no figure``: nothing stored for the spec and backend; the cell is listed, not timed.

**Schedule.** GPU cells run on ``gpus`` devices (a spec that fits a fraction of a GPU,
:attr:`~bnnbench.spec.ModelSpec.gpu_fraction`, shares one), CPU cells on
``cpus // cpus_per_cell`` slots, both pools at once; each pool is scheduled longest job first
(LPT, within 4/3 of the optimal makespan). The makespan is the later pool's end. GPU-hours are
:math:`\sum T \cdot \text{fraction}` over the GPU cells.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from bnnbench.config import CellConfig
from bnnbench.results import load_all
from bnnbench.spec import get_spec

__all__ = ["Basis", "CellEstimate", "Plan", "estimate_cells", "plan", "render", "schedule"]

SCHEMA_VERSION = 1

Basis = Literal["measured", "other profile", "scaled batch", "CPU figure for GPU", "no figure"]
BASIS_ORDER: tuple[Basis, ...] = (
    "measured",
    "other profile",
    "scaled batch",
    "CPU figure for GPU",
    "no figure",
)


class PlanError(ValueError):
    """No stored results to plan from (one line)."""


@dataclass
class CellEstimate:
    """One planned cell's predicted duration and what it rests on."""

    run_id: str
    model: str
    backend: str
    profile: str
    device: str
    seconds: float
    basis: Basis
    records: int
    gpu_fraction: float = 0.0


@dataclass
class Plan:
    """A suite's predicted cost on ``gpus`` GPUs and ``cpus`` cores (``schema_version`` 1)."""

    suite: str
    gpus: int
    cpus: int
    cpus_per_cell: int
    cells: list[CellEstimate]
    makespan_s: float
    gpu_hours: float
    cpu_core_hours: float
    results_dirs: list[str]
    notes: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def by_basis(self) -> dict[str, int]:
        return {b: sum(c.basis == b for c in self.cells) for b in BASIS_ORDER}


def _overhead_s(rows: pd.DataFrame) -> float:
    parts = rows[["cell_wall_s", "compile_s", "fit_s", "predict_s"]].astype(float)
    rest = parts["cell_wall_s"] - parts[["compile_s", "fit_s", "predict_s"]].sum(axis=1)
    rest = rest[np.isfinite(rest) & (rest >= 0)]
    return float(rest.median()) if len(rest) else 0.0


def _duration(cfg: CellConfig, rows: pd.DataFrame, scale_batch: bool) -> float:
    step = rows["step_ms"].astype(float)
    if scale_batch:  # the step's work is linear in the batch
        step = step / rows["batch_size"].astype(float) * cfg.batch_size
    step_ms = float(step.median())
    draw_ms = rows["predict_ms_per_draw"].astype(float).median()
    compile_s = rows["compile_s"].astype(float).median()
    return float(
        _overhead_s(rows)
        + (compile_s if math.isfinite(compile_s) else 0.0)
        + cfg.steps * step_ms / 1000.0
        + cfg.predict_draws * (draw_ms if math.isfinite(draw_ms) else 0.0) / 1000.0
    )


def estimate_cells(cells: Iterable[CellConfig], runs: pd.DataFrame) -> list[CellEstimate]:
    """Each cell's predicted duration from the ``ok`` records in ``runs`` (module docstring)."""
    ok = runs[(runs["status"] == "ok") & runs["step_ms"].notna()] if len(runs) else runs
    out = []
    for cfg in cells:
        same = ok[(ok["model"] == cfg.model) & (ok["backend"] == cfg.backend)]
        on_device = same[same["device"] == cfg.device]
        attempts: list[tuple[Basis, pd.DataFrame, bool]] = [
            (
                "measured",
                on_device[
                    (on_device["profile"] == cfg.profile)
                    & (on_device["batch_size"].astype(int) == cfg.batch_size)
                ],
                False,
            ),
            (
                "other profile",
                on_device[on_device["batch_size"].astype(int) == cfg.batch_size],
                False,
            ),
            ("scaled batch", on_device, True),
        ]
        if cfg.device == "gpu":
            attempts.append(("CPU figure for GPU", same[same["device"] == "cpu"], True))
        basis: Basis = "no figure"
        seconds, n = math.nan, 0
        for name, rows, scale in attempts:
            if len(rows):
                basis, seconds, n = name, _duration(cfg, rows, scale), len(rows)
                break
        spec = get_spec(cfg.model)
        out.append(
            CellEstimate(
                cfg.run_id,
                cfg.model,
                cfg.backend,
                cfg.profile,
                cfg.device,
                seconds,
                basis,
                n,
                spec.gpu_fraction if cfg.device == "gpu" else 0.0,
            )
        )
    return out


def schedule(durations: Sequence[float], slots: float) -> float:
    """Makespan of jobs on ``slots`` identical workers, longest job first (LPT)."""
    jobs = sorted((d for d in durations if math.isfinite(d)), reverse=True)
    if not jobs:
        return 0.0
    n = max(1, int(slots))
    ends = [0.0] * min(n, len(jobs))
    heapq.heapify(ends)
    for d in jobs:
        heapq.heappush(ends, heapq.heappop(ends) + d)
    return max(ends)


def plan(
    suite: str,
    cells: Sequence[CellConfig],
    results_dirs: Sequence[Path],
    *,
    gpus: int,
    cpus: int,
    cpus_per_cell: int = 2,
) -> Plan:
    """Predict and schedule ``cells`` (see the module docstring)."""
    if not results_dirs:
        raise PlanError("no results folders to plan from (give --results DIR ...)")
    loaded = load_all(results_dirs, check_artifacts=False)
    if not len(loaded.runs):
        where = ", ".join(map(str, results_dirs))
        raise PlanError(f"no stored records in {where}: run `bnnbench run` first")
    estimates = estimate_cells(cells, loaded.runs)
    gpu_cells = [c for c in estimates if c.device == "gpu"]
    cpu_cells = [c for c in estimates if c.device == "cpu"]
    notes = []
    gpu_span = 0.0
    if gpu_cells:
        if gpus < 1:
            notes.append(f"{len(gpu_cells)} GPU cells and no GPU: not scheduled (give --gpus N)")
        else:
            fractions = {c.gpu_fraction for c in gpu_cells}
            per_gpu = max(1, int(1 / min(fractions))) if fractions else 1
            gpu_span = schedule([c.seconds for c in gpu_cells], gpus * per_gpu)
    cpu_slots = cpus // cpus_per_cell
    cpu_span = 0.0
    if cpu_cells:
        if cpu_slots < 1:
            notes.append(
                f"{len(cpu_cells)} CPU cells and fewer than {cpus_per_cell} cores: not scheduled"
            )
        else:
            cpu_span = schedule([c.seconds for c in cpu_cells], cpu_slots)
    untimed = [c for c in estimates if c.basis == "no figure"]
    if untimed:
        notes.append(
            f"{len(untimed)} cells have no stored figure and are left out of the times "
            "(run them once, e.g. with --steps 200, and plan again)"
        )
    if any(c.basis == "CPU figure for GPU" for c in estimates):
        notes.append(
            "no GPU record: GPU cells are timed with their CPU figures (likely an upper bound); "
            "measure a few GPU cells and plan again"
        )
    gpu_hours = sum(c.seconds * c.gpu_fraction for c in gpu_cells if math.isfinite(c.seconds))
    core_hours = sum(c.seconds * cpus_per_cell for c in cpu_cells if math.isfinite(c.seconds))
    return Plan(
        suite=suite,
        gpus=gpus,
        cpus=cpus,
        cpus_per_cell=cpus_per_cell,
        cells=estimates,
        makespan_s=max(gpu_span, cpu_span),
        gpu_hours=gpu_hours / 3600.0,
        cpu_core_hours=core_hours / 3600.0,
        results_dirs=[str(d) for d in results_dirs],
        notes=notes,
    )


def _hours(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render(p: Plan, fmt: Literal["text", "markdown", "json"] = "text") -> str:
    """The plan as a table per (spec, backend, profile, device) and a summary."""
    if fmt == "json":
        doc = asdict(p)
        doc["by_basis"] = p.by_basis()
        return json.dumps(doc, indent=2, default=float) + "\n"
    frame = pd.DataFrame([asdict(c) for c in p.cells])
    groups = (
        frame.groupby(["model", "backend", "profile", "device", "basis"], sort=False)
        .agg(cells=("run_id", "size"), seconds=("seconds", "median"))
        .reset_index()
    )
    header = ("spec", "backend", "profile", "device", "cells", "each", "basis")
    rows = [
        (g.model, g.backend, g.profile, g.device, str(g.cells), _hours(g.seconds), g.basis)
        for g in groups.itertuples()
    ]
    counts = ", ".join(f"{n} {b}" for b, n in p.by_basis().items() if n)
    summary = [
        f"suite {p.suite}: {len(p.cells)} cells ({counts})",
        f"on {p.gpus} GPU(s) and {p.cpus} cores ({p.cpus_per_cell} per CPU cell): "
        f"makespan {_hours(p.makespan_s)}, {p.gpu_hours:.1f} GPU-hours, "
        f"{p.cpu_core_hours:.1f} CPU core-hours",
        f"from the records in {', '.join(p.results_dirs)}",
        *p.notes,
    ]
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join([*lines, "", *(f"- {s}" for s in summary), ""])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([line.format(*header), *(line.format(*r) for r in rows), "", *summary, ""])
