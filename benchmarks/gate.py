r"""The CI performance gate: the candidate against the last landed revision, on this machine, now.

``python -P -m bnnbench.benchmarks.gate [--baseline REV] [--out DIR] [--format markdown]``

**Both sides in one job, interleaved.** Each side's ``bnnbench`` package is laid out from its
source tree as ``pip install`` would (the ``package-dir`` map of its ``pyproject.toml``) into a
private folder put first on ``PYTHONPATH`` (the libraries are this environment's; the baseline's
tree is ``git archive REV``). One worker process per side (:mod:`gate_worker`, one
BLAS/OpenMP/XLA/torch thread) compiles its sessions once and then times single calls on demand;
the driver asks the two sides in ABBA blocks (A B B A: a drift or a burst of load during the
job falls on both sides alike), the randomised A/B ("duet") design that the literature finds
far more accurate on shared machines than comparing with a stored run.

**Cases** (the perf suite's workloads, :mod:`bnnbench.benchmarks.perf.test_perf`): per backend,
the steady-state ``moons_2x5`` step (a call = ``steps_per_call`` steps, sized per backend so
that a call takes about 0.1 s on the 2-core reference machine: :data:`STEPS_PER_CALL`; shorter
calls let scheduler jitter dominate the ratio) and compiling a new session's step.

**Decision**, per case: a ratio :math:`r` candidate/baseline with a 95 % interval and a test.

- Steps: block :math:`k` gives :math:`\ell_k = \log\frac{b_{k1} + b_{k2}}{a_{k1} + a_{k2}}`;
  :math:`\hat r = \exp(\bar\ell)`, its interval a bootstrap over blocks (fixed seed), the test
  Wilcoxon's signed-rank test of :math:`\ell_k` against 0.
- Compile (seconds a call; few of them): the ratio of the medians of the calls, a bootstrap
  interval over calls, the two-sided Mann-Whitney U test.

asv's rule, a statistic and a factor together:
:math:`\text{slower} \iff \text{CI}_{95}(r) > 1 \wedge p < \alpha \wedge \hat r > 1 + t`, with
``t`` the step or the (wider) compile threshold; *unchanged* when the interval lies within
:math:`[1/(1+t), 1+t]`; else *inconclusive*. An inconclusive or slower case is measured again
with fresh worker processes (pass 2, B A A B blocks), and once more (pass 3) when exactly one of
the two passes was slower: a case is *slower* only when two passes, each on its own, are slower
(:func:`final_verdict`), so that a persistent offset between two particular processes cannot
fail the gate. Exit 1 only on a slower case. Exit 2: it could not measure (a revision that
does not build or run), with why, in one line.

The baseline revision: ``--baseline``, else ``$BNNBENCH_GATE_BASELINE``, else the revision in
``.ci/gate-baseline`` (the last landed revision), else ``HEAD~1``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import stats

from bnnbench import evidence as ev
from bnnbench.compare import (
    DEFAULT_ALPHA,
    DEFAULT_COMPILE_THRESHOLD,
    DEFAULT_THRESHOLD,
    metric_verdict,
)
from bnnbench.evidence import Interval
from bnnbench.provenance import COMPILE_CACHE_VARIABLES
from bnnbench.registry import backend_info, backend_names
from bnnbench.spec import get_spec

#: Gate report format version (``--format json``).
SCHEMA_VERSION = 1
#: One thread per library, as ``tox -e perf``.
PINNED_THREADS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}
#: Defaults of the decision, ``bnnbench compare``'s (measured: README, results/gate_quality).
STEP_THRESHOLD = DEFAULT_THRESHOLD
COMPILE_THRESHOLD = DEFAULT_COMPILE_THRESHOLD
ALPHA = DEFAULT_ALPHA
#: ABBA blocks per case in the first round: steps, compile.
STEP_BLOCKS, COMPILE_BLOCKS = 20, 3
#: The workloads (as in benchmarks/perf/test_perf.py: moons_2x5, batch 50).
MODEL, BATCH_SIZE = "moons_2x5", 50
#: Steps in one timed call, per backend: about 0.1 s a call on the 2-core reference VM
#: (results/default: PyMC 0.1 ms, NumPyro 0.065 ms, Pyro 1.8 ms, torch-ml 0.5 ms a step).
#: A backend not listed gets :data:`DEFAULT_STEPS_PER_CALL`.
STEPS_PER_CALL = {"pymc": 1000, "numpyro": 1500, "pyro": 60, "torch-ml": 200}
DEFAULT_STEPS_PER_CALL = 200

CaseKind = Literal["train", "compile"]
Verdict = Literal["slower", "faster", "unchanged", "inconclusive", "no data"]


class GateError(RuntimeError):
    """The gate could not measure (exit 2)."""


@dataclass(frozen=True)
class Case:
    """One timed call: ``kind`` ``train`` (``steps_per_call`` steps) or ``compile``."""

    name: str
    kind: CaseKind
    backend: str
    model: str = MODEL
    batch_size: int = BATCH_SIZE
    steps_per_call: int = DEFAULT_STEPS_PER_CALL
    device: str = "cpu"


@dataclass
class CaseResult:
    """The measurements and the verdict of one case.

    Attributes
    ----------
    baseline_s, candidate_s
        Every timed call, in the order taken (ABBA blocks: a, b, b, a).
    ratio
        Candidate/baseline (see the module docstring) with its 95 % interval.
    p_value, test
        The test's p-value and its name.
    threshold, verdict, blocks
        The factor used, the verdict, and the ABBA blocks measured (every pass).
    passes
        Each pass's own verdict (a pass: fresh worker processes for both sides).
    """

    case: Case
    baseline_s: list[float] = field(default_factory=list)
    candidate_s: list[float] = field(default_factory=list)
    ratio: Interval = field(default_factory=lambda: Interval(math.nan, math.nan, math.nan))
    p_value: float = math.nan
    test: str = ""
    threshold: float = math.nan
    verdict: Verdict = "no data"
    blocks: int = 0
    passes: list[Verdict] = field(default_factory=list)


@dataclass
class GateReport:
    """What the gate measured and decided (``schema_version`` 1)."""

    baseline: str
    candidate: str
    thresholds: dict[str, float]
    alpha: float
    results: list[CaseResult]
    setup_s: dict[str, float]
    wall_s: float
    schema_version: int = SCHEMA_VERSION

    @property
    def exit_code(self) -> int:
        return int(any(r.verdict == "slower" for r in self.results))


def cases(backends: list[str] | None = None, device: str = "cpu") -> list[Case]:
    """The gate's cases: every installed backend's ``moons_2x5`` step and compile."""
    implemented = get_spec(MODEL).implementations
    names = [
        b
        for b in (backends or backend_names())
        if b in implemented and not backend_info(b).missing_packages()
    ]
    return [
        Case(
            f"{kind} {b}",
            kind,
            b,
            steps_per_call=STEPS_PER_CALL.get(b, DEFAULT_STEPS_PER_CALL),
            device=device,
        )
        for kind in ("train", "compile")
        for b in names
    ]


# ------------------------------------------------------------------------------ the two sides
def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise GateError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def baseline_revision(repo: Path, given: str | None) -> str:
    """The revision to compare against (see the module docstring), as a full hash."""
    rev = given or os.environ.get("BNNBENCH_GATE_BASELINE")
    marker = repo / ".ci" / "gate-baseline"
    if not rev and marker.is_file():
        lines = [ln.split("#")[0].strip() for ln in marker.read_text().splitlines()]
        rev = next((ln for ln in lines if ln), None)
    return _git(repo, "rev-parse", "--verify", f"{rev or 'HEAD~1'}^{{commit}}")


def export_revision(repo: Path, rev: str, dest: Path) -> Path:
    """The tree of ``rev`` (``git archive``) in ``dest``."""
    dest.mkdir(parents=True)
    archive = dest.with_suffix(".tar")
    _git(repo, "archive", "--format=tar", f"--output={archive}", rev)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()
    return dest


def lay_out_package(source: Path, site: Path) -> Path:
    """Copy the ``bnnbench`` package of the tree ``source`` into ``site`` as an install lays it
    out: each ``package-dir`` entry of its ``pyproject.toml`` (``bnnbench.models = "models"``
    ...) becomes the matching sub-folder. :class:`GateError` when the tree has none."""
    pyproject = source / "pyproject.toml"
    if not pyproject.is_file():
        raise GateError(f"{source} has no pyproject.toml")
    try:
        config = tomllib.loads(pyproject.read_text())
    except tomllib.TOMLDecodeError as err:
        raise GateError(f"{pyproject}: {err}") from err
    mapping = config.get("tool", {}).get("setuptools", {}).get("package-dir", {"bnnbench": "."})
    for name, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        if not name.startswith("bnnbench"):
            continue
        src = source / folder
        if not src.is_dir():
            raise GateError(f"{source}: package-dir {name} = {folder!r} is missing")
        shutil.copytree(
            src,
            site.joinpath(*name.split(".")),
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    if not (site / "bnnbench" / "__init__.py").is_file():
        raise GateError(f"{source} lays out no bnnbench package")
    return site


class Worker:
    """A side's worker process (:mod:`gate_worker`): compiled sessions, one call a request."""

    def __init__(self, label: str, site: Path, case_list: list[Case], log: Path) -> None:
        self.label = label
        self._log = open(log, "w")
        # a persistent compilation cache would time a cache read, not a compile
        inherited = {k: v for k, v in os.environ.items() if k not in COMPILE_CACHE_VARIABLES}
        env = {**inherited, **PINNED_THREADS, "PYTHONPATH": str(site), "PYTHONHASHSEED": "0"}
        script = Path(__file__).with_name("gate_worker.py")
        payload = json.dumps([asdict(c) for c in case_list])
        self._proc = subprocess.Popen(
            [sys.executable, "-P", str(script), payload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            cwd=site,
        )
        ready = self._answer()
        self.setup_s = float(ready["setup_s"])
        self.package = Path(ready["package"])
        if not self.package.is_relative_to(site):  # the side's code, or no comparison at all
            self.close()
            raise GateError(
                f"{label}: the worker imported bnnbench from {self.package}, not {site}"
            )

    def _answer(self) -> dict:
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        if not line:
            self._proc.wait(timeout=30)
            tail = " | ".join(Path(self._log.name).read_text().strip().splitlines()[-3:])
            raise GateError(
                f"{self.label}: the worker ended (exit {self._proc.returncode}): {tail}"
            )
        return json.loads(line)

    def time(self, case: Case) -> float:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"case": case.name}) + "\n")
        self._proc.stdin.flush()
        return float(self._answer()["seconds"])

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(json.dumps({"quit": True}) + "\n")
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._log.close()


