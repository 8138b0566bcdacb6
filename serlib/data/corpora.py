"""Read CREMA-D, RAVDESS and EmoDB from their download layouts into one table of utterances.

Layouts (``../shared/corpora.md``)::

    CREMA-D  <root>/AudioWAV/<Actor>_<Sentence>_<Emotion>_<Level>.wav, <root>/VideoDemographics.csv
    RAVDESS  <root>/Actor_NN/<Mo>-<Vc>-<Em>-<In>-<St>-<Re>-<Ac>.wav
    EmoDB    <root>/wav/<Sp><Text><E><V>.wav  (or the same files flat in <root>)

Durations, sample rates and channels come from file headers (no audio is decoded), so the
~9,400 files of the three corpora take seconds. A bad file never stops a scan: it goes to the
excluded table with a reason code (``EXCLUSION_REASONS``) and a readable detail. That holds for
files that cannot be opened, symbolic links that loop or point nowhere (a link is followed, a
loop is reported, never followed forever), folders or FIFOs named like audio files, sub-folders
that cannot be listed, and names that are not valid UTF-8 (their bytes are written escaped,
``\\xNN``, so the tables are always valid UTF-8). Quirks that are tolerated and kept (CREMA-D
level ``X``, missing demographics, EmoDB flat) are written in the utterance's ``note`` column.
"""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import os
import re
import stat
import struct
import warnings
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
import soundfile as sf
from tqdm.auto import tqdm

from serlib.common.facts import CORPORA, CREMA_D_LEVELS, EMODB_SEX, EMOTION_CODES

UTTERANCE_COLUMNS = ("utt_id", "path", "corpus", "speaker", "sex", "emotion_code", "emotion", "sentence",
                     "duration_s", "sample_rate", "channels", "note")
EXCLUDED_COLUMNS = ("path", "corpus", "reason", "detail")

EXCLUSION_REASONS = {  # reason code -> what it means (scan stage; mculp adds its own)
    "empty": "file is empty or holds no audio frames",
    "truncated": "file ends before the audio its header declares",
    "unreadable": "not a readable audio file, or a file or folder that cannot be opened",
    "symlink_loop": "a symbolic link that loops back on itself",
    "broken_link": "a symbolic link whose target does not exist",
    "not_a_file": "a folder, FIFO or device named like an audio file",
    "misnamed": "name fits no naming convention of the corpus",
    "duplicate": "the same recording appears twice",
    "song": "RAVDESS song (vocal channel 02), not speech",
    "video_only": "RAVDESS video-only file (modality 02): no audio",
    "audio_video": "RAVDESS audio-video file (modality 01): the audio-only release (03) holds the same take",
}

_CREMA_D_NAME = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})")
_RAVDESS_NAME = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")
_EMODB_NAME = re.compile(r"(\d\d)([a-z]\d\d)([A-Z])([a-z])")
_HINTS = {
    "CREMA-D": "point --crema-d / data.crema_d at the folder that holds AudioWAV/ and VideoDemographics.csv",
    "RAVDESS": "unpack Audio_Speech_Actors_01-24.zip and point --ravdess / data.ravdess at the folder "
               "that holds Actor_01 .. Actor_24",
    "EmoDB": "point --emodb / data.emodb at the folder that holds wav/ (or the .wav files themselves)",
}
_EXAMPLES = {"CREMA-D": "AudioWAV/1001_DFA_ANG_XX.wav", "RAVDESS": "Actor_01/03-01-05-01-01-01-01.wav",
             "EmoDB": "wav/03a01Wa.wav"}


class CorpusError(Exception):
    """A corpus folder is missing or holds no usable file in the corpus's naming convention."""


class CorpusWarning(UserWarning):
    """Something was tolerated while reading a corpus (e.g. no VideoDemographics.csv)."""


