"""Run a suite's cells as tasks of a Ray cluster (``bnnbench run --executor ray``).

Each cell is one Ray task with its resources declared, the spec's share of a GPU
(``num_gpus``, :attr:`bnnbench.spec.ModelSpec.gpu_fraction`) for a GPU cell, ``cpus_per_cell``
cores, and the spec's host memory (:attr:`~bnnbench.spec.ModelSpec.cell_memory_mb`). The task
runs the same cell code as the local runner (:mod:`bnnbench.execution`: ``python -P -m
bnnbench.cell`` in its own process, with a wall-clock limit) in a scratch folder on its node,
and returns the cell's files; this process, the driver, writes them into the results folder and
records the row: it is the **only writer** of the folder (whose lock it holds).

GPU facts (field notes; ray#49147, ray#22504):

- Ray sets ``CUDA_VISIBLE_DEVICES`` for a task with ``num_gpus`` and leaves it empty for one
  without. The task itself imports neither torch nor JAX: only the cell's own process does,
  after Ray has set the variable, with the environment of :func:`bnnbench.execution.
  cell_environment` (a CPU cell sees no GPU; JAX never preallocates the device).
- A spec that fits a fraction of a GPU (``gpu_fraction`` < 1) shares the device and limits JAX
  to that share of its memory (``XLA_CLIENT_MEM_FRACTION``).

Faults: a task whose worker dies (killed, out of memory), whose node is lost, or that raises is
recorded as ``failed`` with Ray's reason; a cell over its ``timeout_s`` is killed on its node
and recorded as timed out; the other cells go on, and ``--resume`` reruns only what did not
finish. Ctrl-C cancels every task not yet recorded (their cells die with their workers).

Each run folder also gets ``executor.json``: the node, the task's GPU ids and
``CUDA_VISIBLE_DEVICES``, and the resources it asked for.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bnnbench.config import CellConfig
from bnnbench.execution import (
    CellExecution,
    base_row,
    cell_environment,
    collect_cell,
    execute_cell,
    prepare_run_dir,
    report_row,
    run_calibration,
    unavailable_row,
)
from bnnbench.results import (
    REFERENCE_FILE,
    ResultStore,
    atomic_write_bytes,
    atomic_write_text,
    find_reference,
)
from bnnbench.spec import get_spec

__all__ = ["RayUnavailableError", "TaskResources", "ray_available", "run_on_ray"]

#: Cores a cell's task reserves when the caller does not say.
DEFAULT_CPUS_PER_CELL = 2
#: Files of a run folder that travel back from the node (everything but half-written ones).
SKIPPED_SUFFIXES = (".tmp",)


class RayUnavailableError(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached (one line, with what to do)."""


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class TaskResources:
    """What one cell's task asks the cluster for."""

    num_cpus: float
    num_gpus: float
    memory_bytes: int

    @classmethod
    def of(cls, cfg: CellConfig, cpus_per_cell: float) -> TaskResources:
        spec = get_spec(cfg.model)
        gpus = spec.gpu_fraction if cfg.device == "gpu" else 0.0
        return cls(float(cpus_per_cell), float(gpus), int(spec.cell_memory_mb) * 2**20)


# ------------------------------------------------------------------------- on the node (task)
def _node_environment(cfg: CellConfig, resources: TaskResources) -> dict[str, str]:
    env = cell_environment(cfg, threads=max(1, int(resources.num_cpus)))
    if cfg.device == "gpu" and 0 < resources.num_gpus < 1:
        env["XLA_CLIENT_MEM_FRACTION"] = f"{0.95 * resources.num_gpus:.3f}"
    return env


def _read_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(SKIPPED_SUFFIXES)
    }


def _task_context() -> dict[str, Any]:
    """Where the task runs: its node, and the GPUs Ray gave it (read from Ray's own context and
    the environment it set; nothing here touches CUDA)."""
    import ray

    context = ray.get_runtime_context()
    return {
        "node_id": context.get_node_id(),
        "host": platform.node(),
        "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "pid": os.getpid(),
    }


