"""The command line's shape: the options that the profile commands share come from one parent parser, and every
command dispatches to its own handler (``set_defaults(func=...)``)."""

from __future__ import annotations

import pytest
from conftest import SMOKE

from serlib.tools import cli


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
