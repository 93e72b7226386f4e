"""The ``bnnbench`` command: ``run``, ``verify``, ``report``, ``recommend``, ``compare``,
``calibrate``, ``reference``, ``data`` and ``list``.

Exit codes: 0 success; 1 a cell failed or nothing could run (``run``), the machine stayed busy
(``run --require-idle``), the backends disagree (``verify``), results are damaged (``report``
without ``--allow-partial``) or a file could not be written (disk full); 2 bad input (unknown
model/backend/profile/device/suite, a plan that cannot run, a results folder that would be
clobbered or is in use); 3 ``recommend`` found no evidence for the question (it says what would
provide it); ``compare``: 1 a significant regression beyond its threshold, 2 nothing could be
compared; 128 + N when signal N stopped ``run`` (130 Ctrl-C, 129 SIGHUP, 143
SIGTERM). Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from bnnbench.config import with_float_x
from bnnbench.datasets import FETCHABLE
from bnnbench.spec import SPEC_NAMES, specs_with_nuts_reference
from bnnbench.types import BACKENDS, BAYESIAN_BACKENDS, DEVICES, EXECUTORS, PROFILES

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (``bnnbench run: error: ... (see --help)``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], e.g. 0.95, got {text!r}")
    return value


def _positive_mb(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of MiB > 0, got {text!r}")
    return value


#: ``bnnbench recommend``'s choices (the same as bnnbench.recommend.PRIORITIES and
#: OUTPUT_FORMATS, spelt here so that the parser does not import pandas).
RECOMMEND_PRIORITIES = ("quality", "speed", "uncertainty", "memory")
RECOMMEND_FORMATS = ("text", "markdown", "json")
#: ``bnnbench compare``'s formats and defaults (bnnbench.compare's OUTPUT_FORMATS and DEFAULT_*).
COMPARE_FORMATS = ("text", "markdown", "json")
COMPARE_DEFAULTS = {
    "threshold": 0.10,
    "compile_threshold": 0.5,
    "predict_threshold": 0.5,
    "memory_threshold": 0.10,
    "alpha": 0.01,
}


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a relative change > 0, e.g. 0.1, got {text!r}")
    return value


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a level in (0, 1), e.g. 0.01, got {text!r}")
    return value


def _add_cell_arguments(run: argparse.ArgumentParser) -> None:
    """The arguments that choose a run's cells (``run`` and ``plan`` share them)."""
    run.add_argument(
        "--suite",
        help="a named suite from benchmarks/suites (see `bnnbench list`) or the path of a suite "
        "file (.toml)",
    )
    run.add_argument(
        "--models",
        nargs="+",
        choices=SPEC_NAMES,
        metavar="MODEL",
        help=f"specs to run (choose from {', '.join(SPEC_NAMES)})",
    )
    run.add_argument(
        "--backends",
        nargs="+",
        choices=BACKENDS,
        metavar="BACKEND",
        help=f"backends (choose from {', '.join(BACKENDS)}; default: all)",
    )
    run.add_argument(
        "--profile",
        nargs="+",
        choices=PROFILES,
        metavar="PROFILE",
        help=f"settings profiles (choose from {', '.join(PROFILES)})",
    )
    run.add_argument(
        "--device",
        nargs="+",
        choices=DEVICES,
        metavar="DEVICE",
        help=f"devices (choose from {', '.join(DEVICES)})",
    )
    run.add_argument("--seeds", nargs="+", type=int, help="seeds (default: 0, or the suite's)")
    run.add_argument("--steps", type=int, help="optimisation steps (default: the spec's)")
    run.add_argument("--batch-size", type=int, help="minibatch size (default: the spec's)")
    run.add_argument("--learning-rate", type=float, help="Adam step size (default: the spec's)")
    run.add_argument("--init-scale", type=float, help="initial variational sd (matched)")
    run.add_argument("--trace-every", type=int, help="steps per timed chunk / ELBO trace point")
    run.add_argument(
        "--draws",
        type=int,
        dest="predict_draws",
        help="posterior-predictive draws (default: the spec's, 500 for moons)",
    )
    run.add_argument("--timeout-s", type=float, help="wall-clock limit per cell (default 1800)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bnnbench",
        description="Benchmark Bayesian neural networks across PyMC, Pyro and NumPyro.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run benchmark cells, each in its own process")
    _add_cell_arguments(run)
    run.add_argument("--out", type=Path, required=True, help="results folder")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help="skip cells already finished in --out (failed cells run again)",
    )
    mode.add_argument(
        "--overwrite",
        action="store_true",
        help="first delete what bnnbench wrote in --out (only in a folder bnnbench created; "
        "never the working directory, its parents, home or a git repository's root)",
    )
    run.add_argument(
        "--require-idle",
        nargs="?",
        const=60.0,
        type=_positive_seconds,
        metavar="SECONDS",
        help="before each cell, wait until other processes use less than half a core; stop "
        "(exit 1) if they do not within SECONDS (default 60). Without it, cells timed on a busy "
        "machine are run and flagged (host_busy)",
    )
    run.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: one cell after another on this machine (default); ray: every cell a task "
        "of a Ray cluster (pip install 'bnnbench[ray]'), this process writing the results",
    )
    run.add_argument(
        "--address",
        help="with --executor ray: the cluster to join (auto: the one this machine belongs to; "
        "host:port of its head); default: start a local Ray instance",
    )
    run.add_argument(
        "--cpus-per-cell",
        type=_positive_int,
        help="with --executor ray: CPU cores each cell's task reserves and uses (default 2)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    verify = sub.add_parser("verify", help="check that every backend implements the same model")
    verify.add_argument(
        "--models",
        nargs="+",
        choices=SPEC_NAMES,
        default=list(SPEC_NAMES),
        metavar="MODEL",
        help=f"specs (choose from {', '.join(SPEC_NAMES)})",
    )
    verify.add_argument(
        "--backends",
        nargs="+",
        choices=BAYESIAN_BACKENDS,
        default=list(BAYESIAN_BACKENDS),
        metavar="BACKEND",
        help=f"backends (choose from {', '.join(BAYESIAN_BACKENDS)})",
    )
    verify.add_argument("--points", type=int, default=3, help="random parameter points")
    verify.add_argument("--seed", type=int, default=0)

    report = sub.add_parser("report", help="render an HTML report from stored results")
    report.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="results folders")
    report.add_argument("--out", type=Path, required=True, help="HTML file to write")
    report.add_argument("--title", default="bnnbench report")
    report.add_argument(
        "--allow-partial",
        action="store_true",
        help="write the report even when rows or artifacts are damaged or missing (they are "
        "listed in it and on stderr; without this flag that is an error, exit 1)",
    )
    report.add_argument(
        "--compare",
        action="store_true",
        help="show each folder as its own column (e.g. your machine beside the committed "
        "reference) instead of counting the same cell in two folders once",
    )

    recommend = sub.add_parser(
        "recommend",
        help="which backend to use for a spec, device and run length, from stored results only",
        description="Rank the Bayesian backends for a spec and device from stored results: "
        "end-to-end time for the run length, quality, uncertainty, memory, ties within the "
        "noise, crossovers and the evidence that is missing. Exit 0 with an answer, 2 for bad "
        "input, 3 when no stored result answers the question.",
    )
    recommend.add_argument(
        "dirs",
        nargs="*",
        type=Path,
        metavar="RESULTS_DIR",
        help="results folders (default: every folder under the checkout's results/ that holds "
        "a runs.csv)",
    )
    recommend.add_argument(
        "--model",
        required=True,
        choices=SPEC_NAMES,
        metavar="SPEC",
        help=f"spec (choose from {', '.join(SPEC_NAMES)})",
    )
    recommend.add_argument(
        "--device",
        choices=DEVICES,
        default="cpu",
        metavar="DEVICE",
        help=f"device (choose from {', '.join(DEVICES)}; default cpu)",
    )
    recommend.add_argument(
        "--profile",
        choices=PROFILES,
        metavar="PROFILE",
        help=f"settings profile (choose from {', '.join(PROFILES)}; default matched when measured)",
    )
    length = recommend.add_mutually_exclusive_group()
    length.add_argument(
        "--steps", type=_positive_int, help="run length in steps (default: the measured one)"
    )
    length.add_argument(
        "--budget-s",
        type=_positive_seconds,
        metavar="S",
        help="run length as an end-to-end time budget in seconds",
    )
    recommend.add_argument(
        "--target-accuracy",
        type=_fraction,
        metavar="A",
        help="test accuracy to reach (a fraction); backends that do not are excluded",
    )
    recommend.add_argument(
        "--max-memory-mb",
        type=_positive_mb,
        metavar="M",
        help="exclude backends whose peak memory (host RSS on cpu, device on gpu) exceeds M MiB",
    )
    recommend.add_argument(
        "--priority",
        choices=RECOMMEND_PRIORITIES,
        default="quality",
        help="what is ranked first (default quality: accuracy, then time)",
    )
    recommend.add_argument(
        "--format", choices=RECOMMEND_FORMATS, default="text", help="output (default text)"
    )

    compare = sub.add_parser(
        "compare",
        help="compare two results folders (or two pytest-benchmark JSON files): faster, slower, "
        "unchanged, inconclusive per cell",
        description="Pair the cells of BASELINE and CANDIDATE (spec, backend, profile, device "
        "and settings; benchmark name) and, per metric, give the ratio candidate/baseline with "
        "its 95%% interval and a test. Exit 0 without a significant regression, 1 with one "
        "beyond its threshold, 2 for bad input or when nothing could be compared.",
    )
    compare.add_argument(
        "baseline", type=Path, metavar="BASELINE", help="results folder or pytest-benchmark JSON"
    )
    compare.add_argument(
        "candidate", type=Path, metavar="CANDIDATE", help="the same kind as BASELINE"
    )
    compare.add_argument(
        "--threshold",
        type=_threshold,
        default=COMPARE_DEFAULTS["threshold"],
        help="steady-step (and benchmark) change that matters, relative (default 0.10: the "
        "CI gate's, no false alarm in its measured A/A runs)",
    )
    compare.add_argument(
        "--compile-threshold",
        type=_threshold,
        default=COMPARE_DEFAULTS["compile_threshold"],
        help="compile-time change that matters (default 0.5: compile swings far more)",
    )
    compare.add_argument(
        "--predict-threshold",
        type=_threshold,
        default=COMPARE_DEFAULTS["predict_threshold"],
        help="posterior-predictive change reported (default 0.5; not gated)",
    )
    compare.add_argument(
        "--memory-threshold",
        type=_threshold,
        default=COMPARE_DEFAULTS["memory_threshold"],
        help="peak-memory change reported (default 0.10; not gated)",
    )
    compare.add_argument(
        "--alpha",
        type=_alpha,
        default=COMPARE_DEFAULTS["alpha"],
        help="significance level of the tests (default 0.01)",
    )
    compare.add_argument(
        "--allow-other-machine",
        action="store_true",
        help="compare cells of different cpu/host/gpu or calibrations anyway (each says so)",
    )
    compare.add_argument(
        "--fail-on-quality",
        action="store_true",
        help="exit 1 also when accuracy drops or -ELBO rises beyond the noise (always reported)",
    )
    compare.add_argument(
        "--format", choices=COMPARE_FORMATS, default="text", help="output (default text)"
    )

    data = sub.add_parser("data", help="obtain the data sets the specs need")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser("fetch", help="download, verify and cache a data set")
    fetch.add_argument(
        "dataset", choices=list(FETCHABLE), help=f"data set (choose from {', '.join(FETCHABLE)})"
    )
    fetch.add_argument("--force", action="store_true", help="download again even if cached")

    calibrate = sub.add_parser(
        "calibrate",
        help="measure this machine's ceilings (matmul FLOP/s, copy bytes/s) for the roofline",
    )
    calibrate.add_argument("--device", nargs="+", choices=DEVICES, default=["cpu"])
    calibrate.add_argument(
        "--out", type=Path, required=True, help="results folder (calibration-<device>.json)"
    )

    reference = sub.add_parser(
        "reference",
        help="compute a spec's NUTS reference posterior (the small specs)",
    )
    reference.add_argument(
        "model",
        choices=specs_with_nuts_reference(),
        help=f"spec (choose from {', '.join(specs_with_nuts_reference())})",
    )
    reference.add_argument("--out", type=Path, help="netCDF file (default: the stored location)")
    reference.add_argument("--chains", type=int, default=4)
    reference.add_argument("--warmup", type=int, default=1000)
    reference.add_argument("--samples", type=int, default=1000, help="draws per chain")
    reference.add_argument("--seed", type=int, default=0)

    plan = sub.add_parser(
        "plan",
        help="predict a suite's duration, makespan and GPU-hours on a cluster from stored results",
    )
    _add_cell_arguments(plan)
    plan.add_argument("--gpus", type=int, default=0, help="GPUs of the cluster (default 0)")
    plan.add_argument(
        "--cpus", type=int, help="CPU cores of the cluster for CPU cells (default: this machine's)"
    )
    plan.add_argument(
        "--cpus-per-cell", type=_positive_int, default=2, help="cores a CPU cell uses (default 2)"
    )
    plan.add_argument(
        "--results",
        nargs="+",
        type=Path,
        help="results folders whose records time the cells (default: every folder under "
        "./results that holds a runs.csv)",
    )
    plan.add_argument("--format", choices=("text", "markdown", "json"), default="text")

    migrate = sub.add_parser(
        "migrate",
        help="rewrite results folders at the current record schema (what `load` does on read)",
    )
    migrate.add_argument("dirs", nargs="+", type=Path, help="results folders (each a runs.csv)")

    sub.add_parser("list", help="list specs, backends, profiles, devices and suites")
    return parser


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the main thread is, like Ctrl-C's KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


