"""The listening station for misclassified test clips (paper 5.4: "listening tests on 50 misclassified
clips"), and its static form for the HTML report.

``ListeningStation`` is an ipywidgets UI (audio, log-Mel with the pyin pitch contour, true and
predicted class with probabilities, failure-mode tags, notes, previous/next, filters by true and
predicted class). Every change is saved at once to ``<run>/listening/annotations.csv``, one row per
clip and annotator, merged with what other stations saved (``AnnotationStore``: lock, re-read, merge
field by field by the time each was set, ``.bak``, atomic replace); a new station on the same run
folder resumes from that file. Its methods (``select``,
``next``, ``previous``, ``set_tags``, ``set_note``, ``set_filter``) drive the same widgets a
listener clicks, so tests exercise the real wiring.

Live kernel or not: the widget needs a live front end (JupyterLab, VS Code). Under papermill/nbclient
the kernel receives ``allow_stdin=False`` on every execute request, a live notebook front end sends
True; ``is_live_frontend()`` reads that flag, and ``SERLIB_STATIC=1`` in the environment forces the
static form. The static table (embedded playable audio) and the annotation summary are ALWAYS shown,
so the report carries them and a listener sees the clips' overview too.
"""
from __future__ import annotations

import base64
import codecs
import copy
import csv
import datetime as dt
import html
import io
import json
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from serlib.analysis.confusion import PROB_COLUMNS
from serlib.analysis.prosody import hop_length, pitch_contour
from serlib.common.audio import load_audio, wav_bytes
from serlib.common.config import AnalysisConfig, Config
from serlib.common.facts import CLASSES, SAMPLE_RATE
from serlib.common.io import write_bytes_atomic, write_text_atomic
from serlib.common.locking import file_lock
from serlib.common.runfolder import RunFolder

TAGS = ("hybrid_prosody", "ambiguous_arousal", "label_doubtful", "other")
TAG_LABELS = {"hybrid_prosody": "hybrid prosody", "ambiguous_arousal": "ambiguous arousal",
              "label_doubtful": "label doubtful", "other": "other"}
ALL = "all"


# --------------------------------------------------------------------------- clips


def select_misclassified(preds: pd.DataFrame, n: int = 50, seed: int = 0) -> pd.DataFrame:
    """Draw ``n`` misclassified clips reproducibly (all of them when fewer).

    The draw depends only on the set of misclassified utt_ids and the seed, not on row order.

    Args:
        preds: predictions joined with the manifest (``serlib.analysis.confusion.load_predictions``).
        n: how many clips (paper 5.4: 50).
        seed: seed of the draw.

    Returns:
        The drawn rows sorted by (true class, predicted class, utt_id), index 0..n-1.
    """
    if n < 1:
        raise ValueError(f"n (analysis.listening_clips) must be at least 1, got {n}")
    wrong = preds[~preds["correct"]].sort_values("utt_id").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    chosen = wrong.iloc[np.sort(rng.permutation(len(wrong))[: min(n, len(wrong))])]
    order = {c: i for i, c in enumerate(CLASSES)}
    return (chosen.assign(_t=chosen["label"].map(order), _p=chosen["pred"].map(order))
            .sort_values(["_t", "_p", "utt_id"]).drop(columns=["_t", "_p"]).reset_index(drop=True))


# --------------------------------------------------------------------------- annotations on disk
#
# annotations.csv holds one row per (clip, annotator). Each field a listener sets (a tag, the note)
# carries the time it was set (``<field>_utc``), so two stations saving into one file merge field by
# field: the newer value wins, and on a tie the file wins (a hand edit that kept the time stands).
# Every save takes the sidecar lock, re-reads the file, merges this store's own edits into it, keeps
# the previous file as ``annotations.csv.bak`` and replaces the file atomically; nothing is written
# from one process's memory alone.
#
# Annotations are a person's work, and people open them in spreadsheets. The reader accepts what pandas
# and spreadsheets write back: UTF-8 with or without a byte-order mark, UTF-16 (with its mark), a line
# in Windows-1252 / Latin-1 among UTF-8 ones, ',' ';' or tab between fields, header names in any case
# and spacing ("Utt ID"), tags as 0/1, 1.0/0.0, True/False, yes/no, times with a space for the 'T'.
# Columns it does not know are kept and written back. A row it still cannot read is named in a warning
# and kept as it is (its text, verbatim, after the rows it read) in every save: nothing is dropped. A
# file without a recognisable header is not written at all (the save fails and says why).

FIELDS = (*TAGS, "reviewed", "note")  # what a listener sets (default tags); each carries its own time
# "reviewed": the listener heard the clip and found no failure mode to tag (0/1). Files written before it
# existed have no such column: read as 0, never set.
FIELD_TIMES = tuple(f"{f}_utc" for f in FIELDS)
ANNOTATION_COLUMNS = ("utt_id", "annotator", "label", "pred", *FIELDS, "annotated_utc", *FIELD_TIMES)
REQUIRED_COLUMNS = ("utt_id", "label", "pred", "note", "annotated_utc")  # every annotations file has these
BASE_COLUMNS = {"utt_id", "annotator", "label", "pred", "reviewed", "note", "annotated_utc"}
# The tags are the profile's (``analysis.listening_tags``; default ``TAGS``). A file may hold other tags too
# (an earlier profile's, another listener's): a column ``<tag>`` with its ``<tag>_utc`` (or one of the
# default tags) is a tag; each is kept and written back, never dropped.


def fields_for(tags: Sequence[str]) -> tuple[str, ...]:
    return (*tags, "reviewed", "note")


def columns_for(tags: Sequence[str]) -> tuple[str, ...]:
    fields = fields_for(tags)
    return ("utt_id", "annotator", "label", "pred", *fields, "annotated_utc", *(f"{f}_utc" for f in fields))


def tag_label(tag: str) -> str:
    return TAG_LABELS.get(tag, tag.replace("_", " "))
NEVER = dt.datetime.min.replace(tzinfo=dt.timezone.utc)  # the time of a field nobody has set
# A UTC time as serlib writes it (2024-05-01T12:00:00.000000Z) or as a spreadsheet writes it back
# (a space for the T, no Z, seconds or their fraction dropped, +00:00).
_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d)(:\d\d)?(\.\d{1,9})?(Z|\+00:?00| ?UTC)?")


