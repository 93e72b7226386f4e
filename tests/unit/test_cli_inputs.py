"""The table of bad inputs: each exits 2 with one line on stderr (never a traceback) and touches
nothing. Every case is rejected before a cell process would start."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bnnbench.cli import main
from bnnbench.safety import MARKER_NAME

TINY = ["--models", "moons_2x5", "--backends", "torch-ml", "--steps", "20", "--no-progress"]
GROUP = '[[group]]\nmodels = ["moons_2x5"]\nbackends = ["torch-ml"]\n'


def _suite(tmp: Path, text: str) -> str:
    path = tmp / "my_suite.toml"
    path.write_text(text)
    return str(path)


def _foreign(tmp: Path) -> str:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "important.txt").write_text("keep me")
    (tmp / "mine" / "sub").mkdir()
    return str(tmp / "mine")


def _unmarked_results(tmp: Path) -> str:
    """runs.csv beside a user's file: not a folder bnnbench created."""
    out = tmp / "mixed"
    out.mkdir()
    (out / "runs.csv").write_text("run_id,status\n")
    (out / "env.json").write_text("{}")
    (out / "important.txt").write_text("keep me")
    return str(out)


def _marked(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER_NAME).touch()
    (path / "runs.csv").write_text("run_id,status\n")
    return path


def _cwd_results(tmp: Path) -> str:
    os.chdir(_marked(tmp / "here"))
    return "."


def _home_results(tmp: Path) -> str:
    os.environ["HOME"] = str(_marked(tmp / "home"))
    return os.environ["HOME"]


def _git_root(tmp: Path) -> str:
    root = _marked(tmp / "repo")
    (root / ".git").mkdir()
    return str(root)