# ------------------------------------------------------------------------------ the decision
def _block_log_ratios(a: list[float], b: list[float]) -> np.ndarray:
    """Per ABBA block, log((b1 + b2) / (a1 + a2)); calls are stored per side in order."""
    a2, b2 = np.asarray(a).reshape(-1, 2), np.asarray(b).reshape(-1, 2)
    return np.log(b2.sum(axis=1) / a2.sum(axis=1))


def judge(result: CaseResult, threshold: float, alpha: float) -> CaseResult:
    """Ratio, interval, test and verdict of ``result`` from its calls (module docstring)."""
    name = result.case.name
    rng = ev.rng_for(ev.BOOTSTRAP_SEED, "gate", name)
    a, b = np.asarray(result.baseline_s), np.asarray(result.candidate_s)
    if result.case.kind == "train":
        logs = _block_log_ratios(result.baseline_s, result.candidate_s)
        idx = rng.integers(0, logs.size, size=(ev.BOOTSTRAP_REPLICATES, logs.size))
        boot = np.exp(logs[idx].mean(axis=1))
        lo, hi = np.percentile(boot, [2.5, 97.5])
        result.ratio = Interval(float(np.exp(logs.mean())), float(lo), float(hi))
        result.p_value = float(stats.wilcoxon(logs).pvalue) if np.any(logs != 0) else 1.0
        result.test = (
            f"Wilcoxon signed-rank of {logs.size} ABBA blocks' log ratios; bootstrap interval "
            "of their mean"
        )
    else:
        result.ratio = ev.bootstrap_median_ratio(b, a, rng, ev.rng_for(ev.BOOTSTRAP_SEED, name))
        result.p_value = ev.mann_whitney_p(b, a)
        result.test = f"Mann-Whitney U of {b.size} vs {a.size} calls; bootstrap of the medians"
    result.threshold = threshold
    result.verdict = metric_verdict(result.ratio, result.p_value, threshold, alpha)
    return result