def run_cell_task(
    cfg_json: str, shipped: dict[str, bytes], resources: dict[str, float]
) -> dict[str, Any]:
    """The body of a cell's Ray task: run the cell in a scratch folder on this node.

    ``shipped``: files to lay out beside the run folder first (the calibration and the
    reference posterior the cell evaluates against), by path relative to the results folder.
    Returns the run folder's files, how the process ended and where it ran.
    """
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    cfg = CellConfig.from_json(cfg_json)
    res = TaskResources(**resources)  # type: ignore[arg-type]
    scratch = Path(tempfile.mkdtemp(prefix="bnnbench-cell-"))
    try:
        results = scratch / "results"
        for rel, data in shipped.items():
            target = results / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        run_dir = results / cfg.run_id
        prepare_run_dir(cfg, run_dir)
        execution = execute_cell(cfg, run_dir, env=_node_environment(cfg, res), cwd=scratch)
        return {
            "execution": asdict(execution),
            "files": _read_files(run_dir),
            "context": {**_task_context(), "started_at": started_at},
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def calibrate_task(device: str, threads: int) -> dict[str, Any]:
    """The body of a calibration task: ``calibration-<device>.json`` of this node."""
    from bnnbench.roofline import calibration_path

    scratch = Path(tempfile.mkdtemp(prefix="bnnbench-calibrate-"))
    try:
        proc = run_calibration(device, scratch, threads)
        path = calibration_path(scratch, device)
        return {
            "returncode": proc.returncode,
            "stderr": proc.stderr[-2000:],
            "file": path.read_bytes() if path.exists() else None,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ------------------------------------------------------------------------------- the driver
def connect(address: str | None, workdir: Path) -> tuple[str, bool]:
    """Join the cluster at ``address`` (``"auto"``: the one this machine belongs to), or start
    a new local Ray instance; returns a description and whether this call connected (and so
    should disconnect). :class:`RayUnavailableError` when it cannot.

    Ray puts the driver's working directory on every worker's ``sys.path``, and the workers of
    a local instance start in it; a checkout's ``bnnbench/`` source folder there would shadow
    the installed package on the workers (it lacks ``models``, ``datasets`` and ``benchmarks``,
    which an install maps in). The driver therefore connects from ``workdir``, an empty folder
    that must outlive the connection.
    """
    try:
        import ray
    except ImportError:
        raise RayUnavailableError("--executor ray needs Ray: pip install 'bnnbench[ray]'") from None
    if ray.is_initialized():
        return "the Ray instance this process already joined", False
    options: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
    here = Path.cwd()
    os.chdir(workdir)
    try:
        if address:
            ray.init(address=address, **options)
            return f"the Ray cluster at {address}", True
        # "local": a new instance, even where RAY_ADDRESS or a running cluster is found
        ray.init(address="local", include_dashboard=False, **options)
        return "a local Ray instance", True
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"at {address}" if address else "locally"
        first = " ".join(str(err).split())[:300]
        raise RayUnavailableError(f"cannot start or join Ray {where}: {first}") from None
    finally:
        os.chdir(here)


def _ship_files(store: ResultStore, cfg: CellConfig) -> dict[str, bytes]:
    """The calibration and reference files a cell reads beside its run folder."""
    from bnnbench.roofline import calibration_path

    files = {}
    calibration = calibration_path(store.root, cfg.device)
    if calibration.exists():
        files[calibration.name] = calibration.read_bytes()
    reference = find_reference(cfg.model, near=[store.root])
    if reference is not None:
        files[f"reference/{cfg.model}/{REFERENCE_FILE}"] = reference.read_bytes()
    return files


def _calibrate_on_cluster(store: ResultStore, devices: list[str], cpus_per_cell: float) -> None:
    """Each device's ceilings, measured by a task on a node of that kind (a GPU calibration on a
    GPU node), unless the results folder already has them."""
    import ray

    from bnnbench.roofline import calibration_path

    task = ray.remote(calibrate_task)
    for device in devices:
        path = calibration_path(store.root, device)
        if path.exists():
            continue
        ref = task.options(
            num_cpus=cpus_per_cell, num_gpus=1 if device == "gpu" else 0, max_retries=0
        ).remote(device, max(1, int(cpus_per_cell)))
        try:
            out = ray.get(ref)
        except ray.exceptions.RayError as err:
            print(f"calibration of {device} failed on the cluster: {_reason(err)}")
            continue
        if out["file"] is None:
            last = (out["stderr"].strip().splitlines() or ["no output"])[-1]
            print(f"calibration of {device} failed: {last}")
            continue
        atomic_write_bytes(path, out["file"])


def _reason(err: BaseException) -> str:
    """One line: why Ray gave no result for a task."""
    import ray.exceptions as rex

    kinds = [
        (rex.OutOfMemoryError, "out of memory: Ray's memory monitor killed the worker"),
        (rex.NodeDiedError, "the node running the cell was lost"),
        (rex.WorkerCrashedError, "the Ray worker running the cell died"),
        (rex.TaskCancelledError, "cancelled"),
        (rex.GetTimeoutError, "no answer from the cluster"),
    ]
    label = next((text for kind, text in kinds if isinstance(err, kind)), type(err).__name__)
    detail = " ".join(str(err).split())
    return f"{label}: {detail[:300]}" if detail else label


@dataclass
class _Pending:
    cfg: CellConfig
    row: dict[str, object]
    submitted: float


def _unpack(store: ResultStore, cfg: CellConfig, files: dict[str, bytes]) -> Path:
    run_dir = store.run_dir(cfg.run_id)
    prepare_run_dir(cfg, run_dir)
    for rel, data in files.items():
        atomic_write_bytes(run_dir / rel, data)
    return run_dir


def _record_answer(
    store: ResultStore, pending: _Pending, answer: dict[str, Any], resources: TaskResources
) -> dict[str, object]:
    cfg, row = pending.cfg, dict(pending.row)
    run_dir = _unpack(store, cfg, answer["files"])
    context = answer["context"]
    node_env_path = run_dir / "env.json"
    if node_env_path.exists():  # the node's machine and software, written by the cell itself
        node_env = json.loads(node_env_path.read_text())
        node_row = base_row(cfg, {**node_env, "git_revision": row["git_revision"]})
        for key in ("host", "cpu", "gpu", "python_version", "backend_version", "runtime_version"):
            row[key] = node_row[key]
    row["started_at"] = context["started_at"]  # when the node started it (not when queued)
    atomic_write_text(
        run_dir / "executor.json",
        json.dumps({"executor": "ray", **context, "resources": asdict(resources)}, indent=2),
    )
    return collect_cell(store, row, run_dir, CellExecution(**answer["execution"]))


def _record_failure(store: ResultStore, pending: _Pending, reason: str) -> dict[str, object]:
    run_dir = store.run_dir(pending.cfg.run_id)
    prepare_run_dir(pending.cfg, run_dir)
    wall_s = time.perf_counter() - pending.submitted
    return collect_cell(store, pending.row, run_dir, CellExecution(None, wall_s, {}, reason))


def run_on_ray(
    cells: list[CellConfig],
    store: ResultStore,
    env_info: dict,
    bar: Any,
    *,
    address: str | None = None,
    cpus_per_cell: float = DEFAULT_CPUS_PER_CELL,
) -> list[dict[str, object]]:
    """Run ``cells`` on a Ray cluster; record each as it ends; returns the rows in that order.

    Ctrl-C cancels the tasks still running (nothing is recorded for them) and is raised again.
    """
    import ray

    workdir = Path(tempfile.mkdtemp(prefix="bnnbench-ray-driver-"))
    try:
        where, connected = connect(address, workdir)
        try:
            return _run_connected(cells, store, env_info, bar, where, cpus_per_cell)
        finally:
            if connected:
                ray.shutdown()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_connected(
    cells: list[CellConfig],
    store: ResultStore,
    env_info: dict,
    bar: Any,
    where: str,
    cpus_per_cell: float,
) -> list[dict[str, object]]:
    import ray

    bar.write(f"bnnbench: {len(cells)} cells on {where}")
    rows: list[dict[str, object]] = []
    todo = []
    for cfg in cells:  # a backend missing here is recorded as on the local runner
        row = unavailable_row(cfg, env_info)
        if row is None:
            todo.append(cfg)
            continue
        store.record(row)
        rows.append(row)
        bar.update(1)
        report_row(bar, row)
    _calibrate_on_cluster(store, sorted({c.device for c in todo}), cpus_per_cell)
    task = ray.remote(run_cell_task)
    pending: dict[Any, _Pending] = {}
    resources_of: dict[str, TaskResources] = {}
    for cfg in todo:
        res = TaskResources.of(cfg, cpus_per_cell)
        resources_of[cfg.run_id] = res
        ref = task.options(
            num_cpus=res.num_cpus,
            num_gpus=res.num_gpus,
            memory=res.memory_bytes,
            max_retries=0,
            name=f"bnnbench {cfg.run_id}",
        ).remote(cfg.to_json(), _ship_files(store, cfg), asdict(res))
        pending[ref] = _Pending(cfg, base_row(cfg, env_info), time.perf_counter())
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                item = pending.pop(ref)
                try:
                    answer = ray.get(ref)
                except ray.exceptions.RayError as err:
                    row = _record_failure(store, item, _reason(err))
                else:
                    row = _record_answer(store, item, answer, resources_of[item.cfg.run_id])
                rows.append(row)
                bar.update(1)
                report_row(bar, row)
            bar.set_postfix_str(f"{len(pending)} submitted or running")
    except BaseException:  # Ctrl-C: cancel what is still out, record nothing for it
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return rows
