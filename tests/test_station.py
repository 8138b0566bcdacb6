"""Tests of serlib.report.station: the listening station driven programmatically (its widgets, saves, filters,
keys, resuming, several listeners). The run folder is fabricated (see tests/test_confusion.py)."""

from __future__ import annotations

import pandas as pd
import pytest
from test_annotations import rows_of
from test_confusion import SMOKE, make_fabricated_run

from serlib.analysis import evaluation
from serlib.analysis import listening as ls
from serlib.common.config import load_config
from serlib.report import listening as lr
from serlib.report import station as st
from serlib.report.station import ListeningStation


@pytest.fixture()
def run(tmp_path):
    cfg = load_config(SMOKE)
    folder = make_fabricated_run(tmp_path / "run", per_class=8)
    return cfg, folder, evaluation.primary_predictions(cfg, folder)


def test_station_writes_annotations_and_resumes(run):
    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=6, seed=0)
    station = ListeningStation(cfg, folder, clips, plots=False)
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

    reopened = ListeningStation(cfg, folder, clips, plots=False)
    assert reopened.index == 1  # the last clip viewed (previous, then next: clip 1)
    reopened.select(1)
    assert reopened.tag_boxes["other"].value and not reopened.tag_boxes["label_doubtful"].value
    assert reopened.note.value == "flat contour, stressed words"
    summary = reopened.summary()
    total = summary[summary["true"] == "total"].iloc[0]
    assert (total["clips"], total["annotated"], total["hybrid prosody"], total["ambiguous arousal"]) == (6, 2, 1, 1)


def test_station_filters_and_buttons(run):
    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=50, seed=0)
    station = ListeningStation(cfg, folder, clips, plots=True)
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


def test_station_without_clips(run):
    cfg, folder, preds = run
    station = ListeningStation(cfg, folder, preds.iloc[0:0], plots=True)
    assert station.current is None and station.summary().iloc[-1]["clips"] == 0
    station.next()
    station.set_note("nothing to hear")
    assert not folder.annotations.exists()


def test_two_stations_interleaving_saves_keep_both_listeners_work(run):
    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=4, seed=0)
    u = clips["utt_id"].tolist()
    ana = ListeningStation(cfg, folder, clips, plots=False, annotator="ana")
    ben = ListeningStation(cfg, folder, clips, plots=False, annotator="ben")
    ana.set_tags(["hybrid_prosody"])
    ben.set_tags(["other"])
    ben.set_note("sounds calm to me")
    ana.select(1)
    ana.set_note("laughs at the end")
    ben.select(1)
    ben.set_tags(["label_doubtful"])
    # one listener, two tabs: neither tab's stale view may erase the other's field
    tab1 = ListeningStation(cfg, folder, clips, plots=False)
    tab2 = ListeningStation(cfg, folder, clips, plots=False)
    tab1.select(2)
    tab2.select(2)
    tab1.set_note("whispered")
    tab2.set_tags(["ambiguous_arousal"])
    assert tab2.note.value == "whispered"  # the merged row is shown after the save
    tab1.set_tags(["ambiguous_arousal", "other"])
    assert rows_of(folder.annotations) == {
        (u[0], "ana"): (1, 0, 0, 0, ""),
        (u[0], "ben"): (0, 0, 0, 1, "sounds calm to me"),
        (u[1], "ana"): (0, 0, 0, 0, "laughs at the end"),
        (u[1], "ben"): (0, 0, 1, 0, ""),
        (u[2], ""): (0, 1, 0, 1, "whispered"),
    }
    reopened = ListeningStation(cfg, folder, clips, plots=False, annotator="ben")
    assert reopened.index == 1 and reopened.annotation(u[0])["note"] == "sounds calm to me"  # ben last viewed clip 1
    total = reopened.summary().iloc[-1]
    assert (total["clips"], total["annotated"], total["other"], total["label doubtful"]) == (4, 3, 2, 1)
    markup = lr.static_table_html(clips.iloc[:1].assign(path="/nonexistent.wav"), reopened.store.frame())
    assert "ben: sounds calm to me" in markup and "hybrid prosody, other" in markup


