"""Bare training loops: each library used directly, as its documentation shows, without bnnbench.

These are the reference the harness's ``step_ms`` is compared against (``overhead.py``). Each loop
trains the spec's own model file (``models/<spec>/<backend>.py``) on the spec's data with the
``matched`` profile's settings (the shared seeded initial means, one initial scale, Adam, one
particle, float32) and takes the **same execution path** as the harness's session for that
backend:

* PyMC: ``pm.ADVI`` with ``start``/``start_sigma``, the full-data objective
  (``scale_cost_to_minibatch = False``) and ``pm.adam``; the step function that ``pm.fit`` builds
  (``inference.objective.step_function(score=True, ...)``), compiled with the same pytensor mode
  (``pm.fit(backend=...)``'s naming), called from a plain Python ``for`` loop.
* Pyro: ``SVI(model, AutoNormal(...), pyro.optim.Adam, JitTrace_ELBO())`` (or ``Trace_ELBO``),
  validation off, ``svi.step`` in a ``for`` loop.
* NumPyro: ``SVI(model, AutoNormal(...), numpyro.optim.Adam, Trace_ELBO())``; one
  ``jax.jit``-compiled, state-donating ``lax.scan`` over ``svi.update`` per chunk of steps.

Nothing from ``bnnbench.cell`` or ``bnnbench.backends`` runs here: only the spec (data loader,
initial means) and the model files are shared with the harness. Timing follows the harness's
definition of ``step_ms``: the median over chunks of (chunk wall time / chunk steps), each chunk
ending only after the device has finished; the bare loops time their chunks after a warm-up
(compilation, JIT profiling runs, optimizer state allocation) that is excluded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np

from bnnbench.spec import backend_module, get_spec

__all__ = ["BARE_LOOPS", "BareTiming", "bare_numpyro", "bare_pymc", "bare_pyro", "run_bare"]


@dataclass(frozen=True)
class BareTiming:
    """Steady-state timing of one bare training loop.

    Attributes
    ----------
    step_ms
        Median over the timed chunks of chunk wall time / chunk steps, in milliseconds.
    chunk_step_ms
        Every timed chunk's wall time / steps, in milliseconds, in order.
    setup_s
        Model, guide and optimizer construction, compilation and warm-up, in seconds (untimed
        by ``step_ms``).
    final_loss
        Last step's negative ELBO (full data), a sanity check that the loop trained.
    execution_path
        What the loop ran, in words.
    """

    backend: str
    model: str
    step_ms: float
    chunk_step_ms: tuple[float, ...]
    setup_s: float
    final_loss: float
    execution_path: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _timing(
    backend: str,
    model: str,
    chunk_s: list[float],
    chunk_steps: int,
    setup_s: float,
    final_loss: float,
    execution_path: str,
) -> BareTiming:
    chunk_step_ms = tuple(1000.0 * s / chunk_steps for s in chunk_s)
    return BareTiming(
        backend=backend,
        model=model,
        step_ms=float(np.median(chunk_step_ms)),
        chunk_step_ms=chunk_step_ms,
        setup_s=setup_s,
        final_loss=final_loss,
        execution_path=execution_path,
    )


def bare_pymc(
    model: str,
    *,
    n_chunks: int,
    chunk_steps: int,
    batch_size: int,
    learning_rate: float,
    init_scale: float,
    seed: int,
    device: str = "cpu",
    warmup_steps: int = 5,
    pytensor_backend: str | None = None,
) -> BareTiming:
    """Minibatch ADVI in PyMC: ``step_function`` of ``pm.ADVI`` called from a Python loop.

    Parameters
    ----------
    model
        Spec name; its ``models/<model>/pymc.py`` builds the ``pm.Model`` with ``pm.Minibatch``.
    n_chunks, chunk_steps
        Timed chunks and optimisation steps per chunk.
    batch_size, learning_rate, init_scale, seed
        Minibatch size, Adam's step size, initial sd of every factor, seed of the initial means
        and of ADVI's random stream.
    device
        ``"cpu"`` (pytensor's C backend) or ``"gpu"`` (its JAX backend).
    warmup_steps
        Untimed steps before the first chunk.
    pytensor_backend
        ``pm.fit(backend=...)``'s name of the compile mode (``"c"``, ``"jax"``, ``"numba"``);
        ``None``: ``"c"`` on the CPU and ``"jax"`` on the GPU.

    Returns
    -------
    BareTiming
    """
    import pymc as pm
    import pytensor
    from pytensor.compile.mode import get_mode

    spec = get_spec(model)
    build_model = backend_module(model, "pymc").build_model
    data = spec.load_data()
    float_x = pytensor.config.floatX
    # PyMC casts discrete observations to int16 (float32) / int32 (float64): give it that dtype.
    X = data.X_train.astype(float_x)
    y = data.y_train.astype("int16" if float_x == "float32" else "int32")
    backend = pytensor_backend or ("jax" if device == "gpu" else "c")
    mode = get_mode({"c": "cvm"}.get(backend, backend))  # pm.fit's naming: "c" is C + VM

    started = time.perf_counter()
    pm_model = build_model(X, y, batch_size=batch_size)
    means = spec.initial_means(seed)
    with pm_model:
        advi = pm.ADVI(
            random_seed=seed,
            start={k: v.astype(float_x) for k, v in means.items()},
            start_sigma={
                pm_model.rvs_to_values[pm_model[k]].name: np.full(v.size, init_scale, float_x)
                for k, v in means.items()
            },
        )
        advi.approx.scale_cost_to_minibatch = False  # full-data negative ELBO
        step = advi.objective.step_function(
            score=True,
            obj_optimizer=pm.adam(learning_rate=learning_rate),
            compile_kwargs={"mode": mode},
        )
    for _ in range(warmup_steps):
        step()
    setup_s = time.perf_counter() - started

    losses = np.empty(chunk_steps)
    chunk_s = []
    for _ in range(n_chunks):
        t = time.perf_counter()
        for i in range(chunk_steps):
            losses[i] = step()
        chunk_s.append(time.perf_counter() - t)
    path = f"pm.ADVI step_function(score=True, mode={backend}, floatX={float_x}), Python loop"
    return _timing("pymc", model, chunk_s, chunk_steps, setup_s, float(losses[-1]), path)


def bare_pyro(
    model: str,
    *,
    n_chunks: int,
    chunk_steps: int,
    batch_size: int,
    learning_rate: float,
    init_scale: float,
    seed: int,
    device: str = "cpu",
    warmup_steps: int = 5,
    jit_elbo: bool = True,
) -> BareTiming:
    """Pyro SVI with ``AutoNormal``: ``svi.step`` in a Python loop.

    Parameters
    ----------
    model
        Spec name; its ``models/<model>/pyro.py`` holds ``model(X, y, batch_size)``.
    n_chunks, chunk_steps, batch_size, learning_rate, init_scale, seed, device, warmup_steps
        As in :func:`bare_pymc` (``device="gpu"``: CUDA).
    jit_elbo
        ``JitTrace_ELBO`` (``True``) or ``Trace_ELBO``.

    Returns
    -------
    BareTiming
    """
    import pyro
    import torch
    from pyro.infer import SVI, JitTrace_ELBO, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal
    from pyro.infer.autoguide.initialization import init_to_value

    spec = get_spec(model)
    model_fn = backend_module(model, "pyro").model
    data = spec.load_data()
    torch_device = torch.device("cuda" if device == "gpu" else "cpu")

    def synchronize() -> None:
        if torch_device.type == "cuda":
            torch.cuda.synchronize()

    started = time.perf_counter()
    pyro.enable_validation(False)
    pyro.set_rng_seed(seed)
    pyro.clear_param_store()
    X = torch.as_tensor(data.X_train, dtype=torch.float32, device=torch_device)
    y = torch.as_tensor(data.y_train, dtype=torch.float32, device=torch_device)
    init = {k: torch.as_tensor(v, device=torch_device) for k, v in spec.initial_means(seed).items()}
    guide = AutoNormal(model_fn, init_loc_fn=init_to_value(values=init), init_scale=init_scale)
    elbo = JitTrace_ELBO() if jit_elbo else Trace_ELBO()
    svi = SVI(model_fn, guide, pyro.optim.Adam({"lr": learning_rate}), elbo)
    for _ in range(warmup_steps):
        svi.step(X, y, batch_size=batch_size)
    synchronize()
    setup_s = time.perf_counter() - started

    losses = np.empty(chunk_steps)
    chunk_s = []
    for _ in range(n_chunks):
        t = time.perf_counter()
        for i in range(chunk_steps):
            losses[i] = svi.step(X, y, batch_size=batch_size)
        synchronize()
        chunk_s.append(time.perf_counter() - t)
    path = f"{type(elbo).__name__} + Adam, validation off, svi.step loop, torch on {torch_device}"
    return _timing("pyro", model, chunk_s, chunk_steps, setup_s, float(losses[-1]), path)


def bare_numpyro(
    model: str,
    *,
    n_chunks: int,
    chunk_steps: int,
    batch_size: int,
    learning_rate: float,
    init_scale: float,
    seed: int,
    device: str = "cpu",
    warmup_steps: int = 0,
) -> BareTiming:
    """NumPyro SVI with ``AutoNormal``: a jitted ``lax.scan`` over ``svi.update`` per chunk.

    Parameters
    ----------
    model
        Spec name; its ``models/<model>/numpyro.py`` holds ``model(X, y, batch_size)``.
    n_chunks, chunk_steps, batch_size, learning_rate, init_scale, seed, device
        As in :func:`bare_pymc`.
    warmup_steps
        Ignored: the warm-up is one untimed chunk (its first call compiles the scan).

    Returns
    -------
    BareTiming
    """
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal
    from numpyro.infer.initialization import init_to_value

    del warmup_steps
    spec = get_spec(model)
    model_fn = backend_module(model, "numpyro").model
    data = spec.load_data()
    jax_device = jax.devices("gpu" if device == "gpu" else "cpu")[0]

    started = time.perf_counter()
    X = jax.device_put(jnp.asarray(data.X_train, jnp.float32), jax_device)
    y = jax.device_put(jnp.asarray(data.y_train, jnp.int32), jax_device)
    init = {k: jnp.asarray(v) for k, v in spec.initial_means(seed).items()}
    guide = AutoNormal(model_fn, init_loc_fn=init_to_value(values=init), init_scale=init_scale)
    svi = SVI(model_fn, guide, numpyro.optim.Adam(step_size=learning_rate), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(seed), X, y, batch_size=batch_size)

    @partial(jax.jit, static_argnames="n_steps", donate_argnums=0)
    def train_chunk(state, X, y, n_steps: int):
        def body(carry, _):
            return svi.update(carry, X, y, batch_size=batch_size)

        return jax.lax.scan(body, state, None, length=n_steps)

    state, losses = train_chunk(state, X, y, n_steps=chunk_steps)  # compiles
    jax.block_until_ready(losses)
    setup_s = time.perf_counter() - started

    chunk_s = []
    for _ in range(n_chunks):
        t = time.perf_counter()
        state, losses = train_chunk(state, X, y, n_steps=chunk_steps)
        losses = np.asarray(jax.block_until_ready(losses))
        chunk_s.append(time.perf_counter() - t)
    path = f"jax.jit(lax.scan(svi.update)) over chunks of {chunk_steps} steps, donated state, on "
    path += jax_device.platform
    return _timing("numpyro", model, chunk_s, chunk_steps, setup_s, float(losses[-1]), path)


#: The bare loop of each Bayesian backend.
BARE_LOOPS: dict[str, Callable[..., BareTiming]] = {
    "pymc": bare_pymc,
    "pyro": bare_pyro,
    "numpyro": bare_numpyro,
}


def run_bare(backend: str, model: str, **settings: object) -> BareTiming:
    """The bare loop of ``backend`` on spec ``model`` (keyword settings as in :func:`bare_pymc`)."""
    if backend not in BARE_LOOPS:
        raise ValueError(f"no bare loop for {backend!r}; valid: {', '.join(BARE_LOOPS)}")
    return BARE_LOOPS[backend](model, **settings)
