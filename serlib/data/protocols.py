"""The evaluation protocols: which subset (train, val, test) every clip is in under each of them.

- ``split`` (``MAIN_PROTOCOL``): the paper's speaker-independent split (paper 4.1), the manifest's ``split``.
- ``fold<k>``: speaker k-fold cross-validation (``data.folds``): ``data/folds.csv`` gives every speaker's
  subset in each fold (``ensure_folds`` writes it; every speaker is tested in one fold).
- ``loco-<corpus>``: leave one corpus out: every clip of that corpus is test; the other corpora keep their
  train and val speakers (validation comes from the training corpora only) and their test speakers train.
- ``unseen-sentences`` (``SENTENCE_PROTOCOL``): the paper's split with sentences held out as well as speakers:
  in each corpus every third sentence (``held_out_sentences``) is test-only; the test speakers' clips of those
  sentences are test, the train and val speakers' clips of the other sentences train and validate, and the rest
  (test speakers saying a training sentence, training speakers saying a held-out one) is ``unused``.

``protocol_subsets(folder, protocol)`` is the one answer to "which clips are test (or train, or val) under
P": training, the probe, the baselines and the tables all ask it.
"""
from __future__ import annotations

import logging
from typing import Optional

import pandas as pd

from serlib.common.config import Config, ConfigError, folds_problem
from serlib.common.facts import CORPORA
from serlib.common.io import write_csv_atomic
from serlib.common.runfolder import RunFolder
from serlib.data.folds import speaker_folds
from serlib.data.speakers import speaker_table
from serlib.data.stage import load_manifest

log = logging.getLogger(__name__)

MAIN_PROTOCOL = "split"  # the paper's speaker-independent split (data.split)
SENTENCE_PROTOCOL = "unseen-sentences"  # speakers and sentences held out (the confounds section)
UNUSED = "unused"  # the subset of a clip a protocol neither trains, validates nor tests on


def evaluation_protocols(cfg: Config) -> list[str]:
    """The protocols behind the main results: the paper's single split, or the ``data.folds`` speaker folds."""
    return [f"fold{i}" for i in range(1, cfg.data.folds + 1)] if cfg.data.folds else [MAIN_PROTOCOL]


def loco_protocols(manifest: pd.DataFrame) -> list[str]:
    """One leave-one-corpus-out protocol per corpus of the manifest (none with a single corpus)."""
    present = [c for c in CORPORA if c in set(manifest["corpus"])]
    return [f"loco-{c}" for c in present] if len(present) > 1 else []


def held_out_sentences(manifest: pd.DataFrame) -> dict[str, list[str]]:
    """The sentences ``unseen-sentences`` holds out, per corpus: every third of its sentences in sorted order (the
    first, fourth, ...), none where a corpus has a single sentence."""
    held = {}
    for corpus, group in manifest.groupby("corpus", sort=True):
        sentences = sorted(set(group["sentence"].astype(str)))
        held[str(corpus)] = sentences[::3] if len(sentences) > 1 else []
    return held


def protocol_subsets(folder: RunFolder, protocol: str, manifest: Optional[pd.DataFrame] = None) -> pd.Series:
    """The subset ("train", "val" or "test") of every manifest row under ``protocol``.

    Args:
        folder: the run folder (its manifest, and ``data/folds.csv`` for ``fold<k>``).
        protocol: "split", "fold<k>" or "loco-<corpus>".
        manifest: the run's manifest when the caller has read it already (default: read from ``folder``).

    Returns:
        A Series aligned with the manifest's rows.

    Raises:
        FileNotFoundError: ``fold<k>`` without ``data/folds.csv``.
        ValueError: an unknown protocol, or folds that lack a speaker of the manifest (stale).
    """
    manifest = load_manifest(folder) if manifest is None else manifest
    if protocol == MAIN_PROTOCOL:
        return manifest["split"]
    if protocol.startswith("fold"):
        chosen = read_folds(folder)
        chosen = chosen[chosen["fold"] == int(protocol[4:])].set_index("speaker")["split"]
        splits = manifest["speaker"].map(chosen)
        if splits.isna().any():
            missing = sorted(set(manifest.loc[splits.isna(), "speaker"]))
            raise ValueError(f"{folder.folds}: speaker(s) {', '.join(missing[:5])} of the manifest have no fold; "
                             "the folds are stale: rebuild them (serlib.data.protocols.ensure_folds)")
        return splits
    if protocol.startswith("loco-"):
        corpus = protocol[len("loco-"):]
        if corpus not in CORPORA:
            raise ValueError(f"unknown protocol {protocol!r}: loco-<corpus> with a corpus of {', '.join(CORPORA)}")
        splits = manifest["split"].where(manifest["split"] != "test", "train")
        return splits.where(manifest["corpus"] != corpus, "test")
    if protocol == SENTENCE_PROTOCOL:
        held = held_out_sentences(manifest)
        unseen = pd.Series(
            [str(s) in held[str(c)] for c, s in zip(manifest["corpus"], manifest["sentence"])], index=manifest.index
        )
        split = manifest["split"]
        keep = (split == "test") == unseen  # test speakers on held-out sentences, the others on the rest
        return split.where(keep, UNUSED)
    raise ValueError(f"unknown protocol {protocol!r}; expected split, fold<k>, loco-<corpus> or {SENTENCE_PROTOCOL}")


def read_folds(folder: RunFolder) -> pd.DataFrame:
    """``data/folds.csv``: fold, speaker, split (k rows per speaker)."""
    if not folder.folds.is_file():
        raise FileNotFoundError(f"{folder.folds}: no speaker folds; build them with serlib.data.protocols.ensure_folds")
    return pd.read_csv(folder.folds, dtype={"speaker": str, "split": str})


def ensure_folds(cfg: Config, folder: RunFolder) -> pd.DataFrame:
    """The speaker k-fold assignment of ``data.folds`` (``data/folds.csv``), rewritten when it changed.

    Stratified within each corpus and by sex; validation speakers come from each fold's training
    speakers, in the proportion ``data.split`` gives validation against training. The pipeline writes
    it with the manifest (``serlib.pipeline.ensure_manifest``), so every stage below finds the folds.

    Raises:
        ConfigError: a corpus of the manifest has fewer speakers than ``data.folds`` (one line naming the fix).
    """
    speakers = speaker_table(load_manifest(folder))
    problem = folds_problem(cfg, speakers.groupby("corpus")["speaker"].nunique().to_dict(), f" in {folder.manifest}")
    if problem:
        raise ConfigError(problem)
    train, val, _ = cfg.data.split
    folds = speaker_folds(speakers, cfg.data.folds, seed=cfg.data.split_seed, val_fraction=val / (train + val))
    current = read_folds(folder) if folder.folds.is_file() else None
    if current is None or not current[list(folds.columns)].equals(folds):
        log.info("writing %s (%d folds)", folder.folds, cfg.data.folds)
        write_csv_atomic(folds, folder.folds)
    return folds
