"""The one reader of prediction files (issue 23): a system's test or validation predictions over its seeds and
protocols, the analysed seed's, another run's and the baselines', each joined with the manifest (speaker, corpus,
sex, duration, path). ``serlib.analysis.evaluation`` scores them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from serlib.common.config import Config, primary_system
from serlib.common.facts import CLASSES
from serlib.common.runfolder import RunFolder
from serlib.data.protocols import SENTENCE_PROTOCOL, evaluation_protocols
from serlib.data.stage import load_manifest
from serlib.modelling.runbaselines import baseline_file, baselines_changes
from serlib.modelling.systems import load_results

PROB_COLUMNS = [f"prob_{c}" for c in CLASSES]
PREDICTION_COLUMNS = ("utt_id", "label", "pred", *PROB_COLUMNS, "correct")  # what every predictions file holds


def read_predictions(folder: RunFolder, files: Sequence[tuple[Path, dict]], fix: str) -> pd.DataFrame:
    """The one reader of prediction files: their rows, each with the columns given beside its file, joined with
    the manifest.

    Args:
        folder: the run folder (its manifest).
        files: ``(predictions file, {column: value added to its rows})``, e.g. its protocol and seed.
        fix: what to do when a file is missing (the end of the error).

    Returns:
        The files' rows (``PREDICTION_COLUMNS``, ``label`` and ``pred`` as class names, ``correct`` a bool) and the
        added columns, then each clip's manifest columns (speaker, corpus, sex, duration_s, path, ...).
        ``attrs["source"]`` names the last file read.

    Raises:
        FileNotFoundError: a file is missing (naming it and ``fix``).
        ValueError: a file lacks a column or holds a label that is not a class; a clip is not in the manifest.
    """
    parts = []
    for path, columns in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such predictions; {fix}")
        part = pd.read_csv(path)
        missing = [c for c in PREDICTION_COLUMNS if c not in part.columns]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(PREDICTION_COLUMNS)}"
            )
        part["label"] = as_class_names(part["label"], path, "label")
        part["pred"] = as_class_names(part["pred"], path, "pred")
        parts.append(part.assign(**columns))
    preds = pd.concat(parts, ignore_index=True)
    preds["correct"] = preds["label"] == preds["pred"]
    return join_manifest(preds, folder, str(files[-1][0]), fix)


def join_manifest(preds: pd.DataFrame, folder: RunFolder, source: str, fix: str) -> pd.DataFrame:
    """Predictions (one row per clip and seed) with each clip's manifest columns; ``attrs["source"]`` = ``source``.

    Raises:
        ValueError: a clip is not in the manifest (naming ``source`` and ``fix``).
    """
    manifest = load_manifest(folder).drop(columns=["label"])
    merged = preds.merge(manifest, on="utt_id", how="left", validate="many_to_one", indicator=True)
    unknown = merged.loc[merged["_merge"] == "left_only", "utt_id"]
    if len(unknown):
        raise ValueError(
            f"{source}: {unknown.nunique()} utt_id(s) are not in {folder.manifest} (first: {unknown.iloc[0]}); {fix}"
        )
    merged = merged.drop(columns="_merge")
    merged.attrs["source"] = source
    return merged


def as_class_names(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Class names from names or label indices (0, 1, 2 in ``serlib.CLASSES`` order)."""
    if pd.api.types.is_numeric_dtype(values):
        bad = ~values.isin(range(len(CLASSES)))
        names = values.map(lambda v: CLASSES[int(v)] if v in range(len(CLASSES)) else None)
    else:
        names = values.astype(str)
        bad = ~names.isin(CLASSES)
    if bad.any():
        raise ValueError(f"{path}: column '{column}' holds {values[bad].iloc[0]!r}, not one of {CLASSES} or 0-2")
    return names