class FileExcluded(Exception):
    """A file is left out: ``reason`` is a code of ``EXCLUSION_REASONS``, ``detail`` says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


# --------------------------------------------------------------------------- file names


def parse_crema_d_name(stem: str) -> dict:
    """Fields of a CREMA-D name such as ``1001_DFA_ANG_XX``.

    Raises:
        FileExcluded: ``misnamed`` when the name fits no CREMA-D convention.
    """
    m = _CREMA_D_NAME.fullmatch(stem)
    if not m:
        raise FileExcluded("misnamed", "expected <Actor>_<Sentence>_<Emotion>_<Level>.wav, e.g. 1001_DFA_ANG_XX.wav")
    actor, sentence, code, level = m.groups()
    if code not in EMOTION_CODES["CREMA-D"]:
        raise FileExcluded("misnamed", f"unknown CREMA-D emotion code {code!r}")
    note = ""
    if level == "X":  # an older release names one file 1040_ITH_SAD_X.wav
        level, note = "XX", "level X read as XX (older release)"
    if level not in CREMA_D_LEVELS:
        raise FileExcluded("misnamed", f"unknown CREMA-D level {level!r} (LO, MD, HI, XX)")
    return {"speaker_id": actor, "emotion_code": code, "sentence": sentence, "note": note,
            "key": f"{actor}_{sentence}_{code}_{level}"}


def parse_ravdess_name(stem: str, suffix: str = ".wav") -> dict:
    """Fields of a RAVDESS name such as ``03-01-05-01-01-01-01``.

    Raises:
        FileExcluded: ``misnamed``, ``video_only``, ``audio_video`` or ``song``.
    """
    m = _RAVDESS_NAME.fullmatch(stem)
    if not m:
        raise FileExcluded("misnamed", "expected <Mo>-<Vc>-<Em>-<In>-<St>-<Re>-<Ac>.wav, e.g. 03-01-05-01-01-01-01.wav")
    mo, vc, em, intensity, st, rep, actor = m.groups()
    bad = [name for name, value, allowed in (
        ("modality", mo, ("01", "02", "03")), ("vocal channel", vc, ("01", "02")),
        ("emotion", em, tuple(EMOTION_CODES["RAVDESS"])), ("intensity", intensity, ("01", "02")),
        ("statement", st, ("01", "02")), ("repetition", rep, ("01", "02"))) if value not in allowed]
    if bad or actor == "00":
        raise FileExcluded("misnamed", f"invalid RAVDESS field(s): {', '.join(bad) or 'actor'}")
    if mo == "02":
        raise FileExcluded("video_only", EXCLUSION_REASONS["video_only"])
    if mo == "01":
        raise FileExcluded("audio_video", EXCLUSION_REASONS["audio_video"])
    if vc == "02":
        raise FileExcluded("song", EXCLUSION_REASONS["song"])
    if suffix.lower() != ".wav":
        raise FileExcluded("misnamed", f"audio-only RAVDESS files are .wav, not {suffix}")
    sex = "male" if int(actor) % 2 else "female"  # RAVDESS: odd actors male, even female
    return {"speaker_id": actor, "sex": sex, "emotion_code": em, "sentence": st, "note": "", "key": stem}


def parse_emodb_name(stem: str) -> dict:
    """Fields of an EmoDB name such as ``03a01Wa``.

    Raises:
        FileExcluded: ``misnamed`` when the name fits no EmoDB convention.
    """
    m = _EMODB_NAME.fullmatch(stem)
    if not m:
        raise FileExcluded("misnamed", "expected <Speaker><Text><Emotion><Version>.wav, e.g. 03a01Wa.wav")
    speaker, text, code, _version = m.groups()
    if code not in EMOTION_CODES["EmoDB"]:
        raise FileExcluded("misnamed", f"unknown EmoDB emotion letter {code!r}")
    sex = EMODB_SEX.get(speaker, "unknown")
    note = "" if speaker in EMODB_SEX else f"speaker {speaker} is not one of EmoDB's ten: sex unknown"
    return {"speaker_id": speaker, "sex": sex, "emotion_code": code, "sentence": text, "note": note, "key": stem}


# --------------------------------------------------------------------------- headers


def _wav_truncation(path: str, size: int) -> Optional[str]:
    """Why a RIFF/WAVE file is truncated, or None (libsndfile silently shortens such files)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] not in (b"RIFF", b"RIFX"):
            return None  # not RIFF (RF64, other formats): soundfile decides
        if len(head) < 12:
            return f"RIFF header cut at byte {size}"
        if head[8:12] != b"WAVE":
            return None
        order = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return f"file ends at byte {size} before its 'data' chunk"
            chunk_id, chunk_size = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):  # length unknown (streamed write): soundfile decides
                    return None
                held = size - pos - 8
                return None if held >= chunk_size else f"header declares {chunk_size} bytes of audio, file holds {held}"
            pos += 8 + chunk_size + (chunk_size & 1)
            if pos > size:
                return f"{chunk_id.decode('latin-1')!r} chunk runs past the end of the file ({size} bytes)"
            f.seek(pos)