def _format_time(when: dt.datetime) -> str:
    return "" if when == NEVER else when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str, column: str) -> dt.datetime:
    text = text.strip()
    if text == "":
        return NEVER
    match = _TIME.fullmatch(text)
    if not match:
        raise ValueError(f"{column} is {text!r}, expected a UTC time like 2024-05-01T12:00:00Z")
    day, minutes, seconds, fraction, _ = match.groups()
    try:
        when = dt.datetime.fromisoformat(f"{day}T{minutes}{seconds or ':00'}{(fraction or '')[:7]}")
    except ValueError as err:
        raise ValueError(f"{column} is {text!r}: {err}") from None
    return when.replace(tzinfo=dt.timezone.utc)


_last_stamp = NEVER


def _now() -> dt.datetime:
    """UTC now, strictly increasing within the process (two edits never share a time)."""
    global _last_stamp
    now = dt.datetime.now(dt.timezone.utc)
    _last_stamp = max(now, _last_stamp + dt.timedelta(microseconds=1))
    return _last_stamp


@dataclass
class Annotation:
    """One listener's annotation of one clip; each field with the time it was set."""

    utt_id: str
    annotator: str
    label: str
    pred: str
    values: dict = field(default_factory=lambda: {**{t: 0 for t in TAGS}, "reviewed": 0, "note": ""})
    times: dict = field(default_factory=lambda: dict.fromkeys(FIELDS, NEVER))
    extra: dict = field(default_factory=dict)  # the file's columns that are not annotation columns, as read

    @property
    def key(self) -> tuple[str, str]:
        return self.utt_id, self.annotator

    @property
    def when(self) -> dt.datetime:
        return max(self.times.values())

    def merge(self, other: "Annotation") -> None:
        """Take each of ``other``'s fields that was set strictly later than this one's."""
        if other.when > self.when:
            self.label, self.pred = other.label, other.pred
        for f in other.times:
            if other.times[f] > self.times.get(f, NEVER):
                self.values[f], self.times[f] = other.values[f], other.times[f]
        for column, value in other.extra.items():  # never edited here: the first value read stays
            self.extra.setdefault(column, value)

    def row(self, tags: Sequence[str] = TAGS, extra: Sequence[str] = ()) -> dict:
        """The CSV row: ``columns_for(tags)`` (a tag never set is 0), then the ``extra`` columns as read."""
        fields = fields_for(tags)
        return {"utt_id": self.utt_id, "annotator": self.annotator, "label": self.label, "pred": self.pred,
                **{f: self.values.get(f, "" if f == "note" else 0) for f in fields},
                "annotated_utc": _format_time(self.when),
                **{f"{f}_utc": _format_time(self.times.get(f, NEVER)) for f in fields},
                **{c: self.extra.get(c, "") for c in extra}}


@dataclass
class AnnotationFile:
    """What ``read_annotations`` found."""

    annotations: list[Annotation]
    raw: bytes  # the file as read (b"" when missing)
    damaged: bool  # some text could not be read as an annotation (it is in ``kept``)
    tags: tuple = TAGS  # the tag columns the file holds
    kept: list = field(default_factory=list)  # the text of every line or record that could not be read, verbatim
    extra_columns: tuple = ()  # columns that are not annotation columns (kept and written back)
    readable: bool = True  # False: no header was found, so the file cannot be merged into (saves refuse)


class AnnotationsUnreadableError(OSError):
    """``annotations.csv`` has no header serlib can read: it is not written, so nothing in it is lost."""


def read_annotations(path: Path, warned: Optional[set] = None) -> AnnotationFile:
    """Read and check ``annotations.csv``; every line that cannot be read is named in a warning and kept.

    Accepted: the current columns, and files written before annotators and per-field times (no
    ``annotator`` column: ""; no ``<field>_utc``: ``annotated_utc``), as a spreadsheet or pandas writes
    them back (see the comment above ``FIELDS``). A quoted field may run over several lines (a note with
    line breaks), but not over a line that is a valid row by itself: that is a quote left open, which
    would swallow the rows after it.

    Args:
        path: the CSV.
        warned: warnings already given (not repeated; new ones are added), e.g. a store's.
    """
    path = Path(path)
    if not path.is_file():
        return AnnotationFile([], b"", False)
    raw = path.read_bytes()
    warn = _Warner(path, warned)
    lines = _decoded_lines(raw)
    if not "".join(lines).strip():
        warn(None, "the file is empty: no annotation read"
             + (f" (the previous version is {path.name}.bak)" if _backup(path).is_file() else ""))
        return AnnotationFile([], raw, False)  # nothing in it to rescue
    start, columns, delimiter, kept = _find_header(lines, warn)
    if columns is None:
        return AnnotationFile([], raw, True, kept=[], readable=False)
    tags = file_tags(columns)
    known = set(columns_for(tags))
    extra = tuple(c for c in columns if c not in known)
    annotations, i = [], start + 1
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        annotation, error, used = _row_at(lines, i, columns, tags, delimiter)
        swallowed = next((j for j in range(i + 1, i + used) if _row_at(lines, j, columns, tags, delimiter)[0]), None)
        if error is None and swallowed is not None:
            error = (f"a quoted field runs over {used} lines and takes in line {swallowed + 1}, a row of its own "
                     f"(a quote left open?)")
        elif error is not None and used > 1:
            error += f" (a quoted field runs over {used} lines: a quote left open?)"
        if error is not None:
            warn(i + 1, f"{error}; the line is kept as it is, after the rows that were read")
            kept.append(lines[i])
            i += 1  # resynchronise on the next line, not after the swallowed ones
            continue
        annotations.append(annotation)
        i += used
    return AnnotationFile(annotations, raw, bool(kept), tags, kept, extra)


