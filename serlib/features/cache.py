"""Keeping the feature cache: what it holds, what no profile uses any more, and what interrupted writes left.

``list_cache`` and ``prune_cache`` back ``serlib cache list|prune``; ``clean_cache_root`` runs before every
extraction. Two extractions on one key folder do not both compute: the second waits for the first's lock
(``serlib.features.shards.key_lock``, saying so) and then finds the clips cached; a folder whose lock is held
is never pruned. A cache this process cannot write is used read-only: when every clip is cached, extraction
and loading write nothing there (memo, ``key.json`` and ``.last_used`` updates are skipped); a clip that
would need computing is a ``CacheNotWritableError``. Only what serlib wrote is deleted: prune refuses a
folder without the cache's marker, and cleaning removes only the temporary names serlib gives its files.

The layout of a cache is described in ``serlib.features.keys`` (folders) and ``serlib.features.shards``
(the files of a folder).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Sequence

import pandas as pd

from serlib.common.config import ConfigError, load_config
from serlib.common.locking import file_lock
from serlib.common.runfolder import RunFolder, default_run_root, features_cache_dir
from serlib.features.keys import KEY_FOLDER, inputs_for_run, key_name
from serlib.features.layers import plan_layers
from serlib.features.shards import (
    CACHE_MARKER,
    LAST_USED,
    LOCK,
    BadShardError,
    cache_bytes,
    clean_temporary,
    load_shard,
    mark_cache,
    read_shards,
    root_lock,
)


class CacheNotWritableError(PermissionError):
    """Clips need computing but the cache folder cannot be written."""


def clean_cache_root(cache_root: Path) -> None:
    """Mark the cache, and remove what serlib's interrupted writes left at its top: memo temporaries,
    half-pruned key folders (only the names serlib gives them)."""
    if cache_root.is_dir():
        mark_cache(cache_root)
        with root_lock(cache_root):
            clean_temporary(cache_root)
        _clean_deleting(cache_root)


# --------------------------------------------------------------------------- serlib cache list | prune


CACHE_COLUMNS = ["key", "input", "settings", "clips", "mb", "last_used", "bad_shards"]


_NOT_SETTINGS = ("format", "input", "model_files")  # in the key, but not what a reader compares


def cache_root(target: str | Path) -> Path:
    """The cache a ``serlib cache`` command works on: a folder as given, or a parameters file's
    cache (``features.cache_dir``, else ``<project>/reports/<run>/data/features``)."""
    target = Path(target)
    if target.is_dir():
        return target
    cfg = load_config(target)
    return features_cache_dir(cfg, RunFolder(default_run_root(cfg)))


def list_cache(root: str | Path, verify: bool = False) -> pd.DataFrame:
    """What the cache holds, one row per key folder (``serlib cache list``); changes nothing.

    Args:
        root: the cache folder (``cache_root``).
        verify: also read every shard and check its CRC-32 (reads the whole cache).

    Returns:
        ``CACHE_COLUMNS``: key (folder name), input, settings (the key's main settings), clips,
        mb (MiB on disk), last_used (local time of the last extraction or load), bad_shards
        (shards that fail the checks; they are dropped at the next extraction or load).
    """
    root = Path(root)
    folders = [k for k in sorted(root.iterdir()) if KEY_FOLDER.fullmatch(k.name)] if root.is_dir() else []
    return pd.DataFrame([_describe(k, verify) for k in folders], columns=CACHE_COLUMNS)


def _describe(kdir: Path, verify: bool) -> dict:
    shards, bad = read_shards(kdir, drop=False)
    if verify:
        for npy, shard in shards.items():
            try:
                load_shard(kdir, shard)
            except (BadShardError, OSError) as err:
                bad[npy] = str(err)
    try:
        key = json.loads((kdir / "key.json").read_bytes())["key"]
        settings = ", ".join(f"{k}={v}" for k, v in key.items() if k not in _NOT_SETTINGS and v not in (None, {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        settings = "(key.json missing or unreadable)"
    stamps = [p.stat().st_mtime for p in (kdir / LAST_USED, kdir / "key.json") if p.is_file()]
    return {
        "key": kdir.name,
        "input": kdir.name.split("-")[0],
        "settings": settings,
        "clips": len({d for npy, s in shards.items() if npy not in bad for d, _, _ in s.rows}),
        "mb": round(cache_bytes(kdir) / 2**20, 2),
        "last_used": time.strftime("%Y-%m-%d %H:%M", time.localtime(max(stamps))) if stamps else "",
        "bad_shards": len(bad),
    }


def prune_cache(root: str | Path, params_files: Sequence[str | Path], delete: bool = False) -> pd.DataFrame:
    """Key folders that none of ``params_files`` uses, removed only when ``delete`` is True.

    A parameters file uses the key folder of each input its systems read (``inputs_for_run``) with
    its feature settings, one per wav2vec2 layer it caches (``LayerPlan.cached``), in any cache. The
    default is a dry run: nothing changes and the table says what would go (``serlib cache prune
    PARAMS... [--cache DIR] [--delete]``). A folder whose extraction is running (its lock held) is skipped.

    Args:
        root: the cache folder.
        params_files: the parameters files whose features must stay (at least one).
        delete: remove the unused folders (False: only list them).

    Returns:
        ``list_cache``'s columns plus ``used_by`` (the parameters files using the folder, "" if
        none) and ``action``: "kept", "would remove", "removed" or "skipped: in use".
    """
    if not params_files:
        raise ConfigError("serlib cache prune: name the parameters files whose features must stay (at least one)")
    if not (Path(root) / CACHE_MARKER).is_file():
        raise ConfigError(
            f"{root} is not a serlib feature cache (no {CACHE_MARKER} marker), so prune changes nothing "
            "there; name the cache folder (`serlib features PARAMS` marks the cache it fills or reads)"
        )
    used: dict[str, list[str]] = {}
    for params in params_files:
        cfg = load_config(params)
        plan = plan_layers(cfg)
        for input in inputs_for_run(cfg):
            for feature in plan.keys(input):
                used.setdefault(key_name(cfg, feature), []).append(Path(params).name)
    table = list_cache(root)
    table["used_by"] = [", ".join(used.get(k, [])) for k in table["key"]]
    table["action"] = ["kept" if k in used else ("removed" if delete else "would remove") for k in table["key"]]
    if delete:
        clean_cache_root(Path(root))
        for i in table.index[table["action"] == "removed"]:
            if not _remove_key_folder(Path(root) / table.at[i, "key"]):
                table.at[i, "action"] = "skipped: in use"
    return table


class _Busy(Exception):
    pass


def _remove_key_folder(kdir: Path) -> bool:
    """Rename the folder aside and delete it, unless an extraction holds its lock."""

    def busy(_holder: str) -> None:
        raise _Busy

    aside = kdir.with_name(f".{kdir.name}.{uuid.uuid4().hex[:8]}.deleting")
    try:
        with file_lock(kdir / LOCK, on_wait=busy):
            os.rename(kdir, aside)  # one step: a crash leaves the folder whole or out of sight
    except _Busy:
        return False
    shutil.rmtree(aside, ignore_errors=True)
    return True


def _clean_deleting(root: Path) -> None:
    """Finish removals that a crash interrupted (key folders ``_remove_key_folder`` renamed aside, only)."""
    for aside in root.glob(".*.deleting"):
        name = aside.name[1 : -len(".deleting")]
        if (
            aside.is_dir()
            and not aside.is_symlink()
            and KEY_FOLDER.fullmatch(name[:-9])
            and re.fullmatch(r"\.[0-9a-f]{8}", name[-9:])
        ):
            shutil.rmtree(aside, ignore_errors=True)