#: Signals that stop a suite like Ctrl-C: SIGTERM (a job scheduler, `kill`) and SIGHUP (a closed
#: terminal or ssh session). The running cell is killed and nothing of it is recorded.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _stop_on_signal(signum: int, frame: object) -> None:
    for sig in STOP_SIGNALS:  # once: a second signal must not interrupt the cleanup
        signal.signal(sig, signal.SIG_IGN)
    raise _Stopped(signum)


def _say(message: str) -> None:
    """A line on stderr; a closed terminal (SIGHUP) must not turn it into a traceback."""
    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        pass


def _bad_input(command: str, message: str) -> NoReturn:
    """Exit 2 with one line, like argparse's own errors."""
    _say(f"bnnbench {command}: error: {message}")
    raise SystemExit(2)


def _plan(args: argparse.Namespace, command: str = "run") -> list:
    from bnnbench.harness import load_suite, plan_cells, plan_suite

    overrides = dict(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        init_scale=args.init_scale,
        trace_every=args.trace_every,
        predict_draws=args.predict_draws,
        timeout_s=args.timeout_s,
    )
    try:
        if args.suite:
            # With a suite, --models/--backends/--profile/--device select among its cells.
            only = dict(
                models=args.models,
                backends=args.backends,
                profiles=args.profile,
                devices=args.device,
            )
            cells = plan_suite(load_suite(args.suite), only=only, seeds=args.seeds, **overrides)
        elif args.models:
            cells = plan_cells(
                args.models,
                args.backends or list(BACKENDS),
                args.profile or ["matched"],
                args.device or ["cpu"],
                args.seeds or [0],
                **overrides,
            )
        else:
            _bad_input(command, "give --suite NAME|FILE or --models MODEL ...")
    except ValueError as err:
        _bad_input(command, str(err))
    if not cells:
        _bad_input(
            command,
            f"the plan has no cells: --models/--backends/--profile/--device select none of "
            f"suite {args.suite}'s cells",
        )
    return cells


