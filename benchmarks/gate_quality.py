"""How good is the performance gate? False alarms and detection, measured on this machine.

``python -P -m bnnbench.benchmarks.gate_quality --out results/gate_quality [--aa 10] [--runs 10]``

Scenarios, each run as the real gate (:func:`bnnbench.benchmarks.gate.run_gate`) of the
candidate's tree against a throwaway copy of it:

- ``aa``: the copy is identical (A/A). Every ``slower`` verdict is a false alarm; the gate must
  give none.
- ``step_1.3`` / ``step_2``: in the copy, one backend's ``run_steps`` sleeps, after each call,
  0.3x (1x) the time the call took: its steps are 1.3x (2x) slower. The gate must call that
  case ``slower`` (at least 9 of 10 runs at 1.3x, 10 of 10 at 2x). ``step_1.15`` (on request):
  how much smaller a slowdown it still catches.
- ``compile_2``: the same for one backend's ``compile``: 2x, caught in 10 of 10.

The copies are made under a temporary folder and deleted; nothing in the checkout changes.
Writes ``gate_runs.csv`` (one row per scenario, run and case: ratio, interval, p, verdict, blocks),
``summary.csv`` and ``summary.md`` (the rates) in ``--out`` (not ``runs.csv``: that name
marks a bnnbench results folder).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bnnbench.benchmarks.gate import (
    ALPHA,
    COMPILE_BLOCKS,
    COMPILE_THRESHOLD,
    STEP_BLOCKS,
    STEP_THRESHOLD,
    lay_out_package,
    run_gate,
)
from bnnbench.provenance import environment
from bnnbench.registry import backend_info

#: What each scenario slows: (method, factor), or None for the A/A.
SCENARIOS: dict[str, tuple[str, float] | None] = {
    "aa": None,
    "step_1.15": ("run_steps", 1.15),
    "step_1.3": ("run_steps", 1.3),
    "step_2": ("run_steps", 2.0),
    "compile_2": ("compile", 2.0),
}

#: What a throwaway copy leaves out (only the package's folders and pyproject.toml matter).
COPY_IGNORED = shutil.ignore_patterns(".*", "results", "reports", "__pycache__", "*.egg-info")

INJECTION = """

# --- injected by bnnbench.benchmarks.gate_quality: a {factor}x slowdown of {method} ---------
import time as _gq_time

_gq_original = TrainingSession.{method}


def _gq_slowed(self, *args, **kwargs):
    started = _gq_time.perf_counter()
    out = _gq_original(self, *args, **kwargs)
    _gq_time.sleep({extra!r} * (_gq_time.perf_counter() - started))
    return out


TrainingSession.{method} = _gq_slowed
"""


def slowed_copy(source: Path, dest: Path, backend: str, method: str, factor: float) -> Path:
    """A copy of the tree ``source`` in which ``backend``'s ``TrainingSession.<method>`` takes
    ``factor`` times as long (a sleep proportional to the call's own time)."""
    if factor < 1:
        raise ValueError(f"factor {factor} < 1")
    shutil.copytree(source, dest, ignore=COPY_IGNORED)
    module = dest / "bnnbench" / "backends" / f"{backend_info(backend).module}.py"
    module.write_text(
        module.read_text() + INJECTION.format(method=method, factor=factor, extra=factor - 1.0)
    )
    return dest


def gate_defaults() -> dict[str, float]:
    """The gate settings every run here used."""
    return dict(
        step_threshold=STEP_THRESHOLD,
        compile_threshold=COMPILE_THRESHOLD,
        alpha=ALPHA,
        step_blocks=STEP_BLOCKS,
        compile_blocks=COMPILE_BLOCKS,
        retries=2,
    )


def _rows(scenario: str, run: int, report, slowed: str | None) -> list[dict]:  # type: ignore[no-untyped-def]
    return [
        dict(
            scenario=scenario,
            run=run,
            case=r.case.name,
            slowed=r.case.name == slowed,
            ratio=r.ratio.estimate,
            ratio_low=r.ratio.low,
            ratio_high=r.ratio.high,
            p_value=r.p_value,
            threshold=r.threshold,
            blocks=r.blocks,
            verdict=r.verdict,
            gate_exit=report.exit_code,
            wall_s=report.wall_s,
        )
        for r in report.results
    ]


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per scenario: runs, runs that failed the gate, false alarms (a case called slower that
    was not slowed), detections of the slowed case, and the median wall time."""
    out = []
    for scenario, g in runs.groupby("scenario", sort=False):
        per_run = g.groupby("run")
        slowed = g[g["slowed"]]
        out.append(
            dict(
                scenario=scenario,
                runs=per_run.ngroups,
                gate_failed=int(per_run["gate_exit"].max().sum()),
                false_alarm_runs=int(
                    per_run.apply(lambda r: ((r["verdict"] == "slower") & ~r["slowed"]).any()).sum()
                ),
                detected=int((slowed["verdict"] == "slower").sum()) if len(slowed) else None,
                slowed_ratio_median=float(slowed["ratio"].median()) if len(slowed) else None,
                inconclusive_cases=int((g["verdict"] == "inconclusive").sum()),
                median_wall_s=float(per_run["wall_s"].first().median()),
            )
        )
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m bnnbench.benchmarks.gate_quality", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the candidate's tree")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--aa", type=int, default=10, help="A/A runs (every backend)")
    parser.add_argument("--runs", type=int, default=10, help="runs per slowed scenario")
    parser.add_argument("--slow-backend", default="pymc", help="the backend slowed")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=[k for k in SCENARIOS if k != "step_1.15"],
        choices=SCENARIOS,
        help="default: aa, step_1.3, step_2, compile_2",
    )
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    lay_out_package(repo, Path(tempfile.mkdtemp()))  # fails early on a tree without a package
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**environment(), "gate_defaults": gate_defaults(), "slow_backend": args.slow_backend}
    (args.out / "env.json").write_text(json.dumps(env, indent=2, default=str))
    rows: list[dict] = []
    for scenario in args.scenarios:
        what = SCENARIOS[scenario]
        n = args.aa if what is None else args.runs
        for run in range(n):
            with tempfile.TemporaryDirectory(prefix="bnnbench-gate-quality-") as tmp:
                copy = Path(tmp) / "candidate"
                if what is None:
                    shutil.copytree(repo, copy, ignore=COPY_IGNORED)
                    backends, slowed = None, None
                else:
                    method, factor = what
                    slowed_copy(repo, copy, args.slow_backend, method, factor)
                    backends = [args.slow_backend]
                    kind = "train" if method == "run_steps" else "compile"
                    slowed = f"{kind} {args.slow_backend}"
                t = time.perf_counter()
                report = run_gate(
                    repo, copy, labels=("baseline", scenario), backends=backends, progress=False
                )
                rows += _rows(scenario, run, report, slowed)
                print(
                    f"{scenario} run {run + 1}/{n}: exit {report.exit_code}, "
                    + ", ".join(
                        f"{r.case.name} {r.ratio.estimate:.2f}x {r.verdict}" for r in report.results
                    )
                    + f" ({time.perf_counter() - t:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                pd.DataFrame(rows).to_csv(args.out / "gate_runs.csv", index=False)
    table = summarise(pd.DataFrame(rows))
    table.to_csv(args.out / "summary.csv", index=False)
    header = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
    body = "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in table.values)
    (args.out / "summary.md").write_text(header + body)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
