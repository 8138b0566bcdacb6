"""Speaker k-fold cross-validation (``data.folds``): every speaker is tested exactly once.

Folds are built within each corpus and, inside it, within each sex, so each fold's test speakers
mix the corpora and sexes as the whole data does; each fold's validation speakers are drawn from
its training speakers, again per corpus and sex. Same seed, same folds.
"""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from serlib.data.speakers import allocate_strata, corpus_sorted

FOLD_COLUMNS = ("fold", "speaker", "split")


def _rng(seed: int, *parts: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


def fold_of_speakers(speakers: pd.DataFrame, k: int, seed: int = 0) -> dict[str, int]:
    """speaker -> the fold (1..k) that tests it.

    Within a corpus, the speakers of each sex are shuffled and dealt round-robin to the folds, the
    deal continuing from one sex (and corpus) to the next, so each fold's count of each corpus x sex is within
    one of the even share and each fold's count of each corpus is within one too. A corpus with
    fewer speakers than ``k`` leaves some folds without test speakers of that corpus.
    """
    if k < 2:
        raise ValueError(f"data.folds must be at least 2, got {k}")
    fold_of, offset = {}, 0
    for corpus, group in speakers.groupby("corpus", sort=False):
        for sex in sorted(set(group["sex"])):
            ids = sorted(group.loc[group["sex"] == sex, "speaker"])
            shuffled = [ids[i] for i in _rng(seed, "folds", corpus, sex).permutation(len(ids))]
            for i, speaker in enumerate(shuffled):
                fold_of[speaker] = (offset + i) % k + 1
            offset += len(ids)  # the deal goes on across sexes and corpora: folds stay even overall too
    return fold_of


def speaker_folds(speakers: pd.DataFrame, k: int, seed: int = 0, val_fraction: float = 0.1) -> pd.DataFrame:
    """The k-fold assignment: for each fold, every speaker's subset (train, val or test).

    Args:
        speakers: ``serlib.data.speakers.speaker_table`` output (speaker, corpus, sex).
        k: folds (>= 2).
        seed: same seed, same folds.
        val_fraction: share of each fold's non-test speakers, per corpus, that validate (sex-stratified;
            at least one when the corpus has two or more non-test speakers).

    Returns:
        fold (1..k), speaker, split: k rows per speaker, the speaker's test fold among them.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    fold_of = fold_of_speakers(speakers, k, seed)
    rows = []
    for fold in range(1, k + 1):
        for corpus, group in speakers.groupby("corpus", sort=False):
            rest = group[group["speaker"].map(fold_of) != fold]
            n_val = max(1, round(val_fraction * len(rest))) if len(rest) >= 2 else 0
            strata = {sex: sorted(g["speaker"]) for sex, g in rest.groupby("sex")}
            allocation = allocate_strata([len(rest) - n_val, n_val], {s: len(v) for s, v in strata.items()},
                                          rotate=fold - 1)  # ties between the sexes go to each in turn
            val = set()
            for sex in sorted(strata):
                ids = strata[sex]
                order = _rng(seed, "val", corpus, sex, str(fold)).permutation(len(ids))
                val |= {ids[i] for i in order[:allocation[sex][1]]}
            for speaker in group["speaker"]:
                split = "test" if fold_of[speaker] == fold else "val" if speaker in val else "train"
                rows.append({"fold": fold, "speaker": speaker, "split": split})
    table = pd.DataFrame(rows, columns=list(FOLD_COLUMNS))
    return pd.concat([corpus_sorted(part).assign(fold=fold) for fold, part in table.groupby("fold")],
                     ignore_index=True)[list(FOLD_COLUMNS)]
