"""Measure the candidate execution paths behind the ``tuned`` profile.

``python -m bnnbench.benchmarks.tune --models moons_2x5 mnist_2x800 --device cpu
--out results/tuning/cpu`` runs, for every model and backend with more than one correct path,
one ``matched`` cell per candidate (PyMC: pytensor's ``c``, ``numba`` and ``jax`` backends; Pyro:
``JitTrace_ELBO`` and eager ``Trace_ELBO``), each in its own process through the harness, with
the candidate forced by ``BNNBENCH_PYMC_BACKEND`` / ``BNNBENCH_PYRO_ELBO``. It prints the median
step time of each candidate and the fastest per (model, backend, device): the entries of
``TUNED_BACKEND`` (``bnnbench/backends/pymc_backend.py``) and ``TUNED_ELBO``
(``bnnbench/backends/pyro_backend.py``). The cells' results stay in ``--out`` (one results
folder per candidate) as the evidence for the table.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bnnbench.config import CellConfig
from bnnbench.harness import run_cells
from bnnbench.results import ResultStore
from bnnbench.spec import SPEC_NAMES

__all__ = ["CANDIDATES", "main"]

#: (environment variable, its values) of each backend's candidate paths, per device.
CANDIDATES: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "pymc": ("BNNBENCH_PYMC_BACKEND", {"cpu": ("c", "numba", "jax"), "gpu": ("jax",)}),
    "pyro": ("BNNBENCH_PYRO_ELBO", {"cpu": ("jit", "eager"), "gpu": ("jit", "eager")}),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bnnbench.benchmarks.tune")
    parser.add_argument("--models", nargs="+", choices=SPEC_NAMES, default=["moons_2x5"])
    parser.add_argument(
        "--backends", nargs="+", choices=sorted(CANDIDATES), default=["pymc", "pyro"]
    )
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--steps", type=int, help="steps per cell (default: 10 chunks)")
    parser.add_argument("--trace-every", type=int, help="steps per timed chunk")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    rows = []
    for backend in args.backends:
        variable, per_device = CANDIDATES[backend]
        for candidate in per_device[args.device]:
            cells = [
                CellConfig.from_defaults(
                    model,
                    backend,  # type: ignore[arg-type]
                    "matched",
                    args.device,
                    0,
                    steps=args.steps or 10 * (args.trace_every or 100),
                    trace_every=args.trace_every,
                    predict_draws=1,
                )
                for model in args.models
            ]
            out = args.out / f"{backend}-{candidate}"
            os.environ[variable] = candidate
            try:
                run_cells(cells, out, resume=True, progress=False)
            finally:
                del os.environ[variable]
            runs = ResultStore(out).runs()
            for run in runs.itertuples():
                rows.append(
                    dict(
                        model=run.model,
                        backend=backend,
                        device=args.device,
                        candidate=candidate,
                        status=run.status,
                        step_ms=getattr(run, "step_ms", float("nan")),
                        compile_s=getattr(run, "compile_s", float("nan")),
                        final_neg_elbo_per_datum=getattr(
                            run, "final_neg_elbo_per_datum", float("nan")
                        ),
                    )
                )
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    ok = table[table["status"] == "ok"]
    if not ok.empty:
        best = ok.loc[ok.groupby(["model", "backend", "device"])["step_ms"].idxmin()]
        print("\nfastest path per (model, backend, device):")
        print(best[["model", "backend", "device", "candidate", "step_ms"]].to_string(index=False))
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "candidates.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