def test_keyboard_shortcuts_move_and_tag(run):
    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=6, seed=0)
    station = ListeningStation(cfg, folder, clips, plots=False)
    assert station.handle_key("ArrowRight") == "next" and station.index == 1
    assert station.handle_key("n") == "next" and station.index == 2
    assert station.handle_key("p") == "previous" and station.index == 1
    assert station.handle_key("2") == "ambiguous_arousal"
    assert station.annotation()["ambiguous_arousal"] == 1
    station.handle_key("2")  # toggles back
    assert station.annotation()["ambiguous_arousal"] == 0
    assert station.handle_key("r") == "reviewed" and station.annotation()["reviewed"] == 1
    assert station.handle_key("x") is None and station.index == 1


def test_unannotated_only_and_the_orders(run):
    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=8, seed=0)
    station = ListeningStation(cfg, folder, clips, plots=False)
    station.select(0)
    station.set_reviewed()
    station.select(3)
    station.set_tags(["other"])
    station.set_filter(unannotated=True)
    done = {clips.loc[0, "utt_id"], clips.loc[3, "utt_id"]}
    assert len(station.clips) == len(clips) - 2 and not done & set(station.clips["utt_id"])
    station.set_filter(unannotated=False, order="confidence")
    assert station.clips["confidence"].is_monotonic_decreasing and len(station.clips) == len(clips)
    station.set_filter(order="margin")
    margins = station.clips["margin"]
    assert margins.is_monotonic_increasing
    top = station.clips[list(evaluation.PROB_COLUMNS)].to_numpy()
    top.sort(axis=1)
    assert (abs(margins.to_numpy() - (top[:, -1] - top[:, -2])) < 1e-12).all()
    with pytest.raises(ValueError, match="unknown order"):
        station.set_filter(order="loudest")


def test_notes_are_saved_after_typing_stops_and_on_leaving_the_clip(run, monkeypatch):
    cfg, folder, preds = run
    monkeypatch.setattr(st, "NOTE_DEBOUNCE_S", 0.2)
    clips = ls.select_misclassified(preds, n=4, seed=0)
    station = ListeningStation(cfg, folder, clips, plots=False)
    for text in ("s", "so", "soft"):  # keystrokes, as the Textarea sends them
        station.note.value = text
    assert station.annotation() is None  # not yet: the listener is still typing
    __import__("time").sleep(0.6)
    assert station.annotation()["note"] == "soft"
    station.note.value = "soft and breathy"
    station.next()  # leaving the clip saves what was typed
    assert station.store.get(clips.loc[0, "utt_id"])["note"] == "soft and breathy"


def test_resume_goes_to_the_last_clip_viewed_per_annotator(run):
    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=6, seed=0)
    ana = ListeningStation(cfg, folder, clips, plots=False, annotator="ana")
    ana.select(4)  # skipped ahead without annotating
    ben = ListeningStation(cfg, folder, clips, plots=False, annotator="ben")
    assert ben.index == 0
    ben.select(2)
    assert ListeningStation(cfg, folder, clips, plots=False, annotator="ana").index == 4
    assert ListeningStation(cfg, folder, clips, plots=False, annotator="ben").index == 2


def test_the_annotator_box_switches_listener_and_agreement_is_measured(run):
    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=4, seed=0)
    station = ListeningStation(cfg, folder, clips, plots=False)
    station.set_annotator("ana")
    for i in range(4):
        station.select(i)
        station.set_tags(["other"] if i < 2 else [])
        station.set_reviewed(i >= 2)
    station.set_annotator("ben")
    assert station.annotation() is None  # ben has not annotated anything yet
    for i in range(4):
        station.select(i)
        station.set_tags(["other"] if i < 3 else [])
        station.set_reviewed(i >= 3)
    rows = pd.read_csv(folder.annotations, keep_default_na=False)
    assert sorted(set(rows["annotator"])) == ["ana", "ben"] and len(rows) == 8
    table = ls.agreement_table(station.store.frame()).set_index("tag")
    assert table.loc["other", "clips"] == 4 and table.loc["other", "agreement"] == 0.75
    assert table.loc["other", "cohen_kappa"] == pytest.approx(0.5)  # po 0.75, pe 0.5
    assert "Agreement between annotators" in station.agreement_html.value


