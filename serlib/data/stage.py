"""The data stage of a run: the configured corpus folders -> the run's manifest and its tables.

``build_manifest`` scans the corpora, applies MCULP, splits by speaker and writes
``scanned.csv``, ``excluded.csv``, ``mculp_audit.csv``, ``split.csv`` and ``manifest.csv`` into
``<run>/data/``; ``load_manifest`` and ``load_scan`` read them back. Generating the demo corpus
is upstream of this stage (``serlib.pipeline.ensure_corpus``): nothing here writes audio.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

from serlib.common.config import Config, ConfigError
from serlib.common.facts import CORPORA
from serlib.common.runfolder import RunFolder
from serlib.data.mculp import read_manifest, read_scan, run_mculp

CORPUS_KEYS = {"CREMA-D": "crema_d", "RAVDESS": "ravdess", "EmoDB": "emodb"}  # corpus -> its data.<key>


def corpus_roots(cfg: Config) -> dict[str, Optional[Path]]:
    """Corpus folders of a run: ``data.crema_d`` / ``data.ravdess`` / ``data.emodb``.

    With ``data.demo`` set, a corpus not given explicitly defaults to ``<demo.root>/CREMA-D``,
    ``/RAVDESS``, ``/EmoDB``.

    Raises:
        ConfigError: a configured folder does not exist (names the key and the path), or no
            corpus is configured.
    """
    data, roots = cfg.data, {}
    for corpus in CORPORA:
        key = CORPUS_KEYS[corpus]
        value = getattr(data, key)
        if value is not None and not Path(value).is_dir():
            raise ConfigError(f"{cfg.source or 'config'}: 'data.{key}' = {value} does not exist; set it to the "
                              f"{corpus} folder (or null to leave {corpus} out)")
        if value is None and data.demo is not None:
            value = Path(data.demo.root) / corpus
        roots[corpus] = Path(value) if value is not None else None
    if not any(roots.values()):
        raise ConfigError(f"{cfg.source or 'config'}: no corpus configured; set data.crema_d, data.ravdess "
                          "or data.emodb, or data.demo for the synthetic corpus")
    return roots


def build_manifest(cfg: Config, folder: RunFolder) -> pd.DataFrame:
    """Scan the run's corpora, apply MCULP and split by speaker into ``folder.data``.

    Returns:
        The manifest (``serlib.data.mculp.MANIFEST_COLUMNS``), as read back from ``manifest.csv``.
    """
    roots = corpus_roots(cfg)
    data = cfg.data
    run_mculp(crema_d=roots["CREMA-D"], ravdess=roots["RAVDESS"], emodb=roots["EmoDB"], out=folder.data,
              seed=data.split_seed, split_file=data.split_file, min_duration_s=data.min_duration_s,
              fractions=data.split)
    return load_manifest(folder)


def load_manifest(folder: RunFolder) -> pd.DataFrame:
    """The manifest of a run folder (``data/manifest.csv``)."""
    return read_manifest(folder.manifest)


def load_scan(folder: RunFolder) -> pd.DataFrame:
    """Every readable, well-named file of the run's corpora before MCULP (``data/scanned.csv``)."""
    return read_scan(folder.scanned)