def _cmd_plan(args: argparse.Namespace) -> int:
    from bnnbench.plan import PlanError, plan, render

    cells = _plan(args, "plan")
    if args.gpus < 0 or (args.cpus is not None and args.cpus < 0):
        _bad_input("plan", "--gpus and --cpus must be 0 or more")
    dirs = args.results
    if dirs is None:
        dirs = sorted(p.parent for p in Path("results").glob("*/runs.csv"))
    missing = [d for d in dirs if not (d / "runs.csv").is_file()]
    if missing:
        _bad_input("plan", f"{missing[0]} holds no runs.csv (not a bnnbench results folder)")
    try:
        result = plan(
            args.suite or "(cells chosen by --models)",
            cells,
            dirs,
            gpus=args.gpus,
            cpus=(os.cpu_count() or 1) if args.cpus is None else args.cpus,
            cpus_per_cell=args.cpus_per_cell,
        )
    except PlanError as err:
        _bad_input("plan", str(err))
    print(render(result, args.format), end="")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from bnnbench.harness import MachineBusyError, run_cells
    from bnnbench.ray_executor import RayUnavailableError
    from bnnbench.results import ResultStore
    from bnnbench.safety import (
        DirInUseError,
        ResultsLock,
        clear_results,
        out_dir_problem,
        overwrite_problem,
    )

    cells = _plan(args)  # every cell validated before anything is touched
    ray_options: dict[str, object] = {}
    if args.executor == "ray":
        from bnnbench.ray_executor import ray_available

        if not ray_available():
            _bad_input("run", "--executor ray needs Ray: pip install 'bnnbench[ray]'")
        if args.require_idle is not None:
            _bad_input("run", "--require-idle applies to the local executor only")
        ray_options = {"address": args.address}
        if args.cpus_per_cell is not None:
            ray_options["cpus_per_cell"] = args.cpus_per_cell
    elif args.address or args.cpus_per_cell is not None:
        _bad_input("run", "--address and --cpus-per-cell need --executor ray")
    problem = out_dir_problem(args.out)
    if problem is None and args.overwrite:
        problem = overwrite_problem(args.out)
    if problem:
        _bad_input("run", problem)
    store = ResultStore(args.out)
    if store.has_results() and not (args.resume or args.overwrite):
        _bad_input(
            "run",
            f"{args.out} already holds results: add --resume to finish them, "
            "--overwrite to replace them, or choose another --out",
        )
    lock = ResultsLock(args.out)
    try:
        lock.acquire()
    except DirInUseError as err:
        _bad_input("run", str(err))
    previous = {sig: signal.signal(sig, _stop_on_signal) for sig in STOP_SIGNALS}
    try:
        if args.overwrite:
            kept = clear_results(args.out)
            if kept:
                _say(f"--overwrite kept what bnnbench did not write: {', '.join(kept)}")
        runs = run_cells(
            cells,
            args.out,
            resume=args.resume,
            progress=not args.no_progress,
            require_idle=args.require_idle,
            lock=lock,
            executor=args.executor,
            ray_options=ray_options,
        )
    except RayUnavailableError as err:
        _say(f"bnnbench run: error: {err}")
        return 2
    except KeyboardInterrupt as err:
        signum = err.signum if isinstance(err, _Stopped) else signal.SIGINT
        try:
            runs_now = store.runs()
            ok = int((runs_now["status"] == "ok").sum())
        except Exception:  # the message must not fail
            ok = 0
        _say(
            f"\ninterrupted ({signal.Signals(signum).name}): {ok} cells finished ok in "
            f"{args.out / 'runs.csv'}; run the same command with --resume to go on"
        )
        return 128 + signum
    except MachineBusyError as err:
        _say(f"bnnbench run: stopped: {err}")
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.release()
    all_runs = store.runs()
    shown = [
        "model",
        "backend",
        "profile",
        "device",
        "seed",
        "status",
        "compile_s",
        "step_ms",
        "fit_s",
        "predict_s",
        "accuracy",
        "final_neg_elbo_per_datum",
        "host_busy",
    ]
    if len(all_runs):
        print(
            all_runs[[c for c in shown if c in all_runs]].to_string(
                index=False, float_format=lambda v: f"{v:.4g}"
            )
        )
    print(f"results: {args.out / 'runs.csv'}")
    if len(runs) == len(cells) and runs["status"].isin(["unsupported", "unavailable"]).all():
        reasons = sorted({f"{r.backend}/{r.device}: {r.error}" for r in runs.itertuples()})
        _say("bnnbench run: nothing could run: every cell is unsupported or unavailable:")
        for reason in reasons:
            _say(f"  {reason}")
        return 1
    failed = (runs["status"] == "failed").sum() if len(runs) else 0
    return 1 if failed else 0