def measure_blocks(
    result: CaseResult, baseline: Worker, candidate: Worker, blocks: int, flip: bool = False
) -> None:
    """``blocks`` ABBA blocks of one case (BAAB when ``flip``), appended to ``result``."""
    first, second = (candidate, baseline) if flip else (baseline, candidate)
    for _ in range(blocks):
        for worker in (first, second, second, first):
            seconds = worker.time(result.case)
            (result.baseline_s if worker is baseline else result.candidate_s).append(seconds)
        result.blocks += 1


def final_verdict(pooled: Verdict, passes: list[Verdict]) -> Verdict:
    """A case's verdict: the pooled data's, except that *slower* needs two passes (each with
    fresh worker processes) that are slower on their own; and two such passes are slower
    whatever the pooled data say. A persistent offset between two particular processes (memory
    layout, cache placement) then cannot fail the gate alone."""
    confirmed = sum(v == "slower" for v in passes) >= 2
    if confirmed:
        return "slower"
    return "inconclusive" if pooled == "slower" else pooled


def _measure_pass(
    case_list: list[Case],
    sites: list[Path],
    labels: tuple[str, str],
    work: Path,
    tag: str,
    blocks_of: dict[str, int],
    flip: bool,
    workers_setup: dict[str, float],
) -> dict[str, CaseResult]:
    """One pass: fresh workers for both sides, ``blocks_of[case]`` ABBA blocks of each case."""
    workers: list[Worker] = []
    try:
        for label, site, side in zip(labels, sites, ("baseline", "candidate"), strict=True):
            workers.append(Worker(label, site, case_list, work / f"worker-{side}-{tag}.log"))
            workers_setup[f"{label} {tag}"] = workers[-1].setup_s
        base, cand = workers
        out = {}
        for case in case_list:
            out[case.name] = CaseResult(case)
            measure_blocks(out[case.name], base, cand, blocks_of[case.name], flip=flip)
        return out
    finally:
        for w in workers:
            w.close()