def _decoded_lines(raw: bytes) -> list[str]:
    """The file's lines (each with its ``\\n``), as text: UTF-16 when it starts with its byte-order mark,
    else each line UTF-8 (a leading mark dropped), or Windows-1252 / Latin-1 when it is not UTF-8."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = raw.decode("utf-16", errors="replace")
        return re.findall(r"[^\n]*\n|[^\n]+$", text)
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    return [_decode_line(line) for line in re.findall(rb"[^\n]*\n|[^\n]+$", raw)]  # split at \n only


def _decode_line(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return line.decode("cp1252")  # what a spreadsheet on Windows writes
        except UnicodeDecodeError:
            return line.decode("latin-1")  # every byte is a character


def column_name(header: str) -> str:
    """A header cell as the column it names: case, spaces, hyphens and a byte-order mark do not matter."""
    return re.sub(r"[\s\-]+", "_", header.replace("\ufeff", "").strip().lower())


def file_tags(columns: Sequence[str]) -> tuple[str, ...]:
    """The tag columns of a header: the default tags it has, and any ``<name>`` with a ``<name>_utc``."""
    present = set(columns)
    return tuple(c for c in columns if c and c not in BASE_COLUMNS and not c.endswith("_utc")
                 and (c in TAGS or f"{c}_utc" in present))


def _row_at(lines: list[str], i: int, columns: list[str], tags: Sequence[str] = TAGS,
            delimiter: str = ",") -> tuple[Optional[Annotation], Optional[str], int]:
    """The record starting at line ``i``: (annotation or None, what is wrong or None, lines it takes)."""
    reader = csv.reader(iter(lines[i:]), delimiter=delimiter)
    try:
        annotation, error = _parse_row(next(reader), columns, tags), None
    except (csv.Error, ValueError) as err:
        annotation, error = None, str(err)
    return annotation, error, max(reader.line_num, 1)


class _Warner:
    """Warns about one file, each message once per ``seen`` set."""

    def __init__(self, path: Path, seen: Optional[set]):
        self.path, self.seen = path, seen if seen is not None else set()

    def __call__(self, line: Optional[int], reason: str) -> None:
        where = f"{self.path}, line {line}" if line is not None else str(self.path)
        message = f"annotations {where}: {reason}"
        if message not in self.seen:
            self.seen.add(message)
            warnings.warn(message, UserWarning, stacklevel=3)


_UTT_ID = re.compile(r"utt[\s_\-]*id", re.IGNORECASE)


def _find_header(lines: list[str], warn: _Warner) -> tuple[int, Optional[list[str]], str, list[str]]:
    """The header's line index, its columns (None: no header found), the field separator, and the text
    before the header (kept verbatim: lines, and characters before it on its own line)."""
    for i, line in enumerate(lines):
        match = _UTT_ID.search(line)
        if match is None:
            continue
        found = _header_columns(line) or _header_columns(line[match.start():])  # whole line (pandas' index
        if found is None:                                                     # column), else junk before it
            continue
        columns, delimiter = found
        at = len(line) - len(line.lstrip()) if _header_columns(line) else match.start()
        before = [text for text in lines[:i] if not re.fullmatch(r"\s*sep=.\s*", text)]  # a spreadsheet's hint
        kept = before + ([line[:at].rstrip("\r") + "\n"] if line[:at].strip() else [])
        if before:
            warn(1, f"{len(before)} line(s) before the header are not annotations; kept as they are, after the rows")
        if at > 0 and line[:at].strip():
            warn(i + 1, f"{at} character(s) before the header are not annotations; kept as they are, after the rows")
        if len(set(columns)) != len(columns):
            warn(i + 1, "a column name appears twice in the header: no annotation read")
            return 0, None, ",", []
        return i, columns, delimiter, kept
    warn(None, f"no header row with the columns {', '.join(REQUIRED_COLUMNS)} (in any case, separated by , ; or "
               "tab): no annotation read, and the file is not written over")
    return 0, None, ",", []


def _header_columns(text: str) -> Optional[tuple[list[str], str]]:
    """(columns, separator) when ``text`` is a header with the required columns, else None."""
    for delimiter in (",", ";", "\t"):
        columns = [column_name(c) for c in next(csv.reader([text], delimiter=delimiter), [])]
        if set(REQUIRED_COLUMNS) <= set(columns):
            return columns, delimiter
    return None


_FLAGS = {"": 0, "0": 0, "0.0": 0, "false": 0, "no": 0, "n": 0, "1": 1, "1.0": 1, "true": 1, "yes": 1, "y": 1}


def _flag(text: str, column: str) -> int:
    """A tag's cell as 0 or 1: 0/1, 1.0/0.0, True/False, yes/no (any case), blank = 0."""
    value = _FLAGS.get(text.strip().lower())
    if value is None:
        raise ValueError(f"{column} is {text!r}, expected 0 or 1 (or 1.0, true, yes)")
    return value


def _parse_row(fields: list[str], columns: list[str], tags: Sequence[str] = TAGS) -> Annotation:
    """One CSV row as an ``Annotation``; ``ValueError`` says what is wrong with it."""
    if len(fields) != len(columns):
        raise ValueError(f"{len(fields)} field(s) where the header has {len(columns)}")
    row = dict(zip(columns, fields))
    if not row["utt_id"].strip():
        raise ValueError("utt_id is empty")
    label, pred = row["label"].strip().lower(), row["pred"].strip().lower()
    for column, value in (("label", label), ("pred", pred)):
        if value not in CLASSES:
            raise ValueError(f"{column} is {row[column]!r}, expected one of {', '.join(CLASSES)}")
    flags = {tag: _flag(row.get(tag, ""), tag) for tag in (*tags, "reviewed")}
    annotated = _parse_time(row["annotated_utc"], "annotated_utc")
    fields_ = fields_for(tags)
    times = {f: _parse_time(row[f"{f}_utc"], f"{f}_utc") if f"{f}_utc" in row else (annotated if f in row else NEVER)
             for f in fields_}
    values = {**flags, "note": row["note"]}
    known = set(columns_for(tags))
    extra = {c: v for c, v in row.items() if c not in known}
    return Annotation(row["utt_id"].strip(), row.get("annotator", "").strip(), label, pred, values, times, extra)