def system_predictions(
    cfg: Config,
    folder: RunFolder,
    system: str,
    protocols: Optional[Sequence[str]] = None,
    seeds: Optional[Sequence[int]] = None,
    split: str = "test",
) -> pd.DataFrame:
    """One system's predictions over seeds and protocols, joined with the manifest (``read_predictions``).

    Args:
        cfg: the run configuration.
        folder: the run folder.
        system: the system's name.
        protocols: default: the protocols behind the main results (the split, or every fold).
        seeds: default: ``train.seeds``.
        split: ``test`` or ``val``.

    Returns:
        protocol, seed, utt_id, label, pred, prob_*, correct (bool), and the manifest's columns (speaker, corpus,
        sex, duration_s, path, ...).

    Raises:
        FileNotFoundError: a run has no predictions (train it first), naming the file.
    """
    protocols = list(protocols or evaluation_protocols(cfg))
    seeds = list(cfg.train.seeds if seeds is None else seeds)
    files = [
        (folder.predictions(system, seed, split, protocol), {"protocol": protocol, "seed": seed})
        for protocol in protocols
        for seed in seeds
    ]
    return read_predictions(
        folder,
        files,
        f"train {system} first (`serlib train {cfg.source} --system {system}`) or set analysis.primary_system",
    )


def primary_predictions(
    cfg: Config, folder: RunFolder, split: str = "test", system: Optional[str] = None, seed: Optional[int] = None
) -> pd.DataFrame:
    """One seed of one system (default: the analysed ones, ``analysis.primary_system`` and ``primary_seed``) over
    the main protocols: ``system_predictions`` of that seed, with ``attrs`` naming system, seed, split and source."""
    default_system, default_seed = primary_system(cfg)
    system = system or default_system
    seed = default_seed if seed is None else seed
    preds = system_predictions(cfg, folder, system, seeds=[seed], split=split)
    preds.attrs.update(system=system, seed=seed, split=split)
    return preds


def baseline_predictions(cfg: Config, folder: RunFolder, name: str) -> pd.DataFrame:
    """A baseline's test predictions under the main protocols (``serlib.modelling.runbaselines``), as
    ``system_predictions`` gives a system's (one seed, 0).

    Raises:
        FileNotFoundError: they were not written, or were written from other inputs (a one-line list of what
            differs); ``serlib.pipeline.ensure_baselines(cfg, folder)`` writes them (notebook 03 does).
    """
    changes = baselines_changes(cfg, folder)
    if changes:
        raise FileNotFoundError(
            f"the baselines' predictions are not this run's: {'; '.join(changes)}; write them "
            "with serlib.pipeline.ensure_baselines(cfg, folder)"
        )
    files = [
        (baseline_file(folder, name, protocol), {"protocol": protocol, "seed": 0})
        for protocol in evaluation_protocols(cfg)
    ]
    return read_predictions(folder, files, "write them with serlib.pipeline.ensure_baselines(cfg, folder)")


def run_predictions(folder: RunFolder, system: str) -> pd.DataFrame:
    """A system's test predictions in a run folder, over every seed and main protocol that ``results.csv``
    lists (no configuration needed), joined with that run's manifest."""
    results = load_results(folder)
    main = ~results["protocol"].str.startswith("loco-") & (results["protocol"] != SENTENCE_PROTOCOL)
    rows = results[(results["system"] == system) & main]
    if rows.empty:
        raise FileNotFoundError(f"{folder.results}: no trained {system} in {folder.root}")
    files = [
        (folder.predictions(system, int(r.seed), "test", r.protocol), {"seed": int(r.seed), "protocol": r.protocol})
        for r in rows.itertuples()
    ]
    return read_predictions(folder, files, f"train {system} again in {folder.root}")


def wide(preds: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """(labels (clips,), predictions (seeds, clips), speakers (clips,), utt_ids) of one system's predictions."""
    pred = preds.pivot_table(index="utt_id", columns="seed", values="pred", aggfunc="first")
    if pred.isna().any().any():
        raise ValueError("the seeds of a system scored different clips; retrain")
    meta = preds.drop_duplicates("utt_id").set_index("utt_id").loc[pred.index]
    encode = {c: i for i, c in enumerate(CLASSES)}
    labels = meta["label"].map(encode).to_numpy(int)
    return (
        labels,
        pred.apply(lambda col: col.map(encode)).to_numpy(int).T,
        meta["speaker"].to_numpy(str),
        list(pred.index),
    )
