"""Benchmark suites (installed as ``bnnbench.benchmarks``): ``suites/<name>.toml``."""