def _cmd_verify(args: argparse.Namespace) -> int:
    # Verification is in float64: pytensor reads floatX once, at import.
    os.environ["PYTENSOR_FLAGS"] = with_float_x(os.environ.get("PYTENSOR_FLAGS", ""), "float64")
    from bnnbench.backends import missing_packages
    from bnnbench.verify import RTOL, verify

    backends = [b for b in args.backends if not missing_packages(b)]
    for b in sorted(set(args.backends) - set(backends)):
        print(f"skipping {b}: not installed ({', '.join(missing_packages(b))})", file=sys.stderr)
    if not backends:
        print("no backend installed to verify", file=sys.stderr)
        return 1
    report = verify(args.models, backends, n_points=args.points, seed=args.seed)
    print(f"largest relative differences over {args.points} random points (tolerance {RTOL:g}):")
    print(report.table.to_string(index=False, float_format=lambda v: f"{v:.2e}"))
    if report.ok:
        print("OK: all backends implement the same log density")
        return 0
    for mismatch in report.mismatches:
        print(f"MISMATCH {mismatch}", file=sys.stderr)
    return 1


def _cmd_report(args: argparse.Namespace) -> int:
    import pandas as pd

    from bnnbench.report import ReportDamageError, render_report

    if args.out.is_dir():
        _bad_input("report", f"--out {args.out} is a folder; give the HTML file to write")
    for d in args.dirs:
        if not (d / "runs.csv").is_file():
            _bad_input("report", f"{d} holds no runs.csv (not a bnnbench results folder)")
    try:
        rendered = render_report(
            args.dirs,
            args.out,
            title=args.title,
            allow_partial=args.allow_partial,
            compare=args.compare,
        )
    except ReportDamageError as err:
        hint = "add --allow-partial to write the report anyway, listing them"
        if len(err.damage) == 1:
            _say(f"bnnbench report: error: damaged results ({hint}): {err.damage[0]}")
        else:
            _say(f"bnnbench report: error: {len(err.damage)} damaged or missing results ({hint}):")
            for damage in err.damage:
                _say(f"  {damage}")
        return 1
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        message = " ".join(str(err).split())
        _bad_input(
            "report", f"cannot read the results in {', '.join(map(str, args.dirs))}: {message}"
        )
    path, damage = rendered if isinstance(rendered, tuple) else (rendered, [])
    for d in damage:
        _say(f"warning: left out of the report: {d}")
    print(f"report: {path}")
    return 0


