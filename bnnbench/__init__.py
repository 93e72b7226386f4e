"""bnnbench: Bayesian neural networks benchmarked across PyMC, Pyro and NumPyro.

The package is the engine (harness, backends, measure/evaluate/results, report, CLI); the model
specifications live in :mod:`bnnbench.models`, the data loaders in :mod:`bnnbench.datasets` and
the named suites and benchmarks in :mod:`bnnbench.benchmarks`. ``pyproject.toml`` installs the
repository's ``models/``, ``datasets/`` and ``benchmarks/`` folders under those names, so run
bnnbench from an installed copy (``pip install -e .`` in a checkout).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
