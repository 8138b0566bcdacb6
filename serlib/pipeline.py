"""The thin pipeline: make sure each artefact of a run exists, in order, before a stage reads it.

corpus folders -> manifest -> feature cache -> trained runs. Each stage only reads what the one
before it wrote (``serlib.data.stage``, ``serlib.features.extract``, ``serlib.modelling.systems``);
this module is the one place that calls them in order. The CLI and the notebooks use it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from serlib.common.config import Config
from serlib.common.runfolder import RunFolder
from serlib.data.democorpus import generate_demo_corpus
from serlib.data.stage import build_manifest, load_manifest
from serlib.features.extract import extract_for_run
from serlib.modelling.systems import system_names, train_systems


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


def ensure_manifest(cfg: Config, folder: RunFolder, rebuild: bool = False) -> pd.DataFrame:
    """The run's manifest: built (corpus first) when missing or when ``rebuild``, else read back."""
    if rebuild or not folder.manifest.is_file():
        ensure_corpus(cfg)
        return build_manifest(cfg, folder)
    return load_manifest(folder)


def ensure_features(cfg: Config, folder: RunFolder, inputs: Optional[list[str]] = None) -> dict:
    """The manifest, then every clip's features in the cache (only what is missing is computed).

    Returns:
        The feature summary (``serlib.features.extract.extract_for_run``).
    """
    ensure_manifest(cfg, folder)
    return extract_for_run(cfg, folder, inputs)


def ensure_runs(cfg: Config, folder: RunFolder, systems: Optional[Sequence[str]] = None,
                progress: bool = True) -> pd.DataFrame:
    """The manifest, the features, then every system x seed trained (unchanged runs are reused).

    Returns:
        One row per system x seed (``serlib.modelling.systems.train_systems``).
    """
    system_names(cfg, systems)  # an unknown --system fails before minutes of features
    ensure_features(cfg, folder)
    return train_systems(cfg, folder, systems=systems, progress=progress)
