import pytest

from bnnbench.cli import main


@pytest.mark.parametrize(
    ("argv", "valid"),
    [
        (["run", "--models", "moons_9x9", "--out", "x"], "moons_2x5"),
        (["run", "--models", "moons_2x5", "--backends", "stan", "--out", "x"], "numpyro"),
        (["run", "--models", "moons_2x5", "--profile", "fast", "--out", "x"], "matched"),
        (["run", "--models", "moons_2x5", "--device", "tpu", "--out", "x"], "gpu"),
        (["run", "--suite", "nightly", "--out", "x"], "default"),
        (["verify", "--backends", "edward"], "pyro"),
    ],
)
def test_bad_choices_exit_2_listing_the_valid_ones(argv, valid, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert valid in capsys.readouterr().err


def test_run_needs_a_suite_or_models(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--out", "x"])
    assert exc.value.code == 2


def test_run_refuses_to_clobber_results(tmp_path, capsys):
    (tmp_path / "runs.csv").write_text("run_id,status\n")
    with pytest.raises(SystemExit) as exc:
        main(["run", "--models", "moons_2x5", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "--resume" in capsys.readouterr().err


def test_report_rejects_a_folder_without_results(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert exc.value.code == 2


def test_list_names_everything(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("moons_2x5", "pymc", "pyro", "numpyro", "matched", "native", "default"):
        assert word in out


def test_calibrate_and_reference_commands_parse():
    from bnnbench.cli import _parser

    args = _parser().parse_args(["calibrate", "--device", "cpu", "gpu", "--out", "r"])
    assert args.device == ["cpu", "gpu"] and str(args.out) == "r"
    args = _parser().parse_args(["reference", "moons_2x5", "--chains", "2"])
    assert args.model == "moons_2x5" and args.chains == 2 and args.warmup == 1000
    with pytest.raises(SystemExit):
        _parser().parse_args(["reference", "mnist_2x800"])


def test_run_options_of_issue_11_parse():
    from bnnbench.cli import _parser

    args = _parser().parse_args(["run", "--suite", "mine.toml", "--require-idle", "--out", "o"])
    assert args.suite == "mine.toml" and args.require_idle == 60.0
    args = _parser().parse_args(["run", "--suite", "smoke", "--require-idle", "5", "--out", "o"])
    assert args.require_idle == 5.0
    assert _parser().parse_args(["run", "--suite", "smoke", "--out", "o"]).require_idle is None
    args = _parser().parse_args(["report", "r", "--out", "r.html", "--allow-partial"])
    assert args.allow_partial


def test_parser_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--models", "moons_9x9", "--out", "x"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("bnnbench run: error: argument --models: invalid choice")
