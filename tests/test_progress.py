"""Live progress: the runner's heartbeat reads the stages' events, training appends each epoch as it
finishes, extraction reports clips k/N, and the CLI's -q / -v set what is printed."""

import json

import nbformat
import pandas as pd
import pytest

from serlib.common.config import load_config
from serlib.common.progress import Progress, last_event
from serlib.common.runfolder import RunFolder
from serlib.modelling import systems
from serlib.report import runner

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def test_progress_events_are_throttled_and_the_last_one_is_read(tmp_path):
    path = tmp_path / "progress.jsonl"
    events = Progress(path, "train", min_interval=60)
    events("first")
    events("dropped: too soon")
    events("forced", force=True)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["text"] for e in lines] == ["first", "forced"] and lines[0]["stage"] == "train"
    assert last_event(path)["text"] == "forced"
    assert last_event(path, since=lines[-1]["time"] + 1) is None  # older than asked for
    assert last_event(tmp_path / "missing.jsonl") is None
    Progress(tmp_path / "no" / "such" / "folder.jsonl", "x")("never raises")


def test_each_epoch_is_appended_to_the_live_history_as_it_finishes(tmp_path):
    folder = RunFolder(tmp_path)
    live = tmp_path / "history.live.csv"
    on_epoch = systems.epoch_progress(folder, "S5 seed 0", live)
    row = {"epoch": 1, "train_loss": 1.1, "train_acc": 0.4, "val_loss": 1.0, "val_acc": 0.5, "lr": 1e-3, "seconds": 2.0}
    on_epoch(row, 8)
    assert len(pd.read_csv(live)) == 1
    on_epoch({**row, "epoch": 2, "val_acc": 0.55}, 8)
    table = pd.read_csv(live)
    assert table["epoch"].tolist() == [1, 2] and list(table.columns) == list(systems.HISTORY_COLUMNS)
    assert last_event(folder.progress)["text"] == "S5 seed 0: epoch 2/8, val acc 0.550, 2.0 s per epoch"


def _notebook(path, source):
    params = nbformat.v4.new_code_cell("params_path = None\nrun_dir = None")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.slow
def test_the_runner_prints_a_heartbeat_with_the_latest_event(tmp_path, monkeypatch, capsys):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(
        notebooks / "01_data.ipynb",
        "import time\nfrom pathlib import Path\nfrom serlib.common.progress import Progress\n"
        "Progress(Path(run_dir) / 'progress.jsonl', 'train')('S5 seed 0: epoch 3/8, val acc 0.612')\n"
        "time.sleep(3)",
    )
    monkeypatch.setattr(runner, "HEARTBEAT_S", 0.5)
    cfg = load_config(ROOT / "parameters" / "smoke.yaml")
    runner.run_report(cfg, out=tmp_path / "run", only=["01_data"], notebooks_dir=notebooks)
    printed = capsys.readouterr().out
    beats = [line for line in printed.splitlines() if line.strip().startswith("01_data") and " s: " in line]
    assert beats and any("S5 seed 0: epoch 3/8, val acc 0.612" in line for line in beats), printed
    assert "Kernel is running over TCP" not in printed  # the kernel talks over IPC sockets


def test_quiet_and_verbose_set_the_serlib_logger():
    import logging

    from serlib.tools import cli

    cli._logging(quiet=True, verbose=False)
    assert logging.getLogger("serlib").level == logging.WARNING
    cli._logging(quiet=False, verbose=True)
    assert logging.getLogger("serlib").level == logging.DEBUG
    cli._logging(quiet=False, verbose=False)
    assert logging.getLogger("serlib").level == logging.INFO
    from serlib.common.progress import StdoutHandler

    assert sum(isinstance(h, StdoutHandler) for h in logging.getLogger("serlib").handlers) == 1  # added once


@pytest.mark.slow
def test_serlib_report_shows_the_annotations_saved_since_the_run(smoke_copy, capsys):
    from serlib.analysis import annotations as ls
    from serlib.tools.cli import main

    clips = pd.read_csv(smoke_copy.tables / "table_s50.csv", dtype={"utt_id": str})
    store = ls.AnnotationStore(smoke_copy.annotations, annotator="ana")
    store.update(clips.iloc[0], {"hybrid_prosody": 1, "note": "flat contour on the stressed word"})
    before = smoke_copy.report.read_text(encoding="utf-8")
    assert "flat contour on the stressed word" not in before
    assert main(["report", str(smoke_copy.root)]) == 0
    after = smoke_copy.report.read_text(encoding="utf-8")
    assert "ana: flat contour on the stressed word" in after or "flat contour on the stressed word" in after
    summary = after[after.index('id="table-s51"') :]  # the anchor keeps the notebook's number
    summary = summary[: summary.index("</table>")]
    assert ">1<" in summary  # one clip annotated now, counted in Table S51
