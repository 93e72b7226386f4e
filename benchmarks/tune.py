"""Measure the candidate execution paths behind the ``tuned`` profile.

``python -P -m bnnbench.benchmarks.tune --models moons_2x5 mnist_2x800 --device cpu
--out results/tuning/cpu`` runs, for every model and every backend with execution knobs
(``KNOBS`` in ``bnnbench/backends/<backend>_backend.py``, see :mod:`bnnbench.backends.knobs`),
one ``matched`` cell per combination of the knobs' values, each in its own process through the
harness, with the values forced by the knobs' environment variables (PyMC: pytensor's ``c``,
``numba`` and ``jax`` modes; Pyro: ``JitTrace_ELBO`` or eager ``Trace_ELBO``; NumPyro: the step
loop as a ``lax.scan`` or a host loop, the predictive as ``Predictive`` or one call per draw).

It writes to ``--out``:

- one results folder per candidate (``<backend>-<knob>=<value>...``): the cells themselves;
- ``candidates.csv``: per cell, its knob values, ``step_ms`` (median over timed chunks) and its
  interquartile range, ``predict_ms_per_draw``, the ratios to the roofline floor, compile time,
  the final -ELBO per datum and the accuracy (so that a faster path that changes the answer is
  seen at once);
- ``winners.csv``: per (model, backend, device, knob), the value with the lowest median of the
  timing the knob ``affects`` (over the other knobs' values), its time and the default's; the
  default stays the winner unless another value is at least ``MIN_GAIN`` faster (smaller gains
  are within this machine's run-to-run swing, and a change of path needs a reason).

The winners are the ``tuned`` tables of the backends' ``KNOBS`` (copied there by hand, with the
figures, so that a code review sees every change of path).
"""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from unittest import mock

import pandas as pd

from bnnbench.backends import get_backend
from bnnbench.backends.knobs import Knob
from bnnbench.config import CellConfig
from bnnbench.harness import run_cells
from bnnbench.results import ResultStore
from bnnbench.spec import SPEC_NAMES

__all__ = ["backend_knobs", "candidates", "main", "winners"]

#: Backends whose engine module declares ``KNOBS``.
TUNABLE = ("pymc", "pyro", "numpyro")

#: Columns of ``candidates.csv`` taken from each cell's record.
FIGURES = (
    "status",
    "step_ms",
    "step_ms_iqr",
    "step_floor_ratio",
    "predict_ms_per_draw",
    "draw_floor_ratio",
    "compile_s",
    "final_neg_elbo_per_datum",
    "accuracy",
    "execution_path",
)


#: Smallest speed-up over the default that makes another value the winner.
MIN_GAIN = 1.10


def backend_knobs(backend: str) -> dict[str, Knob]:
    """``KNOBS`` of ``backend``'s engine module (imports its library)."""
    return get_backend(backend).KNOBS


def candidates(knobs: dict[str, Knob], device: str) -> Iterator[dict[str, str]]:
    """Every combination of the knobs' values that can run on ``device``."""
    names = sorted(knobs)
    for values in itertools.product(*(knobs[n].candidates(device) for n in names)):
        yield dict(zip(names, values, strict=True))


def winners(table: pd.DataFrame, knobs_by_backend: dict[str, dict[str, Knob]]) -> pd.DataFrame:
    """Per (model, backend, device, knob): the value whose cells have the lowest median of the
    timing the knob affects (the default unless another is ``MIN_GAIN`` times faster), next to
    the default's."""
    rows = []
    ok = table[table["status"] == "ok"]
    for (model, backend, device), group in ok.groupby(["model", "backend", "device"]):
        for name, knob in knobs_by_backend[backend].items():
            figure = "step_ms" if knob.affects == "step" else "predict_ms_per_draw"
            by_value = group.groupby(name)[figure].median()
            fastest = str(by_value.idxmin())
            default = knob.default_on(str(device))
            default_ms = by_value.get(default, float("nan"))
            best = fastest if not default_ms <= MIN_GAIN * by_value[fastest] else default
            rows.append(
                dict(
                    model=model,
                    backend=backend,
                    device=device,
                    knob=name,
                    figure=figure,
                    default=default,
                    default_ms=default_ms,
                    fastest=fastest,
                    best=best,
                    best_ms=by_value[best],
                    speedup=default_ms / by_value[best],
                    **{f"{v}_ms": t for v, t in by_value.items()},
                )
            )
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -P -m bnnbench.benchmarks.tune")
    parser.add_argument("--models", nargs="+", choices=SPEC_NAMES, default=["moons_2x5"])
    parser.add_argument("--backends", nargs="+", choices=TUNABLE, default=list(TUNABLE))
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--steps", type=int, help="steps per cell (default: 10 chunks)")
    parser.add_argument("--trace-every", type=int, help="steps per timed chunk")
    parser.add_argument("--draws", type=int, default=4, help="predictive draws per cell")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    rows = []
    knobs_by_backend = {b: backend_knobs(b) for b in args.backends}
    for backend, knobs in knobs_by_backend.items():
        for values in candidates(knobs, args.device):
            cells = [
                CellConfig.from_defaults(
                    model,
                    backend,  # type: ignore[arg-type]
                    "matched",
                    args.device,
                    0,
                    steps=args.steps or 10 * (args.trace_every or 100),
                    trace_every=args.trace_every,
                    predict_draws=args.draws,
                )
                for model in args.models
            ]
            label = "-".join(f"{k}={v}" for k, v in values.items())
            out = args.out / f"{backend}-{label}"
            forced = {knobs[k].env: v for k, v in values.items()}
            with mock.patch.dict(os.environ, forced):
                run_cells(cells, out, resume=True, progress=False)
            for run in ResultStore(out).runs().to_dict("records"):
                if run["model"] not in args.models or run["device"] != args.device:
                    continue
                row = dict(model=run["model"], backend=backend, device=args.device, **values)
                row.update({f: run.get(f, float("nan")) for f in FIGURES})
                rows.append(row)
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "candidates.csv", index=False)
    best = winners(table, knobs_by_backend)
    best.to_csv(args.out / "winners.csv", index=False)
    shown = [c for c in table.columns if c != "execution_path"]
    print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\nfastest value of each knob per (model, backend, device):")
    print(best.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
