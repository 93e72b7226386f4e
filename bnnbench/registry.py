"""The backend registry: every backend declares itself once, in its own module.

A backend is one module ``bnnbench/backends/<name>_backend.py`` whose top level holds a literal
declaration::

    BACKEND = dict(
        name="pyro",                         # the CLI / results name
        order=1,                             # position in tables and plots
        bayesian=True,                       # False for a maximum-likelihood baseline
        packages={"pyro": "pyro-ppl", "torch": "torch"},  # import name -> distribution
        library="pyro-ppl",                  # distribution recorded as backend_version
        runtime="torch",                     # distribution recorded as runtime_version
        extra="pyro",                        # pip install 'bnnbench[<extra>]'
        color="#d62728",                     # report colour
        model_file="pyro",                   # models/<spec>/<model_file>.py
    )

The registry reads these declarations from the modules' source without importing them (a
backend's module imports its library, which may be absent or slow to import), so the CLI's
choices, type checks, install hints, provenance and report colours all come from here, and adding
a backend is that module plus one ``models/<spec>/<model_file>.py`` per spec.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import pkgutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BackendInfo", "backend_info", "backend_names", "backends", "missing_packages"]

_PACKAGE = "bnnbench.backends"
_SUFFIX = "_backend"


@dataclass(frozen=True)
class BackendInfo:
    """What bnnbench knows of a backend without importing it.

    Attributes
    ----------
    name
        The name users type (``--backends``) and results record.
    module
        The engine module, ``bnnbench.backends.<module>``.
    order
        Position in tables, legends and the default backend list.
    bayesian
        Whether it fits a posterior (``verify`` applies); ``False`` for a baseline.
    packages
        Import name -> distribution name of everything it needs.
    library, runtime
        Distributions recorded as ``backend_version`` and ``runtime_version``.
    extra
        The ``pip install 'bnnbench[extra]'`` that provides it.
    color
        Its colour in the report's figures.
    model_file
        The file name (without ``.py``) of its implementation in each ``models/<spec>/``.
    """

    name: str
    module: str
    order: int
    bayesian: bool
    packages: dict[str, str]
    library: str
    runtime: str
    extra: str
    color: str
    model_file: str

    def missing_packages(self) -> list[str]:
        """Distributions it needs that are not installed (found without importing them)."""
        return [d for m, d in self.packages.items() if importlib.util.find_spec(m) is None]

    def install_hint(self) -> str:
        missing = self.missing_packages()
        return f"not installed: {', '.join(missing)} (pip install 'bnnbench[{self.extra}]')"


def _declaration(path: Path) -> dict | None:
    """The literal ``BACKEND = dict(...)`` of a module's source, or ``None``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "BACKEND"
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "dict"
        ):
            return {kw.arg: ast.literal_eval(kw.value) for kw in node.value.keywords}
    return None


@functools.cache
def backends() -> tuple[BackendInfo, ...]:
    """Every registered backend, in ``order``."""
    spec = importlib.util.find_spec(_PACKAGE)
    assert spec is not None and spec.submodule_search_locations is not None
    found = []
    for module in pkgutil.iter_modules(spec.submodule_search_locations):
        if not module.name.endswith(_SUFFIX):
            continue
        path = Path(module.module_finder.path) / f"{module.name}.py"  # type: ignore[union-attr]
        declared = _declaration(path)
        if declared is None:
            raise RuntimeError(f"{path} declares no BACKEND = dict(...)")
        found.append(BackendInfo(module=module.name, **declared))
    return tuple(sorted(found, key=lambda b: (b.order, b.name)))


def backend_names(*, bayesian_only: bool = False) -> tuple[str, ...]:
    """The registered names (only the Bayesian ones with ``bayesian_only``)."""
    return tuple(b.name for b in backends() if b.bayesian or not bayesian_only)


def backend_info(name: str) -> BackendInfo:
    """The backend called ``name`` (``ValueError`` listing the valid names otherwise)."""
    for info in backends():
        if info.name == name:
            return info
    raise ValueError(f"unknown backend {name!r}; valid: {', '.join(backend_names())}")


def missing_packages(name: str) -> list[str]:
    """Distributions backend ``name`` needs that are not installed."""
    return backend_info(name).missing_packages()
