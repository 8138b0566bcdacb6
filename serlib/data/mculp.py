"""MCULP, the paper's Multi-Corpus Unified Labelling Protocol (section 2.2), and the manifest it writes.

Utterances from ``serlib.corpora`` -> spellings normalised -> the six shared emotions -> three
classes (negative = anger + disgust, sad_fear = sadness + fear, pos_neutral = happiness +
neutral); calm, surprised, boredom and clips shorter than ``min_duration_s`` are dropped, each
with its reason. Speakers are split 80/10/10 within each corpus, sex-stratified, from a seed, or
taken exactly from a split file (CSV ``speaker,split``): ``serlib.data.speakers``.

Every scanned clip is decoded once (``serlib.data.audiocheck``) before the labels are applied:
NaN or infinite samples exclude it (``non_finite``); identical audio (same bytes: a copy, a
symbolic link, a relabelled take) under different emotions or speakers excludes every copy
(``duplicate_conflict``), and under the same emotion and speaker keeps one (``duplicate_audio``);
a clip whose mono RMS is below ``silence_floor_dbfs`` (``near_silent``; ``channels_cancel`` when a
channel alone is louder) is flagged in the audit and kept, or excluded with ``drop_silent``.

Outputs, in the run's ``data/`` folder, written as one set (``serlib.common.io.write_files_atomic``:
all to temporary names, then renamed, the manifest last): ``scanned.csv``, ``excluded.csv``,
``mculp_audit.csv``, ``split.csv``, ``manifest.meta.json`` (the settings that made the set, their
key, and each table's digest) and ``manifest.csv``.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from serlib.common.facts import CLASSES, CORPORA, CORPUS_KEYS, EMOTION_CODES, EMOTION_TO_CLASS, SUBSETS
from serlib.common.digest import bytes_digest, json_digest
from serlib.common.io import write_files_atomic
from serlib.data.audiocheck import CHECK_COLUMNS, check_clips
from serlib.data.corpora import (EXCLUSION_REASONS, UTTERANCE_COLUMNS, CorpusError, corpus_fingerprint, display_path,
                                 scan_corpora)
from serlib.data.speakers import check_fractions, speaker_table, split_from_file, split_speakers

DROP_REASONS = {  # emotions with no place in the shared six, the duration filter, and what decoding finds
    "calm": "RAVDESS calm: not one of the six shared emotions",
    "surprised": "RAVDESS surprised: not one of the six shared emotions",
    "boredom": "EmoDB boredom (Langeweile): not one of the six shared emotions",
    "unmapped": "emotion spelling not in the MCULP dictionary",
    "too_short": "shorter than min_duration_s",
    "undecodable": "the header reads but the audio cannot be read or decoded",
    "non_finite": "decoded samples hold NaN or infinity",
    "duplicate_conflict": "the same audio as another file under a different emotion or speaker: every copy dropped",
    "duplicate_audio": "the same audio as another file with the same emotion and speaker: one copy kept",
    "near_silent": "mono RMS below data.silence_floor_dbfs (dropped because data.drop_silent is set)",
    "channels_cancel": "stereo channels cancel: the mono downmix is below the floor, a channel alone is not "
                       "(dropped because data.drop_silent is set)",
}
FLAG_REASONS = {  # kept clips flagged in the audit (the "flagged" column), unless drop_silent drops them
    "near_silent": "mono RMS below data.silence_floor_dbfs: flagged, kept (data.drop_silent is false)",
    "channels_cancel": "stereo channels cancel in the mono downmix (below the floor, a channel alone is not): "
                       "flagged, kept (data.drop_silent is false)",
}
MANIFEST_FORMAT = 2  # bump when MCULP's rules change: every manifest made before is then rebuilt
META_NAME = "manifest.meta.json"  # settings, key and table digests of the set, beside manifest.csv
SET_NAMES = ("scanned.csv", "excluded.csv", "mculp_audit.csv", "split.csv")  # written before the meta and manifest
REASONS = {**EXCLUSION_REASONS, **DROP_REASONS}  # every reason code of excluded.csv
SPELLINGS = {  # lower-case spelling (English, German, abbreviations) -> normalised emotion name
    **{s: "anger" for s in ("anger", "angry", "ang", "mad", "ärger", "aerger", "wut")},
    **{s: "disgust" for s in ("disgust", "disgusted", "dis", "ekel")},
    **{s: "fear" for s in ("fear", "fearful", "fea", "afraid", "scared", "angst")},
    **{s: "happiness" for s in ("happiness", "happy", "hap", "joy", "freude")},
    **{s: "sadness" for s in ("sadness", "sad", "sorrow", "trauer")},
    **{s: "neutral" for s in ("neutral", "neu")},
    **{s: "calm" for s in ("calm",)},
    **{s: "surprised" for s in ("surprised", "surprise", "sur")},
    **{s: "boredom" for s in ("boredom", "bored", "langeweile")},
}
MANIFEST_COLUMNS = ("utt_id", "path", "corpus", "speaker", "sex", "emotion_code", "emotion", "sentence",
                    "duration_s", "sample_rate", "channels", "label", "split")
AUDIT_COLUMNS = ("corpus", "reason", "kept", "dropped", "flagged", "detail")
SCANNED_COLUMNS = (*UTTERANCE_COLUMNS, *CHECK_COLUMNS, "audio_flag")  # scanned.csv: the scan + the audio check
_STRING_COLUMNS = ("utt_id", "path", "corpus", "speaker", "sex", "emotion_code", "emotion", "sentence", "label",
                   "split", "note", "content_hash", "check_error", "audio_flag")  # read back as strings ("05")


@dataclass
class MculpResult:
    """What ``run_mculp`` made; the same tables are written as CSV in ``out``."""

    manifest: pd.DataFrame  # one row per kept utterance, MANIFEST_COLUMNS
    excluded: pd.DataFrame  # path, corpus, reason, detail: scan exclusions and MCULP drops
    audit: pd.DataFrame  # AUDIT_COLUMNS: per corpus and reason, files kept and dropped
    split: pd.DataFrame  # speaker, split
    out: Path
    scanned: pd.DataFrame = None  # every readable, well-named file before MCULP (SCANNED_COLUMNS)
    meta: dict = None  # what manifest.meta.json holds: key, settings, table digests

    def summary(self) -> str:
        """Counts per corpus, class and subset, as plain text."""
        m = self.manifest
        corpora = [c for c in CORPORA if c in set(m["corpus"])] + ["total"]
        classes = pd.crosstab(m["corpus"], m["label"], margins=True, margins_name="total")
        classes = classes.reindex(index=corpora, columns=[*CLASSES, "total"], fill_value=0)
        speakers = pd.crosstab(m["corpus"], m["split"], values=m["speaker"], aggfunc="nunique", margins=True,
                               margins_name="total").reindex(index=corpora, columns=[*SUBSETS, "total"])
        utterances = pd.crosstab(m["corpus"], m["split"], margins=True, margins_name="total")
        utterances = utterances.reindex(index=corpora, columns=[*SUBSETS, "total"], fill_value=0)
        percent = (100 * utterances.loc["total", list(SUBSETS)] / max(len(m), 1)).round(1)
        dropped = self.excluded["reason"].value_counts()
        flags = (self.scanned.loc[self.scanned["utt_id"].isin(set(m["utt_id"])), "audio_flag"].value_counts()
                 if self.scanned is not None and "audio_flag" in self.scanned else pd.Series(dtype=int))
        flagged = ", ".join(f"{r} {n}" for r, n in flags.items() if r)
        return "\n".join([
            f"MCULP: kept {len(m)} utterances of {m['speaker'].nunique()} speakers; excluded {len(self.excluded)} "
            f"files ({', '.join(f'{r} {n}' for r, n in dropped.items()) or 'none'})"
            + (f"; flagged and kept: {flagged}" if flagged else ""),
            "utterances per class:", classes.to_string(),
            "speakers per subset:", speakers.fillna(0).astype(int).to_string(),
            "utterances per subset:", utterances.to_string(),
            "percent of utterances: " + ", ".join(f"{k} {v}" for k, v in percent.items()),
            f"written to {self.out}"])


# --------------------------------------------------------------------------- labels


def normalise_emotion(value: str, corpus: Optional[str] = None) -> Optional[str]:
    """The normalised emotion name of a corpus code or a spelling variant.

    Args:
        value: a code from a file name ("ANG", "05", "W") or a spelling ("Angry", "Ärger").
        corpus: the corpus the code comes from; codes are looked up there first.

    Returns:
        One of the six shared emotions, "calm", "surprised", "boredom", or None if unknown.
    """
    value = str(value).strip()
    if corpus in EMOTION_CODES and value in EMOTION_CODES[corpus]:
        return EMOTION_CODES[corpus][value]
    return SPELLINGS.get(value.lower())


def _drop_reason(emotion: Optional[str], duration_s: float, min_duration_s: float) -> Optional[str]:
    if emotion is None:
        return "unmapped"
    if emotion not in EMOTION_TO_CLASS:
        return emotion if emotion in DROP_REASONS else "unmapped"
    return "too_short" if duration_s < min_duration_s else None


def apply_mculp(utterances: pd.DataFrame, min_duration_s: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Label utterances with the three classes; drop what MCULP does not keep.

    Args:
        utterances: the table of ``scan_corpora``.
        min_duration_s: clips shorter than this are dropped (paper: 1 s).

    Returns:
        kept: the utterances with ``emotion`` normalised and a ``label`` column.
        dropped: path, corpus, reason, detail of each dropped utterance.
    """
    emotions = [normalise_emotion(code, corpus) for code, corpus in zip(utterances["emotion_code"],
                                                                         utterances["corpus"])]
    reasons = [_drop_reason(e, d, min_duration_s) for e, d in zip(emotions, utterances["duration_s"])]
    table = utterances.assign(emotion=emotions, reason=reasons)
    kept = table[table["reason"].isna()].drop(columns="reason").copy()
    kept["label"] = kept["emotion"].map(EMOTION_TO_CLASS)
    dropped = table[table["reason"].notna()].copy()
    dropped["detail"] = [
        f"{d:.3f} s < {min_duration_s} s" if r == "too_short" else f"{DROP_REASONS[r]} (code {c})"
        for r, d, c in zip(dropped["reason"], dropped["duration_s"], dropped["emotion_code"])]
    return kept.reset_index(drop=True), dropped[["path", "corpus", "reason", "detail"]].reset_index(drop=True)


