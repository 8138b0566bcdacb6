"""The command line's shape: the options that the profile commands share come from one parent parser, and every
command dispatches to its own handler (``set_defaults(func=...)``)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from conftest import SMOKE

import serlib
from serlib.tools import cli, clibench


@pytest.mark.parametrize("command", ["run", "features", "train"])
def test_each_profile_command_refuses_a_stale_manifest_under_no_rebuild(command, smoke_copy, capsys):
    smoke_copy.manifest_meta.unlink()  # the manifest's record is gone: stale for every command
    before = smoke_copy.manifest.read_bytes()
    assert cli.main([command, str(SMOKE), "--out", str(smoke_copy.root), "--no-rebuild"]) == 2
    err = capsys.readouterr().err
    assert f"serlib {command}: error: {smoke_copy.manifest} is stale" in err and "without --no-rebuild" in err
    assert smoke_copy.manifest.read_bytes() == before and not smoke_copy.manifest_meta.exists()  # nothing ran


@pytest.mark.parametrize(
    "argv, handler",
    [
        (["run", "p.yaml", "--only", "01_data"], "_run"),
        (["features", "p.yaml"], "_features"),
        (["train", "p.yaml", "--system", "S5"], "_train"),
        (["predict", "run", "a.wav", "--seed", "1"], "_predict"),
        (["export", "run", "--out", "b", "--system", "S5"], "_export"),
        (["cache", "list"], "_cache"),
        (["bench", "--quick"], "_bench"),
        (["doctor"], "_doctor"),
        (["compare", "a", "b"], "_compare"),
        (["report", "a"], "_report"),
        (["sweep", "s.yaml"], "_sweep"),
        (["mculp", "--out", "o"], "_mculp"),
        (["demo-corpus", "o"], "_demo_corpus"),
    ],
)
def test_every_command_reaches_its_own_handler(argv, handler):
    args = cli._parser().parse_args(argv)
    assert args.func is getattr(cli, handler)
    if argv[0] in ("run", "features", "train"):  # the parent parser's options, on each of the three
        assert (args.params, args.out, args.no_rebuild) == ("p.yaml", None, False)


# --------------------------------------------------------------------------- habits of the tools people know


@pytest.mark.parametrize(
    "argv, quiet, verbose",
    [
        (["-q", "predict", "run", "a.wav"], True, False),
        (["predict", "run", "a.wav", "-q"], True, False),
        (["train", "p.yaml", "--verbose"], False, True),
        (["cache", "list", "-v"], False, True),
        (["-v", "doctor", "-q"], True, True),
        (["doctor"], False, False),
    ],
)
def test_global_options_are_accepted_after_the_command_too(argv, quiet, verbose):
    args = cli._parser().parse_args(argv)
    assert (args.quiet, args.verbose) == (quiet, verbose)


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"serlib {serlib.__version__}"


def test_only_takes_one_value_and_leaves_the_yaml_to_the_positional(capsys):
    args = cli._parser().parse_args(["run", "--only", "01_data", "parameters/demo.yaml"])
    assert (args.params, args.only) == ("parameters/demo.yaml", ["01_data"])
    args = cli._parser().parse_args(["run", "p.yaml", "--only", "01_data,02_features", "--only", "05_confusion"])
    assert args.only == ["01_data", "02_features", "05_confusion"]
    with pytest.raises(SystemExit) as stop:
        cli._parser().parse_args(["run", "--only", "01_data", "02_features", "p.yaml"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "usage: serlib run" in err and "--only 01_data,02_features" in err


@pytest.mark.parametrize(
    "argv, suggestion",
    [
        (["trian", "p.yaml"], "did you mean 'train'?"),
        (["train", "p.yaml", "--sytem", "S5"], "did you mean '--system'?"),
        (["predict", "run", "a.wav", "--ouput=x.csv"], "did you mean '--out'?"),
        (["predict", "run", "a.wav", "--long", "centr"], "did you mean 'centre'?"),
        (["cache", "lst"], "did you mean 'list'?"),
    ],
)
def test_did_you_mean_for_commands_options_and_choices(argv, suggestion, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2 and suggestion in capsys.readouterr().err


def test_did_you_mean_for_systems_notebooks_and_paths(tmp_path, capsys):
    assert cli.main(["train", str(SMOKE), "--system", "S55"]) == 2
    assert "unknown system(s) S55" in (err := capsys.readouterr().err) and "did you mean 'S5'?" in err
    assert cli.main(["run", "--only", "02_featres", str(SMOKE)]) == 2
    assert "did you mean '02_features'?" in capsys.readouterr().err
    assert cli.main(["run", str(SMOKE.with_name("smoek.yaml"))]) == 2
    err = capsys.readouterr().err
    assert f"did you mean '{SMOKE}'?" in err and len(err.strip().splitlines()) == 1


def test_the_top_level_help_is_plain_text(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    printed = capsys.readouterr().out
    assert "`" not in printed and "::" not in printed  # no reST literals or directives
    assert "after the command" in printed and "serlib run --only 01_data parameters/demo.yaml" in printed
    for command in ("run", "predict", "compare", "bench"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "`" not in capsys.readouterr().out


# Runs every usage error of `serlib bench --cli` in one fresh process, one after the other, and says for each its
# exit code, its answer and whether torch was imported by then (the first case that imports it is named).
IN_ONE_PROCESS = """
import contextlib, io, json, sys
from pathlib import Path
from serlib.tools import clibench
from serlib.tools.cli import main
for case in clibench.usage_error_cases(clibench.make_fixtures(Path(sys.argv[1]))):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(case.argv))
        except SystemExit as stop:
            code = stop.code
    print(json.dumps({"case": case.name, "code": code, "err": err.getvalue(), "expect": case.expect,
                      "torch": "torch" in sys.modules}))
"""


def test_usage_errors_are_answered_before_torch_is_imported(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", IN_ONE_PROCESS, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == 13
    for result in results:
        answer = [line for line in result["err"].splitlines() if "error:" in line]
        assert result["code"] == 2 and len(answer) == 1 and result["expect"] in answer[0], result
        assert not result["torch"], f"{result['case']} imported torch"
    assert not (tmp_path / "corpus").exists()  # nothing ran: no demo corpus generated


def test_the_cli_benchmark_times_a_case_in_a_fresh_process(tmp_path):
    case = clibench.usage_error_cases(clibench.make_fixtures(tmp_path))[0]
    timed = clibench.time_case(case, repeats=1, cwd=tmp_path)
    assert timed.ok and timed.code == 2 and not timed.torch and len(timed.seconds) == 1, timed
    table = clibench.cli_table([timed])
    assert case.name in table and "did you mean 'train'" in table
    args = cli._parser().parse_args(["bench", "--cli", "--quick"])
    assert args.cli and args.func is cli._bench


def test_the_cpu_fallback_notice_shows_only_with_verbose(caplog):
    import torch

    from serlib.common.runtime import resolve_device

    if torch.cuda.is_available():
        pytest.skip("a GPU is the news this notice exists for")
    with caplog.at_level(logging.INFO, logger="serlib"):
        resolve_device("auto", key="test.notice_info")
    assert not [r for r in caplog.records if "auto -> cpu" in r.getMessage()]
    with caplog.at_level(logging.DEBUG, logger="serlib"):
        resolve_device("auto", key="test.notice_debug")
    assert [r for r in caplog.records if "test.notice_debug: auto -> cpu" in r.getMessage()]