def _backup(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def merge_annotations(*groups: Sequence[Annotation]) -> dict[tuple[str, str], Annotation]:
    """``{(utt_id, annotator): Annotation}``, each field the last set across all the groups
    (earlier groups win ties)."""
    merged: dict[tuple[str, str], Annotation] = {}
    for group in groups:
        for annotation in group:
            if annotation.key in merged:
                merged[annotation.key].merge(annotation)
            else:
                merged[annotation.key] = copy.deepcopy(annotation)
    return merged


def annotations_csv(annotations: Sequence[Annotation], tags: Sequence[str] = TAGS, extra: Sequence[str] = (),
                    kept: Sequence[str] = ()) -> str:
    """The CSV text of ``annotations`` (UTF-8, ``columns_for(tags)`` then the ``extra`` columns), sorted by clip
    and annotator, then the ``kept`` lines that could not be read, verbatim."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*columns_for(tags), *extra], lineterminator="\n")
    writer.writeheader()
    writer.writerows(a.row(tags, extra) for a in sorted(annotations, key=lambda a: a.key))
    text = out.getvalue()
    for line in kept:
        text += line if line.endswith("\n") else line + "\n"
    return text


class AnnotationStore:
    """One listener's annotations in ``annotations.csv``, merged with everyone else's on every save.

    Args:
        path: the CSV (``RunFolder.annotations``).
        annotator: who this store writes as (one row per clip and annotator); "" = unnamed.

    ``records`` holds every annotator's rows as last read or saved; ``update`` records this
    listener's change of some fields and saves at once (lock, re-read, merge, ``.bak``, atomic
    replace). Without ``fcntl`` (Windows) saves are merged but not locked: see
    ``serlib.common.locking``.
    """

    def __init__(self, path: Path, annotator: str = "", tags: Sequence[str] = TAGS):
        self.path, self.annotator = Path(path), str(annotator)
        self.tags = tuple(tags)  # the profile's tags; ``all_tags`` adds those the file holds besides
        self.file_tags: tuple = ()
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self.records: dict[tuple[str, str], Annotation] = {}
        self.extra_columns: tuple = ()  # the file's own other columns (kept)
        self._edits: dict[tuple[str, str], Annotation] = {}  # this store's changes not yet saved
        self._warned: set[str] = set()  # damage reported once, not again at every save
        self.reload()

    def reload(self) -> None:
        """Re-read the file (other stations' saves)."""
        found = read_annotations(self.path, self._warned)
        self.file_tags = found.tags if found.raw else ()
        self.extra_columns = found.extra_columns
        self.records = merge_annotations(found.annotations, self._edits.values())

    @property
    def all_tags(self) -> tuple[str, ...]:
        """The profile's tags, then any other tag the file holds (kept, never dropped)."""
        return (*self.tags, *(t for t in self.file_tags if t not in self.tags))

    def get(self, utt_id: str, annotator: Optional[str] = None) -> Optional[dict]:
        """The row of a clip by this store's annotator (or ``annotator``), None when not annotated."""
        annotation = self.records.get((utt_id, self.annotator if annotator is None else annotator))
        return annotation.row(self.all_tags) if annotation else None

    def update(self, clip: pd.Series, changes: dict) -> Optional[dict]:
        """Set some fields of a clip (tags 0/1, ``note`` text) and save; returns the merged row.

        Only the fields given, and only those that differ from what this store knows, are stamped
        with the time: another station's fields stay as they were set.
        """
        fields = fields_for(self.all_tags)
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise ValueError(f"unknown annotation field(s) {unknown}; known: {list(fields)}")
        changes = {f: (str(v) if f == "note" else int(bool(v))) for f, v in changes.items()}
        key = (clip["utt_id"], self.annotator)
        known = self.records.get(key) or Annotation(*key, clip["label"], clip["pred"])
        changed = {f: v for f, v in changes.items() if known.values.get(f, "" if f == "note" else 0) != v}
        if changed:
            edit = self._edits.setdefault(key, Annotation(*key, clip["label"], clip["pred"]))
            now = _now()
            for f, v in changed.items():
                edit.values[f], edit.times[f] = v, now
            self.save()
        return self.get(clip["utt_id"])

    def save(self) -> None:
        """Merge this store's edits into the file under the lock; keep the previous file as ``.bak``.

        Raises:
            AnnotationsUnreadableError: the file has no header it can read (it is left untouched).
            OSError: the disk is full, the folder read-only...: the file is as it was, the edits stay here
                and are saved with the next save.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.lock_path):
            on_disk = read_annotations(self.path, self._warned)
            if not on_disk.readable:
                raise AnnotationsUnreadableError(
                    f"{self.path}: no header row with the columns {', '.join(REQUIRED_COLUMNS)}, so saving would lose "
                    "what it holds; nothing was saved: fix its header, or move the file away to start a new one")
            merged = merge_annotations(on_disk.annotations, self._edits.values())
            self.file_tags = on_disk.tags if on_disk.raw else ()
            self.extra_columns = on_disk.extra_columns
            if on_disk.raw:
                write_bytes_atomic(_backup(self.path), on_disk.raw)
            write_text_atomic(self.path, annotations_csv(list(merged.values()), self.all_tags, self.extra_columns,
                                                         on_disk.kept))
        self.records, self._edits = merged, {}

    def frame(self) -> pd.DataFrame:
        """Every annotator's rows (``columns_for(all_tags)``)."""
        tags = self.all_tags
        return pd.DataFrame([a.row(tags) for a in sorted(self.records.values(), key=lambda a: a.key)],
                            columns=list(columns_for(tags)))


# --------------------------------------------------------------------------- summaries


def tag_summary(clips: pd.DataFrame, annotations: pd.DataFrame) -> pd.DataFrame:
    """Tags by confusion pair: clips drawn, clips annotated, and how often each tag was given.

    Args:
        clips: the listening clips (``select_misclassified``).
        annotations: ``AnnotationStore.frame()`` (may be empty; one row per clip and annotator).

    Returns:
        One row per (true, predicted) pair among the clips, plus a 'total' row. A clip counts as
        annotated once whoever annotated it; a tag counts once per annotator who gave it.
    """
    notes = annotations[annotations["utt_id"].isin(clips["utt_id"])]
    tags = file_tags(list(annotations.columns)) if len(annotations.columns) else TAGS
    marks = [*tags, "reviewed"]
    per_clip = notes.groupby("utt_id")[marks].sum().assign(annotated=1)  # tags summed over annotators
    merged = clips[["utt_id", "label", "pred"]].merge(per_clip, left_on="utt_id", right_index=True, how="left")
    merged[["annotated", *marks]] = merged[["annotated", *marks]].fillna(0).astype(int)
    merged["clips"] = 1
    columns = ["clips", "annotated", *marks]
    table = merged.groupby(["label", "pred"], sort=False)[columns].sum().reset_index()
    total = {"label": "total", "pred": "", **merged[columns].sum().to_dict()}
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    return table.rename(columns={"label": "true", "pred": "predicted", "reviewed": "reviewed: no failure",
                                 **{t: tag_label(t) for t in tags}})


# --------------------------------------------------------------------------- audio and plots


@lru_cache(maxsize=64)
def _clip_audio(path: str) -> np.ndarray:
    return load_audio(path, SAMPLE_RATE)  # (samples,)


_PITCH: dict = {}  # (path, pyin settings) -> (times, f0): a clip's contour is computed once per process
_PITCH_LOCK = threading.Lock()


def clip_pitch(path: str, analysis: AnalysisConfig) -> tuple[np.ndarray, np.ndarray]:
    """The pyin contour of a clip, cached per clip and settings (the station's Next/Previous and its
    look-ahead thread share it)."""
    key = (str(path), analysis.pitch_fmin, analysis.pitch_fmax, analysis.pitch_frame_length, hop_length(analysis))
    with _PITCH_LOCK:
        if key in _PITCH:
            return _PITCH[key]
    contour = pitch_contour(_clip_audio(str(path)), analysis)
    with _PITCH_LOCK:
        _PITCH[key] = contour
    return contour


def clip_data_uri(path: str | Path) -> str:
    """A clip as a ``data:audio/wav;base64,...`` URI: 16 kHz mono 16-bit PCM."""
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(_clip_audio(str(path)))).decode("ascii")


