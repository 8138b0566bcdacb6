"""The thin pipeline: make sure each artefact of a run exists, in order, before a stage reads it.

corpus folders -> manifest -> feature cache -> trained runs (and the baselines beside them). Each stage
only reads what the one before it wrote (``serlib.data.stage``, ``serlib.features.extract``,
``serlib.modelling.systems``, ``serlib.modelling.runbaselines``);
this module is the one place that calls them in order. The CLI and the notebooks use it.

A manifest made by other settings or corpus files (``serlib.data.stage.manifest_changes``) is never
reused: it is rebuilt with a log line naming what changed (logger ``serlib.pipeline``), or, with
``rebuild_stale=False`` (the CLI's ``--no-rebuild``), refused with that list.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from serlib.common.config import Config, ConfigError, folds_problem, loco_systems, sentence_systems
from serlib.common.facts import CORPUS_KEYS
from serlib.common.runfolder import RunFolder
from serlib.data.democorpus import SCALES, generate_demo_corpus
from serlib.data.protocols import SENTENCE_PROTOCOL, ensure_folds, evaluation_protocols, loco_protocols
from serlib.data.stage import StaleManifestError, build_manifest, corpus_roots, load_manifest, manifest_changes
from serlib.features.encoders import weights_problem
from serlib.features.extract import extract_for_run
from serlib.features.layers import SSL_INPUTS, cached_layers
from serlib.modelling.runbaselines import write_baselines
from serlib.modelling.systems import system_names, train_systems

log = logging.getLogger(__name__)


def ensure_corpus(cfg: Config) -> Optional[Path]:
    """Generate the demo corpus of ``data.demo`` unless it is already complete (real corpora: nothing to do).

    The generator checks its completion marker (seed, scale and design version) and returns at once
    when the corpus is there, so a changed design is regenerated too.

    Returns:
        The demo corpus root, or None when the run reads real corpora.
    """
    demo = cfg.data.demo
    if demo is None:
        return None
    return generate_demo_corpus(Path(demo.root), seed=demo.seed, scale=demo.scale, verbose=True)


def ensure_manifest(cfg: Config, folder: RunFolder, rebuild: bool = False, rebuild_stale: bool = True) -> pd.DataFrame:
    """The run's manifest: built (corpus first) when missing, stale or when ``rebuild``, else read back.

    Args:
        cfg: the run configuration.
        folder: the run folder.
        rebuild: build it even when it is up to date.
        rebuild_stale: rebuild a stale manifest (logged with what changed); False raises instead.

    Raises:
        StaleManifestError: the manifest is stale and ``rebuild_stale`` is False (names each changed
            setting and how to rebuild).
    """
    ensure_corpus(cfg)  # first: a regenerated demo corpus makes the manifest stale
    if not rebuild and folder.manifest.is_file():
        changes = manifest_changes(cfg, folder)
        if not changes:
            return _with_folds(cfg, folder, load_manifest(folder))
        if not rebuild_stale:
            raise StaleManifestError(
                f"{folder.manifest} is stale: {'; '.join(changes)}; rebuild it by running without --no-rebuild "
                "(serlib.pipeline.ensure_manifest(cfg, folder) rebuilds a stale manifest by default)"
            )
        if not folder.manifest_meta.is_file():  # hand-made or an older serlib's: kept, never lost
            shutil.copy2(folder.manifest, folder.manifest_backup)
            changes.append(f"the old manifest is kept as {folder.manifest_backup}")
        log.warning("%s is stale, rebuilding it: %s", folder.manifest, "; ".join(changes))
    else:
        log.info("building %s", folder.manifest)
    return _with_folds(cfg, folder, build_manifest(cfg, folder))


def _with_folds(cfg: Config, folder: RunFolder, manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest, after its speaker folds (``data.folds``) are written (``serlib.data.protocols.ensure_folds``):
    every stage below reads them."""
    if cfg.data.folds:
        ensure_folds(cfg, folder)
    return manifest


def ensure_features(
    cfg: Config, folder: RunFolder, inputs: Optional[list[str]] = None, rebuild_stale: bool = True
) -> dict:
    """The manifest (``ensure_manifest``), then every clip's features in the cache (only what is missing
    is computed).

    Returns:
        The feature summary (``serlib.features.extract.extract_for_run``).
    """
    ensure_manifest(cfg, folder, rebuild_stale=rebuild_stale)
    return extract_for_run(cfg, folder, inputs)