def _default_results_dirs() -> list[Path]:
    """Every folder of the checkout's ``results/`` that holds a ``runs.csv``: the checkout is
    the first folder above this package that holds a ``pyproject.toml`` and such results (an
    editable install, or a virtual environment inside the checkout), else the current folder."""
    here = Path(__file__).resolve()
    roots = [p for p in here.parents if (p / "pyproject.toml").is_file()] + [Path.cwd()]
    for root in roots:
        results = root / "results"
        found = (
            sorted(p for p in results.iterdir() if (p / "runs.csv").is_file())
            if results.is_dir()
            else []
        )
        if found:
            return found
    return []


def _cmd_recommend(args: argparse.Namespace) -> int:
    import pandas as pd

    from bnnbench.recommend import Request, recommend, render
    from bnnbench.results import load_all, n_test_per_spec

    for d in args.dirs:
        if not (d / "runs.csv").is_file():
            _bad_input("recommend", f"{d} holds no runs.csv (not a bnnbench results folder)")
    dirs = list(args.dirs) or _default_results_dirs()
    if not dirs:
        _say(
            "bnnbench recommend: no evidence: no results folder found (the checkout's results/ "
            "holds no runs.csv); give RESULTS_DIR, or produce one: bnnbench run --suite default "
            "--out results/default"
        )
        return 3
    try:
        loaded = load_all(dirs, check_artifacts=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        message = " ".join(str(err).split())
        _bad_input(
            "recommend", f"cannot read the results in {', '.join(map(str, dirs))}: {message}"
        )
    for damage in loaded.damage:
        _say(f"warning: left out: {damage}")
    request = Request(
        model=args.model,
        device=args.device,
        profile=args.profile,
        steps=args.steps,
        budget_s=args.budget_s,
        target_accuracy=args.target_accuracy,
        max_memory_mb=args.max_memory_mb,
        priority=args.priority,
    )
    problems = request.problems()
    if problems:
        _bad_input("recommend", "; ".join(problems))
    answer = recommend(loaded.runs, loaded.traces, request, n_test=n_test_per_spec(loaded.runs))
    print(render(answer, args.format), end="")
    if answer.status != "answer":
        command = next((m.command for m in answer.missing if m.command), None)
        hint = f"; to measure it: {command}" if command else ""
        _say(f"bnnbench recommend: no evidence: {answer.reasons[0]}{hint}")
    return answer.exit_code


def _compare_input(path: Path) -> str:
    """``results`` or ``pytest-benchmark``, or exit 2 with why not."""
    if not path.exists():
        _bad_input("compare", f"{path} does not exist")
    if path.is_dir():
        if not (path / "runs.csv").is_file():
            _bad_input("compare", f"{path} holds no runs.csv (not a bnnbench results folder)")
        return "results"
    return "pytest-benchmark"


def _compare_side(path: Path):  # type: ignore[no-untyped-def]
    """A results folder loaded for :mod:`bnnbench.compare` (warnings for damage)."""
    import json

    import pandas as pd

    from bnnbench.compare import ResultsSide
    from bnnbench.results import load_all

    try:
        loaded = load_all([path], check_artifacts=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        _bad_input("compare", f"cannot read the results in {path}: {' '.join(str(err).split())}")
    for damage in loaded.damage:
        _say(f"warning: left out: {damage}")
    if loaded.runs.empty:
        _bad_input("compare", f"{path}/runs.csv holds no runs")
    calibration = {}
    for file in sorted(path.glob("calibration-*.json")):
        try:
            doc = json.loads(file.read_text())
            calibration[str(doc["device"])] = float(doc["matmul_flops_per_s"])
        except (ValueError, KeyError, TypeError, OSError) as err:
            _say(f"warning: {file} is unreadable ({err}): calibration not compared")
    return ResultsSide(str(path), loaded.runs, loaded.traces, calibration, {})


def _cmd_compare(args: argparse.Namespace) -> int:
    import json
    from dataclasses import replace

    kinds = {_compare_input(p) for p in (args.baseline, args.candidate)}
    if len(kinds) > 1:
        _bad_input(
            "compare",
            f"cannot compare a results folder with a benchmark JSON file ({args.baseline}, "
            f"{args.candidate}): give two of the same kind",
        )
    from bnnbench.compare import (
        CompareInputError,
        Options,
        compare_benchmarks,
        compare_results,
        render,
    )

    options = Options(
        threshold=args.threshold,
        compile_threshold=args.compile_threshold,
        predict_threshold=args.predict_threshold,
        memory_threshold=args.memory_threshold,
        alpha=args.alpha,
        allow_other_machine=args.allow_other_machine,
        fail_on_quality=args.fail_on_quality,
    )
    try:
        if kinds == {"results"}:
            from bnnbench.recommend import infer_test_size
            from bnnbench.results import n_test_per_spec

            base, cand = _compare_side(args.baseline), _compare_side(args.candidate)
            n_test = {**n_test_per_spec(cand.runs), **n_test_per_spec(base.runs)}
            for model, accs in _compare_accuracies(base.runs, cand.runs).items():
                if model not in n_test and (n := infer_test_size(accs)):
                    n_test[model] = n
            base, cand = replace(base, n_test=n_test), replace(cand, n_test=n_test)
            report = compare_results(base, cand, options)
        else:
            docs = []
            for path in (args.baseline, args.candidate):
                try:
                    docs.append(json.loads(path.read_text()))
                except (ValueError, UnicodeDecodeError) as err:
                    _bad_input("compare", f"{path} is not readable JSON ({err})")
            report = compare_benchmarks(
                docs[0], docs[1], options, (str(args.baseline), str(args.candidate))
            )
    except CompareInputError as err:
        _bad_input("compare", str(err))
    text = render(report, args.format)
    print(text, end="" if text.endswith("\n") else "\n", flush=True)  # before stderr's line
    if report.exit_code == 2:
        _say(f"bnnbench compare: error: {report.error}")
    elif report.exit_code == 1:
        names = ", ".join(c.name for c in report.regressions)
        _say(f"bnnbench compare: regression: {names}")
    return report.exit_code


def _compare_accuracies(*frames) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    """Per spec, every stored accuracy of ``frames`` (to infer the test-set size)."""
    out: dict[str, list[float]] = {}
    for runs in frames:
        if "accuracy" not in runs:
            continue
        for model, acc in zip(runs["model"], runs["accuracy"], strict=True):
            out.setdefault(str(model), []).append(float(acc))
    return out


def _cmd_data(args: argparse.Namespace) -> int:
    from bnnbench.datasets import DataUnavailableError, fetch

    try:
        path = fetch(args.dataset, force=args.force)
    except DataUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.dataset}: {path} (sha256 verified)")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from bnnbench.harness import calibrate_devices
    from bnnbench.safety import is_results_dir, write_marker

    if args.out.exists() and not args.out.is_dir():
        _bad_input("calibrate", f"--out {args.out} is a file, not a folder")
    new = not args.out.exists() or not any(args.out.iterdir())
    ok = calibrate_devices(args.out, args.device, force=True, verbose=True)
    if new or is_results_dir(args.out):
        write_marker(args.out)  # bnnbench's folder: a later `run --out` may use it
    return 0 if ok else 1


def _cmd_reference(args: argparse.Namespace) -> int:
    from bnnbench.reference import main as reference_main

    argv = [args.model, "--chains", str(args.chains), "--warmup", str(args.warmup)]
    argv += ["--samples", str(args.samples), "--seed", str(args.seed)]
    if args.out is not None:
        argv += ["--out", str(args.out)]
    return reference_main(argv)


def _cmd_migrate(args: argparse.Namespace) -> int:
    from bnnbench.record import SCHEMA_VERSION
    from bnnbench.results import SchemaVersionError, migrate_folder
    from bnnbench.safety import DirInUseError, ResultsLock

    for d in args.dirs:
        if not (d / "runs.csv").is_file():
            _bad_input("migrate", f"{d} holds no runs.csv (not a bnnbench results folder)")
    for d in args.dirs:
        try:
            with ResultsLock(d):
                rows = migrate_folder(d)
        except DirInUseError as err:
            _bad_input("migrate", str(err))
        except SchemaVersionError as err:
            _bad_input("migrate", str(err))
        print(f"{d}: {rows} records migrated to schema version {SCHEMA_VERSION}")
    return 0


def _cmd_list() -> int:
    from bnnbench.config import PROFILE_DESCRIPTIONS
    from bnnbench.harness import SuiteError, load_suite, suite_names
    from bnnbench.spec import get_spec

    print("models:")
    for name in SPEC_NAMES:
        print(f"  {name:<20} {get_spec(name).description}")
    print(f"backends: {', '.join(BACKENDS)}")
    print("profiles:")
    for name in PROFILES:
        print(f"  {name:<20} {PROFILE_DESCRIPTIONS[name]}")
    print(f"devices: {', '.join(DEVICES)}")
    print("suites:")
    broken = 0
    for name in suite_names():
        try:
            description = load_suite(name).description
        except SuiteError as err:
            broken += 1
            description = f"BROKEN: {err}"
        print(f"  {name:<20} {description}")
    print("  (or the path of your own suite file: bnnbench run --suite my_grid.toml)")
    return 1 if broken else 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (argparse's own errors raise ``SystemExit(2)``)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "verify":
            return _cmd_verify(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "recommend":
            return _cmd_recommend(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "data":
            return _cmd_data(args)
        if args.command == "calibrate":
            return _cmd_calibrate(args)
        if args.command == "reference":
            return _cmd_reference(args)
        if args.command == "plan":
            return _cmd_plan(args)
        if args.command == "migrate":
            return _cmd_migrate(args)
        return _cmd_list()
    except OSError as err:  # disk full, read-only folder, permissions: one line, no traceback
        where = f": {err.filename}" if err.filename else ""
        _say(f"bnnbench {args.command}: error: {err.strerror or err}{where}")
        return 1
    except KeyboardInterrupt:
        _say("\ninterrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