def plot_clip(audio: np.ndarray, analysis: AnalysisConfig, title: str = "", ax=None,
              pitch: Optional[tuple[np.ndarray, np.ndarray]] = None) -> plt.Figure:
    """Log-Mel spectrogram of a 16 kHz clip (time in seconds) with its pyin pitch contour in Hz on an axis of
    its own (right), so the contour is not squeezed into the mel scale.

    Args:
        audio: (samples,) float32 mono at 16 kHz.
        analysis: pyin settings.
        title: axes title.
        ax: axes to draw into (a new figure when None).
        pitch: ``(times, f0)`` already computed (``clip_pitch``); None computes it.
    """
    # librosa (numba) costs seconds to import; only the live station draws clips
    import librosa
    import librosa.display

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.2))
    hop = hop_length(analysis)
    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=1024, hop_length=hop, n_mels=64)
    librosa.display.specshow(librosa.power_to_db(mel, ref=np.max), sr=SAMPLE_RATE, hop_length=hop,
                             x_axis="s", y_axis="mel", fmax=SAMPLE_RATE // 2, ax=ax, cmap="magma")
    ax.set_xlabel("time (s)")
    times, f0 = pitch if pitch is not None else pitch_contour(audio, analysis)  # (frames,), (frames,)
    hz = ax.twinx()
    hz.plot(times, f0, color="#00e5ff", linewidth=2.0, label="pyin f0")
    hz.set_ylim(analysis.pitch_fmin, analysis.pitch_fmax)
    hz.set_ylabel("f0 (Hz)")
    hz.legend(loc="upper right", fontsize=9)
    ax.set_title(title, fontsize=9)
    return ax.figure


# --------------------------------------------------------------------------- the station

ORDERS = {"draw": "as drawn", "confidence": "most confident first", "margin": "smallest margin first"}
KEYS = {"ArrowRight": "next", "n": "next", "ArrowLeft": "previous", "p": "previous", "r": "reviewed",
        **{str(i + 1): i for i in range(9)}}  # a digit toggles that tag (the profile's order)
NOTE_DEBOUNCE_S = 1.0  # a note is saved this long after the last keystroke (and on leaving the clip)


class ListeningStation:
    """Listen to misclassified clips, tag failure modes and take notes, saved as you go.

    Keyboard (with ``ipyevents``, while the pointer is over the station): → or n next, ← or p previous,
    1-9 toggle a tag, r "reviewed: no failure". Playing stays on the audio player's own control.

    Args:
        cfg: run configuration (``analysis`` gives the pyin settings).
        folder: the run folder; annotations go to ``<run>/listening/annotations.csv``, the last clip each
            listener viewed to ``<run>/listening/state.json``.
        clips: the clips to listen to (``select_misclassified``).
        plots: draw the log-Mel and pitch contour of each selected clip (off in fast tests).
        annotator: the listener's id, stored with each row ("" = unnamed); two listeners with
            different ids annotate the same clips side by side (the annotator box changes it).
    """

    def __init__(self, cfg: Config, folder: RunFolder, clips: pd.DataFrame, plots: bool = True,
                 annotator: str = ""):
        import ipywidgets as w  # the widget front end: only a station needs it

        self.cfg, self.folder, self.plots = cfg, folder, plots
        self.all_clips = _with_scores(clips.reset_index(drop=True))
        self.tags = tuple(cfg.analysis.listening_tags)  # the profile's failure-mode tags
        self.store = AnnotationStore(folder.annotations, annotator, self.tags)
        self.clips = self.all_clips
        self.index = 0
        self._loading = False
        self._pending_note: Optional[str] = None
        self._timer: Optional[threading.Timer] = None
        self._build_widgets(w)
        self.select(self.resume_index())

    # ---------------------------------------------------------------- driving (tests use these)

    @property
    def current(self) -> Optional[pd.Series]:
        """The selected clip, None when the filter leaves no clip."""
        return self.clips.iloc[self.index] if len(self.clips) else None

    @property
    def state_path(self) -> Path:
        return self.folder.listening / "state.json"

    def resume_index(self) -> int:
        """Where this listener left off: the last clip viewed, else the first clip without an annotation
        (the last clip when all are done)."""
        last = self._state().get("last_viewed", {}).get(self.store.annotator)
        if last is not None and last in set(self.clips["utt_id"]):
            return int(np.flatnonzero(self.clips["utt_id"].to_numpy() == last)[0])
        done = self.clips["utt_id"].map(lambda u: self.store.get(u) is not None)
        return int(np.argmin(done.to_numpy())) if not done.all() else max(len(self.clips) - 1, 0)

    def select(self, i: int) -> None:
        """Show clip ``i`` of the (filtered) list (a note being typed is saved first)."""
        if len(self.clips) and not 0 <= i < len(self.clips):
            raise IndexError(f"clip {i} out of range: {len(self.clips)} clip(s) in the current filter")
        self.flush_note()
        self.index = i if len(self.clips) else 0
        self._render()
        if self.current is not None:
            self._remember(self.current["utt_id"])

    def next(self) -> None:
        self.select(min(self.index + 1, max(len(self.clips) - 1, 0)))

    def previous(self) -> None:
        self.select(max(self.index - 1, 0))

    def set_tags(self, tags: Sequence[str]) -> None:
        """Tick exactly these failure-mode tags on the current clip (saved at once)."""
        unknown = sorted(set(tags) - set(self.tags))
        if unknown:
            raise ValueError(f"unknown tag(s) {unknown}; known: {list(self.tags)}")
        for tag, box in self.tag_boxes.items():
            box.value = tag in tags

    def set_reviewed(self, value: bool = True) -> None:
        """Mark the current clip "reviewed: no failure" (heard, nothing to tag; saved at once)."""
        self.reviewed_box.value = bool(value)

    def set_note(self, text: str) -> None:
        """Write the free note of the current clip and save it at once (typing in the box saves it
        ``NOTE_DEBOUNCE_S`` after the last keystroke)."""
        self.note.value = text
        self.flush_note()

    def set_annotator(self, name: str) -> None:
        """Annotate as ``name`` from now on (the boxes then show that listener's annotation)."""
        self.annotator_box.value = name

    def set_filter(self, true: Optional[str] = None, pred: Optional[str] = None,
                   unannotated: Optional[bool] = None, order: Optional[str] = None) -> None:
        """Keep only clips of this true and/or predicted class (None = any), only those this listener has
        not annotated yet, in this order (``ORDERS``: draw, confidence, margin)."""
        if order is not None and order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; known: {', '.join(ORDERS)}")
        self._loading_filters = True
        try:
            self.true_filter.value = true or ALL
            self.pred_filter.value = pred or ALL
            if unannotated is not None:
                self.unannotated_box.value = bool(unannotated)
            if order is not None:
                self.order_menu.value = order
        finally:
            self._loading_filters = False
        self._on_filter(None)

    def handle_key(self, key: str) -> Optional[str]:
        """Act on one key (``KEYS``); returns what it did (None: not a shortcut)."""
        action = KEYS.get(key)
        if action == "next":
            self.next()
        elif action == "previous":
            self.previous()
        elif action == "reviewed":
            self.set_reviewed(not self.reviewed_box.value)
        elif isinstance(action, int) and action < len(self.tags):
            box = self.tag_boxes[self.tags[action]]
            box.value = not box.value
            return self.tags[action]
        return action if action is None or isinstance(action, str) else None

    def flush_note(self) -> None:
        """Save a note still waiting for its debounce (called on leaving a clip and by the timer)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        text, self._pending_note = self._pending_note, None
        if text is not None:
            self._on_edit("note", text)

    def annotation(self, utt_id: Optional[str] = None) -> Optional[dict]:
        """The stored annotation of a clip (default the current one)."""
        clip = self.current
        return self.store.get(utt_id or (clip["utt_id"] if clip is not None else ""))

    def summary(self) -> pd.DataFrame:
        """Tags by confusion pair over all the station's clips."""
        return tag_summary(self.all_clips, self.store.frame())

    # ---------------------------------------------------------------- state

    def _state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def _remember(self, utt_id: str) -> None:
        state = self._state()
        state.setdefault("last_viewed", {})[self.store.annotator] = utt_id
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.state_path, json.dumps(state, indent=1))
        except OSError:
            pass  # a read-only run folder: listening still works, resuming does not

    # ---------------------------------------------------------------- widgets

    def _build_widgets(self, w) -> None:
        options = [ALL, *CLASSES]
        self._loading_filters = False
        self.true_filter = w.Dropdown(options=options, value=ALL, description="true")
        self.pred_filter = w.Dropdown(options=options, value=ALL, description="predicted")
        self.unannotated_box = w.Checkbox(value=False, description="unannotated only", indent=False)
        self.order_menu = w.Dropdown(options=[(v, k) for k, v in ORDERS.items()], value="draw", description="order")
        self.annotator_box = w.Text(value=self.store.annotator, description="annotator", placeholder="your name",
                                    continuous_update=False)
        self.loading = w.HTML()
        self.header = w.HTML()
        self.audio = w.Audio(format="wav", autoplay=False, loop=False)
        self.figure = w.Image(format="png", layout=w.Layout(max_width="820px"))  # log-Mel + pitch, PNG bytes
        self.tag_boxes = {t: w.Checkbox(value=False, description=f"{i + 1} {tag_label(t)}" if i < 9 else tag_label(t),
                                        indent=False) for i, t in enumerate(self.tags)}
        self.reviewed_box = w.Checkbox(value=False, description="r reviewed: no failure", indent=False)
        self.note = w.Textarea(placeholder="notes on this clip (saved as you type)", continuous_update=True,
                               layout=w.Layout(width="100%", height="70px"))
        self.prev_button = w.Button(description="Previous", icon="arrow-left", tooltip="← or p")
        self.next_button = w.Button(description="Next", icon="arrow-right", tooltip="→ or n")
        self.status = w.HTML()
        self.summary_html = w.HTML()
        self.agreement_html = w.HTML()
        self._wire(w)
        self.widget = w.VBox([
            w.HBox([self.annotator_box, self.true_filter, self.pred_filter]),
            w.HBox([self.order_menu, self.unannotated_box]), self.loading, self.header, self.audio, self.figure,
            w.HBox([*self.tag_boxes.values(), self.reviewed_box]), self.note,
            w.HBox([self.prev_button, self.next_button, self.status]),
            w.HTML("<small>keys (pointer over the station): → / n next, ← / p previous, 1-9 tags, r reviewed</small>"),
            self.summary_html, self.agreement_html])
        self._keyboard()

    def _keyboard(self) -> None:
        try:
            # ipyevents sends the browser's key events to Python; only a live station needs it (buttons without)
            from ipyevents import Event
        except ImportError:
            self.keys = None
            return
        self.keys = Event(source=self.widget, watched_events=["keydown"], prevent_default_action=False)
        self.keys.on_dom_event(lambda event: self.handle_key(event.get("key", ""))
                               if event.get("target", {}).get("tagName") not in ("TEXTAREA", "INPUT") else None)

    def _wire(self, w) -> None:
        for tag, box in self.tag_boxes.items():
            box.observe(lambda change, tag=tag: self._on_edit(tag, change["new"]), names="value")
        self.reviewed_box.observe(lambda change: self._on_edit("reviewed", change["new"]), names="value")
        self.note.observe(self._on_typing, names="value")
        for control in (self.true_filter, self.pred_filter, self.unannotated_box, self.order_menu):
            control.observe(self._on_filter, names="value")
        self.annotator_box.observe(self._on_annotator, names="value")
        self.prev_button.on_click(lambda _: self.previous())
        self.next_button.on_click(lambda _: self.next())

    def _on_typing(self, change) -> None:
        if self._loading or self.current is None:
            return
        self._pending_note = change["new"]
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(NOTE_DEBOUNCE_S, self.flush_note)
        self._timer.daemon = True
        self._timer.start()
        self.status.value = "<small>typing…</small>"

    def _on_annotator(self, change) -> None:
        self.flush_note()
        self.store = AnnotationStore(self.folder.annotations, str(change["new"]).strip(), self.tags)
        self.select(self.resume_index() if len(self.clips) else 0)

    def _on_filter(self, _change) -> None:
        if self._loading_filters:
            return
        self.flush_note()
        keep = np.ones(len(self.all_clips), dtype=bool)
        if self.true_filter.value != ALL:
            keep &= (self.all_clips["label"] == self.true_filter.value).to_numpy()
        if self.pred_filter.value != ALL:
            keep &= (self.all_clips["pred"] == self.pred_filter.value).to_numpy()
        if self.unannotated_box.value:
            keep &= self.all_clips["utt_id"].map(lambda u: self.store.get(u) is None).to_numpy(dtype=bool)
        clips = self.all_clips[keep]
        if self.order_menu.value == "confidence":
            clips = clips.sort_values("confidence", ascending=False, kind="stable")
        elif self.order_menu.value == "margin":
            clips = clips.sort_values("margin", ascending=True, kind="stable")
        self.clips = clips.reset_index(drop=True)
        self.select(0)

    def _on_edit(self, field_name: str, value) -> None:
        """One widget changed: save that field only (the others may hold another station's newer values)."""
        clip = self.current
        if self._loading or clip is None:
            return
        try:
            self.store.update(clip, {field_name: value})
        except OSError as err:  # a full disk, a read-only folder, a file it cannot read: say so, keep the edit
            reason = str(err) if isinstance(err, AnnotationsUnreadableError) else \
                f"{type(err).__name__}: {err.strerror or err}"
            self.status.value = (f"<b style='color:#c62828'>NOT saved: {html.escape(reason)}</b> <small>(the change "
                                 "is kept here and saved with the next one)</small>")
            return
        if field_name != "note":  # re-showing the record while typing would move the cursor
            self._show_record(clip)  # the merged row may carry another station's changes
        self.status.value = (f"<small>saved {html.escape(clip['utt_id'])} to "
                             f"{html.escape(self.store.path.parent.name + '/' + self.store.path.name)}</small>")
        self._render_summary()

    def _show_record(self, clip: Optional[pd.Series]) -> None:
        """Set the tag boxes and the note to the stored annotation of ``clip``."""
        self._loading = True  # restoring a clip's tags must not count as an edit
        try:
            record = self.store.get(clip["utt_id"]) if clip is not None else None
            for tag, box in self.tag_boxes.items():
                box.value = bool(record and record[tag])
            self.reviewed_box.value = bool(record and record.get("reviewed"))
            self.note.value = record["note"] if record else ""
        finally:
            self._loading = False

    def _render(self) -> None:
        """Show the current clip: header, audio and picture switch together, after the picture is drawn."""
        clip = self.current
        first = not _PITCH
        self.loading.value = ("<i>loading the clip… (the first pitch analysis compiles pyin: about 10 s)</i>"
                              if first and self.plots and clip is not None else "<i>loading…</i>")
        picture = self._figure_png(clip)
        audio = wav_bytes(_clip_audio(str(clip["path"]))) if clip is not None else b""
        with self.widget.hold_sync() if hasattr(self.widget, "hold_sync") else _nothing():
            self._show_record(clip)
            self.header.value = self._header_html(clip)
            self.audio.value = audio
            self.figure.value = picture
            self.status.value = ""
            self.loading.value = ""
        self._render_summary()
        self._look_ahead()

    def _look_ahead(self) -> None:
        """Compute the next clip's pitch in a thread while the listener listens to this one."""
        if not self.plots or self.index + 1 >= len(self.clips):
            return
        path = str(self.clips.iloc[self.index + 1]["path"])
        threading.Thread(target=_quietly, args=(clip_pitch, path, self.cfg.analysis), daemon=True).start()

    def _header_html(self, clip: Optional[pd.Series]) -> str:
        if clip is None:
            return "<b>No clip matches this filter.</b>"
        probs = " ".join(f"<span style='margin-right:1em'>{c}: <b>{clip[p]:.2f}</b></span>"
                         for c, p in zip(CLASSES, PROB_COLUMNS))
        return (f"<div><b>Clip {self.index + 1} / {len(self.clips)}</b> &middot; {html.escape(clip['utt_id'])} "
                f"&middot; {html.escape(str(clip.get('speaker', '')))} ({html.escape(str(clip.get('sex', '')))})</div>"
                f"<div>true: <b>{clip['label']}</b> &rarr; predicted: <b style='color:#c62828'>{clip['pred']}</b> "
                f"&middot; confidence {clip['confidence']:.2f}, margin {clip['margin']:.2f}</div>"
                f"<div>probabilities: {probs}</div>")

    def _figure_png(self, clip: Optional[pd.Series]) -> bytes:
        if clip is None or not self.plots:
            return b""
        path = str(clip["path"])
        fig = plot_clip(_clip_audio(path), self.cfg.analysis, title=clip["utt_id"],
                        pitch=clip_pitch(path, self.cfg.analysis))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        return buffer.getvalue()

    def _render_summary(self) -> None:
        self.summary_html.value = ("<b>Tags by confusion pair</b>"
                                   + self.summary().to_html(index=False, border=0))
        agreement = agreement_table(self.store.frame())
        self.agreement_html.value = ("" if agreement.empty else "<b>Agreement between annotators</b>"
                                     + agreement.to_html(index=False, border=0, float_format=lambda v: f"{v:.2f}"))

    def show(self) -> bool:
        """Display the widget in a live front end; returns whether it was displayed."""
        from IPython.display import display  # IPython is present only in a kernel

        if not is_live_frontend():
            return False
        display(self.widget)
        return True


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 -- a look-ahead that fails is computed again (and reported) when shown
        pass


