"""Data loaders (installed as ``bnnbench.datasets``)."""
