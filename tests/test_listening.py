"""Tests of serlib.listening (the station driven programmatically, the static table) and
notebooks/06_listening. The run folder is fabricated (see tests/test_confusion.py)."""
from __future__ import annotations

import base64
import io
import re
import warnings

import pandas as pd
import pytest
import soundfile as sf
from test_confusion import SMOKE, make_fabricated_run

from serlib.analysis import confusion as cf
from serlib.analysis import listening as ls
from serlib.common.config import load_config


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
    import IPython

    assert not ls.is_live_frontend()  # no kernel here

    class Kernel:  # what ipykernel holds while a live front end (JupyterLab) drives it
        _allow_stdin = True

    class Shell:
        kernel = Kernel()

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell())
    assert ls.is_live_frontend()
    Kernel._allow_stdin = False  # papermill / nbclient execute with allow_stdin False
    assert not ls.is_live_frontend()
    Kernel._allow_stdin = True
    monkeypatch.setenv("SERLIB_STATIC", "1")  # forces the static form even in a live front end
    assert not ls.is_live_frontend()


@pytest.mark.slow
def test_notebook_06_listening(smoke_run):
    folder, run_dir = smoke_run, smoke_run.root  # tests/conftest.py: every notebook executed once
    out = folder.notebooks / "06_listening.ipynb"
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


# --------------------------------------------------------------------------- annotations that cannot be lost


def clip_row(i: int) -> dict:
    """A listening clip as the store needs it (utt_id, true and predicted class)."""
    return {"utt_id": f"EmoDB/c{i:02d}", "label": "negative", "pred": ("sad_fear", "pos_neutral")[i % 2]}


def rows_of(path) -> dict:
    """``{(utt_id, annotator): (tags..., note)}`` of the annotations file."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {(r["utt_id"], r["annotator"]): (*(int(r[t]) for t in ls.TAGS), r["note"]) for _, r in table.iterrows()}


def test_two_stations_interleaving_saves_keep_both_listeners_work(run):
    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=4, seed=0)
    u = clips["utt_id"].tolist()
    ana = ls.ListeningStation(cfg, folder, clips, plots=False, annotator="ana")
    ben = ls.ListeningStation(cfg, folder, clips, plots=False, annotator="ben")
    ana.set_tags(["hybrid_prosody"])
    ben.set_tags(["other"])
    ben.set_note("sounds calm to me")
    ana.select(1)
    ana.set_note("laughs at the end")
    ben.select(1)
    ben.set_tags(["label_doubtful"])
    # one listener, two tabs: neither tab's stale view may erase the other's field
    tab1 = ls.ListeningStation(cfg, folder, clips, plots=False)
    tab2 = ls.ListeningStation(cfg, folder, clips, plots=False)
    tab1.select(2)
    tab2.select(2)
    tab1.set_note("whispered")
    tab2.set_tags(["ambiguous_arousal"])
    assert tab2.note.value == "whispered"  # the merged row is shown after the save
    tab1.set_tags(["ambiguous_arousal", "other"])
    assert rows_of(folder.annotations) == {
        (u[0], "ana"): (1, 0, 0, 0, ""), (u[0], "ben"): (0, 0, 0, 1, "sounds calm to me"),
        (u[1], "ana"): (0, 0, 0, 0, "laughs at the end"), (u[1], "ben"): (0, 0, 1, 0, ""),
        (u[2], ""): (0, 1, 0, 1, "whispered")}
    reopened = ls.ListeningStation(cfg, folder, clips, plots=False, annotator="ben")
    assert reopened.index == 1 and reopened.annotation(u[0])["note"] == "sounds calm to me"  # ben last viewed clip 1
    total = reopened.summary().iloc[-1]
    assert (total["clips"], total["annotated"], total["other"], total["label doubtful"]) == (4, 3, 2, 1)
    markup = ls.static_table_html(clips.iloc[:1].assign(path="/nonexistent.wav"), reopened.store.frame())
    assert "ben: sounds calm to me" in markup and "hybrid prosody, other" in markup


def _save_in_process(path: str, field: str, start, clips: list[dict]) -> None:
    """A second process's listener: every clip's ``field`` set, one save per clip."""
    store = ls.AnnotationStore(path)
    start.wait()
    for i, clip in enumerate(clips):
        store.update(clip, {field: f"note {i}" if field == "note" else 1})


def test_two_processes_saving_concurrently_keep_all_rows(tmp_path):
    import multiprocessing

    path = tmp_path / "listening" / "annotations.csv"
    clips = [clip_row(i) for i in range(15)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    workers = [ctx.Process(target=_save_in_process, args=(str(path), f, start, clips)) for f in ("note", "other")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert [w.exitcode for w in workers] == [0, 0]
    assert rows_of(path) == {(c["utt_id"], ""): (0, 0, 0, 1, f"note {i}") for i, c in enumerate(clips)}


GOOD_NOTES = ["", "flat, then rising", 'said "no" twice', "", "breathy"]


def good_file(path):
    """Five annotations with fixed times; returns the file's lines."""
    annotations = []
    for i, note in enumerate(GOOD_NOTES):
        a = ls.Annotation(**{k: v for k, v in clip_row(i).items()}, annotator="ana")
        when = ls._parse_time(f"2024-05-01T12:00:0{i}Z", "t")
        a.values |= {"hybrid_prosody": i % 2, "note": note}
        a.times |= {"hybrid_prosody": when, "note": when if note else ls.NEVER}
        annotations.append(a)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ls.annotations_csv(annotations))
    return path.read_text().splitlines()


