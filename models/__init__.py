"""Model specifications, one folder each: ``spec.py`` (the maths) beside one file per backend.

Installed as ``bnnbench.models``.
"""
