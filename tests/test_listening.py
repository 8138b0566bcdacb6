"""Tests of serlib.analysis.listening (the clips drawn, the pitch contour) and serlib.report.listening (the static
table, Tables S50 and S51 drawn again at export, the live front end), and notebooks/06_listening. The run folder is
fabricated (see tests/test_confusion.py)."""

from __future__ import annotations

import base64
import io
import re

import pandas as pd
import pytest
import soundfile as sf
from test_confusion import SMOKE, make_fabricated_run

from serlib.analysis import annotations as an
from serlib.analysis import evaluation
from serlib.analysis import listening as ls
from serlib.common.config import load_config
from serlib.report import display
from serlib.report import listening as lr


@pytest.fixture()
def run(tmp_path):
    cfg = load_config(SMOKE)
    folder = make_fabricated_run(tmp_path / "run", per_class=8)
    preds = evaluation.primary_predictions(cfg, folder)
    return cfg, folder, preds


def test_draw_is_reproducible_and_misclassified(run):
    _, _, preds = run
    first = ls.select_misclassified(preds, n=5, seed=3)
    shuffled = preds.sample(frac=1.0, random_state=7)
    again = ls.select_misclassified(shuffled, n=5, seed=3)
    assert first["utt_id"].tolist() == again["utt_id"].tolist()
    assert len(first) == 5 and not first["correct"].any()
    everything = ls.select_misclassified(preds, n=1000, seed=0)
    assert len(everything) == (~preds["correct"]).sum()
    with pytest.raises(ValueError, match="listening_clips"):
        ls.select_misclassified(preds, n=0)


def test_static_table_embeds_playable_audio(run):
    _, _, preds = run
    clips = ls.select_misclassified(preds, n=4, seed=0)
    markup = lr.static_table_html(clips, None, "Table S50", "clips")
    sources = re.findall(r'<audio controls[^>]*src="data:audio/wav;base64,([^"]+)"', markup)
    assert len(sources) == 4
    audio, rate = sf.read(io.BytesIO(base64.b64decode(sources[0])))
    info = sf.info(io.BytesIO(base64.b64decode(sources[0])))
    assert rate == 16000 and audio.ndim == 1 and info.subtype == "PCM_16"
    assert len(audio) == pytest.approx(1.2 * 16000, abs=2)


def test_static_table_survives_a_missing_clip(run):
    _, _, preds = run
    clips = ls.select_misclassified(preds, n=2, seed=0)
    clips.loc[0, "path"] = "/nonexistent/clip.wav"
    markup = lr.static_table_html(clips, None, "Table S50", "clips")
    assert "unreadable" in markup and markup.count("<audio") == 1


def test_live_frontend_detection(monkeypatch):
    import IPython

    assert not lr.is_live_frontend()  # no kernel here

    class Kernel:  # what ipykernel holds while a live front end (JupyterLab) drives it
        _allow_stdin = True

    class Shell:
        kernel = Kernel()

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell())
    assert lr.is_live_frontend()
    Kernel._allow_stdin = False  # papermill / nbclient execute with allow_stdin False
    assert not lr.is_live_frontend()
    Kernel._allow_stdin = True
    monkeypatch.setenv("SERLIB_STATIC", "1")  # forces the static form even in a live front end
    assert not lr.is_live_frontend()


@pytest.mark.slow
def test_notebook_06_listening(smoke_run):
    folder, run_dir = smoke_run, smoke_run.root  # tests/conftest.py: every notebook executed once
    out = folder.notebooks / "06_listening.ipynb"
    cfg = load_config(SMOKE)
    preds = evaluation.primary_predictions(cfg, folder)
    clips = pd.read_csv(run_dir / "tables" / "table_s50.csv")
    expected = ls.select_misclassified(preds, n=cfg.analysis.listening_clips, seed=cfg.analysis.listening_seed)
    assert clips["utt_id"].tolist() == expected["utt_id"].tolist()
    assert len(clips) == min(cfg.analysis.listening_clips, (~preds["correct"]).sum())
    summary = pd.read_csv(run_dir / "tables" / "table_s51.csv")
    assert summary.iloc[-1]["clips"] == len(clips) and summary.iloc[-1]["annotated"] == 0
    executed = out.read_text()
    assert executed.count("data:audio/wav;base64,") == len(clips)
    assert "application/vnd.jupyter.widget-view+json" not in executed  # no live front end under papermill


def test_the_pitch_contour_is_computed_once_per_clip(run, monkeypatch):
    cfg, folder, preds = run
    calls = []
    real = ls.pitch_contour
    monkeypatch.setattr(ls, "pitch_contour", lambda audio, analysis: calls.append(1) or real(audio, analysis))
    ls._PITCH.clear()
    path = str(ls.select_misclassified(preds, n=1, seed=0).loc[0, "path"])
    first = ls.clip_pitch(path, cfg.analysis)
    again = ls.clip_pitch(path, cfg.analysis)
    assert len(calls) == 1 and first is again


def test_the_export_asks_for_tables_s50_and_s51_again_by_their_mark_not_their_caption(run, monkeypatch):
    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=3, seed=0)
    shown = []
    monkeypatch.setattr(lr, "display_html", lambda markup, metadata=None: shown.append((markup, metadata)))
    monkeypatch.setattr(display, "display_html", lambda markup, metadata=None: shown.append((markup, metadata)))
    lr.show_listening_table(clips, folder, "Table S70", "the clips, under a label of their own")
    lr.show_tag_summary(
        clips, folder, cfg.analysis.listening_tags, "Table S71", "the tags", note="a note", clips_label="Table S70"
    )
    (clips_markup, clips_meta), (summary_markup, summary_meta) = shown
    assert "<b>Table S70.</b>" in clips_markup and "<b>Table S71.</b>" in summary_markup
    assert lr.refreshed_html(clips_meta, folder) == clips_markup  # nothing saved since: the same tables
    assert lr.refreshed_html(summary_meta, folder) == summary_markup
    an.AnnotationStore(folder.annotations, "ana").update(clips.iloc[0], {"other": 1, "note": "heard it twice"})
    again = lr.refreshed_html(clips_meta, folder)
    assert "ana: heard it twice" in again and again.count("<audio") == 3
    rows = [
        re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", lr.refreshed_html(summary_meta, folder), re.S)
    ]
    total = dict(zip(rows[0], next(row for row in rows if row[0] == "total")))
    assert (total["clips"], total["annotated"], total["other"]) == ("3", "1", "1")
    assert lr.refreshed_html({}, folder) is None and lr.refreshed_html(None, folder) is None  # any other output
