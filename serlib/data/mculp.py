"""MCULP, the paper's Multi-Corpus Unified Labelling Protocol (section 2.2), and the speaker split (4.1).

Utterances from ``serlib.corpora`` -> spellings normalised -> the six shared emotions -> three
classes (negative = anger + disgust, sad_fear = sadness + fear, pos_neutral = happiness +
neutral); calm, surprised, boredom and clips shorter than ``min_duration_s`` are dropped, each
with its reason. Speakers are split 80/10/10 within each corpus, sex-stratified, from a seed, or
taken exactly from a split file (CSV ``speaker,split``). Outputs, in the run's ``data/`` folder:
``manifest.csv``, ``excluded.csv``, ``mculp_audit.csv``, ``split.csv``.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from serlib.common.facts import CLASSES, CORPORA, EMOTION_CODES, EMOTION_TO_CLASS, SUBSETS
from serlib.common.io import write_csv_atomic
from serlib.data.corpora import EXCLUSION_REASONS, UTTERANCE_COLUMNS, CorpusError, scan_corpora
DROP_REASONS = {  # emotions with no place in the shared six, and the duration filter
    "calm": "RAVDESS calm: not one of the six shared emotions",
    "surprised": "RAVDESS surprised: not one of the six shared emotions",
    "boredom": "EmoDB boredom (Langeweile): not one of the six shared emotions",
    "unmapped": "emotion spelling not in the MCULP dictionary",
    "too_short": "shorter than min_duration_s",
}
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
AUDIT_COLUMNS = ("corpus", "reason", "kept", "dropped", "detail")
_STRING_COLUMNS = ("utt_id", "path", "corpus", "speaker", "sex", "emotion_code", "emotion", "sentence", "label",
                   "split", "note")  # read back as strings: a code such as "05" stays "05"


class SplitFileError(CorpusError):
    """A split file is missing, malformed, or lacks a speaker of the data."""


@dataclass
class MculpResult:
    """What ``run_mculp`` made; the same tables are written as CSV in ``out``."""

    manifest: pd.DataFrame  # one row per kept utterance, MANIFEST_COLUMNS
    excluded: pd.DataFrame  # path, corpus, reason, detail: scan exclusions and MCULP drops
    audit: pd.DataFrame  # AUDIT_COLUMNS: per corpus and reason, files kept and dropped
    split: pd.DataFrame  # speaker, split
    out: Path
    scanned: pd.DataFrame = None  # every readable, well-named file before MCULP (UTTERANCE_COLUMNS)

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
        return "\n".join([
            f"MCULP: kept {len(m)} utterances of {m['speaker'].nunique()} speakers; excluded {len(self.excluded)} "
            f"files ({', '.join(f'{r} {n}' for r, n in dropped.items()) or 'none'})",
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


# --------------------------------------------------------------------------- speaker split


def subset_counts(n_speakers: int, fractions: Sequence[float]) -> list[int]:
    """Speakers per subset: largest remainder, ties to the earlier subset.

    Every subset with a positive fraction gets at least one speaker when there are enough
    speakers (taken from the largest subset).

    Args:
        n_speakers: speakers of one corpus.
        fractions: train/val/test fractions summing to 1.
    """
    targets = [n_speakers * f for f in fractions]
    counts = [int(np.floor(t)) for t in targets]
    order = sorted(range(len(targets)), key=lambda k: (-(targets[k] - counts[k]), k))
    for k in order[:n_speakers - sum(counts)]:
        counts[k] += 1
    positive = [k for k, f in enumerate(fractions) if f > 0]
    if n_speakers >= len(positive):
        for k in positive:
            if counts[k] == 0:
                counts[k] += 1
                counts[int(np.argmax(counts))] -= 1
    return counts


def _allocate_strata(totals: list[int], sizes: dict[str, int]) -> dict[str, list[int]]:
    """Per stratum (sex) speakers per subset, with row sums = stratum sizes, column sums = totals."""
    remaining, left = list(totals), sum(sizes.values())
    allocation = {}
    for stratum in sorted(sizes, key=lambda s: (-sizes[s], s)):
        size = sizes[stratum]
        targets = [size * r / left if left else 0.0 for r in remaining]
        counts = [int(np.floor(t + 1e-9)) for t in targets]
        order = sorted(range(len(targets)), key=lambda k: (-(targets[k] - counts[k]), k))
        for k in [k for k in order if counts[k] < remaining[k]][:size - sum(counts)]:
            counts[k] += 1
        allocation[stratum] = counts
        remaining = [r - c for r, c in zip(remaining, counts)]
        left -= size
    return allocation


def speaker_table(utterances: pd.DataFrame) -> pd.DataFrame:
    """One row per speaker: speaker, corpus, sex, utterances."""
    table = utterances.groupby("speaker", sort=False).agg(
        corpus=("corpus", "first"), sex=("sex", lambda s: next((x for x in s if x != "unknown"), "unknown")),
        utterances=("utt_id", "size")).reset_index()
    return _corpus_sorted(table)


def _corpus_sorted(table: pd.DataFrame) -> pd.DataFrame:
    rank = {c: i for i, c in enumerate(CORPORA)}
    key = table["speaker"].str.split(":").str[0].map(rank).fillna(len(rank))
    return table.assign(_rank=key).sort_values(["_rank", "speaker"]).drop(columns="_rank").reset_index(drop=True)


def split_speakers(speakers: pd.DataFrame, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                   seed: int = 0) -> pd.DataFrame:
    """Assign speakers to train/val/test within each corpus, sex-stratified, from a seed.

    Args:
        speakers: ``speaker_table`` output (speaker, corpus, sex).
        fractions: train/val/test fractions of each corpus's speakers, summing to 1.
        seed: same seed, same split.

    Returns:
        speaker, split: one row per speaker.
    """
    fractions = _check_fractions(fractions)
    rows = []
    for corpus, group in speakers.groupby("corpus", sort=False):
        totals = subset_counts(len(group), fractions)
        strata = {sex: sorted(g["speaker"]) for sex, g in group.groupby("sex")}
        allocation = _allocate_strata(totals, {sex: len(ids) for sex, ids in strata.items()})
        rng = np.random.default_rng([seed, zlib.crc32(corpus.encode())])
        for sex in sorted(strata):
            shuffled = [strata[sex][i] for i in rng.permutation(len(strata[sex]))]
            labels = [s for s, n in zip(SUBSETS, allocation[sex]) for _ in range(n)]
            rows += [{"speaker": spk, "split": lab} for spk, lab in zip(shuffled, labels)]
    return _corpus_sorted(pd.DataFrame(rows, columns=["speaker", "split"]))


def _check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1 "
                         f"(train, val, test), got {fractions}")
    return fractions


def read_split_file(path: str | Path) -> pd.DataFrame:
    """A speaker -> subset file (CSV with columns speaker, split; other columns ignored).

    Raises:
        SplitFileError: missing file, missing columns, an unknown subset, or a speaker listed
            twice with different subsets; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise SplitFileError(f"split file not found: {path} (a CSV with columns speaker,split)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"speaker", "split"} <= set(table.columns):
        raise SplitFileError(f"{path}: needs columns speaker,split; found {', '.join(table.columns)}")
    table = table[["speaker", "split"]].apply(lambda col: col.str.strip()).drop_duplicates()
    bad = table[~table["split"].isin(SUBSETS)]
    if len(bad):
        raise SplitFileError(f"{path}: split must be train, val or test; line(s) {list(bad.index + 2)[:5]} hold "
                             f"{sorted(set(bad['split']))[:5]}")
    twice = table["speaker"][table["speaker"].duplicated()]
    if len(twice):
        raise SplitFileError(f"{path}: speaker(s) {sorted(set(twice))[:5]} listed with different subsets")
    return table.reset_index(drop=True)


def split_from_file(speakers: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """The split of ``speakers`` exactly as ``path`` gives it.

    Raises:
        SplitFileError: a speaker of the data is missing from the file (named in the message).
    """
    table = read_split_file(path)
    missing = sorted(set(speakers["speaker"]) - set(table["speaker"]))
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise SplitFileError(f"{path}: speaker(s) {', '.join(missing[:10])}{more} of the data are not in the "
                             "split file; add a 'speaker,split' line for each, or drop --split-file / "
                             "data.split_file to split from the seed")
    return _corpus_sorted(table[table["speaker"].isin(set(speakers["speaker"]))])


def write_split_file(split: pd.DataFrame, path: str | Path) -> Path:
    """Write speaker,split as CSV (read back with ``read_split_file`` / ``split_file=``)."""
    return write_csv_atomic(split[["speaker", "split"]], path)


# --------------------------------------------------------------------------- audit and run


def audit_table(utterances: pd.DataFrame, manifest: pd.DataFrame, excluded: pd.DataFrame) -> pd.DataFrame:
    """Per corpus and reason, files kept and dropped.

    The "kept" row of each corpus counts its manifest rows; its detail lists what was tolerated
    (e.g. "level X read as XX (older release): 1"). Every other row counts one exclusion reason.
    """
    rows = []
    for corpus in CORPORA:
        kept = manifest[manifest["corpus"] == corpus]
        gone = excluded[excluded["corpus"] == corpus]
        if not len(kept) and not len(gone):
            continue
        notes = utterances.loc[utterances["utt_id"].isin(set(kept["utt_id"])), "note"]
        noted = notes[notes != ""].str.split("; ").explode().value_counts()
        rows.append({"corpus": corpus, "reason": "kept", "kept": len(kept), "dropped": 0,
                     "detail": "; ".join(f"{n}: {c}" for n, c in noted.items()) or "mapped to the six emotions"})
        for reason, count in gone["reason"].value_counts().reindex(list(REASONS)).dropna().items():
            rows.append({"corpus": corpus, "reason": reason, "kept": 0, "dropped": int(count),
                         "detail": REASONS[reason]})
    return pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))