def run_gate(
    baseline_source: Path,
    candidate_source: Path,
    *,
    labels: tuple[str, str] = ("baseline", "candidate"),
    backends: list[str] | None = None,
    threshold: float = STEP_THRESHOLD,
    compile_threshold: float = COMPILE_THRESHOLD,
    alpha: float = ALPHA,
    step_blocks: int = STEP_BLOCKS,
    compile_blocks: int = COMPILE_BLOCKS,
    retries: int = 2,
    work: Path | None = None,
    progress: bool = True,
) -> GateReport:
    """Lay out both packages and measure and decide every case.

    Pass 1 measures every case with one worker per side. A case that is *slower* or
    *inconclusive* is measured again in pass 2 with fresh workers (B A A B blocks); a case
    slower in exactly one of the two passes gets pass 3 (``retries`` bounds the extra passes).
    Each case's verdict is :func:`final_verdict` of its pooled calls and its passes' verdicts.
    """
    started = time.perf_counter()
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="bnnbench-gate-")) if work is None else work
    work.mkdir(parents=True, exist_ok=True)
    case_list = cases(backends)
    thresholds = {c.name: threshold if c.kind == "train" else compile_threshold for c in case_list}
    blocks_of = {c.name: step_blocks if c.kind == "train" else compile_blocks for c in case_list}
    setup: dict[str, float] = {}
    try:
        sites = [
            lay_out_package(src, work / f"site-{tag}")
            for src, tag in ((baseline_source, "baseline"), (candidate_source, "candidate"))
        ]
        passes: dict[str, list[CaseResult]] = {c.name: [] for c in case_list}
        todo = list(case_list)
        for n in range(1 + retries):
            if not todo:
                break
            done = _measure_pass(
                todo, sites, labels, work, f"pass{n + 1}", blocks_of, n % 2 == 1, setup
            )
            for name, result in done.items():
                passes[name].append(judge(result, thresholds[name], alpha))
            verdicts = {c.name: [r.verdict for r in passes[c.name]] for c in todo}
            if n == 0:
                todo = [c for c in todo if verdicts[c.name][0] in ("slower", "inconclusive")]
            else:  # a third pass only to settle one slower pass against one that was not
                todo = [c for c in todo if verdicts[c.name].count("slower") == 1]
        results = []
        for case in case_list:
            runs = passes[case.name]
            pooled = CaseResult(
                case,
                [x for r in runs for x in r.baseline_s],
                [x for r in runs for x in r.candidate_s],
                blocks=sum(r.blocks for r in runs),
            )
            judge(pooled, thresholds[case.name], alpha)
            pooled.passes = [r.verdict for r in runs]
            pooled.verdict = final_verdict(pooled.verdict, pooled.passes)
            if progress:
                print(
                    f"  {case.name}: {pooled.ratio.estimate:.3f}x "
                    f"[{pooled.ratio.low:.3f}, {pooled.ratio.high:.3f}] p={pooled.p_value:.2g} "
                    f"{pooled.verdict} (passes: {', '.join(pooled.passes)})",
                    file=sys.stderr,
                    flush=True,
                )
            results.append(pooled)
        return GateReport(
            baseline=labels[0],
            candidate=labels[1],
            thresholds={"step": threshold, "compile": compile_threshold},
            alpha=alpha,
            results=results,
            setup_s=setup,
            wall_s=time.perf_counter() - started,
        )
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------ the output
def _per_unit(r: CaseResult, seconds: list[float]) -> float:
    """Median ms per step (train) or per compile."""
    per = r.case.steps_per_call if r.case.kind == "train" else 1
    return 1000.0 * float(np.median(seconds)) / per if seconds else math.nan


