"""Tests of serlib.analysis.annotations: the annotations file that listening stations save through (merged on
every save, two processes at once, damaged lines kept verbatim, files written before a column existed)."""

from __future__ import annotations

import re
import warnings

import pandas as pd
import pytest

from serlib.analysis import annotations as an
from serlib.common.config import load_config


def clip_row(i: int) -> dict:
    """A listening clip as the store needs it (utt_id, true and predicted class)."""
    return {"utt_id": f"EmoDB/c{i:02d}", "label": "negative", "pred": ("sad_fear", "pos_neutral")[i % 2]}


def rows_of(path) -> dict:
    """``{(utt_id, annotator): (tags..., note)}`` of the annotations file."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {(r["utt_id"], r["annotator"]): (*(int(r[t]) for t in an.TAGS), r["note"]) for _, r in table.iterrows()}


def _save_in_process(path: str, field: str, start, clips: list[dict]) -> None:
    """A second process's listener: every clip's ``field`` set, one save per clip."""
    store = an.AnnotationStore(path)
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
        a = an.Annotation(**{k: v for k, v in clip_row(i).items()}, annotator="ana")
        when = an._parse_time(f"2024-05-01T12:00:0{i}Z", "t")
        a.values |= {"hybrid_prosody": i % 2, "note": note}
        a.times |= {"hybrid_prosody": when, "note": when if note else an.NEVER}
        annotations.append(a)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(an.annotations_csv(annotations))
    return path.read_text().splitlines()


def cut_at_60(raw: bytes, lines):
    return raw[: int(0.6 * len(raw))]


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
        ends = [len("\n".join(lines[: k + 1])) + 1 for k in range(len(lines))]
        dropped = [k - 1 for k in range(1, len(lines)) if ends[k] > len(damaged)]
        assert 0 < len(dropped) < 5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = an.AnnotationStore(path, annotator="ana")
    said = [str(w.message) for w in caught]
    assert any(re.search(f"{re.escape(str(path))}.*({message})", m) for m in said), said
    kept = [k for k in range(5) if k not in dropped]
    assert sorted(u for u, _ in store.records) == [clip_row(k)["utt_id"] for k in kept]
    store.update(clip_row(9), {"note": "new, after the damage"})
    new_line = an.annotations_csv([store.records[(clip_row(9)["utt_id"], "ana")]]).splitlines()[1]
    saved = path.read_text().splitlines()
    good = [lines[0], *(lines[k + 1] for k in kept), new_line]
    assert saved[: len(good)] == good
    tail = saved[len(good) :]
    original = [_text(line).rstrip("\r\n") for line in re.findall(rb"[^\n]*\n|[^\n]+$", damaged)]
    for line in original:  # nothing lost: each line is a row read, or is in the tail (a header's prefix split off)
        assert line in good or line in tail or (line.endswith(lines[0]) and line[: -len(lines[0])] in tail), line
    assert len(tail) == len([line for line in original if line not in good])
    assert (tmp_path / "annotations.csv.bak").read_bytes() == damaged
    again = an.AnnotationStore(path, annotator="ana")  # the kept lines survive the next save too
    again.update(clip_row(8), {"other": 1})
    assert path.read_text().splitlines()[-len(tail) :] == tail if tail else True
    assert set(again.records) == set(store.records) | {(clip_row(8)["utt_id"], "ana")}


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_empty_annotations_file_is_named_and_replaced(tmp_path, content):
    path = tmp_path / "annotations.csv"
    path.write_bytes(content)
    with pytest.warns(UserWarning, match=f"{re.escape(str(path))}: the file is empty"):
        store = an.AnnotationStore(path)
    assert store.records == {} and store.frame().empty
    store.update(clip_row(0), {"other": True})
    assert rows_of(path) == {(clip_row(0)["utt_id"], ""): (0, 0, 0, 1, "")}


def test_annotations_before_annotators_are_read_and_upgraded(tmp_path):
    path = tmp_path / "annotations.csv"
    path.write_text(
        "utt_id,label,pred,hybrid_prosody,ambiguous_arousal,label_doubtful,other,note,annotated_utc\n"
        'EmoDB/c00,negative,sad_fear,1,0,0,0,"two lines,\nof note",2024-05-01T12:00:00Z\n'
    )
    store = an.AnnotationStore(path)
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
    first, second = an.AnnotationStore(path, "ana"), an.AnnotationStore(path, "ben")
    with pytest.warns(UserWarning, match="no fcntl"):
        first.update(clip_row(0), {"note": "a"})
    second.update(clip_row(0), {"note": "b"})
    assert rows_of(path) == {("EmoDB/c00", "ana"): (0, 0, 0, 0, "a"), ("EmoDB/c00", "ben"): (0, 0, 0, 0, "b")}


def test_reviewed_is_read_as_unset_from_files_before_it(tmp_path):
    path = tmp_path / "annotations.csv"
    path.write_text(
        "utt_id,annotator,label,pred,hybrid_prosody,ambiguous_arousal,label_doubtful,other,note,"
        "annotated_utc\nCREMA-D/1001_DFA_ANG_XX,,negative,sad_fear,1,0,0,0,old,2024-05-01T12:00:00Z\n"
    )
    store = an.AnnotationStore(path)
    row = store.get("CREMA-D/1001_DFA_ANG_XX")
    assert row["reviewed"] == 0 and row["hybrid_prosody"] == 1


def test_bad_tag_names_are_refused_at_load(tmp_path):
    from serlib.common.config import ConfigError

    path = tmp_path / "p.yaml"
    path.write_text("analysis:\n  listening_tags: [note, Bad-Tag]\n")
    with pytest.raises(ConfigError, match="analysis.listening_tags"):
        load_config(path)
