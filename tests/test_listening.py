"""Tests of serlib.listening (the station driven programmatically, the static table) and
notebooks/06_listening. The run folder is fabricated (see tests/test_confusion.py)."""
from __future__ import annotations

import base64
import io
import re

import pandas as pd
import pytest
import soundfile as sf
from test_confusion import SMOKE, make_fabricated_run, trained_smoke_run

from serlib.analysis import confusion as cf
from serlib.analysis import listening as ls
from serlib.common.config import load_config
from conftest import execute_smoke_notebook


@pytest.fixture()
def run(tmp_path):
    cfg = load_config(SMOKE)
    folder = make_fabricated_run(tmp_path / "run", per_class=8)
    preds = cf.load_predictions(cfg, folder)
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


def test_station_writes_annotations_and_resumes(run):
    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=6, seed=0)
    station = ls.ListeningStation(cfg, folder, clips, plots=False)
    assert station.index == 0 and bytes(station.audio.value).startswith(b"RIFF")
    station.select(1)
    station.set_tags(["hybrid_prosody", "other"])
    station.set_note("flat contour, stressed words")
    csv = pd.read_csv(folder.annotations, keep_default_na=False)
    row = csv.set_index("utt_id").loc[clips.loc[1, "utt_id"]]
    assert (row["hybrid_prosody"], row["ambiguous_arousal"], row["other"]) == (1, 0, 1)
    assert row["note"] == "flat contour, stressed words" and row["label"] == clips.loc[1, "label"]
    station.previous()
    station.set_tags(["ambiguous_arousal"])
    station.next()
    assert station.tag_boxes["hybrid_prosody"].value and station.note.value.startswith("flat contour")
    assert not list(folder.annotations.parent.glob(".*tmp"))  # atomic writes leave no temp file

    reopened = ls.ListeningStation(cfg, folder, clips, plots=False)
    assert reopened.index == 2  # the first clip without an annotation
    reopened.select(1)
    assert reopened.tag_boxes["other"].value and not reopened.tag_boxes["label_doubtful"].value
    assert reopened.note.value == "flat contour, stressed words"
    summary = reopened.summary()
    total = summary[summary["true"] == "total"].iloc[0]
    assert (total["clips"], total["annotated"], total["hybrid prosody"], total["ambiguous arousal"]) == (6, 2, 1, 1)


def test_station_filters_and_buttons(run):
    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=50, seed=0)
    station = ls.ListeningStation(cfg, folder, clips, plots=True)
    true_class = clips.loc[0, "label"]
    station.set_filter(true=true_class)
    assert len(station.clips) == (clips["label"] == true_class).sum()
    assert (station.clips["label"] == true_class).all() and station.index == 0
    station.next_button.click()
    assert station.index == min(1, len(station.clips) - 1)
    station.prev_button.click()
    assert station.index == 0
    assert bytes(station.figure.value).startswith(b"\x89PNG")  # the log-Mel + pitch plot
    station.set_filter(true=true_class, pred=true_class)  # never misclassified as itself
    assert station.current is None and "No clip" in station.header.value
    station.set_tags(["other"])  # no clip: nothing to store
    assert not folder.annotations.exists()
    with pytest.raises(ValueError, match="unknown tag"):
        station.set_tags(["boring"])


def test_static_table_embeds_playable_audio(run):
    _, _, preds = run
    clips = ls.select_misclassified(preds, n=4, seed=0)
    markup = ls.static_table_html(clips, None, "Table S50", "clips")
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
    markup = ls.static_table_html(clips, None, "Table S50", "clips")
    assert "unreadable" in markup and markup.count("<audio") == 1


def test_live_frontend_detection(monkeypatch):
    assert not ls.is_live_frontend()  # no kernel here
    monkeypatch.setenv("SERLIB_STATIC", "1")
    assert not ls.is_live_frontend()


@pytest.mark.slow
def test_notebook_06_listening(tmp_path, tmp_path_factory):
    run_dir = tmp_path / "run"
    folder = trained_smoke_run(run_dir, tmp_path_factory)
    out = execute_smoke_notebook("06_listening", run_dir, tmp_path / "06_listening.ipynb")
    cfg = load_config(SMOKE)
    preds = cf.load_predictions(cfg, folder)
    clips = pd.read_csv(run_dir / "tables" / "table_s50.csv")
    expected = ls.select_misclassified(preds, n=cfg.analysis.listening_clips, seed=cfg.analysis.listening_seed)
    assert clips["utt_id"].tolist() == expected["utt_id"].tolist()
    assert len(clips) == min(cfg.analysis.listening_clips, (~preds["correct"]).sum())
    summary = pd.read_csv(run_dir / "tables" / "table_s51.csv")
    assert summary.iloc[-1]["clips"] == len(clips) and summary.iloc[-1]["annotated"] == 0
    executed = out.read_text()
    assert executed.count("data:audio/wav;base64,") == len(clips)
    assert "application/vnd.jupyter.widget-view+json" not in executed  # no live front end under papermill


def test_station_without_clips(run):
    cfg, folder, preds = run
    station = ls.ListeningStation(cfg, folder, preds.iloc[0:0], plots=True)
    assert station.current is None and station.summary().iloc[-1]["clips"] == 0
    station.next()
    station.set_note("nothing to hear")
    assert not folder.annotations.exists()