def ensure_runs(
    cfg: Config,
    folder: RunFolder,
    systems: Optional[Sequence[str]] = None,
    progress: bool = True,
    rebuild_stale: bool = True,
) -> pd.DataFrame:
    """The manifest, the features, then every system x seed trained (unchanged runs are reused).

    Returns:
        One row per system x seed (``serlib.modelling.systems.train_systems``).
    """
    system_names(cfg, systems)  # an unknown --system fails before minutes of features
    ensure_features(cfg, folder, rebuild_stale=rebuild_stale)  # the manifest (and its folds) first
    return pd.concat(
        [
            train_systems(cfg, folder, systems=systems, progress=progress, protocol=protocol)
            for protocol in evaluation_protocols(cfg)
        ],
        ignore_index=True,
    )


def ensure_loco(cfg: Config, folder: RunFolder, progress: bool = True, rebuild_stale: bool = True) -> pd.DataFrame:
    """Leave-one-corpus-out runs of ``analysis.loco_systems``: trained on two corpora, tested on the third.

    Runs with the first of ``train.seeds`` (the cross-corpus rows are one seed each, to bound their
    cost). Returns one row per held-out corpus x system (empty with fewer than two corpora or no systems).
    """
    names = loco_systems(cfg)
    if not names:
        return pd.DataFrame()
    manifest = ensure_manifest(cfg, folder, rebuild_stale=rebuild_stale)
    ensure_features(cfg, folder, rebuild_stale=rebuild_stale)
    one_seed = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seeds=cfg.train.seeds[:1]))
    rows = [
        train_systems(one_seed, folder, systems=names, progress=progress, protocol=protocol)
        for protocol in loco_protocols(manifest)
    ]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def ensure_sentence_runs(cfg: Config, folder: RunFolder, progress: bool = True) -> pd.DataFrame:
    """The runs of ``analysis.sentence_systems`` under ``unseen-sentences`` (sentences held out as well as speakers),
    first seed only, as the leave-one-corpus-out runs; empty when the list is [].
    """
    names = sentence_systems(cfg)
    if not names:
        return pd.DataFrame()
    ensure_manifest(cfg, folder)
    ensure_features(cfg, folder)
    one_seed = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seeds=cfg.train.seeds[:1]))
    return train_systems(one_seed, folder, systems=names, progress=progress, protocol=SENTENCE_PROTOCOL)


def ensure_baselines(cfg: Config, folder: RunFolder, rebuild_stale: bool = True) -> dict:
    """The manifest and the features, then the baselines' test predictions (duration only, eGeMAPS + linear,
    wav2vec2 mean + linear, the layer sum: those the profile has) under every main protocol, trained here so that
    scoring them (``serlib.analysis.evaluation.beyond_table``) never trains; reused when made from the same inputs.

    Returns:
        ``serlib.modelling.runbaselines.write_baselines``'s record: what made them and each one's chosen C or
        weight decay.
    """
    ensure_features(cfg, folder, rebuild_stale=rebuild_stale)
    return write_baselines(cfg, folder)


def preflight(cfg: Config, systems: Optional[Sequence[str]] = None) -> list[str]:
    """Every problem that would stop a run, found before anything runs or is written (empty: none).

    Checks the corpus roots (or the demo corpus setting), the systems named, and that pretrained
    encoder weights are available offline when the profile asks for them.
    """
    problems = []
    try:
        corpus_roots(cfg)
    except ConfigError as err:
        problems.append(str(err))
    for key in ("crema_d", "ravdess", "emodb"):  # corpus_roots stops at the first; name every missing one
        value = getattr(cfg.data, key)
        message = f"'data.{key}' = {value} does not exist"
        if value is not None and not Path(value).is_dir() and not any(message in p for p in problems):
            problems.append(f"{cfg.source or 'config'}: {message}; set it to the corpus folder (or null)")
    try:
        system_names(cfg, systems)
    except ConfigError as err:
        problems.append(str(err))
    if cfg.data.demo is not None:  # the demo scale's speakers (real roots: checked at load against the releases)
        scale = SCALES[cfg.data.demo.scale]
        speakers = {"CREMA-D": scale.crema_actors, "RAVDESS": scale.ravdess_actors, "EmoDB": len(scale.emodb_speakers)}
        problem = folds_problem(
            cfg,
            {c: n for c, n in speakers.items() if getattr(cfg.data, CORPUS_KEYS[c]) is None},
            f" at data.demo.scale {cfg.data.demo.scale}",
        )
        if problem:
            problems.append(problem)
    problem = weights_problem(cfg.features)
    uses_ssl = any(s.input in SSL_INPUTS for s in cfg.systems.values()) or cfg.analysis.layer_probe is not None
    if problem and uses_ssl:
        problems.append(problem)
    elif uses_ssl:
        try:
            cached_layers(cfg)  # every layer a system or the probe names exists in the encoder
        except (ConfigError, OSError) as err:
            problems.append(f"{cfg.source or 'config'}: {err}" if str(cfg.source) not in str(err) else str(err))
    return problems
