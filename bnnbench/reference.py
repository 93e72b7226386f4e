r"""An exact-posterior reference for small specs (NUTS), and the scores of VI runs against it.

The reference is full-data NUTS (NumPyro, float64) on a spec's training set; its predictive

.. math::

    \bar p_{\mathrm{ref}}(y = 1 \mid x) = \frac1S \sum_{s=1}^{S} p(y = 1 \mid x, \theta_s),
    \qquad \theta_s \sim p(\theta \mid \mathcal{D}) \text{ (NUTS)},

is what every variational run is scored against, with the two metrics of the NeurIPS 2021
competition on approximate inference in Bayesian neural networks (Wilson et al., 2022):

* agreement: the fraction of inputs where the VI and the reference predictive means pick the
  same class, :math:`\frac1n \sum_n [\arg\max_k \bar p_{VI,k}(x_n) =
  \arg\max_k \bar p_{ref,k}(x_n)]`;
* total variation: :math:`\frac1n \sum_n \frac12 \sum_k |\bar p_{VI,k}(x_n) - \bar p_{ref,k}(x_n)|`
  (for a binary model :math:`|\bar p_{VI}(x_n) - \bar p_{ref}(x_n)|`).

Run it in its own process, ``python -m bnnbench.reference moons_2x5 --out PATH``: :func:`main`
switches JAX to float64 for the whole process, which must not leak into a backend's cell.
:func:`run_nuts_reference` itself only enables float64 within its own scope.

Layout of the reference file (an ArviZ-layout ``xarray.DataTree``, netCDF):

* ``posterior``: every NUTS draw of every parameter, ``(chain, draw, ...)``, float64;
* ``sample_stats``: ``diverging``, ``n_steps``, ``tree_depth``, ``acceptance_rate``, ``energy``,
  ``lp`` (log joint density up to NumPyro's constants, :math:`-U(\theta)`), ``step_size``;
* ``posterior_predictive``: ``p`` on the test inputs over the thinned draws (float32);
* ``predictive``: ``test_p_mean``, ``test_p_sd`` (over the thinned draws), ``test_p_rhat``,
  ``test_p_ess_bulk``, ``test_p_ess_tail`` (over all draws), and for 2-D specs ``grid_p_mean``,
  ``grid_p_sd`` on ``grid_points`` (``spec.grid_points()``, flattened row-major as there);
* ``observed_data`` (``y`` = ``y_test``) and ``constant_data`` (``X`` = ``X_test``);
* attributes: the settings, timings (``*_s``, seconds) and the diagnostics (see
  :func:`run_nuts_reference`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import arviz as az
import numpy as np
import xarray as xr

from bnnbench import metrics
from bnnbench.results import load_tree, write_tree
from bnnbench.spec import ModelSpec, backend_module, get_spec, specs_with_nuts_reference

__all__ = [
    "DIAGNOSTIC_KEYS",
    "NUTSConfig",
    "default_reference_path",
    "diagnostics",
    "load_reference",
    "main",
    "predictive_agreement",
    "run_nuts_reference",
    "score_against_reference",
    "total_variation",
    "write_reference",
]

#: NumPyro's extra fields of the NUTS state and their ArviZ names in ``sample_stats``.
_EXTRA_FIELDS: dict[str, str] = {
    "diverging": "diverging",
    "num_steps": "n_steps",
    "accept_prob": "acceptance_rate",
    "energy": "energy",
    "potential_energy": "lp",
    "adapt_state.step_size": "step_size",
}


@dataclass(frozen=True)
class NUTSConfig:
    """Settings of the NUTS reference.

    Attributes
    ----------
    chains, warmup, samples
        Number of chains; warm-up (adaptation) iterations and kept draws per chain.
    seed
        Seed of the PRNG key of the chains (each chain gets its own split).
    target_accept_prob
        Target mean acceptance probability of the step-size adaptation; higher means smaller
        steps and fewer divergences.
    max_tree_depth
        Largest trajectory doubling depth (at most :math:`2^d - 1` leapfrog steps per draw).
    chain_method
        NumPyro's ``"sequential"`` (one chain after the other, each stopping its own trees) or
        ``"vectorized"`` (chains in lock-step, every step waits for the longest tree).
    predictive_draws
        Largest number of draws, thinned evenly within each chain, over which the stored
        predictive (``test_p_*``, ``grid_p_*``, ``posterior_predictive``) is computed;
        ``None``: all draws. The predictive's R-hat/ESS always use every draw.
    progress_bar
        NumPyro's progress bar (stderr).
    """

    chains: int = 4
    warmup: int = 1000
    samples: int = 1000
    seed: int = 0
    target_accept_prob: float = 0.8
    max_tree_depth: int = 10
    chain_method: Literal["sequential", "vectorized"] = "sequential"
    predictive_draws: int | None = 1000
    progress_bar: bool = False

    def __post_init__(self) -> None:
        if min(self.chains, self.warmup, self.samples) < 1:
            raise ValueError("chains, warmup and samples must be positive")
        if self.chain_method not in ("sequential", "vectorized"):
            raise ValueError(f"chain_method must be sequential or vectorized: {self.chain_method}")

    @property
    def draws_per_chain_kept(self) -> int:
        """Draws per chain in the thinned predictive set: ``ceil(samples / thin)``."""
        return len(range(0, self.samples, self.thin))

    @property
    def thin(self) -> int:
        """Thinning stride within each chain: ``ceil(chains * samples / predictive_draws)``."""
        if self.predictive_draws is None:
            return 1
        return max(1, -(-self.chains * self.samples // self.predictive_draws))


# ----------------------------------------------------------------------------------------------
# Scores (NeurIPS 2021 approximate inference in BNNs competition)
# ----------------------------------------------------------------------------------------------


def _as_class_probabilities(mean_proba: np.ndarray) -> np.ndarray:
    """Mean predictive ``(n,)`` p(y = 1) -> ``(n, 2)``; ``(n, K)`` is returned as it is."""
    mean_proba = np.asarray(mean_proba, np.float64)
    if mean_proba.ndim not in (1, 2):
        raise ValueError(f"expected mean probabilities (n,) or (n, K), got {mean_proba.shape}")
    return metrics.class_probabilities(mean_proba[None])[0] if mean_proba.ndim == 1 else mean_proba


def _pair(p_vi: np.ndarray, p_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_class_probabilities(p_vi), _as_class_probabilities(p_ref)
    if a.shape != b.shape:
        raise ValueError(f"predictive shapes differ: {np.shape(p_vi)} vs {np.shape(p_ref)}")
    if a.shape[0] == 0:
        raise ValueError("no points to score")
    return a, b


def predictive_agreement(p_vi: np.ndarray, p_ref: np.ndarray) -> float:
    r"""Agreement of the predicted classes (Wilson et al., 2022).

    .. math::

        \mathrm{agreement} = \frac1n \sum_{n} \mathbb{1}\left[
            \arg\max_k \bar p_{VI,k}(x_n) = \arg\max_k \bar p_{ref,k}(x_n) \right]

    Parameters
    ----------
    p_vi, p_ref
        Mean predictive probabilities over draws: binary p(y = 1) ``(n,)`` or class
        probabilities ``(n, K)`` (both the same form). A binary 1/2 counts as class 0.

    Returns
    -------
    float
        In [0, 1]; 1 when every point gets the same class.
    """
    a, b = _pair(p_vi, p_ref)
    return float(np.mean(a.argmax(axis=-1) == b.argmax(axis=-1)))


def total_variation(p_vi: np.ndarray, p_ref: np.ndarray) -> float:
    r"""Mean total-variation distance of the predictive distributions (Wilson et al., 2022).

    .. math::

        \mathrm{TV} = \frac1n \sum_n \frac12 \sum_k \left|\bar p_{VI,k}(x_n) - \bar p_{ref,k}(x_n)
        \right|,

    which for a binary model is :math:`\frac1n \sum_n |\bar p_{VI}(x_n) - \bar p_{ref}(x_n)|`.

    Parameters
    ----------
    p_vi, p_ref
        Mean predictive probabilities, ``(n,)`` binary p(y = 1) or ``(n, K)``.

    Returns
    -------
    float
        In [0, 1]; 0 for identical predictives.
    """
    a, b = _pair(p_vi, p_ref)
    return float(np.mean(0.5 * np.abs(a - b).sum(axis=-1)))


def score_against_reference(
    test_p_mean_vi: np.ndarray,
    grid_p_mean_vi: np.ndarray | None,
    reference_tree: xr.DataTree,
) -> dict[str, float]:
    """Agreement and total variation of a VI predictive against the NUTS reference.

    Parameters
    ----------
    test_p_mean_vi
        VI mean predictive on the spec's test inputs, in the reference's order: ``(n_test,)``
        p(y = 1) or ``(n_test, K)``.
    grid_p_mean_vi
        VI mean predictive p(y = 1) on ``spec.grid_points()``, flat ``(n*n,)`` or as the map
        ``(n, n)`` (``grid_y``, ``grid_x``) of ``predictive_summary.nc``; ``None`` if the
        reference has no grid.
    reference_tree
        A tree from :func:`run_nuts_reference` or :func:`load_reference`.

    Returns
    -------
    dict
        ``agreement_test``, ``tv_test`` and, with a grid, ``agreement_grid``, ``tv_grid``.
    """
    pred = reference_tree["predictive"]
    scores = {
        "agreement_test": predictive_agreement(test_p_mean_vi, pred["test_p_mean"].values),
        "tv_test": total_variation(test_p_mean_vi, pred["test_p_mean"].values),
    }
    if "grid_p_mean" in pred.data_vars:
        if grid_p_mean_vi is None:
            raise ValueError("the reference has a grid: pass grid_p_mean_vi")
        ref = pred["grid_p_mean"].values
        vi = np.asarray(grid_p_mean_vi, np.float64)
        if vi.size != ref.size:
            raise ValueError(f"grid sizes differ: {vi.shape} vs reference {ref.shape}")
        vi = vi.reshape(ref.shape)
        scores["agreement_grid"] = predictive_agreement(vi, ref)
        scores["tv_grid"] = total_variation(vi, ref)
    elif grid_p_mean_vi is not None:
        raise ValueError("the reference has no grid")
    return scores


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def default_reference_path(spec_name: str, root: Path = Path("results")) -> Path:
    """``root/reference/<spec>/nuts.nc`` (``root`` relative to the repository by default)."""
    return Path(root) / "reference" / spec_name / "nuts.nc"


def write_reference(tree: xr.DataTree, path: Path) -> Path:
    """Write ``tree`` as compressed netCDF (written beside ``path`` and renamed into place)."""
    return write_tree(tree, Path(path))


def load_reference(path: Path) -> xr.DataTree:
    """Read a reference written by :func:`write_reference` fully into memory."""
    return load_tree(Path(path))


# ----------------------------------------------------------------------------------------------
# NUTS
# ----------------------------------------------------------------------------------------------


def _predict_draws(
    spec: ModelSpec, draws: Mapping[str, np.ndarray], X: np.ndarray, chunk_draws: int = 250
) -> np.ndarray:
    """``spec.predict_proba`` over draws ``(S, ...)`` in chunks: ``(S, n)`` or ``(S, n, K)``."""
    n_draws = next(iter(draws.values())).shape[0]
    return np.concatenate(
        [
            spec.predict_proba({k: v[i : i + chunk_draws] for k, v in draws.items()}, X)
            for i in range(0, n_draws, chunk_draws)
        ]
    )


def _max(ds: xr.Dataset) -> float:
    return float(max(np.nanmax(v.values) for v in ds.data_vars.values()))


def _min(ds: xr.Dataset) -> float:
    return float(min(np.nanmin(v.values) for v in ds.data_vars.values()))


def _draws_dataset(arrays: Mapping[str, np.ndarray], draw: np.ndarray) -> xr.Dataset:
    """``(chain, draw, *shape)`` arrays as an ArviZ group."""
    first = next(iter(arrays.values()))
    return xr.Dataset(
        {
            k: (("chain", "draw", *[f"{k}_dim_{i}" for i in range(v.ndim - 2)]), v)
            for k, v in arrays.items()
        },
        coords={"chain": np.arange(first.shape[0]), "draw": draw},
    )


def run_nuts_reference(spec_name: str, cfg: NUTSConfig) -> xr.DataTree:
    r"""Full-data NUTS on the spec's training set, in float64, as an ArviZ-layout DataTree.

    Samples :math:`p(\theta \mid X_{train}, y_{train})` with the spec's NumPyro model (no
    subsampling) and evaluates the spec's float64 NumPy ``predict_proba`` on the test inputs and
    on the grid over the (thinned) draws: means :math:`\bar p(x) = \frac1S \sum_s p(y=1 \mid x,
    \theta_s)` and standard deviations :math:`\sqrt{\frac1S \sum_s (p_s(x) - \bar p(x))^2}`.

    Diagnostics (root attributes):

    * ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``: rank-normalised split R-hat and bulk/tail
      ESS (``arviz.rhat``, ``arviz.ess``) over every scalar parameter;
    * ``max_rhat_predictive``, ``min_ess_bulk_predictive``, ``min_ess_tail_predictive``: the same
      over the predictive probabilities p(y = 1 | x_n, θ) of every test point, and ``rhat_lp``,
      ``ess_bulk_lp`` of the log density;
    * ``n_divergent`` (post-warm-up divergent transitions), ``n_max_tree_depth`` (draws that hit
      ``max_tree_depth``), ``mean_acceptance_rate``;
    * ``sample_s`` (NUTS incl. compilation), ``predict_s``, ``wall_s`` (seconds);
    * ``test_accuracy``, ``test_nll`` (nats) of the reference's mean predictive against ``y_test``.

    A BNN's posterior is invariant under permutations of the hidden units and under sign flips
    of a tanh unit's in- and outgoing weights (:math:`\tanh(-a) = -\tanh(a)`), so chains that
    settle in different, equivalent modes give a large parameter R-hat even when they agree on
    every prediction. The predictive probabilities and the log density are invariant under these
    symmetries: their R-hat/ESS are the ones that say whether the reference predictive converged.
    Report both.

    Parameters
    ----------
    spec_name
        A spec with a NumPyro model ``model(X, y=None, batch_size=None)``; small ones only
        (``moons_2x5``: 40 parameters, 500 training points).
    cfg
        NUTS settings.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``sample_stats``, ``posterior_predictive``, ``predictive``,
        ``observed_data``, ``constant_data`` (see the module docstring).
    """
    import jax
    import numpyro
    from numpyro.infer import MCMC, NUTS

    spec = get_spec(spec_name)
    model = backend_module(spec_name, "numpyro").model
    data = spec.load_data()
    started = time.perf_counter()
    with jax.enable_x64(True):
        X = jax.numpy.asarray(data.X_train, jax.numpy.float64)
        y = jax.numpy.asarray(data.y_train, jax.numpy.int64)
        kernel = NUTS(
            model, target_accept_prob=cfg.target_accept_prob, max_tree_depth=cfg.max_tree_depth
        )
        mcmc = MCMC(
            kernel,
            num_warmup=cfg.warmup,
            num_samples=cfg.samples,
            num_chains=cfg.chains,
            chain_method=cfg.chain_method,
            progress_bar=cfg.progress_bar,
        )
        mcmc.run(jax.random.PRNGKey(cfg.seed), X, y, extra_fields=tuple(_EXTRA_FIELDS))
        raw = mcmc.get_samples(group_by_chain=True)
        sample_dtype = str(raw[spec.param_names[0]].dtype)
        samples = {k: np.asarray(v, np.float64) for k, v in raw.items() if k in spec.param_names}
        extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    sample_s = time.perf_counter() - started

    t = time.perf_counter()
    stats = {_EXTRA_FIELDS[k]: v for k, v in extra.items()}
    stats["lp"] = -stats["lp"]  # potential energy U = -log density
    stats["diverging"] = stats["diverging"].astype(bool)
    stats["n_steps"] = stats["n_steps"].astype(np.int64)
    # depth d of a trajectory of n leapfrog steps: 2^(d-1) - 1 < n <= 2^d - 1
    stats["tree_depth"] = np.ceil(np.log2(stats["n_steps"] + 1.0)).astype(np.int64)
    draw = np.arange(cfg.samples)
    posterior = _draws_dataset(samples, draw)
    sample_stats = _draws_dataset(stats, draw)

    # predictive on the test inputs for every draw: its R-hat/ESS are label-switching invariant
    flat = {k: v.reshape(cfg.chains * cfg.samples, *v.shape[2:]) for k, v in samples.items()}
    test_p_all = _predict_draws(spec, flat, data.X_test)
    test_p_all = test_p_all.reshape(cfg.chains, cfg.samples, *test_p_all.shape[1:])
    event_dims = ("obs_id", *(("class",) if test_p_all.ndim == 4 else ()))
    p_ds = xr.Dataset({"p": (("chain", "draw", *event_dims), test_p_all)})
    p_rhat, p_ess_bulk = az.rhat(p_ds)["p"].values, az.ess(p_ds)["p"].values
    p_ess_tail = az.ess(p_ds, method="tail")["p"].values

    # thinned draws for the stored predictive
    kept = np.arange(0, cfg.samples, cfg.thin)
    test_p = test_p_all[:, kept].reshape(-1, *test_p_all.shape[2:])
    predictive = {
        "test_p_mean": (event_dims, test_p.mean(axis=0)),
        "test_p_sd": (event_dims, test_p.std(axis=0)),
        "test_p_rhat": (event_dims, p_rhat),
        "test_p_ess_bulk": (event_dims, p_ess_bulk),
        "test_p_ess_tail": (event_dims, p_ess_tail),
    }
    grid = spec.grid_points()
    if grid is not None:
        _, _, points = grid
        thinned = {k: v[:, kept].reshape(-1, *v.shape[2:]) for k, v in samples.items()}
        grid_p = _predict_draws(spec, thinned, points)
        grid_dims = ("grid_point", *event_dims[1:])
        predictive["grid_p_mean"] = (grid_dims, grid_p.mean(axis=0))
        predictive["grid_p_sd"] = (grid_dims, grid_p.std(axis=0))
        predictive["grid_points"] = (("grid_point", "feature"), points)
    predict_s = time.perf_counter() - t

    mean_proba = predictive["test_p_mean"][1]
    rhat, ess_bulk = az.rhat(posterior), az.ess(posterior)
    ess_tail = az.ess(posterior, method="tail")
    lp_ds = sample_stats[["lp"]]
    attrs: dict[str, object] = {
        "spec": spec_name,
        "method": "NumPyro NUTS, full data, float64",
        **{k: v for k, v in asdict(cfg).items() if k not in ("predictive_draws", "progress_bar")},
        "dtype": sample_dtype,
        "predictive_draws": int(len(kept) * cfg.chains),
        "thin": cfg.thin,
        "numpyro_version": numpyro.__version__,
        "jax_version": jax.__version__,
        "max_rhat": _max(rhat),
        "min_ess_bulk": _min(ess_bulk),
        "min_ess_tail": _min(ess_tail),
        "max_rhat_predictive": float(np.nanmax(p_rhat)),
        "min_ess_bulk_predictive": float(np.nanmin(p_ess_bulk)),
        "min_ess_tail_predictive": float(np.nanmin(p_ess_tail)),
        "rhat_lp": float(az.rhat(lp_ds)["lp"]),
        "ess_bulk_lp": float(az.ess(lp_ds)["lp"]),
        "n_divergent": int(stats["diverging"].sum()),
        "n_max_tree_depth": int((stats["tree_depth"] >= cfg.max_tree_depth).sum()),
        "mean_acceptance_rate": float(stats["acceptance_rate"].mean()),
        "mean_n_steps": float(stats["n_steps"].mean()),
        "test_accuracy": metrics.accuracy(data.y_test, mean_proba),
        "test_nll": metrics.negative_log_likelihood(data.y_test, mean_proba),
        "sample_s": sample_s,
        "predict_s": predict_s,
        "wall_s": time.perf_counter() - started,
    }
    stats_ds = sample_stats.assign(diverging=sample_stats["diverging"].astype(np.int8))
    tree = xr.DataTree.from_dict(
        {
            "posterior": posterior,
            "sample_stats": stats_ds,
            "posterior_predictive": xr.Dataset(
                {"p": (("chain", "draw", *event_dims), test_p_all[:, kept].astype(np.float32))},
                coords={"chain": np.arange(cfg.chains), "draw": kept},
            ),
            "predictive": xr.Dataset(predictive),
            "observed_data": xr.Dataset({"y": ("obs_id", data.y_test)}),
            "constant_data": xr.Dataset({"X": (("obs_id", "feature"), data.X_test)}),
        }
    )
    tree.attrs.update(attrs)
    return tree


DIAGNOSTIC_KEYS: tuple[str, ...] = (
    "max_rhat",
    "min_ess_bulk",
    "min_ess_tail",
    "max_rhat_predictive",
    "min_ess_bulk_predictive",
    "min_ess_tail_predictive",
    "rhat_lp",
    "ess_bulk_lp",
    "n_divergent",
    "n_max_tree_depth",
    "mean_acceptance_rate",
    "mean_n_steps",
    "test_accuracy",
    "test_nll",
    "sample_s",
    "predict_s",
    "wall_s",
)


def diagnostics(tree: xr.DataTree) -> dict[str, float]:
    """The diagnostic attributes of a reference (see :func:`run_nuts_reference`)."""
    return {k: tree.attrs[k] for k in DIAGNOSTIC_KEYS if k in tree.attrs}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bnnbench.reference SPEC --out PATH [--chains ...]``: run and write a reference.

    Turns on JAX float64 for this whole process (run it as its own process).
    """
    defaults = NUTSConfig()
    parser = argparse.ArgumentParser(
        prog="python -m bnnbench.reference", description="NUTS reference posterior of a spec"
    )
    parser.add_argument("spec", choices=specs_with_nuts_reference())
    parser.add_argument("--out", type=Path, default=None, help="default: results/reference/...")
    parser.add_argument("--chains", type=int, default=defaults.chains)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--samples", type=int, default=defaults.samples, help="per chain")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--target-accept", type=float, default=defaults.target_accept_prob)
    parser.add_argument("--max-tree-depth", type=int, default=defaults.max_tree_depth)
    parser.add_argument(
        "--chain-method", choices=("sequential", "vectorized"), default=defaults.chain_method
    )
    parser.add_argument(
        "--predictive-draws", type=int, default=defaults.predictive_draws, help="0: all draws"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(list(argv) if argv is not None else None)

    import jax

    jax.config.update("jax_enable_x64", True)
    cfg = NUTSConfig(
        chains=args.chains,
        warmup=args.warmup,
        samples=args.samples,
        seed=args.seed,
        target_accept_prob=args.target_accept,
        max_tree_depth=args.max_tree_depth,
        chain_method=args.chain_method,
        predictive_draws=args.predictive_draws or None,
        progress_bar=not args.no_progress,
    )
    out = args.out if args.out is not None else default_reference_path(args.spec)
    print(f"NUTS reference for {args.spec}: {cfg}", flush=True)
    tree = run_nuts_reference(args.spec, cfg)
    write_reference(tree, out)
    print(f"wrote {out}", flush=True)
    print(json.dumps(diagnostics(tree), indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
