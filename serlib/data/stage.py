"""The data stage of a run: the configured corpus folders -> the run's manifest and its tables.

``build_manifest`` scans the corpora, applies MCULP, splits by speaker and writes
``scanned.csv``, ``excluded.csv``, ``mculp_audit.csv``, ``split.csv``, ``manifest.meta.json`` and
``manifest.csv`` into ``<run>/data/`` as one set; ``load_manifest`` and ``load_scan`` read them back.
``manifest_changes`` says why an existing set no longer answers the configuration (settings,
corpus files, or a set cut short), so that ``serlib.pipeline.ensure_manifest`` never reuses a stale
one. Generating the demo corpus is upstream of this stage (``serlib.pipeline.ensure_corpus``):
nothing here writes audio.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import pandas as pd

from serlib.common.config import Config, ConfigError
from serlib.common.facts import CORPORA
from serlib.common.runfolder import RunFolder
from serlib.data.corpora import CorpusError
from serlib.data.mculp import (CORPUS_KEYS, MANIFEST_FORMAT, META_NAME, mculp_settings, read_manifest, read_meta,
                               read_scan, run_mculp, settings_key, table_digest)

class StaleManifestError(CorpusError):
    """The run's manifest was made by other settings or corpus files, and rebuilding was refused."""


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


def _mculp_arguments(cfg: Config) -> dict:
    data = cfg.data
    return {"seed": data.split_seed, "split_file": data.split_file, "min_duration_s": data.min_duration_s,
            "fractions": data.split, "silence_floor_dbfs": data.silence_floor_dbfs, "drop_silent": data.drop_silent}


def _provenance(cfg: Config) -> dict:
    demo = cfg.data.demo
    return {"demo": dataclasses.asdict(demo)} if demo is not None else {}


def manifest_settings(cfg: Config) -> dict:
    """What determines the run's manifest (``serlib.data.mculp.mculp_settings`` of the configuration)."""
    return mculp_settings(corpus_roots(cfg), extra=_provenance(cfg), **_mculp_arguments(cfg))


def build_manifest(cfg: Config, folder: RunFolder) -> pd.DataFrame:
    """Scan the run's corpora, apply MCULP and split by speaker into ``folder.data``.

    Returns:
        The manifest (``serlib.data.mculp.MANIFEST_COLUMNS``), as read back from ``manifest.csv``.
    """
    roots = corpus_roots(cfg)
    run_mculp(crema_d=roots["CREMA-D"], ravdess=roots["RAVDESS"], emodb=roots["EmoDB"], out=folder.data,
              provenance=_provenance(cfg), **_mculp_arguments(cfg))
    return load_manifest(folder)


def manifest_changes(cfg: Config, folder: RunFolder) -> list[str]:
    """Why the run's existing manifest does not answer ``cfg``; empty when it does.

    Compares the settings recorded in ``data/manifest.meta.json`` with ``manifest_settings(cfg)``
    (each changed ``data.*`` key named, old -> new), and each table of the set with its recorded
    digest (a set cut short between two renames, or a table edited by hand, does not match).
    """
    meta = read_meta(folder.data)
    if meta is None:
        return [f"{folder.manifest_meta} is missing or unreadable (a manifest made by an older serlib, "
                "or its write was cut short)"]
    changes = describe_changes(meta["settings"], manifest_settings(cfg))
    if not changes and meta["key"] != settings_key(meta["settings"]):
        changes.append(f"{META_NAME}'s key does not match its settings (the file was edited)")
    for name, digest in meta["tables"].items():
        path = folder.data / name
        try:
            actual = table_digest(path.read_bytes())
        except OSError:
            changes.append(f"data/{name} is missing")
            continue
        if actual != digest:
            changes.append(f"data/{name} does not match its record in {META_NAME} (a write was cut short, "
                           "or the file was edited)")
    return changes


def describe_changes(old: dict, new: dict) -> list[str]:
    """One readable line per setting that differs between two ``mculp_settings`` dictionaries."""
    lines = []
    if old.get("format") != new.get("format"):
        lines.append(f"serlib's MCULP rules changed (manifest format {old.get('format')} -> {MANIFEST_FORMAT})")
    old_files, new_files = old.get("corpus_files", {}), new.get("corpus_files", {})
    for key in sorted(set(old_files) & set(new_files)):
        if old_files[key] != new_files[key]:
            lines.append(f"the files under data.{key} changed ({old_files[key].get('files')} -> "
                         f"{new_files[key].get('files')} entries, or a file's size or time)")
    flat_old, flat_new = _flatten(old), _flatten(new)
    for key in sorted(set(flat_old) | set(flat_new)):
        if key == "format" or key.startswith("corpus_files."):
            continue  # said above; a corpus added or removed shows as its data.<key> root
        before, after = flat_old.get(key, "(not set)"), flat_new.get(key, "(not set)")
        if before != after:
            lines.append(f"data.{key}: {before} -> {after}")
    return lines


def _flatten(settings: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_manifest(folder: RunFolder) -> pd.DataFrame:
    """The manifest of a run folder (``data/manifest.csv``)."""
    return read_manifest(folder.manifest)


def load_scan(folder: RunFolder) -> pd.DataFrame:
    """Every readable, well-named file of the run's corpora before MCULP (``data/scanned.csv``)."""
    return read_scan(folder.scanned)