def _with_scores(clips: pd.DataFrame) -> pd.DataFrame:
    """``confidence`` (the top class probability) and ``margin`` (top minus second) of each clip."""
    probs = np.sort(clips[list(PROB_COLUMNS)].to_numpy(dtype=float), axis=1) if len(clips) else np.zeros((0, 3))
    return clips.assign(confidence=probs[:, -1] if len(clips) else [],
                        margin=(probs[:, -1] - probs[:, -2]) if len(clips) else [])


def agreement_table(annotations: pd.DataFrame) -> pd.DataFrame:
    """Per pair of named annotators and per tag (and "reviewed"): clips both annotated, share of equal
    decisions and Cohen's kappa (NaN when both never vary). Empty with fewer than two annotators."""
    if annotations.empty:
        return pd.DataFrame()
    named = annotations[annotations["annotator"] != ""]
    people = sorted(named["annotator"].unique())
    rows = []
    for i, a in enumerate(people):
        for b in people[i + 1:]:
            both = named[named["annotator"] == a].merge(named[named["annotator"] == b], on="utt_id",
                                                        suffixes=("_a", "_b"))
            if both.empty:
                continue
            for tag in (*file_tags(list(annotations.columns)), "reviewed"):
                x, y = both[f"{tag}_a"].astype(int).to_numpy(), both[f"{tag}_b"].astype(int).to_numpy()
                observed = float((x == y).mean())
                expected = float(x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean()))
                kappa = (observed - expected) / (1 - expected) if expected < 1 else float("nan")
                rows.append({"annotators": f"{a} / {b}", "tag": tag_label(tag), "clips": len(both),
                             "agreement": observed, "cohen_kappa": kappa})
    return pd.DataFrame(rows)