def cut_at_60(raw: bytes, lines):
    return raw[:int(0.6 * len(raw))]


def stray_line(raw, lines):
    return "\n".join(lines[:3] + ["oops pasted here"] + lines[3:]).encode() + b"\n"


def unterminated_quote(raw, lines):  # row 2 (c01): its note opens a quote that never closes
    broken = lines[2].replace('"flat, then rising"', '"flat, then rising')
    return "\n".join(lines[:2] + [broken] + lines[3:]).encode() + b"\n"


def extra_fields(raw, lines):
    return "\n".join(lines[:4] + [lines[4] + ",extra,fields"] + lines[5:]).encode() + b"\n"


def tag_maybe(raw, lines):
    head, rest = lines[5].split(",ana,", 1)
    label, pred, _tag, tail = rest.split(",", 3)
    return "\n".join(lines[:5] + [f"{head},ana,{label},{pred},maybe,{tail}"]).encode() + b"\n"


def binary_prefix(raw, lines):
    return b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfegarbage" + raw


# (damage, lines not read of the 5 good rows (0-based row index), warning text)
DAMAGE = {
    "cut_at_60": (cut_at_60, None, r"field\(s\) where the header has|expected a UTC time"),
    "stray_line": (stray_line, [], r"line 4: 1 field\(s\) where the header has 17"),
    "unterminated_quote": (unterminated_quote, [1], r"line 3: .*a quote left open"),
    "extra_fields": (extra_fields, [3], r"line 5: 19 field\(s\) where the header has 17"),
    "tag_maybe": (tag_maybe, [4], r"line 6: hybrid_prosody is 'maybe', expected 0 or 1"),
    "binary_prefix": (binary_prefix, [], r"line 3: 11 character\(s\) before the header are not annotations"),
}


def _text(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("cp1252")


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_annotations_keep_valid_rows_and_every_other_line_verbatim(tmp_path, case):
    """Issue 21 (6): a line that cannot be read is named, kept as it is after the rows, in every save; never dropped."""
    damage, dropped, message = DAMAGE[case]
    path = tmp_path / "annotations.csv"
    lines = good_file(path)
    damaged = damage(path.read_bytes(), lines)
    path.write_bytes(damaged)
    if dropped is None:  # the cut: every row that ends before it survives
        ends = [len("\n".join(lines[:k + 1])) + 1 for k in range(len(lines))]
        dropped = [k - 1 for k in range(1, len(lines)) if ends[k] > len(damaged)]
        assert 0 < len(dropped) < 5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = ls.AnnotationStore(path, annotator="ana")
    said = [str(w.message) for w in caught]
    assert any(re.search(f"{re.escape(str(path))}.*({message})", m) for m in said), said
    kept = [k for k in range(5) if k not in dropped]
    assert sorted(u for u, _ in store.records) == [clip_row(k)["utt_id"] for k in kept]
    store.update(clip_row(9), {"note": "new, after the damage"})
    new_line = ls.annotations_csv([store.records[(clip_row(9)["utt_id"], "ana")]]).splitlines()[1]
    saved = path.read_text().splitlines()
    good = [lines[0], *(lines[k + 1] for k in kept), new_line]
    assert saved[:len(good)] == good
    tail = saved[len(good):]
    original = [_text(line).rstrip("\r\n") for line in re.findall(rb"[^\n]*\n|[^\n]+$", damaged)]
    for line in original:  # nothing lost: each line is a row read, or is in the tail (a header's prefix split off)
        assert line in good or line in tail or (line.endswith(lines[0]) and line[:-len(lines[0])] in tail), line
    assert len(tail) == len([line for line in original if line not in good])
    assert (tmp_path / "annotations.csv.bak").read_bytes() == damaged
    again = ls.AnnotationStore(path, annotator="ana")  # the kept lines survive the next save too
    again.update(clip_row(8), {"other": 1})
    assert path.read_text().splitlines()[-len(tail):] == tail if tail else True
    assert set(again.records) == set(store.records) | {(clip_row(8)["utt_id"], "ana")}


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_empty_annotations_file_is_named_and_replaced(tmp_path, content):
    path = tmp_path / "annotations.csv"
    path.write_bytes(content)
    with pytest.warns(UserWarning, match=f"{re.escape(str(path))}: the file is empty"):
        store = ls.AnnotationStore(path)
    assert store.records == {} and store.frame().empty
    store.update(clip_row(0), {"other": True})
    assert rows_of(path) == {(clip_row(0)["utt_id"], ""): (0, 0, 0, 1, "")}


def test_annotations_before_annotators_are_read_and_upgraded(tmp_path):
    path = tmp_path / "annotations.csv"
    path.write_text("utt_id,label,pred,hybrid_prosody,ambiguous_arousal,label_doubtful,other,note,annotated_utc\n"
                    "EmoDB/c00,negative,sad_fear,1,0,0,0,\"two lines,\nof note\",2024-05-01T12:00:00Z\n")
    store = ls.AnnotationStore(path)
    assert store.get("EmoDB/c00")["note"] == "two lines,\nof note"
    store.update(clip_row(0), {"other": 1})
    assert rows_of(path) == {("EmoDB/c00", ""): (1, 0, 0, 1, "two lines,\nof note")}
    row = pd.read_csv(path, dtype=str, keep_default_na=False).iloc[0]
    assert row["note_utc"] == "2024-05-01T12:00:00.000000Z" and row["other_utc"] > row["note_utc"]


def test_saves_without_fcntl_still_merge(tmp_path, monkeypatch):
    from serlib.common import locking

    monkeypatch.setattr(locking, "fcntl", None)
    monkeypatch.setattr(locking, "_warned_no_fcntl", False)
    path = tmp_path / "annotations.csv"
    first, second = ls.AnnotationStore(path, "ana"), ls.AnnotationStore(path, "ben")
    with pytest.warns(UserWarning, match="no fcntl"):
        first.update(clip_row(0), {"note": "a"})
    second.update(clip_row(0), {"note": "b"})
    assert rows_of(path) == {("EmoDB/c00", "ana"): (0, 0, 0, 0, "a"), ("EmoDB/c00", "ben"): (0, 0, 0, 0, "b")}


# --------------------------------------------------------------------------- keyboard, filters, states


def test_keyboard_shortcuts_move_and_tag(run):
    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=6, seed=0)
    station = ls.ListeningStation(cfg, folder, clips, plots=False)
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
    station = ls.ListeningStation(cfg, folder, clips, plots=False)
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
    top = station.clips[list(cf.PROB_COLUMNS)].to_numpy()
    top.sort(axis=1)
    assert (abs(margins.to_numpy() - (top[:, -1] - top[:, -2])) < 1e-12).all()
    with pytest.raises(ValueError, match="unknown order"):
        station.set_filter(order="loudest")


