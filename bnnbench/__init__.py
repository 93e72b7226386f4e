"""bnnbench: Bayesian neural networks benchmarked across PyMC, Pyro and NumPyro.

The package is the engine (harness, backends, results, report, CLI); the model specifications
live in :mod:`bnnbench.models`, the data loaders in :mod:`bnnbench.datasets` and the named suites
in :mod:`bnnbench.benchmarks`. An installed copy maps the repository's ``models/``, ``datasets/``
and ``benchmarks/`` folders to those names (``pyproject.toml``); a source checkout put on
``sys.path`` directly (``PYTHONPATH=.``, as on the GPU machine) gets the same mapping here.
"""

from pathlib import Path as _Path

__version__ = "0.1.0"
__all__ = ["__version__"]

_root = _Path(__file__).resolve().parent.parent
if (_root / "pyproject.toml").is_file() and (_root / "models" / "__init__.py").is_file():
    # Source checkout: the package's own modules come first; models/, datasets/ and benchmarks/
    # beside it resolve as bnnbench.models, bnnbench.datasets and bnnbench.benchmarks.
    __path__.append(str(_root))
