"""Where the time of a ``tuned`` CPU training step or predictive draw goes (issue 14).

``python -P -m bnnbench.benchmarks.hotspots --case mnist_2x800-pyro-step --out results/hotspots``
profiles one case; ``--list`` names the cases. Each case is one (spec, backend) cell of the
``tuned`` profile on the CPU with the settings of ``benchmarks/suites/tuned_cpu.toml`` (batch
size, learning rate, ``trace_every``, predictive draws; the moons cases take the spec's defaults,
as ``results/profiles`` did), built the way the harness builds it: the cell's environment
(:func:`bnnbench.execution.cell_environment`: ``PYTENSOR_FLAGS`` floatX, ``JAX_PLATFORMS=cpu``,
...) is set before any backend library is imported, then ``get_backend(name).TrainingSession``,
``compile``, ``run_steps``, ``sample_posterior`` and ``predict`` are called as
:func:`bnnbench.measure.measure` calls them.

What it measures, written to ``<out>/<case>.txt`` (a few kB):

``step`` cases
    After compiling and two warm-up chunks: the steady-state step time (median over chunks of
    ``trace_every`` steps, as ``step_ms``), then

    - torch backends (Pyro, torch-ml): ``torch.profiler`` over a few chunks, the top-20 operators
      by self CPU time, and the share of the profiled wall time spent inside any torch operator
      (the rest is Python: Pyro's tracing, poutine messengers, the optimizer's Python loop);
    - JAX backends (NumPyro, PyMC's jax mode): the compiled XLA executable timed alone against the
      whole ``run_steps`` call (the difference is host work), XLA's own cost analysis of one step
      (flops, bytes accessed) next to the roofline ceilings, and a per-XLA-operation table taken
      from ``jax.profiler``'s Perfetto trace when this jaxlib records XLA:CPU operations;
    - every backend: ``py-spy record --idle`` of the same window, summarised as the share of the
      samples of the Python thread by leaf function (where the interpreter is when sampled: a call
      into C, such as an XLA execution or a torch kernel, is charged to the Python line that made
      it) and by package, plus an inclusive table.

``predict`` cases
    The harness's figure, ``predict_ms_per_draw`` (one ``posterior_predictive`` over the 10k test
    images, posterior draw included, compiled on its first call), split into its parts: the
    posterior draw and the predictive calls, each cold (first call, as the harness times it) and
    warm (a second call: steady state); then the warm pass profiled as above.

``--threads N`` pins the OMP/MKL/OpenBLAS pools (the harness leaves them at every core): on a
loaded machine torch's pools oversubscribe the cores and tiny operators wait for descheduled
workers, which hides the per-call overheads a small model is made of.

Timings are wall-clock on whatever else the machine is running: they are indicative, the
proportions are the finding.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bnnbench.config import CellConfig
from bnnbench.execution import cell_environment
from bnnbench.measure import chunk_sizes
from bnnbench.spec import get_spec

__all__ = ["CASES", "Case", "main"]


@dataclass(frozen=True)
class Case:
    """One profiled cell: the spec, the backend and what is timed (``step`` or ``predict``)."""

    model: str
    backend: str
    kind: str

    @property
    def name(self) -> str:
        return f"{self.model}-{self.backend}-{self.kind}"


#: Settings of ``benchmarks/suites/tuned_cpu.toml`` per spec (steps, trace_every, draws); the
#: moons spec is not in that suite: its defaults (``results/profiles``).
SUITE: dict[str, dict[str, int]] = {
    "mnist_2x800": dict(steps=200, trace_every=25, predict_draws=10),
    "mnist_conv": dict(steps=24, trace_every=4, predict_draws=5),
    "moons_2x5": dict(steps=10_000, trace_every=100, predict_draws=500),
}

#: The unmet targets of issue 14 (and torch-ml, the reference, beside them).
CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("mnist_2x800", "numpyro", "step"),
        Case("mnist_2x800", "pyro", "step"),
        Case("mnist_2x800", "pymc", "step"),
        Case("mnist_2x800", "torch-ml", "step"),
        Case("mnist_conv", "pymc", "step"),
        Case("mnist_2x800", "numpyro", "predict"),
        Case("mnist_2x800", "pyro", "predict"),
        Case("mnist_2x800", "pymc", "predict"),
        Case("mnist_conv", "numpyro", "predict"),
        Case("mnist_conv", "pyro", "predict"),
        Case("mnist_conv", "pymc", "predict"),
        Case("mnist_conv", "torch-ml", "predict"),
        Case("moons_2x5", "pyro", "step"),
        Case("moons_2x5", "torch-ml", "step"),
    )
}

#: Rows of every summary table.
TOP = 20


# ------------------------------------------------------------------------------ small helpers
class Report:
    """The case's text output, printed as it is written."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def section(self, title: str) -> None:
        self("")
        self(title)
        self("-" * len(title))

    def table(self, rows: Sequence[Sequence[object]], header: Sequence[str]) -> None:
        cells = [[str(h) for h in header], *[[_fmt(v) for v in row] for row in rows]]
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        for i, row in enumerate(cells):
            self(
                "  ".join(
                    v.ljust(w) if j == 0 else v.rjust(w)
                    for j, (v, w) in enumerate(zip(row, widths, strict=True))
                ).rstrip()
            )
            if i == 0:
                self("  ".join("-" * w for w in widths))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _timed(fn: Callable[[], object]) -> float:
    """Seconds of one call of ``fn``."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


# --------------------------------------------------------------------------------- py-spy
def _short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``."""
    m = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in ("site-packages/", "/work/main/", "lib/python3.12/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


def _package(frame: str) -> str:
    m = re.match(r"^.* \((.*)\)$", _short(frame))
    path = m.group(1) if m else frame
    top = path.split("/", 1)[0]
    if top in ("bnnbench", "benchmarks", "models"):
        return "bnnbench"
    return top.removesuffix(".py") if top.endswith(".py") else top


@contextlib.contextmanager
def pyspy(out: Path, rate: int = 200) -> Iterator[dict[str, Any]]:
    """``py-spy record --idle --format raw`` of this process while the block runs; yields a dict
    that holds the parsed samples (``stacks``: list of (frames, count)) once the block is done."""
    result: dict[str, Any] = {"stacks": [], "error": ""}
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        result["error"] = "py-spy is not installed"
        yield result
        return
    cmd = [
        exe,
        "record",
        "--pid",
        str(os.getpid()),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--idle",
        "--nonblocking",
        "--output",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)  # py-spy attaches
    try:
        yield result
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            log, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            log, _ = proc.communicate()
        if out.exists():
            for line in out.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    result["stacks"].append((stack.split(";"), int(count)))
            out.unlink()
        else:
            result["error"] = f"py-spy wrote nothing: {log.strip()[-500:]}"


def pyspy_summary(report: Report, stacks: list[tuple[list[str], int]], marker: str) -> None:
    """Self (leaf) and inclusive shares of the samples whose stack passes through ``marker`` (the
    profiled loop), and the split by the leaf frame's package."""
    kept = [(frames, n) for frames, n in stacks if any(marker in f for f in frames)]
    total = sum(n for _, n in kept)
    if not total:
        report("(no py-spy samples inside the profiled loop)")
        return
    report(f"{total} samples of the Python thread inside the profiled loop")
    leaf: collections.Counter[str] = collections.Counter()
    package: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, n in kept:
        # frames run outermost first; the loop's own frame and those above it are not counted
        start = max(i for i, f in enumerate(frames) if marker in f)
        inner = frames[start + 1 :] or frames[start:]
        leaf[_short(inner[-1])] += n
        package[_package(inner[-1])] += n
        for f in {_short(f) for f in inner}:
            inclusive[f] += n
    report("")
    report("by package of the leaf frame (where the interpreter was):")
    report.table(
        [(k, 100.0 * v / total) for k, v in package.most_common(TOP)], ["package", "% samples"]
    )
    report("")
    report("self (leaf frame; C calls are charged to the Python line that made them):")
    report.table(
        [(k, 100.0 * v / total) for k, v in leaf.most_common(TOP)], ["function (file)", "% samples"]
    )
    report("")
    report("inclusive (the function is on the stack):")
    report.table(
        [(k, 100.0 * v / total) for k, v in inclusive.most_common(TOP)],
        ["function (file)", "% samples"],
    )


# ---------------------------------------------------------------------------------- torch
def torch_profile(report: Report, work: Callable[[], None], calls: int, unit: str) -> None:
    """``torch.profiler`` over ``calls`` calls of ``work``: the top operators by self CPU time and
    the share of the wall time inside any torch operator."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        for _ in range(calls):
            work()
        wall = time.perf_counter() - t
    averages = prof.key_averages()
    self_us = sum(e.self_cpu_time_total for e in averages)
    report(
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads; {calls} "
        f"{unit}s profiled: {1000 * wall / calls:.3g} ms per {unit} under the profiler"
    )
    report(
        f"inside torch operators (sum of self CPU time): {self_us / 1000 / calls:.3g} ms per "
        f"{unit} = {100 * self_us / 1e6 / wall:.1f}% of the profiled wall time; outside any "
        f"operator (Python, Pyro's tracing, dispatch): {100 - 100 * self_us / 1e6 / wall:.1f}%"
    )
    counts = sum(e.count for e in averages)
    report(f"operator calls: {counts / calls:.0f} per {unit}")
    rows = []
    for e in sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:TOP]:
        rows.append(
            (
                e.key[:48],
                e.count // calls,
                e.self_cpu_time_total / 1000 / calls,
                100 * e.self_cpu_time_total / 1e6 / wall,
                e.cpu_time_total / 1000 / calls,
            )
        )
    groups: collections.Counter[str] = collections.Counter()
    for e in averages:
        groups[_op_group(e.key)] += e.self_cpu_time_total
    report("")
    report(f"self CPU time by kind of operator (per {unit}):")
    report.table(
        [(k, v / 1000 / calls, 100 * v / 1e6 / wall) for k, v in groups.most_common()],
        ["kind", "self ms", "% wall"],
    )
    report("")
    report(f"top {TOP} operators by self CPU time (per {unit}):")
    report.table(rows, ["operator", "calls", "self ms", "% wall", "total ms"])


def _op_group(name: str) -> str:
    """Kind of a torch operator: dense algebra, random numbers, optimizer, element-wise."""
    if re.search(r"::(mm|addmm|bmm|matmul|linear|conv|mkldnn_conv|_convolution|convolution)", name):
        return "matrix products / convolutions"
    if re.search(r"::(normal|uniform|randperm|multinomial|bernoulli|random|rand|randn)", name):
        return "random numbers"
    if "Optimizer" in name or "adam" in name.lower() or name.endswith(("lerp_", "addcdiv_")):
        return "optimizer (Adam)"
    if re.search(
        r"::(copy_|empty|zeros|fill_|as_strided|view|reshape|expand|index|cat|stack)", name
    ):
        return "copies, allocation, indexing"
    if name.startswith("aten::"):
        return "element-wise and reductions (aten)"
    return "other (autograd nodes, jit, ...)"


# ------------------------------------------------------------------------------------ jax
class JitRecorder:
    """Wraps ``jax.jit`` while a session compiles, so that the jitted functions the library
    builds (pytensor's JAX linker, NumPyro's ``Predictive`` ...) can be timed alone: each keeps
    the arguments of its last call and the wall time of its calls."""

    def __init__(self) -> None:
        self.functions: list[dict[str, Any]] = []
        #: Whether calls are waited for and timed (off: they pass straight through).
        self.timing = False

    def __enter__(self) -> JitRecorder:
        import jax

        original = jax.jit
        recorder = self

        def jit(fun: Any = None, *args: Any, **kwargs: Any) -> Any:
            if fun is None:  # decorator with options
                return lambda f: jit(f, *args, **kwargs)
            jitted = original(fun, *args, **kwargs)
            entry: dict[str, Any] = {
                "fn": jitted,
                "args": None,
                "kwargs": None,
                "calls": 0,
                "seconds": 0.0,
                "name": getattr(fun, "__name__", "?"),
            }
            recorder.functions.append(entry)

            def call(*a: Any, **k: Any) -> Any:
                entry["args"], entry["kwargs"] = a, k
                if not recorder.timing:
                    return jitted(*a, **k)
                t = time.perf_counter()
                out = jax.block_until_ready(jitted(*a, **k))
                entry["seconds"] += time.perf_counter() - t
                entry["calls"] += 1
                return out

            call.lower = jitted.lower  # type: ignore[attr-defined]
            call.__wrapped__ = jitted  # type: ignore[attr-defined]
            return call

        self._original = original
        jax.jit = jit
        return self

    def __exit__(self, *exc: object) -> None:
        import jax

        jax.jit = self._original

    def reset(self) -> None:
        for entry in self.functions:
            entry["calls"], entry["seconds"] = 0, 0.0


def cost_analysis(compiled: Any) -> dict[str, float]:
    """XLA's cost analysis of a compiled executable (flops, bytes accessed, transcendentals)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, list):
        cost = cost[0] if cost else {}
    return {
        k: float(v)
        for k, v in (cost or {}).items()
        if k in ("flops", "bytes accessed", "transcendentals", "optimal_seconds")
    }


def report_cost(report: Report, cost: dict[str, float], seconds: float, what: str) -> None:
    """XLA's counts next to the roofline ceilings of ``results/tuned_cpu``'s calibration."""
    calib = Path(__file__).resolve().parent.parent / "results/tuned_cpu/calibration-cpu.json"
    ceilings = json.loads(calib.read_text()) if calib.exists() else {}
    flops, moved = cost.get("flops", float("nan")), cost.get("bytes accessed", float("nan"))
    report(
        f"XLA cost analysis of {what}: {flops / 1e9:.3g} GFLOP, {moved / 1e6:.4g} MB accessed, "
        f"{cost.get('transcendentals', float('nan')) / 1e6:.3g} M transcendentals"
    )
    if ceilings and seconds > 0:
        pi, beta = ceilings["matmul_flops_per_s"], ceilings["copy_bytes_per_s"]
        report(
            f"  at {1000 * seconds:.3g} ms: {flops / seconds / 1e9:.3g} GFLOP/s "
            f"(matmul ceiling {pi / 1e9:.0f}), {moved / seconds / 1e9:.3g} GB/s "
            f"(copy ceiling {beta / 1e9:.0f}); XLA's own floor max(F/pi, bytes/beta) = "
            f"{1000 * max(flops / pi, moved / beta):.3g} ms"
        )


_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.-]+) = (\S+) ([\w-]+)\((.*)$")
_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.-]+) \(.*\) -> .* \{$")
#: Opcodes that say nothing of the work (bookkeeping inside fused computations).
_TRIVIAL = {
    "parameter",
    "constant",
    "broadcast",
    "bitcast",
    "get-tuple-element",
    "tuple",
    "reshape",
    "iota",
    "convert",
    "slice",
    "concatenate",
    "compare",
    "select",
}


def hlo_index(hlo: str) -> dict[str, dict[str, Any]]:
    """Per instruction of an optimised HLO module: its opcode, shape and, for a fusion or call,
    the opcodes of the computation it calls and whether that computation makes random bits."""
    comps: dict[str, collections.Counter[str]] = {}
    instructions: dict[str, dict[str, Any]] = {}
    current = ""
    for line in hlo.splitlines():
        m = _COMPUTATION.match(line)
        if m:
            current = m.group(1)
            comps[current] = collections.Counter()
            continue
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        name, shape, opcode, rest = m.groups()
        called = re.search(r"(?:calls|to_apply|body)=%?([\w.-]+)", rest)
        instructions[name] = {
            "opcode": opcode,
            "shape": shape.split("{")[0],
            "calls": called.group(1) if called else "",
        }
        if current:
            comps[current][opcode] += 1
    for inst in instructions.values():
        inner = comps.get(inst["calls"], collections.Counter())
        inst["inner"] = inner
        # threefry's rounds are xors: a fusion with xors computes random bits itself (XLA may
        # duplicate that work into several consumers); metadata alone only names the origin
        inst["rng"] = inner["xor"] > 0
    return instructions


def _xla_kind(inst: dict[str, Any]) -> str:
    ops = {inst["opcode"], *inst["inner"]}
    if inst["opcode"] in ("while", "call", "conditional"):
        return ""
    if ops & {"dot", "convolution"}:
        return "matrix products / convolutions"
    if inst["rng"]:
        return "random numbers (threefry) + fused element-wise"
    if inst["opcode"] in ("copy", "transpose", "copy-start", "dynamic-update-slice") or (
        set(inst["inner"]) - _TRIVIAL <= {"copy", "transpose", "dynamic-update-slice"}
        and inst["inner"]
    ):
        return "copies / transposes / slices"
    if ops & {"scatter", "gather", "sort"}:
        return "gather / scatter / sort"
    return "other element-wise and reductions"


def _xla_describe(inst: dict[str, Any]) -> str:
    inner = [f"{k} {v}" for k, v in inst["inner"].most_common() if k not in _TRIVIAL][:4]
    rng = " RNG" if inst["rng"] else ""
    return f"{inst['opcode']} {inst['shape']}{rng}" + (f" [{', '.join(inner)}]" if inner else "")


def xla_trace(
    report: Report, work: Callable[[], None], calls: int, unit: str, hlo: str = ""
) -> None:
    """Per-operation table of XLA:CPU from ``jax.profiler``'s Perfetto trace (if it has them),
    each operation described from the executable's optimised HLO (``hlo``)."""
    import jax

    with tempfile.TemporaryDirectory() as tmp:
        try:
            with jax.profiler.trace(tmp, create_perfetto_trace=True):
                t = time.perf_counter()
                for _ in range(calls):
                    work()
                wall = time.perf_counter() - t
        except Exception as err:
            report(f"(jax.profiler trace failed: {err!r})")
            return
        files = list(Path(tmp).rglob("*.trace.json.gz")) + list(Path(tmp).rglob("perfetto*"))
        if not files:
            report("(jax.profiler wrote no trace)")
            return
        path = files[0]
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            trace = json.load(fh)
    events = trace.get("traceEvents", trace) if isinstance(trace, dict) else trace
    threads = {
        (e.get("pid"), e.get("tid")): e.get("args", {}).get("name", "")
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name"
    }
    by_name: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    by_thread: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        name = str(e.get("name", "?"))
        by_name[name] += float(e["dur"])
        counts[name] += 1
        by_thread[threads.get((e.get("pid"), e.get("tid")), str(e.get("tid")))] += float(e["dur"])
    report(
        f"{sum(counts.values())} trace events in {wall * 1000 / calls:.3g} ms per {unit} "
        f"(under the profiler); event time by thread (us per {unit}, events nest, so "
        "these overlap):"
    )
    report.table(
        [(k[:60], v / calls) for k, v in by_thread.most_common(8)], ["thread", f"us per {unit}"]
    )
    index = hlo_index(hlo)
    kinds: collections.Counter[str] = collections.Counter()
    ops: collections.Counter[str] = collections.Counter()
    for name, dur in by_name.items():
        if name in index and _xla_kind(index[name]):
            kinds[_xla_kind(index[name])] += dur
            ops[name] += dur
    if ops:
        xla_total = sum(kinds.values())
        report("")
        report(
            f"XLA operations (thunks) of the executable: {xla_total / 1000 / calls:.4g} ms per "
            f"{unit} of operation time summed over XLA's threads (wall per {unit}: "
            f"{wall * 1000 / calls:.4g} ms); by kind:"
        )
        report.table(
            [(k, v / 1000 / calls, 100 * v / xla_total) for k, v in kinds.most_common()],
            ["kind", f"ms per {unit}", "% of op time"],
        )
        report("")
        report(f"top {TOP} XLA operations:")
        report.table(
            [
                (
                    k,
                    counts[k] // calls,
                    v / 1000 / calls,
                    100 * v / xla_total,
                    _xla_describe(index[k])[:90],
                )
                for k, v in ops.most_common(TOP)
            ],
            ["operation", "calls", f"ms per {unit}", "% op time", "what (optimised HLO)"],
        )
    report("")
    report(
        f"top {TOP} trace events by total duration (nested events overlap; XLA's own "
        "operations are the fusion / dot / convolution names):"
    )
    report.table(
        [
            (k[:60], counts[k] // calls, v / 1000 / calls, 100 * v / 1e6 / wall)
            for k, v in by_name.most_common(TOP)
        ],
        ["event", "calls", f"ms per {unit}", "% wall"],
    )


# ---------------------------------------------------------------------------------- cases
def build(
    case: Case, seed: int, threads: int | None = None
) -> tuple[Any, Any, Any, CellConfig, JitRecorder | None]:
    """The tuned CPU session of ``case``, compiled, in this process's cell environment."""
    cfg = CellConfig.from_defaults(
        case.model,
        case.backend,
        "tuned",
        "cpu",
        seed,  # type: ignore[arg-type]
        **SUITE[case.model],
    )
    loaded = [m for m in ("jax", "pytensor", "torch", "pymc") if m in sys.modules]
    if loaded:
        raise RuntimeError(f"{loaded} imported before the cell environment was set")
    os.environ.update(cell_environment(cfg, threads))
    from bnnbench.backends import get_backend

    spec = get_spec(case.model)
    data = spec.load_data()
    engine = get_backend(case.backend)
    recorder = None
    if case.backend in ("numpyro", "pymc"):
        recorder = JitRecorder().__enter__()  # stays in place: predictives jit lazily
    session = engine.TrainingSession(spec, data, cfg)
    session.compile(set(chunk_sizes(cfg.steps, cfg.trace_every)))
    return spec, data, session, cfg, recorder


def header(report: Report, case: Case, cfg: CellConfig, session: Any) -> None:
    report(f"case {case.name}: profile tuned, device cpu, seed {cfg.seed}")
    report(
        f"settings: batch_size {cfg.batch_size}, learning_rate {cfg.learning_rate}, "
        f"trace_every {cfg.trace_every}, predict_draws {cfg.predict_draws}"
    )
    report(f"execution path: {session.execution_path}")
    report(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {_load()} at start"
    )
    versions = []
    for module in ("torch", "pyro", "jax", "jaxlib", "numpyro", "pytensor", "pymc"):
        if module in sys.modules:
            versions.append(f"{module} {getattr(sys.modules[module], '__version__', '?')}")
    report("libraries: " + ", ".join(versions))
    report(
        "timings are wall-clock on a shared 2-core VM (other work may have been running: see "
        "the load averages); the proportions are the finding"
    )


def _loop_steps(session: Any, n: int, chunks: int) -> None:
    for _ in range(chunks):
        session.run_steps(n)


def profile_step(
    report: Report,
    case: Case,
    session: Any,
    cfg: CellConfig,
    recorder: JitRecorder | None,
    out: Path,
    seconds: float,
) -> None:
    n = cfg.trace_every
    for _ in range(2):  # warm-up chunks (torch's profiling executor, caches)
        session.run_steps(n)
    chunk_s = []
    deadline = time.perf_counter() + seconds
    while len(chunk_s) < 2 or (time.perf_counter() < deadline and len(chunk_s) < 40):
        chunk_s.append(_timed(lambda: session.run_steps(n)))
    step_ms = 1000 * statistics.median(chunk_s) / n
    report.section("steady-state step time")
    report(
        f"{len(chunk_s)} chunks of {n} steps: step_ms median {step_ms:.4g} (min "
        f"{1000 * min(chunk_s) / n:.4g}, max {1000 * max(chunk_s) / n:.4g}); {_load()}"
    )
    floor = _floor_ms(case, cfg)
    if floor:
        report(f"roofline floor {floor:.4g} ms: ratio {step_ms / floor:.3g}")
    chunks = max(1, int(seconds / max(statistics.median(chunk_s), 1e-6)))

    if case.backend in ("pyro", "torch-ml"):
        report.section("torch.profiler (self CPU time)")
        torch_profile(report, lambda: session.run_steps(n), max(1, chunks // 2), "chunk")
        report(f"(a chunk is {n} steps)")
    if case.backend == "numpyro":
        report.section("XLA: compiled executable alone vs the whole step")
        numpyro_split(report, session, n, step_ms)
    elif recorder is not None:
        report.section("XLA: compiled executable alone vs the whole step")
        jax_split(report, recorder, lambda: session.run_steps(n), n, "step")
    if recorder is not None:
        report.section("jax.profiler trace (XLA:CPU operations)")
        xla_trace(
            report,
            lambda: session.run_steps(n),
            max(1, min(chunks // 2, 5)),
            "chunk",
            executable_hlo(session, recorder, n),
        )
        report(f"(a chunk is {n} steps)")
    report.section("py-spy (Python thread, --idle)")
    with pyspy(out / f".{case.name}.pyspy") as spy:
        _loop_steps(session, n, chunks)
    if spy["error"]:
        report(spy["error"])
    pyspy_summary(report, spy["stacks"], "_loop_steps")


def jax_split(
    report: Report,
    recorder: JitRecorder,
    work: Callable[[], None],
    per: int,
    unit: str,
    calls: int = 3,
) -> None:
    """Time of every jitted function the library called during ``work`` against the wall time
    of ``work``; XLA's cost analysis of the one that took the most."""
    recorder.reset()
    recorder.timing = True
    try:
        wall = sum(_timed(work) for _ in range(calls))
    finally:
        recorder.timing = False
    used = [e for e in recorder.functions if e["calls"]]
    inner = sum(e["seconds"] for e in used)
    report(
        f"whole call: {1000 * wall / calls / per:.4g} ms per {unit}; inside jitted XLA "
        f"executables (called and waited for): {1000 * inner / calls / per:.4g} ms per "
        f"{unit} = {100 * inner / wall:.1f}%; host work around them: "
        f"{100 - 100 * inner / wall:.1f}%"
    )
    report.table(
        [
            (e["name"], e["calls"] / calls, 1000 * e["seconds"] / calls / per)
            for e in sorted(used, key=lambda e: -e["seconds"])[:8]
        ],
        ["jitted function", "calls per call", f"ms per {unit}"],
    )
    if not used:
        return
    top = max(used, key=lambda e: e["seconds"])
    try:
        compiled = top["fn"].lower(*top["args"], **top["kwargs"]).compile()
        cost = cost_analysis(compiled)
        per_call = top["seconds"] / top["calls"]
        report_cost(report, cost, per_call, f"{top['name']} (one call)")
        hlo_counts(report, compiled.as_text() or "")
    except Exception as err:
        report(f"(cost analysis failed: {err!r})")


def executable_hlo(session: Any, recorder: JitRecorder, n: int = 0) -> str:
    """Optimised HLO of the executable the session runs (NumPyro's compiled chunk or step;
    otherwise the recorded jitted function that ran the longest, or was called last)."""
    step = getattr(session, "_step", None)
    if n and hasattr(session, "_chunks"):  # NumPyro's ahead-of-time compiled step or chunk
        compiled = step if step is not None else session._chunks[n]
        return compiled.as_text() or ""
    used = [e for e in recorder.functions if e["args"] is not None]
    if not used:
        return ""
    top = max(used, key=lambda e: (e["seconds"], e["calls"]))
    try:
        return top["fn"].lower(*top["args"], **top["kwargs"]).compile().as_text() or ""
    except Exception:  # descriptions are optional
        return ""


def numpyro_split(report: Report, session: Any, n: int, step_ms: float) -> None:
    """NumPyro compiles its chunk (or step) ahead of time (``Compiled`` objects, not ``jax.jit``
    wrappers): time them alone, and a single jitted ``svi.update`` (no scan around it)."""
    import jax

    reps = 3
    if session._step is None:
        chunk = session._chunks[n]
        t = time.perf_counter()
        for _ in range(reps):
            session.state, losses = chunk(session.state, session.X, session.y)
            jax.block_until_ready(losses)
        alone = (time.perf_counter() - t) / reps / n
        what = f"the compiled lax.scan chunk of {n} steps"
    else:
        t = time.perf_counter()
        for _ in range(reps * n):
            session.state, loss = session._step(session.state, session.X, session.y)
            jax.block_until_ready(loss)
        alone = (time.perf_counter() - t) / reps / n
        what = "the compiled step, waited for after each step"
    report(
        f"{what}, called alone: {1000 * alone:.4g} ms per step; run_steps: {step_ms:.4g} ms "
        f"per step; host work around it: {100 * (1 - 1000 * alone / step_ms):.1f}%"
    )
    single = jax.jit(session._update).lower(session.state, session.X, session.y).compile()
    state = session.state
    for _ in range(2):
        jax.block_until_ready(single(state, session.X, session.y))
    t = time.perf_counter()
    for _ in range(reps * 4):
        jax.block_until_ready(single(state, session.X, session.y))
    one = (time.perf_counter() - t) / (reps * 4)
    report(f"one jitted svi.update (straight-line, no loop around it): {1000 * one:.4g} ms")
    report_cost(report, cost_analysis(single), one, "one svi.update")
    hlo_counts(report, single.as_text() or "")


def hlo_counts(report: Report, hlo: str) -> None:
    """Counts of the optimised HLO's operations that matter on a CPU."""
    ops = collections.Counter(re.findall(r"= \S+ (\w[\w-]*)\(", hlo))
    interesting = (
        "dot",
        "convolution",
        "fusion",
        "custom-call",
        "rng-bit-generator",
        "while",
        "sort",
        "gather",
        "scatter",
        "reduce",
        "copy",
        "transpose",
        "xor",
        "shift-right-logical",
        "exponential",
        "log",
        "tanh",
    )
    report(
        "optimised HLO op counts (fusion bodies included): "
        + ", ".join(f"{k} {ops[k]}" for k in interesting if ops[k])
    )


def _floor_ms(case: Case, cfg: CellConfig, draw: bool = False) -> float | None:
    try:
        from bnnbench import roofline

        calib = Path(__file__).resolve().parent.parent / "results/tuned_cpu/calibration-cpu.json"
        ceilings = roofline.Ceilings(
            **{
                k: v
                for k, v in json.loads(calib.read_text()).items()
                if k in {f.name for f in __import__("dataclasses").fields(roofline.Ceilings)}
            }
        )
        spec = get_spec(case.model)
        cost = (
            roofline.predictive_draw_cost(spec, 10_000)
            if draw
            else roofline.training_step_cost(spec, cfg.batch_size)
        )
        return roofline.floor_ms(cost, ceilings)
    except Exception:
        return None


def _predict_all(
    session: Any, spec: Any, X: np.ndarray, draws: int, seed: int, times: dict[str, float]
) -> None:
    t = time.perf_counter()
    posterior = session.sample_posterior(draws, seed)
    times["sample_posterior"] = time.perf_counter() - t
    t = time.perf_counter()
    calls = []
    for start in range(0, X.shape[0], spec.predict_chunk):
        c = time.perf_counter()
        proba, _ = session.predict(
            posterior, X[start : start + spec.predict_chunk], seed + 1 + start
        )
        calls.append(time.perf_counter() - c)
        times["draws"] = len(proba)  # torch-ml's point estimate is one draw
    times["predict"] = time.perf_counter() - t
    times["first_chunk"], times["chunks"] = calls[0], len(calls)


def _loop_predict(session: Any, spec: Any, X: np.ndarray, draws: int, passes: int) -> None:
    for i in range(passes):
        _predict_all(session, spec, X, draws, 100 + i, {})


def profile_predict(
    report: Report,
    case: Case,
    spec: Any,
    data: Any,
    session: Any,
    cfg: CellConfig,
    recorder: JitRecorder | None,
    out: Path,
    seconds: float,
) -> None:
    session.run_steps(cfg.trace_every)  # a fitted state (PyMC's jax mode leaves read-only params)
    draws, X = cfg.predict_draws, data.X_test
    floor = _floor_ms(case, cfg, draw=True)
    report.section("predictive per draw: cold (as the harness times it) and warm")
    rows = []
    for label, seed in (
        ("cold (1st pass)", cfg.seed),
        ("warm (2nd pass)", cfg.seed + 1),
        ("warm (3rd pass)", cfg.seed + 2),
    ):
        times: dict[str, float] = {}
        _predict_all(session, spec, X, draws, seed, times)
        total = times["sample_posterior"] + times["predict"]
        draws = int(times["draws"])  # as the harness counts them (draws taken)
        rows.append(
            (
                label,
                1000 * total / draws,
                1000 * times["sample_posterior"] / draws,
                1000 * times["predict"] / draws,
                1000 * times["first_chunk"],
                total * 1000 / draws / floor if floor else float("nan"),
            )
        )
    report(
        f"{draws} draws over {X.shape[0]} test images, {spec.predict_chunk} images per "
        f"predict call ({-(-X.shape[0] // spec.predict_chunk)} calls); {_load()}"
    )
    report.table(
        rows, ["pass", "ms per draw", "sample_posterior", "predict", "1st call ms", "x floor"]
    )
    if floor:
        report(f"roofline floor of a draw: {floor:.4g} ms")
    warm_s = sum(r[1] for r in rows[1:]) / 2 * draws / 1000
    passes = max(1, int(seconds / max(warm_s, 1e-3)))

    if case.backend in ("pyro", "torch-ml"):
        report.section("torch.profiler (self CPU time), one warm pass")
        torch_profile(report, lambda: _predict_all(session, spec, X, draws, 7, {}), 1, "pass")
        report(f"(a pass is {draws} draws: ms per draw = ms per pass / {draws})")
    if recorder is not None:
        report.section("XLA: compiled executables alone vs the whole warm pass")
        jax_split(
            report, recorder, lambda: _predict_all(session, spec, X, draws, 7, {}), draws, "draw", 1
        )
        report.section("jax.profiler trace (XLA:CPU operations), one warm pass")
        xla_trace(
            report,
            lambda: _predict_all(session, spec, X, draws, 9, {}),
            1,
            "pass",
            executable_hlo(session, recorder),
        )
        report(f"(a pass is {draws} draws)")
    report.section("py-spy (Python thread, --idle), warm passes")
    with pyspy(out / f".{case.name}.pyspy") as spy:
        _loop_predict(session, spec, X, draws, passes)
    if spy["error"]:
        report(spy["error"])
    pyspy_summary(report, spy["stacks"], "_loop_predict")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -P -m bnnbench.benchmarks.hotspots")
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--list", action="store_true", help="name the cases and exit")
    parser.add_argument("--out", type=Path, default=Path("results/hotspots"))
    parser.add_argument(
        "--seconds", type=float, default=15.0, help="rough wall time of each profiled window"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        help="pin the OMP/MKL/OpenBLAS pools (default: the harness's, every core); 1 keeps a "
        "loaded machine from oversubscribing torch's pools on tiny operators",
    )
    args = parser.parse_args(argv)
    if args.list or not args.case:
        for name, case in CASES.items():
            print(f"{name:32s} {case.kind} of {case.model} on {case.backend}")
        return 0
    case = CASES[args.case]
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report()
    t0 = time.perf_counter()
    spec, data, session, cfg, recorder = build(case, args.seed, args.threads)
    header(report, case, cfg, session)
    if args.threads:
        report(f"thread pools pinned to {args.threads} (--threads; the harness leaves them)")
    report(f"build and compile: {time.perf_counter() - t0:.1f} s")
    if case.kind == "step":
        profile_step(report, case, session, cfg, recorder, args.out, args.seconds)
    else:
        profile_predict(report, case, spec, data, session, cfg, recorder, args.out, args.seconds)
    report("")
    report(f"{_load()} at the end; whole run {time.perf_counter() - t0:.0f} s")
    (args.out / f"{case.name}.txt").write_text("\n".join(report.lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