def audio_header(path: str) -> tuple[int, int, int]:
    """Sample rate, channels and frames of an audio file, from its header only.

    Raises:
        FileExcluded: ``empty``, ``truncated`` or ``unreadable`` (also a file that cannot be opened).
    """
    try:
        size = os.path.getsize(path)
        if size == 0:
            raise FileExcluded("empty", "0 bytes")
        problem = _wav_truncation(path, size)
    except OSError as err:  # e.g. PermissionError: one file, one row
        raise FileExcluded("unreadable", f"cannot be opened: {err.strerror or type(err).__name__}") from None
    if problem:
        raise FileExcluded("truncated", problem)
    try:
        info = sf.info(path)
    except Exception as err:  # libsndfile raises several types for foreign or broken files
        raise FileExcluded("unreadable", str(err).replace(path, "").strip(" :'") or type(err).__name__) from None
    if info.frames <= 0:
        raise FileExcluded("empty", "header holds no audio frames")
    return int(info.samplerate), int(info.channels), int(info.frames)


# --------------------------------------------------------------------------- listing


def display_path(path: str | Path) -> str:
    """``path`` as valid UTF-8 text: bytes that are not UTF-8 (kept by Python as surrogates) written ``\\xNN``."""
    text = str(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


def _is_utf8(name: str) -> bool:
    return display_path(name) == name


def _follow(path: str) -> tuple[Optional[os.stat_result], Optional[FileExcluded]]:
    """The status of ``path`` with symbolic links followed, or why it cannot be had (never raises)."""
    try:
        return os.stat(path), None
    except OSError as err:
        target = os.readlink(path) if os.path.islink(path) else ""
        if err.errno == errno.ELOOP:
            return None, FileExcluded("symlink_loop", f"symbolic link loop: -> {display_path(target)} leads back "
                                                      "to itself; not followed")
        if err.errno in (errno.ENOENT, errno.ENOTDIR) and target:
            return None, FileExcluded("broken_link", f"symbolic link to a missing file: -> {display_path(target)}")
        return None, FileExcluded("unreadable", f"cannot be opened: {err.strerror or type(err).__name__}")


def _kind(mode: int) -> str:
    return ("folder" if stat.S_ISDIR(mode) else "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode)
            else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file")


def _entries(folder: Path, corpus: str) -> tuple[list[os.DirEntry], list[dict]]:
    """Entries of ``folder`` by name, or one excluded row when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name), []
    except OSError as err:
        return [], [_excluded(folder, corpus, FileExcluded(
            "unreadable", f"folder cannot be listed ({err.strerror or type(err).__name__}): its files are not read"))]


def _wav_files(folder: Path, corpus: str, suffixes: tuple = (".wav",)) -> tuple[list[Path], list[dict]]:
    """Regular files of ``folder`` (links followed) named ``*<suffix>``, sorted; an entry so named that
    cannot be used (loop, broken link, folder, FIFO, undecodable name, unreadable) is an excluded row."""
    entries, excluded = _entries(folder, corpus)
    files = []
    for entry in entries:
        if os.path.splitext(entry.name)[1].lower() not in suffixes:
            continue
        status, problem = _follow(entry.path)
        if problem is None and not stat.S_ISREG(status.st_mode):
            problem = FileExcluded("not_a_file", f"a {_kind(status.st_mode)} named like an audio file")
        if problem is None and not _is_utf8(entry.name):
            problem = FileExcluded("misnamed", "file name is not valid UTF-8 (its bytes are shown as \\xNN); "
                                               "rename it to the corpus's naming convention")
        if problem is not None:
            excluded.append(_excluded(Path(entry.path), corpus, problem))
        else:
            files.append(Path(entry.path))
    return files, excluded


def _folder_problem(path: Path) -> Optional[FileExcluded]:
    """Why an expected sub-folder (AudioWAV, Actor_NN, wav) cannot be reached (a loop, a broken link), or None."""
    return _follow(str(path))[1]


DEMOGRAPHICS_ENCODINGS = ("utf-8-sig", "cp1252")  # tried in order (utf-8-sig reads plain UTF-8 too)


def _decode_text(path: Path, raw: bytes) -> str:
    """Text of a CSV saved by a spreadsheet: UTF-16 (with its BOM), UTF-8 (with or without BOM) or cp1252.

    Raises:
        CorpusError: none of them decodes it (names the file and the encodings tried).
    """
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        encodings = ("utf-16",)
    else:
        encodings = DEMOGRAPHICS_ENCODINGS
    for encoding in encodings:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as err:
            problem = err
    raise CorpusError(f"CREMA-D: {display_path(path)} is not text in any encoding tried ({', '.join(encodings)}): "
                      f"{problem.reason} at byte {problem.start}; re-save it as CSV UTF-8")


def read_demographics(path: Path) -> Optional[dict[str, str]]:
    """CREMA-D actor -> sex ("male"/"female") from VideoDemographics.csv; None (warned) if unusable.

    The file may be UTF-8 (with or without BOM), UTF-16 with a BOM, or cp1252 (a spreadsheet's "CSV").

    Raises:
        CorpusError: the file is in none of those encodings (the message names it).
    """
    if not path.is_file():
        warnings.warn(f"CREMA-D: {path} not found: sex is 'unknown' for every actor (sex-stratified split "
                      "off); copy VideoDemographics.csv from the CREMA-D release next to AudioWAV/",
                      CorpusWarning, stacklevel=3)
        return None
    try:
        raw = path.read_bytes()
    except OSError as err:
        warnings.warn(f"CREMA-D: {path} cannot be read ({err.strerror or type(err).__name__}): sex is 'unknown' "
                      "for every actor (sex-stratified split off)", CorpusWarning, stacklevel=3)
        return None
    rows = list(csv.DictReader(io.StringIO(_decode_text(path, raw), newline="")))
    if not rows or not {"ActorID", "Sex"} <= set(rows[0]):
        warnings.warn(f"CREMA-D: {path} has no ActorID and Sex columns: sex is 'unknown' for every actor",
                      CorpusWarning, stacklevel=3)
        return None
    sexes = {"male": "male", "female": "female"}
    return {(r["ActorID"] or "").strip(): sexes.get((r["Sex"] or "").strip().lower(), "unknown") for r in rows}


def _list_crema_d(root: Path) -> tuple[list, list]:
    audio = root / "AudioWAV"
    problem = _folder_problem(audio) if os.path.lexists(audio) else None
    if problem is not None:
        raise CorpusError(f"CREMA-D: {audio}: {problem.detail}; {_HINTS['CREMA-D']}")
    if not audio.is_dir():
        raise CorpusError(f"CREMA-D: expected AudioWAV/ under {root}; {_HINTS['CREMA-D']}")
    sexes = read_demographics(root / "VideoDemographics.csv")
    paths, excluded = _wav_files(audio, "CREMA-D")
    candidates = []
    for path in paths:
        try:
            fields = parse_crema_d_name(path.stem)
        except FileExcluded as skip:
            excluded.append(_excluded(path, "CREMA-D", skip))
            continue
        fields["sex"] = (sexes or {}).get(fields["speaker_id"], "unknown")
        if sexes is None:
            fields["note"] = _join(fields["note"], "sex unknown: no VideoDemographics.csv")
        elif fields["speaker_id"] not in sexes:
            fields["note"] = _join(fields["note"], "actor missing from VideoDemographics.csv: sex unknown")
        candidates.append((path, fields))
    return candidates, excluded


def _list_ravdess(root: Path) -> tuple[list, list]:
    entries, excluded = _entries(root, "RAVDESS")
    actors = []
    for entry in (e for e in entries if re.fullmatch(r"Actor_\d\d", e.name)):
        problem = _folder_problem(Path(entry.path))
        if problem is not None:  # an actor folder that is a loop or cannot be reached: a row, not silence
            excluded.append(_excluded(Path(entry.path), "RAVDESS", problem))
        elif entry.is_dir():
            actors.append(Path(entry.path))
    if not actors and not excluded:
        raise CorpusError(f"RAVDESS: expected Actor_01 .. Actor_24 under {root}; {_HINTS['RAVDESS']}")
    candidates = []
    for folder in actors:
        paths, bad = _wav_files(folder, "RAVDESS", (".wav", ".mp4"))
        excluded += bad
        for path in paths:
            try:
                candidates.append((path, parse_ravdess_name(path.stem, path.suffix)))
            except FileExcluded as skip:
                excluded.append(_excluded(path, "RAVDESS", skip))
    return candidates, excluded


def _list_emodb(root: Path) -> tuple[list, list]:
    wav = root / "wav"
    problem = _folder_problem(wav) if os.path.lexists(wav) else None
    excluded = [_excluded(wav, "EmoDB", problem)] if problem is not None else []
    folders = [wav] if wav.is_dir() and problem is None else []
    flat_note = "" if folders else "flat layout (no wav/ folder)"
    candidates, paths = [], []
    for folder in folders + [root]:
        found, bad = _wav_files(folder, "EmoDB")
        paths += found
        excluded += bad
    for path in paths:
        try:
            fields = parse_emodb_name(path.stem)
        except FileExcluded as skip:
            excluded.append(_excluded(path, "EmoDB", skip))
            continue
        fields["note"] = _join(fields["note"], flat_note)
        candidates.append((path, fields))
    return candidates, excluded


_LISTERS: dict[str, Callable[[Path], tuple[list, list]]] = {
    "CREMA-D": _list_crema_d, "RAVDESS": _list_ravdess, "EmoDB": _list_emodb}


def _join(a: str, b: str) -> str:
    return "; ".join(x for x in (a, b) if x)


def _excluded(path: Path, corpus: str, skip: FileExcluded) -> dict:
    return {"path": display_path(path), "corpus": corpus, "reason": skip.reason, "detail": skip.detail}


# --------------------------------------------------------------------------- scanning


def _utterance(path: Path, corpus: str, fields: dict) -> dict:
    sample_rate, channels, frames = audio_header(str(path))
    return {"utt_id": f"{corpus}/{path.stem}", "path": str(path), "corpus": corpus,
            "speaker": f"{corpus}:{fields['speaker_id']}", "sex": fields["sex"],
            "emotion_code": fields["emotion_code"], "emotion": EMOTION_CODES[corpus][fields["emotion_code"]],
            "sentence": fields["sentence"], "duration_s": frames / sample_rate, "sample_rate": sample_rate,
            "channels": channels, "note": fields["note"], "key": fields["key"]}


def _drop_duplicates(rows: list[dict], corpus: str) -> tuple[list[dict], list[dict]]:
    """One row per recording: the first without a note wins (EmoDB wav/ before flat, XX before X)."""
    chosen: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: bool(r["note"])):
        chosen.setdefault(row["key"], row)
    kept = [r for r in rows if chosen[r["key"]] is r]
    dups = [{"path": r["path"], "corpus": corpus, "reason": "duplicate",
             "detail": f"same recording as {chosen[r['key']]['path']}"} for r in rows if chosen[r["key"]] is not r]
    return kept, dups


def scan_corpus(corpus: str, root: str | Path, progress: bool = True) -> tuple[list[dict], list[dict]]:
    """Read one corpus folder.

    Args:
        corpus: "CREMA-D", "RAVDESS" or "EmoDB".
        root: the corpus folder, laid out as the corpus is downloaded.
        progress: show a tqdm bar while headers are read.

    Returns:
        (utterance rows, excluded rows) as lists of dicts.

    Raises:
        CorpusError: the folder is missing, is a file (or a loop), has a name that is not UTF-8, lacks
            the expected sub-folder, or holds no usable file; or VideoDemographics.csv is in no known encoding.
    """
    root = Path(os.path.abspath(Path(root).expanduser()))
    _check_root(corpus, root)
    candidates, excluded = _LISTERS[corpus](root)
    rows = []
    for path, fields in tqdm(candidates, desc=f"{corpus} headers", unit="file", disable=not progress):
        try:
            rows.append(_utterance(path, corpus, fields))
        except FileExcluded as skip:
            excluded.append(_excluded(path, corpus, skip))
    rows, dups = _drop_duplicates(rows, corpus)
    excluded.extend(dups)
    if not rows:
        raise CorpusError(_nothing_usable(corpus, root, excluded))
    return rows, excluded


def _check_root(corpus: str, root: Path) -> None:
    """Raise a CorpusError that says what is wrong with a corpus root, if anything."""
    status, problem = _follow(str(root)) if os.path.lexists(root) else (None, None)
    if (status is None and problem is None) or (problem is not None and problem.reason == "broken_link"):
        raise CorpusError(f"{corpus}: folder not found: {display_path(root)}; {_HINTS[corpus]}")
    if problem is not None:
        raise CorpusError(f"{corpus}: {display_path(root)}: {problem.detail}; {_HINTS[corpus]}")
    if not stat.S_ISDIR(status.st_mode):
        kind = "file" if stat.S_ISREG(status.st_mode) else _kind(status.st_mode)
        raise CorpusError(f"{corpus}: {display_path(root)} is a {kind}, not a folder; {_HINTS[corpus]}")
    if not _is_utf8(str(root)):
        raise CorpusError(f"{corpus}: the folder name {display_path(root)} is not valid UTF-8, so its files' paths "
                          "cannot be written to the manifest; rename it, or link to it from a UTF-8 path "
                          "(ln -s) and point the corpus setting there")


def corpus_fingerprint(root: str | Path) -> dict:
    """What a corpus folder holds, cheaply: the names, sizes and modification times of every entry
    one and two levels under ``root`` (links followed), hashed. No file is opened.

    Returns:
        ``{"files": entries counted, "digest": 16 hex}``; a changed, added or removed file changes it.
    """
    h, count = hashlib.sha1(), 0
    pending = [(Path(root), 0)]
    while pending:
        folder, depth = pending.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            h.update(f"{folder}\0!{err.errno}\n".encode("utf-8", "surrogateescape"))
            continue
        for entry in entries:
            status, problem = _follow(entry.path)
            line = f"{problem.reason}" if problem else f"{status.st_mode:o} {status.st_size} {status.st_mtime_ns}"
            h.update(f"{entry.path}\0{line}\n".encode("utf-8", "surrogateescape"))
            count += 1
            if status is not None and stat.S_ISDIR(status.st_mode) and depth == 0:
                pending.append((Path(entry.path), 1))
    return {"files": count, "digest": h.hexdigest()[:16]}


def _nothing_usable(corpus: str, root: Path, excluded: list[dict]) -> str:
    if not excluded:
        return f"{corpus}: no .wav file under {root} (expected e.g. {_EXAMPLES[corpus]}); {_HINTS[corpus]}"
    counts = pd.Series([e["reason"] for e in excluded]).value_counts()
    found = ", ".join(f"{reason} {n}" for reason, n in counts.items())
    return (f"{corpus}: no usable file under {root} ({len(excluded)} files excluded: {found}); expected "
            f"speech files named like {_EXAMPLES[corpus]}; {_HINTS[corpus]}")


def scan_corpora(roots: dict[str, Optional[str | Path]], progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every given corpus into one table of utterances.

    Args:
        roots: corpus name ("CREMA-D", "RAVDESS", "EmoDB") -> its folder, or None to leave it out.
        progress: show tqdm bars.

    Returns:
        utterances: one row per readable, well-named file; columns ``UTTERANCE_COLUMNS``
            (``emotion`` is the normalised name, e.g. "anger", "calm", "boredom"; ``note`` says what
            was tolerated, "" mostly).
        excluded: one row per skipped file; columns ``EXCLUDED_COLUMNS`` (reason codes in
            ``EXCLUSION_REASONS``).

    Raises:
        CorpusError: no corpus given, an unknown corpus name, or a folder that is missing or
            holds no usable file (the message names the folder and how to fix it).
    """
    unknown = sorted(set(roots) - set(CORPORA))
    if unknown:
        raise CorpusError(f"unknown corpus {', '.join(unknown)}; known: {', '.join(CORPORA)}")
    given = [c for c in CORPORA if roots.get(c) is not None]
    if not given:
        raise CorpusError("no corpus folder given: pass at least one of --crema-d, --ravdess, --emodb")
    rows, excluded = [], []
    for corpus in given:
        corpus_rows, corpus_excluded = scan_corpus(corpus, roots[corpus], progress)
        rows += corpus_rows
        excluded += corpus_excluded
    utterances = pd.DataFrame(rows, columns=list(UTTERANCE_COLUMNS))
    return utterances, pd.DataFrame(excluded, columns=list(EXCLUDED_COLUMNS))