# --------------------------------------------------------------------------- audio checks


def audio_flags(checks: pd.DataFrame, silence_floor_dbfs: float) -> list[str]:
    """Per clip "" or a ``FLAG_REASONS`` code, from ``rms_dbfs`` and ``channel_rms_dbfs``."""
    flags = []
    for mono, loudest, error in zip(checks["rms_dbfs"], checks["channel_rms_dbfs"], checks["check_error"]):
        if error or not mono < silence_floor_dbfs:  # NaN (not decoded) compares False: no flag
            flags.append("")
        else:
            flags.append("channels_cancel" if loudest >= silence_floor_dbfs else "near_silent")
    return flags


def _level_text(dbfs: float) -> str:
    return f"{dbfs:.1f} dBFS" if math.isfinite(dbfs) else "-inf dBFS (digital silence)"


def _silence_detail(row, floor: float) -> str:
    if row["audio_flag"] == "channels_cancel":
        return (f"loudest channel {_level_text(row['channel_rms_dbfs'])}, mono downmix {_level_text(row['rms_dbfs'])}"
                f" < floor {floor:g} dBFS: the channels cancel")
    return f"mono RMS {_level_text(row['rms_dbfs'])} < floor {floor:g} dBFS"


def _others(paths: list[str], limit: int = 5) -> str:
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def _duplicates(table: pd.DataFrame) -> tuple[set[int], list[dict]]:
    """Rows of ``table`` (finite, decoded clips) that share audio with another: (dropped index, rows)."""
    dropped, rows = set(), []
    groups = table[table.duplicated("content_hash", keep=False)].groupby("content_hash", sort=False)
    for _, group in groups:
        labels = group[["emotion", "speaker"]].drop_duplicates()
        if len(labels) > 1:  # the same audio, two stories: no copy can be trusted, and it could leak across splits
            for i, row in group.iterrows():
                others = [f"{p} ({e}, {s})" for j, p, e, s in zip(group.index, group["path"], group["emotion"],
                                                                   group["speaker"]) if j != i]
                rows.append({"path": row["path"], "corpus": row["corpus"], "reason": "duplicate_conflict",
                             "detail": f"identical audio to {_others(others)}; this file: {row['emotion']}, "
                                       f"{row['speaker']}"})
                dropped.add(i)
            continue
        keep = group.sort_values("note", key=lambda n: n != "", kind="stable").index[0]  # first without a note
        for i, row in group.drop(index=keep).iterrows():
            rows.append({"path": row["path"], "corpus": row["corpus"], "reason": "duplicate_audio",
                         "detail": f"identical audio to {group.loc[keep, 'path']} (same emotion and speaker), "
                                   "which is kept"})
            dropped.add(i)
    return dropped, rows


