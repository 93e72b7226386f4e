"""Provenance: a result names the exact source it came from."""

import shutil
import subprocess
from pathlib import Path

import pytest

from bnnbench.provenance import git_diff_sha256, git_revision

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _repo(tmp_path: Path) -> Path:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "src.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "runs.csv").write_text("a\n1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return tmp_path


def test_writing_results_into_a_tracked_folder_keeps_the_source_clean(tmp_path):
    """Publishing results overwrites tracked files under results/: that is output, not a
    modified source, so the revision they record has no -dirty."""
    root = _repo(tmp_path)
    (root / "results" / "runs.csv").write_text("a\n2\n")
    assert not git_revision(root).endswith("-dirty")
    assert git_diff_sha256(root) == ""


def test_a_modified_source_is_dirty_and_its_diff_is_hashed(tmp_path):
    root = _repo(tmp_path)
    (root / "src.py").write_text("x = 2\n")
    assert git_revision(root).endswith("-dirty")
    first = git_diff_sha256(root)
    assert len(first) == 64
    (root / "src.py").write_text("x = 3\n")
    assert git_diff_sha256(root) != first  # exactly what differed


def test_a_persistent_compilation_cache_is_recorded(monkeypatch):
    """A cell whose compile may be a cache read says so in env.json."""
    from bnnbench.provenance import COMPILE_CACHE_VARIABLES, environment

    for name in COMPILE_CACHE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert environment()["compile_cache"] == {}
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/tmp/jax-cache")
    assert environment()["compile_cache"] == {"JAX_COMPILATION_CACHE_DIR": "/tmp/jax-cache"}