def test_notes_are_saved_after_typing_stops_and_on_leaving_the_clip(run, monkeypatch):
    cfg, folder, preds = run
    monkeypatch.setattr(ls, "NOTE_DEBOUNCE_S", 0.2)
    clips = ls.select_misclassified(preds, n=4, seed=0)
    station = ls.ListeningStation(cfg, folder, clips, plots=False)
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
    ana = ls.ListeningStation(cfg, folder, clips, plots=False, annotator="ana")
    ana.select(4)  # skipped ahead without annotating
    ben = ls.ListeningStation(cfg, folder, clips, plots=False, annotator="ben")
    assert ben.index == 0
    ben.select(2)
    assert ls.ListeningStation(cfg, folder, clips, plots=False, annotator="ana").index == 4
    assert ls.ListeningStation(cfg, folder, clips, plots=False, annotator="ben").index == 2


def test_the_annotator_box_switches_listener_and_agreement_is_measured(run):
    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=4, seed=0)
    station = ls.ListeningStation(cfg, folder, clips, plots=False)
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


def test_reviewed_is_read_as_unset_from_files_before_it(tmp_path):
    path = tmp_path / "annotations.csv"
    path.write_text("utt_id,annotator,label,pred,hybrid_prosody,ambiguous_arousal,label_doubtful,other,note,"
                    "annotated_utc\nCREMA-D/1001_DFA_ANG_XX,,negative,sad_fear,1,0,0,0,old,2024-05-01T12:00:00Z\n")
    store = ls.AnnotationStore(path)
    row = store.get("CREMA-D/1001_DFA_ANG_XX")
    assert row["reviewed"] == 0 and row["hybrid_prosody"] == 1


def test_tags_come_from_the_profile_and_other_tags_in_the_file_are_kept(run):
    import dataclasses

    cfg, folder, preds = run
    clips = ls.select_misclassified(preds, n=4, seed=0)
    first = ls.ListeningStation(cfg, folder, clips, plots=False, annotator="ana")
    first.set_tags(["hybrid_prosody"])
    mine = dataclasses.replace(cfg, analysis=dataclasses.replace(cfg.analysis, listening_tags=["whisper", "laughter"]))
    second = ls.ListeningStation(mine, folder, clips, plots=False, annotator="ben")
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


def test_bad_tag_names_are_refused_at_load(tmp_path):
    from serlib.common.config import ConfigError

    path = tmp_path / "p.yaml"
    path.write_text("analysis:\n  listening_tags: [note, Bad-Tag]\n")
    with pytest.raises(ConfigError, match="analysis.listening_tags"):
        load_config(path)