Case = Callable[[Path], list[str]]
CASES: dict[str, tuple[Case, str]] = {
    # choices
    "unknown model": (lambda t: ["run", "--models", "moons_9x9", "--out", "x"], "moons_2x5"),
    "unknown backend": (lambda t: ["run", *TINY, "--backends", "stan", "--out", "x"], "numpyro"),
    "unknown profile": (lambda t: ["run", *TINY, "--profile", "fast", "--out", "x"], "matched"),
    "unknown device": (lambda t: ["run", *TINY, "--device", "tpu", "--out", "x"], "gpu"),
    "unknown suite": (lambda t: ["run", "--suite", "nightly", "--out", "x"], "default"),
    "no plan": (lambda t: ["run", "--out", "x"], "--suite"),
    "resume and overwrite": (lambda t: ["run", *TINY, "--resume", "--overwrite", "--out", "x"], ""),
    # suite files
    "suite file missing": (lambda t: ["run", "--suite", "none.toml", "--out", "x"], "not found"),
    "suite key misspelt": (
        lambda t: ["run", "--suite", _suite(t, GROUP + "step = 20\n"), "--out", "x"],
        "unknown key 'step' (allowed: ",
    ),
    "suite without models": (
        lambda t: ["run", "--suite", _suite(t, '[[group]]\nbackends = ["pyro"]\n'), "--out", "x"],
        "missing 'models'",
    ),
    "suite wrong type": (
        lambda t: ["run", "--suite", _suite(t, GROUP + 'steps = "20"\n'), "--out", "x"],
        "steps must be an integer",
    ),
    "suite not toml": (
        lambda t: ["run", "--suite", _suite(t, "[[group]\n"), "--out", "x"],
        "not valid TOML",
    ),
    "suite without groups": (
        lambda t: ["run", "--suite", _suite(t, 'description = "x"\n'), "--out", "x"],
        "defines no [[group]]",
    ),
    "suite batch too large": (
        lambda t: ["run", "--suite", _suite(t, GROUP + "batch_size = 5000\n"), "--out", "x"],
        "larger than moons_2x5's training set",
    ),
    "empty plan": (
        lambda t: ["run", "--suite", "smoke", "--device", "gpu", "--out", "x"],
        "the plan has no cells",
    ),
    # numbers
    "steps zero": (lambda t: ["run", *TINY, "--steps", "0", "--out", "x"], "steps must be >= 1"),
    "steps float": (lambda t: ["run", *TINY, "--steps", "1.5", "--out", "x"], "invalid int"),
    "lr nan": (lambda t: ["run", *TINY, "--learning-rate", "nan", "--out", "x"], "learning_rate"),
    "lr inf": (lambda t: ["run", *TINY, "--learning-rate", "inf", "--out", "x"], "learning_rate"),
    "lr negative": (lambda t: ["run", *TINY, "--learning-rate", "-1", "--out", "x"], "> 0"),
    "lr zero": (lambda t: ["run", *TINY, "--learning-rate", "0", "--out", "x"], "> 0"),
    "init scale zero": (lambda t: ["run", *TINY, "--init-scale", "0", "--out", "x"], "init_scale"),
    "draws zero": (lambda t: ["run", *TINY, "--draws", "0", "--out", "x"], "predict_draws"),
    "trace every zero": (lambda t: ["run", *TINY, "--trace-every", "0", "--out", "x"], ">= 1"),
    "batch zero": (lambda t: ["run", *TINY, "--batch-size", "0", "--out", "x"], "batch_size"),
    "batch too large": (
        lambda t: ["run", *TINY, "--batch-size", "501", "--out", "x"],
        "larger than moons_2x5's training set (500 points)",
    ),
    "timeout zero": (lambda t: ["run", *TINY, "--timeout-s", "0", "--out", "x"], "timeout_s"),
    "timeout negative": (lambda t: ["run", *TINY, "--timeout-s", "-5", "--out", "x"], "timeout_s"),
    "timeout nan": (lambda t: ["run", *TINY, "--timeout-s", "nan", "--out", "x"], "timeout_s"),
    "seed negative": (lambda t: ["run", *TINY, "--seeds", "-1", "--out", "x"], "seed must be >="),
    "seed float": (lambda t: ["run", *TINY, "--seeds", "0.5", "--out", "x"], "invalid int"),
    "seed too big": (lambda t: ["run", *TINY, "--seeds", str(2**32), "--out", "x"], "32 bits"),
    "require idle zero": (lambda t: ["run", *TINY, "--require-idle", "0", "--out", "x"], "> 0"),
    "require idle nan": (lambda t: ["run", *TINY, "--require-idle", "nan", "--out", "x"], "> 0"),
    # where the results go
    "out is a file": (
        lambda t: ["run", *TINY, "--out", str(_touch(t / "file"))],
        "is a file, not a folder",
    ),
    "out is foreign": (lambda t: ["run", *TINY, "--out", _foreign(t)], "did not create"),
    "overwrite foreign": (
        lambda t: ["run", *TINY, "--overwrite", "--out", _foreign(t)],
        "did not create",
    ),
    "overwrite unmarked results": (
        lambda t: ["run", *TINY, "--overwrite", "--out", _unmarked_results(t)],
        "did not create",
    ),
    "overwrite cwd": (
        lambda t: ["run", *TINY, "--overwrite", "--out", _cwd_results(t)],
        "working directory",
    ),
    "overwrite home": (lambda t: ["run", *TINY, "--overwrite", "--out", _home_results(t)], "home"),
    "overwrite git root": (
        lambda t: ["run", *TINY, "--overwrite", "--out", _git_root(t)],
        "git repository",
    ),
    "clobber without flag": (
        lambda t: ["run", *TINY, "--out", str(_marked(t / "done"))],
        "already holds results",
    ),
    # report and calibrate
    "report out is a folder": (
        lambda t: ["report", str(_marked(t / "r")), "--out", str(t)],
        "is a folder",
    ),
    "report without results": (
        lambda t: ["report", str(t), "--out", str(t / "r.html")],
        "holds no runs.csv",
    ),
    "calibrate out is a file": (
        lambda t: ["calibrate", "--out", str(_touch(t / "file"))],
        "is a file",
    ),
    "verify unknown backend": (lambda t: ["verify", "--backends", "edward"], "pyro"),
}


def _touch(path: Path) -> Path:
    path.write_text("not a folder")
    return path


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_line(name: str, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", os.environ.get("HOME", "/root"))  # restored after the case
    make_argv, expected = CASES[name]
    work = tmp_path / "work"
    work.mkdir()
    argv = make_argv(work)
    before = _snapshot(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and expected in lines[0], err
    assert _snapshot(tmp_path) == before  # nothing created, removed or changed


def test_list_shows_a_broken_suite_instead_of_crashing(tmp_path: Path, monkeypatch, capsys):
    import bnnbench.harness as harness

    (tmp_path / "good.toml").write_text('description = "fine"\n' + GROUP)
    (tmp_path / "broken.toml").write_text('description = "typo"\n' + GROUP + "step = 20\n")
    monkeypatch.setattr(harness, "_suites_folder", lambda: tmp_path)
    assert main(["list"]) == 1
    out = capsys.readouterr().out
    assert "good                 fine" in out
    assert "broken               BROKEN: suite broken, group 1: unknown key 'step'" in out