def run_mculp(crema_d: Optional[str | Path] = None, ravdess: Optional[str | Path] = None,
              emodb: Optional[str | Path] = None, out: str | Path = ".", seed: int = 0,
              split_file: Optional[str | Path] = None, min_duration_s: float = 1.0,
              fractions: Sequence[float] = (0.8, 0.1, 0.1), verbose: bool = False) -> MculpResult:
    """Read the corpora, apply MCULP, split by speaker, and write the four tables into ``out``.

    Args:
        crema_d, ravdess, emodb: corpus folders as downloaded; any may be None, not all.
        out: folder for manifest.csv, excluded.csv, mculp_audit.csv, split.csv (created).
        seed: seed of the speaker split (ignored with a split file).
        split_file: CSV speaker,split to reuse a published split exactly.
        min_duration_s: clips shorter than this are dropped.
        fractions: train/val/test fractions of speakers within each corpus.
        verbose: progress bars and a printed summary.

    Returns:
        The tables, as written.

    Raises:
        CorpusError: a folder is missing or holds no usable file; no corpus given; nothing kept.
        SplitFileError: a bad split file or one that lacks a speaker of the data.
    """
    fractions = _check_fractions(fractions)
    roots = {"CREMA-D": crema_d, "RAVDESS": ravdess, "EmoDB": emodb}
    utterances, scan_excluded = scan_corpora(roots, progress=verbose)
    kept, dropped = apply_mculp(utterances, min_duration_s)
    if kept.empty:
        raise CorpusError(f"MCULP kept no utterance (all {len(utterances)} readable files were dropped: "
                          f"{dropped['reason'].value_counts().to_dict()}); check min_duration_s and the folders")
    speakers = speaker_table(kept)
    split = split_from_file(speakers, split_file) if split_file else split_speakers(speakers, fractions, seed)
    manifest = kept.merge(split, on="speaker", how="left")[list(MANIFEST_COLUMNS)]
    frames = [f for f in (scan_excluded, dropped) if len(f)]  # concat of empty frames warns in pandas 2
    excluded = pd.concat(frames, ignore_index=True) if frames else scan_excluded
    result = MculpResult(manifest, excluded, audit_table(utterances, manifest, excluded), split, Path(out),
                         utterances)
    _write(result)
    if verbose:
        print(result.summary())
    return result


def _write(result: MculpResult) -> None:
    """The five tables, each written atomically, the manifest last (it is what later stages read)."""
    result.out.mkdir(parents=True, exist_ok=True)
    if result.scanned is not None:
        write_csv_atomic(result.scanned, result.out / "scanned.csv")
    write_csv_atomic(result.excluded, result.out / "excluded.csv")
    write_csv_atomic(result.audit, result.out / "mculp_audit.csv")
    write_split_file(result.split, result.out / "split.csv")
    write_csv_atomic(result.manifest, result.out / "manifest.csv")


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
