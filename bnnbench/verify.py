"""``bnnbench verify``: do the backends implement the same model?

At several random parameter points :math:`\\theta^{(r)}` (entries i.i.d. N(0, 1)) every backend
evaluates, in float64 and on the full data, each term of the log joint density (one per parameter
tensor and the likelihood) and the gradient of the total with respect to every parameter tensor.
Each term is compared with the spec's NumPy reference and each gradient with the first backend's:

.. math::

    \\mathrm{rel}(a, b) = \\frac{\\max |a - b|}{\\max(\\max |b|, 1)} \\le 10^{-6}.

No constant offset is allowed: every backend includes the full normalising constants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bnnbench.spec import ModelSpec, get_spec

__all__ = ["RTOL", "Mismatch", "VerifyReport", "relative_difference", "verify"]

#: Relative tolerance of every comparison.
RTOL = 1e-6

LogJointFn = Callable[
    [ModelSpec, dict, np.ndarray, np.ndarray], tuple[dict[str, float], dict[str, np.ndarray]]
]


def relative_difference(a: np.ndarray | float, b: np.ndarray | float) -> float:
    """``max|a - b| / max(max|b|, 1)``: relative for large values, absolute for small ones."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1.0))


@dataclass(frozen=True)
class Mismatch:
    model: str
    backend: str
    term: str
    kind: str  # "log density" or "gradient"
    rel_diff: float

    def __str__(self) -> str:
        return (
            f"{self.model}: backend {self.backend!r} disagrees on the {self.kind} of term "
            f"{self.term!r} (relative difference {self.rel_diff:.3g} > {RTOL:g})"
        )


@dataclass
class VerifyReport:
    """Largest differences per (model, backend, kind, term) and the mismatches among them."""

    table: pd.DataFrame
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _default_log_joint(backend: str) -> LogJointFn:
    from bnnbench.backends import get_backend

    return get_backend(backend).log_joint_terms


def verify(
    models: Sequence[str],
    backends: Sequence[str],
    n_points: int = 3,
    seed: int = 0,
    log_joint: Callable[[str], LogJointFn] = _default_log_joint,
) -> VerifyReport:
    """Compare every backend's log joint terms and gradients at ``n_points`` random points."""
    rows: list[dict] = []
    for model in models:
        spec = get_spec(model)
        X, y = spec.verification_data()
        rng = np.random.default_rng(seed)
        points = [spec.random_params(rng) for _ in range(n_points)]
        reference_grads: list[dict[str, np.ndarray]] = []
        for backend in backends:
            fn = log_joint(backend)
            for i, point in enumerate(points):
                expected = spec.log_joint_terms(point, X, y)
                terms, grads = fn(spec, point, X, y)
                for term, value in expected.items():
                    got = terms.get(term, np.nan)
                    rows.append(
                        dict(
                            model=model,
                            backend=backend,
                            kind="log density",
                            term=term,
                            point=i,
                            value=got,
                            rel_diff=relative_difference(got, value)
                            if term in terms
                            else float("inf"),
                        )
                    )
                extra = set(terms) - set(expected)
                for term in sorted(extra):
                    rows.append(
                        dict(
                            model=model,
                            backend=backend,
                            kind="log density",
                            term=term,
                            point=i,
                            value=terms[term],
                            rel_diff=float("inf"),
                        )
                    )
                if len(reference_grads) <= i:
                    reference_grads.append(grads)
                for name in spec.param_names:
                    diff = (
                        relative_difference(grads[name], reference_grads[i][name])
                        if name in grads
                        else float("inf")
                    )
                    rows.append(
                        dict(
                            model=model,
                            backend=backend,
                            kind="gradient",
                            term=name,
                            point=i,
                            value=np.nan,
                            rel_diff=diff,
                        )
                    )
    frame = pd.DataFrame(rows)
    table = (
        frame.groupby(["model", "backend", "kind", "term"], sort=False)["rel_diff"]
        .max()
        .reset_index()
        .rename(columns={"rel_diff": "max_rel_diff"})
    )
    mismatches = [
        Mismatch(r.model, r.backend, r.term, r.kind, r.max_rel_diff)
        for r in table.itertuples()
        if not r.max_rel_diff <= RTOL
    ]
    return VerifyReport(table=table, mismatches=mismatches)