def apply_audio_checks(scanned: pd.DataFrame, silence_floor_dbfs: float = -60.0,
                       drop_silent: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop clips by what their decoded audio shows (before the labels are applied).

    Args:
        scanned: the scan with the audio check's columns (``SCANNED_COLUMNS``).
        silence_floor_dbfs: the near-silence floor (only used for the detail text; flags are in ``audio_flag``).
        drop_silent: drop flagged clips (``near_silent``, ``channels_cancel``) instead of keeping them.

    Returns:
        remaining: the clips that pass; dropped: path, corpus, reason, detail (``undecodable``,
        ``non_finite``, ``duplicate_conflict``, ``duplicate_audio``, and with ``drop_silent`` the flags).
    """
    rows = []
    undecodable = scanned["check_error"] != ""
    for i, row in scanned[undecodable].iterrows():
        rows.append({"path": row["path"], "corpus": row["corpus"], "reason": "undecodable", "detail": row["check_error"]})
    for i, row in scanned[~undecodable & (scanned["non_finite"] > 0)].iterrows():
        rows.append({"path": row["path"], "corpus": row["corpus"], "reason": "non_finite",
                     "detail": f"{int(row['non_finite'])} of {int(row['samples'])} decoded samples are NaN or infinite"})
    gone = set(scanned.index[undecodable | (scanned["non_finite"] > 0)])
    dup_gone, dup_rows = _duplicates(scanned.drop(index=list(gone)))
    gone |= dup_gone
    rows += dup_rows
    if drop_silent:
        rest = scanned.drop(index=list(gone))
        for i, row in rest[rest["audio_flag"] != ""].iterrows():
            rows.append({"path": row["path"], "corpus": row["corpus"], "reason": row["audio_flag"],
                         "detail": _silence_detail(row, silence_floor_dbfs)})
            gone.add(i)
    order = {p: k for k, p in enumerate(scanned["path"])}  # rows in scan order
    dropped = pd.DataFrame(sorted(rows, key=lambda r: order[r["path"]]), columns=["path", "corpus", "reason", "detail"])
    return scanned.drop(index=list(gone)).reset_index(drop=True), dropped


def _check_floor(silence_floor_dbfs: float) -> float:
    floor = float(silence_floor_dbfs)
    if not math.isfinite(floor) or floor > 0:
        raise ValueError(f"silence_floor_dbfs must be a finite level at or below 0 dBFS (e.g. -60), got "
                         f"{silence_floor_dbfs}")
    return floor


# --------------------------------------------------------------------------- audit and run


def audit_table(utterances: pd.DataFrame, manifest: pd.DataFrame, excluded: pd.DataFrame,
                silence_floor_dbfs: Optional[float] = None) -> pd.DataFrame:
    """Per corpus and reason, files kept, dropped and flagged.

    The "kept" row of each corpus counts its manifest rows; its detail lists what was tolerated
    (e.g. "level X read as XX (older release): 1"). Every exclusion reason has a row counting its
    drops (for duplicates the detail lists the files with identical audio). A ``FLAG_REASONS`` row
    counts kept clips so flagged in ``flagged`` (its kept and dropped are 0: they are counted in
    "kept"), so that kept + dropped still adds up to the files.
    """
    flags = utterances.set_index("utt_id")["audio_flag"] if "audio_flag" in utterances else pd.Series(dtype=str)
    rows = []
    for corpus in CORPORA:
        kept = manifest[manifest["corpus"] == corpus]
        gone = excluded[excluded["corpus"] == corpus]
        if not len(kept) and not len(gone):
            continue
        notes = utterances.loc[utterances["utt_id"].isin(set(kept["utt_id"])), "note"]
        noted = notes[notes != ""].str.split("; ").explode().value_counts()
        rows.append({"corpus": corpus, "reason": "kept", "kept": len(kept), "dropped": 0, "flagged": 0,
                     "detail": "; ".join(f"{n}: {c}" for n, c in noted.items()) or "mapped to the six emotions"})
        for reason, count in gone["reason"].value_counts().reindex(list(REASONS)).dropna().items():
            rows.append({"corpus": corpus, "reason": reason, "kept": 0, "dropped": int(count), "flagged": 0,
                         "detail": _reason_detail(reason, gone)})
        kept_flags = flags.reindex(kept["utt_id"]).fillna("")
        for flag, meaning in FLAG_REASONS.items():
            count = int((kept_flags == flag).sum())
            if count:
                floor = f" (floor {silence_floor_dbfs:g} dBFS)" if silence_floor_dbfs is not None else ""
                rows.append({"corpus": corpus, "reason": flag, "kept": 0, "dropped": 0, "flagged": count,
                             "detail": meaning + floor})
    return pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))


def _reason_detail(reason: str, gone: pd.DataFrame) -> str:
    if reason not in ("duplicate_conflict", "duplicate_audio"):
        return REASONS[reason]
    paths = gone.loc[gone["reason"] == reason, "path"].map(lambda p: Path(p).name).tolist()
    return f"{REASONS[reason]}: {_others(paths, 10)} (excluded.csv names the identical files)"


def mculp_settings(roots: dict[str, Optional[str | Path]], seed: int = 0, split_file: Optional[str | Path] = None,
                   min_duration_s: float = 1.0, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                   silence_floor_dbfs: float = -60.0, drop_silent: bool = False,
                   extra: Optional[dict] = None) -> dict:
    """Everything that determines MCULP's tables, named as the ``data:`` settings are.

    Holds the corpus roots and a fingerprint of what each holds (``corpus_fingerprint``: names,
    sizes, times), the split settings (the split file's content digest, not only its path), the
    filters, ``MANIFEST_FORMAT``, and ``extra`` (e.g. the demo corpus's settings).
    """
    settings: dict = {"format": MANIFEST_FORMAT}
    for corpus, key in CORPUS_KEYS.items():
        root = roots.get(corpus)
        settings[key] = None if root is None else display_path(os.path.abspath(Path(root).expanduser()))
    settings["corpus_files"] = {CORPUS_KEYS[c]: corpus_fingerprint(r) for c, r in roots.items() if r is not None}
    if split_file is not None:
        path = Path(split_file)
        settings["split_file"] = display_path(os.path.abspath(path))
        settings["split_file_digest"] = bytes_digest(path.read_bytes()) if path.is_file() else None
    else:
        settings["split_seed"], settings["split"] = int(seed), [float(f) for f in fractions]
    settings |= {"min_duration_s": float(min_duration_s), "silence_floor_dbfs": float(silence_floor_dbfs),
                 "drop_silent": bool(drop_silent)}
    return settings | (extra or {})


def settings_key(settings: dict) -> str:
    """16 hex digits of a hash of ``settings`` (what ``manifest.meta.json`` calls its key)."""
    return json_digest(settings, algorithm="sha1")


def run_mculp(crema_d: Optional[str | Path] = None, ravdess: Optional[str | Path] = None,
              emodb: Optional[str | Path] = None, out: str | Path = ".", seed: int = 0,
              split_file: Optional[str | Path] = None, min_duration_s: float = 1.0,
              fractions: Sequence[float] = (0.8, 0.1, 0.1), verbose: bool = False,
              silence_floor_dbfs: float = -60.0, drop_silent: bool = False,
              provenance: Optional[dict] = None) -> MculpResult:
    """Read the corpora, decode and check every clip, apply MCULP, split by speaker, and write the set.

    Args:
        crema_d, ravdess, emodb: corpus folders as downloaded; any may be None, not all.
        out: folder for the set (created): scanned.csv, excluded.csv, mculp_audit.csv, split.csv,
            manifest.meta.json, manifest.csv.
        seed: seed of the speaker split (ignored with a split file).
        split_file: CSV speaker,split to reuse a published split exactly.
        min_duration_s: clips shorter than this are dropped.
        fractions: train/val/test fractions of speakers within each corpus.
        verbose: progress bars and a printed summary.
        silence_floor_dbfs: clips whose mono RMS is below this are flagged near-silent.
        drop_silent: drop flagged clips instead of keeping them.
        provenance: more settings to record in manifest.meta.json (they enter its key).

    Returns:
        The tables, as written.

    Raises:
        CorpusError: a folder is missing or holds no usable file; no corpus given; nothing kept.
        SplitFileError: a bad split file or one that lacks a speaker of the data.
        ValueError: impossible fractions or silence floor.
    """
    fractions = check_fractions(fractions)
    floor = _check_floor(silence_floor_dbfs)
    roots = {"CREMA-D": crema_d, "RAVDESS": ravdess, "EmoDB": emodb}
    settings = mculp_settings(roots, seed, split_file, min_duration_s, fractions, floor, drop_silent, provenance)
    utterances, scan_excluded = scan_corpora(roots, progress=verbose)
    checks = check_clips(utterances["path"], progress=verbose)
    scanned = pd.concat([utterances, checks[list(CHECK_COLUMNS)]], axis=1)
    scanned["audio_flag"] = audio_flags(scanned, floor)
    passed, checked_out = apply_audio_checks(scanned, floor, drop_silent)
    kept, dropped = apply_mculp(passed, min_duration_s)
    if kept.empty:
        gone = pd.concat([checked_out, dropped])["reason"].value_counts().to_dict()
        raise CorpusError(f"MCULP kept no utterance (all {len(utterances)} readable files were dropped: "
                          f"{gone}); check min_duration_s and the folders")
    speakers = speaker_table(kept)
    split = split_from_file(speakers, split_file) if split_file else split_speakers(speakers, fractions, seed)
    manifest = kept.merge(split, on="speaker", how="left")[list(MANIFEST_COLUMNS)]
    frames = [f for f in (scan_excluded, checked_out, dropped) if len(f)]  # concat of empty frames warns in pandas 2
    excluded = pd.concat(frames, ignore_index=True) if frames else scan_excluded
    result = MculpResult(manifest, excluded, audit_table(scanned, manifest, excluded, floor), split, Path(out),
                         scanned[list(SCANNED_COLUMNS)], {"key": settings_key(settings), "settings": settings})
    _write(result)
    if verbose:
        print(result.summary())
    return result


def _csv_bytes(table: pd.DataFrame) -> bytes:
    # Paths are valid UTF-8 already (corpora.display_path); backslashreplace only guards against a stray surrogate.
    return table.to_csv(index=False).encode("utf-8", "backslashreplace")


def table_digest(data: bytes) -> str:
    """The digest ``manifest.meta.json`` records for a table's bytes."""
    return bytes_digest(data)


def _write(result: MculpResult) -> None:
    """The set, all to temporary names first, then renamed: the tables, the meta, and the manifest last
    (what later stages read). The meta records each table's digest, so a set cut between two renames
    is recognised as inconsistent (``serlib.data.stage.manifest_changes``)."""
    result.out.mkdir(parents=True, exist_ok=True)
    tables = dict(zip(SET_NAMES, (result.scanned, result.excluded, result.audit, result.split[["speaker", "split"]])))
    files = {name: _csv_bytes(table) for name, table in tables.items() if table is not None}
    files["manifest.csv"] = _csv_bytes(result.manifest)
    result.meta = {**(result.meta or {}), "tables": {name: table_digest(data) for name, data in files.items()}}
    meta = json.dumps(result.meta, indent=1, sort_keys=True, default=str).encode()
    tables_first = [(result.out / name, files[name]) for name in SET_NAMES if name in files]
    write_files_atomic(tables_first + [(result.out / META_NAME, meta), (result.out / "manifest.csv", files["manifest.csv"])])


def read_meta(folder: str | Path) -> Optional[dict]:
    """``manifest.meta.json`` of an MCULP folder, or None when absent or unreadable (an older serlib)."""
    path = Path(folder) / META_NAME
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and {"key", "settings", "tables"} <= set(meta) else None


def read_manifest(path: str | Path) -> pd.DataFrame:
    """A manifest CSV with its string columns kept as strings (codes such as "05" stay "05").

    Raises:
        FileNotFoundError: no manifest (build it with ``serlib mculp`` or notebook 01_data).
        ValueError: a column of ``MANIFEST_COLUMNS`` is missing (the message names the file).
    """
    return _read_table(path, MANIFEST_COLUMNS, "manifest")


def read_scan(path: str | Path) -> pd.DataFrame:
    """The scan of the corpora before MCULP (``scanned.csv``), string columns kept as strings."""
    return _read_table(path, UTTERANCE_COLUMNS, "corpus scan")


def _read_table(path: str | Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} (build it with `serlib mculp`, notebook 01_data or "
                                "serlib.pipeline.ensure_manifest)")
    table = pd.read_csv(path, dtype={c: str for c in _STRING_COLUMNS}, keep_default_na=False)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} of the {what}; rebuild it with `serlib mculp`")
    return table