def is_live_frontend() -> bool:
    """True in a kernel driven by a live notebook front end; False under papermill/nbclient or
    outside a kernel, and when the environment sets ``SERLIB_STATIC=1``."""
    if os.environ.get("SERLIB_STATIC", "") not in ("", "0"):
        return False
    try:
        from IPython import get_ipython  # present only where a kernel runs
    except ImportError:
        return False
    kernel = getattr(get_ipython(), "kernel", None)
    return bool(kernel is not None and getattr(kernel, "_allow_stdin", False))


# --------------------------------------------------------------------------- the static table


def static_table_html(clips: pd.DataFrame, annotations: Optional[pd.DataFrame] = None,
                      label: str = "Table S50", caption: str = "") -> str:
    """The listening clips as an HTML table with embedded, playable audio (16 kHz mono 16-bit WAV).

    A clip that cannot be read gets a note in its audio cell instead of a player.

    Args:
        clips: the listening clips (``select_misclassified``).
        annotations: ``AnnotationStore.frame()``: tags and notes shown per clip, each listener's
            note prefixed with their id when several annotated a clip (None = none).
        label: caption label (the report lists it in its contents).
        caption: caption text.
    """
    notes = {} if annotations is None else _notes_by_clip(annotations)
    left = "<th style='text-align:left'>"
    head = (f"<tr><th>#</th>{left}clip</th>{left}true &rarr; predicted</th><th>probabilities</th>"
            f"<th>audio</th>{left}tags</th>{left}note</th></tr>")
    rows = [_static_row(i, clip, notes.get(clip["utt_id"])) for i, clip in clips.iterrows()]
    return (f'<div class="serlib-table serlib-listening"><p><b>{html.escape(label)}.</b> {html.escape(caption)}</p>'
            f'<table class="serlib-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></div>')


