"""The profiling script behind issue 14's "where the time goes" runs end to end on a real cell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.smoke


def test_hotspots_lists_its_cases_and_profiles_one(tmp_path: Path):
    command = [sys.executable, "-P", "-m", "bnnbench.benchmarks.hotspots"]
    listed = subprocess.run([*command, "--list"], capture_output=True, text=True, check=True)
    assert "moons_2x5-torch-ml-step" in listed.stdout
    assert "mnist_conv-pymc-predict" in listed.stdout
    case = ["--case", "moons_2x5-torch-ml-step", "--seconds", "1", "--threads", "1"]
    subprocess.run([*command, *case, "--out", str(tmp_path)], check=True, timeout=600)
    text = (tmp_path / "moons_2x5-torch-ml-step.txt").read_text()
    assert "aten::" in text  # torch.profiler's operator table
    assert "step" in text and "ms" in text