def render(report: GateReport, fmt: Literal["text", "markdown", "json"] = "markdown") -> str:
    """The gate's verdicts as a markdown table (a CI job summary), text or JSON."""
    if fmt == "json":
        doc = asdict(report)
        doc["exit_code"] = report.exit_code
        return json.dumps(doc, indent=2, default=float) + "\n"
    rows = [
        (
            r.case.name,
            "ms/step" if r.case.kind == "train" else "ms/compile",
            f"{_per_unit(r, r.baseline_s):.4g}",
            f"{_per_unit(r, r.candidate_s):.4g}",
            f"{r.ratio.estimate:.3f}× [{r.ratio.low:.3f}, {r.ratio.high:.3f}]",
            f"{r.p_value:.2g}",
            f"±{100 * r.threshold:.0f} %",
            str(r.blocks),
            ", ".join(r.passes),
            r.verdict,
        )
        for r in report.results
    ]
    header = ("case", "unit", "baseline", "candidate", "ratio [95 %]", "p", "threshold")
    header += ("blocks", "passes", "verdict")
    slower = [r.case.name for r in report.results if r.verdict == "slower"]
    verdict = (
        f"**Regression**: {', '.join(slower)} (exit 1)"
        if slower
        else "No significant regression beyond the thresholds (exit 0)"
    )
    title = f"Performance gate: {report.candidate} against {report.baseline}"
    note = (
        f"ABBA blocks of both sides interleaved in one job, one thread per library; "
        f"slower = interval above 1, p < {report.alpha:g} and ratio beyond the threshold; "
        f"{report.wall_s:.0f} s in all."
    )
    if fmt == "markdown":
        lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join([*lines, "", verdict, "", note, ""])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt_row = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [title, "", fmt_row.format(*header), *(fmt_row.format(*row) for row in rows)]
    return "\n".join([*lines, "", verdict.replace("**", ""), note, ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m bnnbench.benchmarks.gate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the checkout (default .)")
    parser.add_argument("--baseline", help="revision to compare against (see above)")
    parser.add_argument("--baseline-dir", type=Path, help="a source tree instead of a revision")
    parser.add_argument("--candidate-dir", type=Path, help="the candidate's tree (default --repo)")
    parser.add_argument("--backends", nargs="+", help="only these backends (default: all)")
    parser.add_argument("--threshold", type=float, default=STEP_THRESHOLD)
    parser.add_argument("--compile-threshold", type=float, default=COMPILE_THRESHOLD)
    parser.add_argument("--alpha", type=float, default=ALPHA)
    parser.add_argument("--blocks", type=int, default=STEP_BLOCKS, help="ABBA blocks a step")
    parser.add_argument("--compile-blocks", type=int, default=COMPILE_BLOCKS)
    parser.add_argument(
        "--retries", type=int, default=2, help="extra passes for undecided cases (default 2)"
    )
    parser.add_argument("--out", type=Path, help="write the report (JSON) and worker logs here")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="markdown")
    args = parser.parse_args(argv)
    if min(args.blocks, args.compile_blocks) < 2 or args.retries < 0:
        parser.error("--blocks and --compile-blocks must be at least 2, --retries at least 0")
    if not (args.threshold > 0 and args.compile_threshold > 0 and 0 < args.alpha < 1):
        parser.error("thresholds must be positive and --alpha in (0, 1)")
    for b in args.backends or []:
        if b not in backend_names():
            parser.error(f"unknown backend {b!r} (choose from {', '.join(backend_names())})")
    repo = args.repo.resolve()
    scratch = Path(tempfile.mkdtemp(prefix="bnnbench-gate-"))
    try:
        candidate = (args.candidate_dir or repo).resolve()
        if args.baseline_dir is not None:
            baseline, label = args.baseline_dir.resolve(), str(args.baseline_dir)
        else:
            rev = baseline_revision(repo, args.baseline)
            baseline, label = export_revision(repo, rev, scratch / "baseline"), rev[:12]
        print(f"gate: {label} (baseline) against {candidate} (candidate)", file=sys.stderr)
        report = run_gate(
            baseline,
            candidate,
            labels=(label, "candidate"),
            backends=args.backends,
            threshold=args.threshold,
            compile_threshold=args.compile_threshold,
            alpha=args.alpha,
            step_blocks=args.blocks,
            compile_blocks=args.compile_blocks,
            retries=args.retries,
            work=args.out.resolve() if args.out else scratch / "work",
        )
    except GateError as err:
        print(f"gate: cannot measure: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(render(report, args.format), end="")
    if args.out:
        (args.out / "gate.json").write_text(render(report, "json"))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as fh:
            fh.write(render(report, "markdown"))
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
