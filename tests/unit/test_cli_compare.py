"""``bnnbench compare``: exit codes 0/1/2, one-line errors, text/markdown/JSON, on real results
folders written through bnnbench.results and real pytest-benchmark JSON files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnnbench import compare
from bnnbench.cli import COMPARE_DEFAULTS, COMPARE_FORMATS, main
from bnnbench.record import RunRecord
from bnnbench.results import ResultStore

COMMITTED = Path(__file__).resolve().parents[2] / "results"


def write_results(
    root: Path,
    *,
    backends: tuple[str, ...] = ("pymc", "pyro"),
    step_ms: float = 1.0,
    draw: int = 0,
    cpu: str = "AMD EPYC",
    steps: int = 2000,
    flops: float | None = None,
) -> Path:
    """A results folder: per backend three seeds of 20 timed chunks (1 % noise)."""
    store = ResultStore(root)
    every = 100
    for backend in backends:
        for seed in range(3):
            rng = np.random.default_rng([draw, seed, len(backend)])
            chunk_ms = step_ms * (1 + 0.01 * rng.standard_normal(steps // every))
            run_id = f"moons_2x5-{backend}-matched-cpu-seed{seed}-cli"
            record = RunRecord(
                run_id=run_id,
                model="moons_2x5",
                backend=backend,
                profile="matched",
                device="cpu",
                seed=seed,
                steps=steps,
                batch_size=50,
                learning_rate=0.01,
                init_scale=0.1,
                trace_every=every,
                predict_draws=100,
                status="ok",
                compile_s=2.0 * math.exp(0.02 * rng.standard_normal()),
                predict_s=0.5,
                step_ms=float(np.median(chunk_ms)),
                peak_rss_mb=600.0,
                accuracy=0.95,
                final_neg_elbo_per_datum=0.25,
                cpu=cpu,
                host="vm",
                started_at=f"2026-12-0{1 + draw}T00:00:0{seed}+00:00",
            )
            trace = pd.DataFrame(
                {
                    "run_id": run_id,
                    "step": every * np.arange(1, steps // every + 1),
                    "wall_s": np.cumsum(chunk_ms * every / 1000),
                    "neg_elbo_per_datum": 0.3,
                }
            )
            store.record(record, trace)
    if flops is not None:
        (root / "calibration-cpu.json").write_text(
            json.dumps({"device": "cpu", "matmul_flops_per_s": flops, "host": "vm"})
        )
    return root


def write_bench(path: Path, median: float, *, draw: int = 0, save_data: bool = True) -> Path:
    rng = np.random.default_rng(draw)
    data = median * (1 + 0.01 * rng.standard_normal(15))
    q1, med, q3 = np.quantile(data, [0.25, 0.5, 0.75])
    stats = {
        "min": float(data.min()),
        "max": float(data.max()),
        "mean": float(data.mean()),
        "stddev": float(data.std(ddof=1)),
        "rounds": 15,
        "median": float(med),
        "iqr": float(q3 - q1),
        "q1": float(q1),
        "q3": float(q3),
        "iterations": 1,
    }
    if save_data:
        stats["data"] = [float(x) for x in data]
    doc = {
        "machine_info": {"node": "vm", "cpu": {"brand_raw": "AMD EPYC"}},
        "commit_info": {"id": "0" * 40, "dirty": False},
        "benchmarks": [
            {
                "group": "train moons_2x5",
                "name": "test_train[moons_2x5-pymc]",
                "fullname": "benchmarks/perf/test_perf.py::test_train[moons_2x5-pymc]",
                "extra_info": {"steps_per_call": 200, "device": "cpu"},
                "stats": stats,
            }
        ],
        "datetime": f"2026-12-0{1 + draw}T00:00:00",
        "version": "5.3.1",
    }
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    return {
        "base": write_results(root / "base", draw=1),
        "same": write_results(root / "same", draw=2),
        "slow": write_results(root / "slow", draw=2, step_ms=1.5),
        "slight": write_results(root / "slight", draw=2, step_ms=1.05),
        "xeon": write_results(root / "xeon", draw=2, cpu="Intel Xeon"),
        "longer": write_results(root / "longer", draw=2, steps=4000),
        "other": write_results(root / "other", draw=2, backends=("numpyro",)),
    }


def test_choices_and_defaults_are_the_engines():
    assert COMPARE_FORMATS == compare.OUTPUT_FORMATS
    assert COMPARE_DEFAULTS == {
        "threshold": compare.DEFAULT_THRESHOLD,
        "compile_threshold": compare.DEFAULT_COMPILE_THRESHOLD,
        "predict_threshold": compare.DEFAULT_PREDICT_THRESHOLD,
        "memory_threshold": compare.DEFAULT_MEMORY_THRESHOLD,
        "alpha": compare.DEFAULT_ALPHA,
    }


def test_the_same_code_twice_is_unchanged_exit_0(folders, capsys):
    assert main(["compare", str(folders["base"]), str(folders["same"])]) == 0
    captured = capsys.readouterr()
    assert "2 cells: 2 unchanged. Exit 0" in captured.out and captured.err == ""


def test_a_folder_against_itself_is_unchanged(folders, capsys):
    assert main(["compare", str(folders["base"]), str(folders["base"])]) == 0
    assert "2 cells: 2 unchanged. Exit 0" in capsys.readouterr().out


def test_one_and_a_half_times_slower_exits_1(folders, capsys):
    assert main(["compare", str(folders["base"]), str(folders["slow"])]) == 1
    captured = capsys.readouterr()
    assert "Exit 1: regression in moons_2x5 pymc matched cpu" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bnnbench compare: regression:")


def test_five_percent_slower_passes_a_ten_percent_threshold(folders, capsys):
    argv = ["compare", str(folders["base"]), str(folders["slight"])]
    assert main(argv) == 0
    assert main([*argv, "--threshold", "0.02"]) == 1
    capsys.readouterr()


def test_json_and_markdown(folders, capsys):
    argv = ["compare", str(folders["base"]), str(folders["slow"]), "--format", "json"]
    assert main(argv) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == 1 and doc["exit_code"] == 1
    assert doc["counts"] == {"slower": 2} and doc["baseline"] == str(folders["base"])
    argv[-1] = "markdown"
    assert main(argv) == 1
    assert "| cell | seeds | step ms |" in capsys.readouterr().out


def test_another_cpu_is_not_comparable_exit_2_unless_allowed(folders, capsys):
    assert main(["compare", str(folders["base"]), str(folders["xeon"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cpu 'AMD EPYC' vs 'Intel Xeon'" in err[0]
    assert "--allow-other-machine" in err[0]
    argv = ["compare", str(folders["base"]), str(folders["xeon"]), "--allow-other-machine"]
    assert main(argv) == 0
    assert "compared anyway" in capsys.readouterr().out


def test_other_settings_are_not_comparable_exit_2(folders, capsys):
    assert main(["compare", str(folders["base"]), str(folders["longer"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "settings differ: steps 2000 vs 4000" in err[0]


def test_no_cell_in_common_exits_2(folders, capsys):
    assert main(["compare", str(folders["base"]), str(folders["other"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no cell in common" in err[0]


def test_a_calibration_off_by_more_than_its_tolerance(tmp_path, capsys):
    base = write_results(tmp_path / "a", draw=1, flops=100e9)
    cand = write_results(tmp_path / "b", draw=2, flops=60e9)
    assert main(["compare", str(base), str(cand)]) == 2
    captured = capsys.readouterr()
    assert "calibration matmul 100.0 vs 60.0 GFLOP/s" in captured.err
    assert captured.out.endswith("\n")  # the table ends its line before stderr's message


def test_benchmark_files(tmp_path, capsys):
    base = write_bench(tmp_path / "0001.json", 0.02, draw=1)
    slow = write_bench(tmp_path / "0002.json", 0.03, draw=2)
    same = write_bench(tmp_path / "0003.json", 0.02, draw=3, save_data=False)
    assert main(["compare", str(base), str(slow)]) == 1
    assert "test_train[moons_2x5-pymc]" in capsys.readouterr().out
    assert main(["compare", str(base), str(same), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "pytest-benchmark" and doc["thresholds"] == {
        "benchmark": 0.1,
        "benchmark_compile": 0.5,
    }
    assert "summary statistics only" in doc["cells"][0]["metrics"][0]["test"]


def one_line_exit_2(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bad_inputs_are_one_line_exit_2(folders, tmp_path, capsys):
    base = str(folders["base"])
    empty = tmp_path / "empty"
    empty.mkdir()
    header_only = tmp_path / "header_only"
    header_only.mkdir()
    (header_only / "runs.csv").write_text("run_id,model,backend,status\n")
    not_json = tmp_path / "bench.json"
    not_json.write_text("{not json")
    not_bench = tmp_path / "other.json"
    not_bench.write_text(json.dumps({"hello": 1}))
    bench = write_bench(tmp_path / "ok.json", 0.02)
    cases = [
        ([str(tmp_path / "absent"), base], "does not exist"),
        ([str(empty), base], "holds no runs.csv"),
        ([base, str(header_only)], "holds no runs"),
        ([str(not_json), str(bench)], "is not readable JSON"),
        ([str(bench), str(not_bench)], "not a pytest-benchmark JSON file"),
        ([base, str(bench)], "cannot compare a results folder with a benchmark JSON file"),
    ]
    for paths, message in cases:
        line = one_line_exit_2(["compare", *paths], capsys)
        assert line.startswith("bnnbench compare: error:") and message in line, line
    for flag, value in (("--threshold", "-0.1"), ("--alpha", "1.5"), ("--threshold", "x")):
        line = one_line_exit_2(["compare", base, base, flag, value], capsys)
        assert flag in line


def test_bad_input_in_a_subprocess_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "bnnbench", "compare", str(tmp_path / "a"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"bnnbench compare: error: {tmp_path / 'a'} does not exist"
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.skipif(not (COMMITTED / "default" / "runs.csv").is_file(), reason="no results")
def test_committed_results_against_themselves_are_unchanged(capsys):
    default = str(COMMITTED / "default")
    assert main(["compare", default, default, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cells"] and {c["verdict"] for c in doc["cells"]} == {"unchanged"}


@pytest.mark.skipif(not (COMMITTED / "profiles" / "runs.csv").is_file(), reason="no results")
def test_committed_default_against_profiles_pairs_the_matched_moons_cells(capsys):
    argv = ["compare", str(COMMITTED / "default"), str(COMMITTED / "profiles"), "--format", "json"]
    assert main(argv) in (0, 1)
    doc = json.loads(capsys.readouterr().out)
    compared = {c["name"] for c in doc["cells"] if c["side"] == "both"}
    assert compared == {
        f"moons_2x5 {b} matched cpu" for b in ("numpyro", "pymc", "pyro", "torch-ml")
    }
    sides = {c["side"] for c in doc["cells"] if c["verdict"] == "missing"}
    assert sides == {"baseline only", "candidate only"}
