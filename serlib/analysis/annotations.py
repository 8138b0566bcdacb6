"""The annotations listeners give misclassified clips (``<run>/listening/annotations.csv``): the store every
listening station (``serlib.report.listening``) saves through, and the file's reader and writer.

One row per clip and annotator; each field a listener sets (a failure-mode tag, "reviewed", the note) carries
the time it was set. ``AnnotationStore`` merges on every save: lock, re-read, merge field by field by those
times, ``.bak``, atomic replace, so two stations (or a station and a spreadsheet) never lose each other's work.
"""

from __future__ import annotations

import codecs
import copy
import csv
import datetime as dt
import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from serlib.common.facts import CLASSES
from serlib.common.io import write_bytes_atomic, write_text_atomic
from serlib.common.locking import file_lock

TAGS = ("hybrid_prosody", "ambiguous_arousal", "label_doubtful", "other")
TAG_LABELS = {
    "hybrid_prosody": "hybrid prosody",
    "ambiguous_arousal": "ambiguous arousal",
    "label_doubtful": "label doubtful",
    "other": "other",
}


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
        return {
            "utt_id": self.utt_id,
            "annotator": self.annotator,
            "label": self.label,
            "pred": self.pred,
            **{f: self.values.get(f, "" if f == "note" else 0) for f in fields},
            "annotated_utc": _format_time(self.when),
            **{f"{f}_utc": _format_time(self.times.get(f, NEVER)) for f in fields},
            **{c: self.extra.get(c, "") for c in extra},
        }


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
        warn(
            None,
            "the file is empty: no annotation read"
            + (f" (the previous version is {path.name}.bak)" if _backup(path).is_file() else ""),
        )
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
            error = (
                f"a quoted field runs over {used} lines and takes in line {swallowed + 1}, a row of its own "
                f"(a quote left open?)"
            )
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
        raw = raw[len(codecs.BOM_UTF8) :]
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
    return tuple(
        c
        for c in columns
        if c and c not in BASE_COLUMNS and not c.endswith("_utc") and (c in TAGS or f"{c}_utc" in present)
    )


def _row_at(
    lines: list[str], i: int, columns: list[str], tags: Sequence[str] = TAGS, delimiter: str = ","
) -> tuple[Optional[Annotation], Optional[str], int]:
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
        found = _header_columns(line) or _header_columns(line[match.start() :])  # whole line (pandas' index
        if found is None:  # column), else junk before it
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
    warn(
        None,
        f"no header row with the columns {', '.join(REQUIRED_COLUMNS)} (in any case, separated by , ; or "
        "tab): no annotation read, and the file is not written over",
    )
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
    times = {
        f: _parse_time(row[f"{f}_utc"], f"{f}_utc") if f"{f}_utc" in row else (annotated if f in row else NEVER)
        for f in fields_
    }
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


def annotations_csv(
    annotations: Sequence[Annotation], tags: Sequence[str] = TAGS, extra: Sequence[str] = (), kept: Sequence[str] = ()
) -> str:
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
                    "what it holds; nothing was saved: fix its header, or move the file away to start a new one"
                )
            merged = merge_annotations(on_disk.annotations, self._edits.values())
            self.file_tags = on_disk.tags if on_disk.raw else ()
            self.extra_columns = on_disk.extra_columns
            if on_disk.raw:
                write_bytes_atomic(_backup(self.path), on_disk.raw)
            write_text_atomic(
                self.path, annotations_csv(list(merged.values()), self.all_tags, self.extra_columns, on_disk.kept)
            )
        self.records, self._edits = merged, {}

    def frame(self) -> pd.DataFrame:
        """Every annotator's rows (``columns_for(all_tags)``)."""
        tags = self.all_tags
        return pd.DataFrame(
            [a.row(tags) for a in sorted(self.records.values(), key=lambda a: a.key)], columns=list(columns_for(tags))
        )
