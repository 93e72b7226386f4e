"""The ``bnnbench`` command: ``run``, ``verify``, ``report``, ``calibrate``, ``reference``,
``data`` and ``list``.

Exit codes: 0 success; 1 a cell failed (``run``) or the backends disagree (``verify``); 2 bad
input (unknown model/backend/profile/device/suite, or a results folder that would be clobbered).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path

from bnnbench.spec import SPEC_NAMES
from bnnbench.types import BACKENDS, BAYESIAN_BACKENDS, DEVICES, PROFILES

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bnnbench",
        description="Benchmark Bayesian neural networks across PyMC, Pyro and NumPyro.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run benchmark cells, each in its own process")
    run.add_argument("--suite", help="a named suite from benchmarks/suites (see `bnnbench list`)")
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
    run.add_argument("--out", type=Path, required=True, help="results folder")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help="skip cells already finished in --out (failed cells run again)",
    )
    mode.add_argument(
        "--overwrite", action="store_true", help="delete the results already in --out first"
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

    data = sub.add_parser("data", help="obtain the data sets the specs need")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser("fetch", help="download, verify and cache a data set")
    fetch.add_argument("dataset", choices=["mnist"], help="data set (choose from mnist)")
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
        "reference", help="compute a spec's NUTS reference posterior (moons_2x5)"
    )
    reference.add_argument("model", choices=["moons_2x5"], help="spec (choose from moons_2x5)")
    reference.add_argument("--out", type=Path, help="netCDF file (default: the stored location)")
    reference.add_argument("--chains", type=int, default=4)
    reference.add_argument("--warmup", type=int, default=1000)
    reference.add_argument("--samples", type=int, default=1000, help="draws per chain")
    reference.add_argument("--seed", type=int, default=0)

    sub.add_parser("list", help="list specs, backends, profiles, devices and suites")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _cmd_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from bnnbench.harness import load_suite, plan_cells, plan_suite, run_cells
    from bnnbench.results import ResultStore

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
            cells = [
                c
                for c in plan_suite(load_suite(args.suite), seeds=args.seeds, **overrides)
                if (not args.models or c.model in args.models)
                and (not args.backends or c.backend in args.backends)
                and (not args.profile or c.profile in args.profile)
                and (not args.device or c.device in args.device)
            ]
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
            parser.error("give --suite NAME or --models MODEL ...")
    except ValueError as err:
        parser.error(str(err))
    store = ResultStore(args.out)
    if store.has_results() and not (args.resume or args.overwrite):
        parser.error(
            f"{args.out} already holds results: add --resume to finish them, "
            "--overwrite to replace them, or choose another --out"
        )
    if args.overwrite and args.out.exists():
        shutil.rmtree(args.out)
    # SIGTERM (a job scheduler, `kill`) stops the suite like Ctrl-C: the running cell's process is
    # killed and nothing of it is recorded.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        runs = run_cells(cells, args.out, resume=args.resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        done = len(store.runs()) if store.has_results() else 0
        print(
            f"\ninterrupted: {done} finished cells are in {args.out / 'runs.csv'}; "
            "run the same command with --resume to go on",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
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
    ]
    if len(all_runs):
        print(
            all_runs[[c for c in shown if c in all_runs]].to_string(
                index=False, float_format=lambda v: f"{v:.4g}"
            )
        )
    print(f"results: {args.out / 'runs.csv'}")
    failed = (runs["status"] == "failed").sum() if len(runs) else 0
    return 1 if failed else 0


def _cmd_verify(args: argparse.Namespace) -> int:
    # Verification is in float64: pytensor reads floatX once, at import.
    os.environ["PYTENSOR_FLAGS"] = ",".join(
        [f for f in os.environ.get("PYTENSOR_FLAGS", "").split(",") if f and "floatX" not in f]
        + ["floatX=float64"]
    )
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


def _cmd_report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from bnnbench.report import render_report

    for d in args.dirs:
        if not (d / "runs.csv").exists():
            parser.error(f"{d} holds no runs.csv (not a bnnbench results folder)")
    path = render_report(args.dirs, args.out, title=args.title)
    print(f"report: {path}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from bnnbench.datasets.mnist import DataUnavailableError, fetch_mnist

    try:
        path = fetch_mnist(force=args.force)
    except DataUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.dataset}: {path} (sha256 verified)")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from bnnbench.harness import calibrate_devices

    return 0 if calibrate_devices(args.out, args.device, force=True, verbose=True) else 1


def _cmd_reference(args: argparse.Namespace) -> int:
    from bnnbench.reference import main as reference_main

    argv = [args.model, "--chains", str(args.chains), "--warmup", str(args.warmup)]
    argv += ["--samples", str(args.samples), "--seed", str(args.seed)]
    if args.out is not None:
        argv += ["--out", str(args.out)]
    return reference_main(argv)


def _cmd_list() -> int:
    from bnnbench.config import PROFILE_DESCRIPTIONS
    from bnnbench.harness import load_suite, suite_names
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
    for name in suite_names():
        print(f"  {name:<20} {load_suite(name).description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return _cmd_run(args, parser)
    if args.command == "verify":
        return _cmd_verify(args)
    if args.command == "report":
        return _cmd_report(args, parser)
    if args.command == "data":
        return _cmd_data(args)
    if args.command == "calibrate":
        return _cmd_calibrate(args)
    if args.command == "reference":
        return _cmd_reference(args)
    return _cmd_list()


if __name__ == "__main__":
    sys.exit(main())