def _notes_by_clip(annotations: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """``{utt_id: (tags given by anyone, the notes)}``; notes name their annotator when there are several."""
    notes = {}
    for utt_id, rows in annotations.groupby("utt_id", sort=False):
        tags = ", ".join(tag_label(t) for t in file_tags(list(annotations.columns)) if rows[t].astype(int).any())
        named = len(rows) > 1 or (rows["annotator"] != "").any()
        texts = [f"{a or 'unnamed'}: {n}" if named else n for a, n in zip(rows["annotator"], rows["note"]) if n]
        notes[utt_id] = (tags, " / ".join(texts))
    return notes


def _static_row(i: int, clip: pd.Series, note: Optional[tuple[str, str]]) -> str:
    try:
        audio = (f'<audio controls preload="metadata" style="width:230px" '
                 f'src="{clip_data_uri(clip["path"])}"></audio>')
    except Exception as err:  # one unreadable clip leaves a note, not a broken report
        audio = f"<i>unreadable: {html.escape(f'{type(err).__name__}: {err}')}</i>"
    tags, text = note or ("", "")
    probs = "<br>".join(f"{c}&nbsp;{clip[p]:.2f}" for c, p in zip(CLASSES, PROB_COLUMNS))
    who = f"{clip.get('speaker', '')}, {clip.get('sex', '')}"
    left = "text-align:left"
    return (f"<tr><td>{i + 1}</td><td style='{left}'>{html.escape(clip['utt_id'])}<br><small>{html.escape(who)}</small></td>"
            f"<td style='{left}'>{clip['label']} &rarr;<br><b>{clip['pred']}</b></td><td><small>{probs}</small></td>"
            f"<td>{audio}</td><td style='{left}'>{html.escape(tags)}</td>"
            f"<td style='{left}'>{html.escape(text)}</td></tr>")


def show_listening_table(clips: pd.DataFrame, folder: RunFolder, label: str = "Table S50",
                         caption: str = "", collapsed: bool = False) -> pd.DataFrame:
    """Display the static listening table and save its rows (no audio) as ``tables/<label>.csv``.

    ``collapsed``: folded under a one-line summary (in JupyterLab, so the station above stays in view;
    the exported report shows it open).
    """
    from IPython.display import HTML, display  # a notebook helper: IPython is present only in a kernel

    annotations = AnnotationStore(folder.annotations).frame()
    markup = static_table_html(clips, annotations, label, caption)
    if collapsed:
        markup = (f"<details><summary>{html.escape(label)}: the {len(clips)} clips as a static table with audio "
                  f"(open)</summary>{markup}</details>")
    display(HTML(markup))
    columns = ["utt_id", "corpus", "speaker", "sex", "label", "pred", *PROB_COLUMNS, "path"]
    folder.tables.mkdir(parents=True, exist_ok=True)
    table = clips[[c for c in columns if c in clips.columns]]
    table.to_csv(folder.tables / f"{label.lower().replace(' ', '_')}.csv", index=False)
    return table
