r"""The roofline: how fast a training step or a predictive draw could possibly run on a machine.

Each spec states its work (:mod:`bnnbench.cost`): :math:`F` floating-point operations and the
fewest bytes :math:`M` a training step or a predictive draw must move. A machine has two measured
ceilings (:func:`measure_ceilings`): the float32 FLOP rate of a large matrix product,
:math:`\pi`, and the bytes per second of a large device copy, :math:`\beta`. The floor is

.. math::

    t_{\mathrm{floor}} = \max\left(\frac{F}{\pi}, \frac{M}{\beta}\right),

compute-bound when the first term is the larger, memory-bound otherwise. A measured step time
divided by the floor says how far an implementation is from the hardware.

``python -m bnnbench.roofline calibrate --device cpu|gpu [--out DIR]`` measures the ceilings,
prints them and stores ``<DIR>/calibration-<device>.json``; ``... floors`` prints every spec's
costs and floors against a stored (or freshly measured) calibration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bnnbench.cost import WorkCost
from bnnbench.provenance import cpu_model
from bnnbench.spec import SPEC_NAMES, ModelSpec, get_spec

__all__ = [
    "DEFAULT_SIZES",
    "Ceilings",
    "Device",
    "Library",
    "WorkCost",
    "bound",
    "calibration_path",
    "floor_ms",
    "floor_table",
    "load_or_measure",
    "main",
    "measure_ceilings",
    "predictive_draw_cost",
    "training_step_cost",
]

Device = Literal["cpu", "gpu"]
Library = Literal["jax", "torch"]

#: ``(matrix side, copy buffer bytes)`` per device: 8192 and 1 GiB on a GPU, sizes that take a
#: few seconds in all on a CPU.
DEFAULT_SIZES: dict[str, tuple[int, int]] = {"gpu": (8192, 1 << 30), "cpu": (2048, 256 << 20)}
#: Size of the predictive test set the floors table uses by default (MNIST's 10k test images).
DEFAULT_PREDICT_POINTS = 10_000


# --------------------------------------------------------------------------------------- costs
def _resolve(spec: ModelSpec | str) -> ModelSpec:
    return get_spec(spec) if isinstance(spec, str) else spec


def training_step_cost(spec: ModelSpec | str, batch_size: int) -> WorkCost:
    """One training step of ``spec`` on a minibatch of ``batch_size`` points, as the spec states
    it (``ModelSpec.step_cost``); ``ValueError`` if it states none."""
    spec = _resolve(spec)
    if spec.step_cost is None:
        raise ValueError(f"spec {spec.name!r} states no training-step cost (ModelSpec.step_cost)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return spec.step_cost(batch_size)


def predictive_draw_cost(spec: ModelSpec | str, n_points: int) -> WorkCost:
    """One predictive draw of ``spec`` over ``n_points`` (``ModelSpec.draw_cost``)."""
    spec = _resolve(spec)
    if spec.draw_cost is None:
        raise ValueError(f"spec {spec.name!r} states no predictive-draw cost (ModelSpec.draw_cost)")
    if n_points < 1:
        raise ValueError(f"n_points must be positive, got {n_points}")
    return spec.draw_cost(n_points)


# ------------------------------------------------------------------------------------ ceilings
@dataclass(frozen=True)
class Ceilings:
    """A machine's measured float32 ceilings.

    Attributes
    ----------
    device
        ``"cpu"`` or ``"gpu"``.
    device_name
        The processor's model name (``/proc/cpuinfo``) or the GPU's (``torch.cuda``/JAX).
    matmul_flops_per_s
        :math:`\\pi = 2 s^3 / t`: median over repeats of an :math:`s \\times s` float32 product.
    copy_bytes_per_s
        :math:`\\beta = 2 b / t`: median over repeats of copying a buffer of :math:`b` bytes
        (read + write).
    library
        The library that ran the kernels (``torch`` or ``jax``).
    measured_at
        When, ISO 8601 UTC.
    host
        ``platform.node()`` of the machine (a stored calibration is reused only on it).
    dtype
        Always ``"float32"``.
    matmul_size, copy_bytes
        The sizes measured.
    threads
        CPU threads the library used (0 on a GPU).
    matmul_precision
        The library's float32 matrix-product precision setting (torch:
        ``get_float32_matmul_precision()``, ``"highest"`` = true float32, no TF32; JAX: its
        ``default_matmul_precision``, ``None`` = the backend's default, TF32 on recent GPUs).
    """

    device: Device
    device_name: str
    matmul_flops_per_s: float
    copy_bytes_per_s: float
    library: Library
    measured_at: str
    host: str
    dtype: Literal["float32"] = "float32"
    matmul_size: int = 0
    copy_bytes: int = 0
    threads: int = 0
    matmul_precision: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ceilings:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, missing required ones raise."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_json(cls, path: Path | str) -> Ceilings:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _median_seconds(run: Callable[[], None], sync: Callable[[], None], repeats: int) -> float:
    """Median wall time of ``run`` over ``repeats``; ``sync`` waits for the device before each
    timer starts and before it stops (asynchronous GPU launches)."""
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _warm(run: Callable[[], None], sync: Callable[[], None], times: int) -> None:
    """Run ``times`` untimed (compilation, allocation, clocks)."""
    for _ in range(times):
        run()
    sync()


def _torch_matmul_s(
    torch: Any, target: Any, sync: Callable[[], None], size: int, repeats: int, warmup: int
) -> float:
    """Median seconds of one float32 ``size x size`` product on ``target``."""
    generator = torch.Generator(device=target).manual_seed(0)
    a = torch.randn(size, size, device=target, generator=generator)
    b = torch.randn(size, size, device=target, generator=generator)
    out = torch.empty_like(a)

    def product() -> None:
        torch.matmul(a, b, out=out)

    _warm(product, sync, warmup)
    return _median_seconds(product, sync, repeats)


def _torch_copy_s(
    torch: Any, target: Any, sync: Callable[[], None], n: int, repeats: int, warmup: int
) -> float:
    """Median seconds of copying ``n`` float32 values into another buffer on ``target``."""
    src = torch.ones(n, device=target, dtype=torch.float32)
    dst = torch.empty_like(src)

    def copy() -> None:
        dst.copy_(src)

    _warm(copy, sync, warmup)
    return _median_seconds(copy, sync, repeats)


def _measure_torch(
    device: Device, matmul_size: int, copy_bytes: int, repeats: int, warmup: int
) -> tuple[float, float, str, int, str]:
    try:
        import torch
    except ImportError as err:
        raise RuntimeError(
            f"measuring the {device} ceilings with torch needs torch: {err}"
        ) from err
    if device == "gpu":
        if not torch.cuda.is_available():
            raise RuntimeError(
                "device 'gpu' requested but torch.cuda.is_available() is False "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
                f"{torch.cuda.device_count()} CUDA devices visible); not falling back to the CPU"
            )
        target = torch.device("cuda")
        name = torch.cuda.get_device_name(target)
        threads = 0

        def sync() -> None:
            torch.cuda.synchronize(target)

    else:
        target = torch.device("cpu")
        name = cpu_model()
        threads = torch.get_num_threads()

        def sync() -> None:
            pass

    matmul_s = _torch_matmul_s(torch, target, sync, matmul_size, repeats, warmup)
    n = max(copy_bytes // 4, 1)
    copy_s = _torch_copy_s(torch, target, sync, n, repeats, warmup)
    if device == "gpu":
        torch.cuda.empty_cache()
    flops_per_s = 2.0 * matmul_size**3 / matmul_s
    bytes_per_s = 2.0 * 4 * n / copy_s
    return flops_per_s, bytes_per_s, name, threads, torch.get_float32_matmul_precision()


def _measure_jax(
    device: Device, matmul_size: int, copy_bytes: int, repeats: int, warmup: int
) -> tuple[float, float, str, int, str]:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as err:
        raise RuntimeError(f"measuring the {device} ceilings with jax needs jax: {err}") from err
    platform_name = "gpu" if device == "gpu" else "cpu"
    try:
        target = jax.devices(platform_name)[0]
    except RuntimeError as err:
        raise RuntimeError(
            f"device {device!r} requested but JAX has no {platform_name} backend "
            f"(jax {jax.__version__}, default backend {jax.default_backend()!r}): {err}; "
            "not falling back to the CPU"
        ) from err
    name = getattr(target, "device_kind", "") if device == "gpu" else cpu_model()
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.device_put(jax.random.normal(key_a, (matmul_size, matmul_size), jnp.float32), target)
    b = jax.device_put(jax.random.normal(key_b, (matmul_size, matmul_size), jnp.float32), target)
    product_fn = jax.jit(jnp.matmul)
    # A streaming kernel that reads and writes every element once (a plain copy may be elided).
    copy_fn = jax.jit(lambda x: x + 1.0)
    src = jax.device_put(jnp.ones(max(copy_bytes // 4, 1), jnp.float32), target)
    box: dict[str, Any] = {}

    def product() -> None:
        box["out"] = product_fn(a, b)

    def copy() -> None:
        box["out"] = copy_fn(src)

    def sync() -> None:
        if "out" in box:
            box["out"].block_until_ready()

    _warm(product, sync, warmup)
    matmul_s = _median_seconds(product, sync, repeats)
    _warm(copy, sync, warmup)
    copy_s = _median_seconds(copy, sync, repeats)
    flops_per_s = 2.0 * matmul_size**3 / matmul_s
    bytes_per_s = 2.0 * 4 * src.size / copy_s
    precision = str(jax.config.jax_default_matmul_precision)
    threads = (os.cpu_count() or 0) if device == "cpu" else 0
    return flops_per_s, bytes_per_s, name, threads, precision


def measure_ceilings(
    device: Device,
    library: Library = "torch",
    size: int | None = None,
    copy_bytes: int | None = None,
    *,
    repeats: int = 5,
    warmup: int = 2,
) -> Ceilings:
    """Measure the float32 matrix-product FLOP rate and the copy bandwidth of ``device``.

    Parameters
    ----------
    device
        ``"gpu"`` (CUDA through torch, or JAX's GPU backend) or ``"cpu"``. An unavailable device
        raises ``RuntimeError`` saying why; there is no fallback to the CPU.
    library
        ``"torch"`` (default) or ``"jax"``.
    size
        Side :math:`s` of the square product (:math:`2 s^3` flops); default 8192 on a GPU,
        2048 on a CPU.
    copy_bytes
        Size :math:`b` of the copied buffer (counted :math:`2b`: read and write); default 1 GiB on
        a GPU, 256 MiB on a CPU.
    repeats, warmup
        Timed repeats (the median is kept) after ``warmup`` untimed ones.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be positive, got {repeats}")
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
    default_size, default_bytes = DEFAULT_SIZES[device]
    size = size or default_size
    copy_bytes = copy_bytes or default_bytes
    if library == "torch":
        measure = _measure_torch
    elif library == "jax":
        measure = _measure_jax
    else:
        raise ValueError(f"library must be 'torch' or 'jax', got {library!r}")
    flops_per_s, bytes_per_s, name, threads, precision = measure(
        device, size, copy_bytes, repeats, warmup
    )
    return Ceilings(
        device=device,
        device_name=name,
        matmul_flops_per_s=flops_per_s,
        copy_bytes_per_s=bytes_per_s,
        library=library,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        host=platform.node(),
        matmul_size=size,
        copy_bytes=copy_bytes,
        threads=threads,
        matmul_precision=precision,
    )


# -------------------------------------------------------------------------------------- floors
def _terms_s(cost: WorkCost, ceilings: Ceilings) -> tuple[float, float]:
    return cost.flops / ceilings.matmul_flops_per_s, cost.bytes / ceilings.copy_bytes_per_s


def floor_ms(cost: WorkCost, ceilings: Ceilings) -> float:
    r""":math:`10^3 \max(F / \pi, M / \beta)`: the least time ``cost`` can take, in ms."""
    return 1e3 * max(_terms_s(cost, ceilings))


def bound(cost: WorkCost, ceilings: Ceilings) -> Literal["compute", "memory"]:
    r"""``"compute"`` when :math:`F / \pi \ge M / \beta`, else ``"memory"``."""
    compute_s, memory_s = _terms_s(cost, ceilings)
    return "compute" if compute_s >= memory_s else "memory"


def floor_table(
    ceilings: Ceilings,
    specs: Sequence[str] = SPEC_NAMES,
    n_points: int = DEFAULT_PREDICT_POINTS,
    batch_sizes: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Per spec: the training step at its default batch size (or ``batch_sizes[name]``) and one
    predictive draw over ``n_points``, with flops, bytes, floor in ms and bound."""
    rows = []
    for name in specs:
        spec = get_spec(name)
        batch_size = (batch_sizes or {}).get(name, spec.defaults.batch_size)
        step = training_step_cost(spec, batch_size)
        draw = predictive_draw_cost(spec, n_points)
        rows.append(
            {
                "spec": name,
                "batch_size": batch_size,
                "step_flops": step.flops,
                "step_bytes": step.bytes,
                "step_floor_ms": floor_ms(step, ceilings),
                "step_bound": bound(step, ceilings),
                "n_points": n_points,
                "draw_flops": draw.flops,
                "draw_bytes": draw.bytes,
                "draw_floor_ms": floor_ms(draw, ceilings),
                "draw_bound": bound(draw, ceilings),
            }
        )
    return rows


# --------------------------------------------------------------------------------- calibration
def calibration_path(out_dir: Path | str, device: Device) -> Path:
    """``<out_dir>/calibration-<device>.json``."""
    return Path(out_dir) / f"calibration-{device}.json"


def load_or_measure(
    out_dir: Path | str, device: Device, library: Library = "torch", *, force: bool = False
) -> Ceilings:
    """The stored calibration of ``device`` if it was measured on this host (``platform.node()``)
    with ``library``; otherwise measure (:func:`measure_ceilings`) and store it."""
    path = calibration_path(out_dir, device)
    if not force and path.is_file():
        try:
            stored = Ceilings.from_json(path)
        except (OSError, ValueError, TypeError):
            stored = None
        if (
            stored is not None
            and stored.host == platform.node()
            and stored.device == device
            and stored.library == library
        ):
            return stored
    ceilings = measure_ceilings(device, library)
    ceilings.to_json(path)
    return ceilings


def _format_ceilings(c: Ceilings) -> str:
    rows = [
        ("device", f"{c.device} ({c.device_name})"),
        ("host", c.host),
        ("library", f"{c.library}, {c.dtype}, matmul precision {c.matmul_precision or '-'}"),
        ("threads", str(c.threads) if c.threads else "-"),
        ("matmul", f"{c.matmul_flops_per_s / 1e9:10.1f} GFLOP/s  (n = {c.matmul_size})"),
        ("copy", f"{c.copy_bytes_per_s / 1e9:10.1f} GB/s     ({c.copy_bytes / 2**20:.0f} MiB)"),
        ("ridge", f"{c.matmul_flops_per_s / c.copy_bytes_per_s:10.1f} flop/byte"),
        ("measured", c.measured_at),
    ]
    return "\n".join(f"{k:>9}  {v}" for k, v in rows)


def _format_floors(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'spec':<17} {'B':>5} {'step GFLOP':>10} {'step MB':>8} {'floor ms':>9} {'bound':>8}"
        f" | {'n':>6} {'draw GFLOP':>10} {'draw MB':>8} {'floor ms':>9} {'bound':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['spec']:<17} {r['batch_size']:>5} {r['step_flops'] / 1e9:>10.4f}"
            f" {r['step_bytes'] / 1e6:>8.3f} {r['step_floor_ms']:>9.4f} {r['step_bound']:>8}"
            f" | {r['n_points']:>6} {r['draw_flops'] / 1e9:>10.4f} {r['draw_bytes'] / 1e6:>8.3f}"
            f" {r['draw_floor_ms']:>9.4f} {r['draw_bound']:>8}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bnnbench.roofline {calibrate,floors} --device cpu|gpu [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m bnnbench.roofline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    calibrate = sub.add_parser("calibrate", help="measure the ceilings and store them")
    floors = sub.add_parser("floors", help="every spec's costs and floors on a calibration")
    for p in (calibrate, floors):
        p.add_argument("--device", choices=("cpu", "gpu"), required=True)
        p.add_argument("--out", type=Path, default=Path("results"), help="folder of the JSON")
        p.add_argument("--library", choices=("torch", "jax"), default="torch")
    calibrate.add_argument("--size", type=int, default=None, help="matrix side")
    calibrate.add_argument("--copy-mib", type=int, default=None, help="copy buffer in MiB")
    calibrate.add_argument("--repeats", type=int, default=5)
    floors.add_argument("--points", type=int, default=DEFAULT_PREDICT_POINTS)
    args = parser.parse_args(argv)
    try:
        if args.command == "calibrate":
            ceilings = measure_ceilings(
                args.device,
                args.library,
                args.size,
                args.copy_mib << 20 if args.copy_mib else None,
                repeats=args.repeats,
            )
            path = ceilings.to_json(calibration_path(args.out, args.device))
            print(_format_ceilings(ceilings))
            print(f"wrote {path}")
        else:
            ceilings = load_or_measure(args.out, args.device, args.library)
            print(_format_ceilings(ceilings))
            print()
            print(_format_floors(floor_table(ceilings, n_points=args.points)))
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
