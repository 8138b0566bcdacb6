"""The speaker split (paper 4.1): speakers to train / val / test within each corpus, sex-stratified.

``split_speakers`` draws the split from a seed (``data.split`` fractions, ``data.split_seed``);
``split_from_file`` takes it exactly from a CSV ``speaker,split`` (``data.split_file``, a published split).
``allocate_strata`` shares a corpus's subset sizes between its sexes; ``serlib.data.folds`` deals the speaker
folds with it too. MCULP (``serlib.data.mculp``) calls these when it builds the manifest.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from serlib.common.facts import CORPORA, SUBSETS
from serlib.common.io import write_csv_atomic
from serlib.data.corpora import CorpusError


class SplitFileError(CorpusError):
    """A split file is missing, malformed, or lacks a speaker of the data."""


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


def allocate_strata(totals: list[int], sizes: dict[str, int], rotate: int = 0) -> dict[str, list[int]]:
    """Per stratum (sex) speakers per subset, with row sums = stratum sizes, column sums = totals.

    Strata are served largest first; a remainder tie goes to the stratum served first. ``rotate`` turns the
    order (speaker folds pass the fold's number), so a lone validation speaker of two equal strata is not of
    the same sex in every fold.
    """
    remaining, left = list(totals), sum(sizes.values())
    allocation = {}
    order = sorted(sizes, key=lambda s: (-sizes[s], s))
    order = order[rotate % len(order):] + order[:rotate % len(order)] if order else order
    for stratum in order:
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
    return corpus_sorted(table)


def corpus_sorted(table: pd.DataFrame) -> pd.DataFrame:
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
    fractions = check_fractions(fractions)
    rows = []
    for corpus, group in speakers.groupby("corpus", sort=False):
        totals = subset_counts(len(group), fractions)
        strata = {sex: sorted(g["speaker"]) for sex, g in group.groupby("sex")}
        allocation = allocate_strata(totals, {sex: len(ids) for sex, ids in strata.items()})
        rng = np.random.default_rng([seed, zlib.crc32(corpus.encode())])
        for sex in sorted(strata):
            shuffled = [strata[sex][i] for i in rng.permutation(len(strata[sex]))]
            labels = [s for s, n in zip(SUBSETS, allocation[sex]) for _ in range(n)]
            rows += [{"speaker": spk, "split": lab} for spk, lab in zip(shuffled, labels)]
    return corpus_sorted(pd.DataFrame(rows, columns=["speaker", "split"]))


def check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    """``fractions`` as three floats (train, val, test); ValueError unless non-negative and summing to 1."""
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
    return corpus_sorted(table[table["speaker"].isin(set(speakers["speaker"]))])


def write_split_file(split: pd.DataFrame, path: str | Path) -> Path:
    """Write speaker,split as CSV (read back with ``read_split_file`` / ``split_file=``)."""
    return write_csv_atomic(split[["speaker", "split"]], path)