def test_tags_come_from_the_profile_and_other_tags_in_the_file_are_kept(run):
    import dataclasses

    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=4, seed=0)
    first = ListeningStation(cfg, folder, clips, plots=False, annotator="ana")
    first.set_tags(["hybrid_prosody"])
    mine = dataclasses.replace(cfg, analysis=dataclasses.replace(cfg.analysis, listening_tags=["whisper", "laughter"]))
    second = ListeningStation(mine, folder, clips, plots=False, annotator="ben")
    assert list(second.tag_boxes) == ["whisper", "laughter"] and "1 whisper" == second.tag_boxes["whisper"].description
    assert second.handle_key("2") == "laughter"
    with pytest.raises(ValueError, match="unknown tag"):
        second.set_tags(["hybrid_prosody"])
    rows = pd.read_csv(folder.annotations, keep_default_na=False).set_index("annotator")
    assert {"whisper", "laughter", "hybrid_prosody", "other", "whisper_utc"} <= set(rows.columns)  # nothing dropped
    assert rows.loc["ben", "laughter"] == 1 and rows.loc["ana", "hybrid_prosody"] == 1
    assert rows.loc["ana", "laughter"] == 0
    summary = second.summary().iloc[-1]
    assert (summary["laughter"], summary["hybrid prosody"]) == (1, 1)


def _key_listeners() -> set:
    """The ipyevents key listeners open in this process (a closed widget leaves the registry)."""
    from ipyevents import Event
    from ipywidgets.widgets.widget import _instances

    return {widget for widget in list(_instances.values()) if isinstance(widget, Event)}


def _front_end_key(key: str, before: set) -> None:
    """Send a keydown to every key listener opened since ``before`` and still open, as the front end's ipyevents
    does: a comm message, method "custom", to each Event model."""
    for listener in _key_listeners() - before:
        message = {"event": "keydown", "key": key, "target": {"tagName": "DIV"}}
        listener._handle_msg({"content": {"data": {"method": "custom", "content": message}}, "buffers": []})


def test_showing_the_station_again_leaves_one_key_listener(run, monkeypatch):
    pytest.importorskip("ipyevents")
    import IPython.display

    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=6, seed=0)
    monkeypatch.setattr(st, "is_live_frontend", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: None)
    monkeypatch.setitem(st._SHOWN, "station", None)
    saves = []
    update = st.AnnotationStore.update
    monkeypatch.setattr(st.AnnotationStore, "update", lambda self, *a: (saves.append(a[1]), update(self, *a))[1])

    before = _key_listeners()  # other tests' stations: never displayed, so the front end sends them nothing
    first = ListeningStation(cfg, folder, clips, plots=False)
    assert first.show()
    first.select(2)
    second = ListeningStation(cfg, folder, clips, plots=False)  # the cell run again in the same kernel
    assert second.show() and second.index == 2  # resumes where the first left off

    _front_end_key("ArrowRight", before)
    assert (second.index, first.index) == (3, 2)  # one key press, one clip
    _front_end_key("1", before)
    tag = second.tags[0]
    assert saves == [{tag: True}] and second.annotation()[tag] == 1  # toggled once, saved once
    _front_end_key("1", before)
    assert saves == [{tag: True}, {tag: False}] and second.annotation()[tag] == 0
    assert first.closed and first.keys.comm is None and first.widget.comm is None
    assert all(box.comm is None for box in first.tag_boxes.values())
    assert second.show() and not second.closed  # showing the same station again keeps it
    second.close()
    _front_end_key("ArrowRight", before)
    assert second.index == 3 and st._SHOWN["station"] is None
