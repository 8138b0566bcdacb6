"""The feature cache's keys: which folder holds a clip's features, and the clip's content hash.

Cache layout (``features.cache_dir``, default ``<run>/data/features``; shareable between runs)::

    <cache>/.serlib-feature-cache        the marker: serlib made this cache (prune works only where it is)
    <cache>/content_hashes.json          path -> (size, mtime_ns, inode, ctime_ns, content hash) memo
    <cache>/<input>-<key id>/key.json    what determines the features + the encoder description
    <cache>/<input>-<key id>/shard-*     the shards (``serlib.features.shards``)

An entry is keyed by the clip's content hash inside a folder keyed by everything else that determines it
(encoder id + revision, weights mode, seed, layer, overrides, sample rate, log-Mel settings). The folder is
named by an explicit ``FeatureKey(input, layer)`` (``serlib.features.layers.LayerPlan.key``): each encoder
layer is its own folder (the last layer is ``layer: last`` whether it is asked for as "last" or by its
index), so a run can add layers without touching the ones it has. ``features.frames`` is not in the key:
trimming happens when a clip is read, so changing ``frames`` recomputes nothing.

The content-hash memo trusts a file's hash while its size, modification time, inode and status-change time
(``ctime``: set by the system on every write and by no user tool) are unchanged; an entry written before
inode and ctime were recorded is hashed again once. A corrupt ``content_hashes.json`` is named and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import warnings
from pathlib import Path
from typing import Optional

import torch

from serlib.common.config import Config, ConfigError, non_default
from serlib.common.digest import json_digest
from serlib.common.io import write_json_atomic
from serlib.common.runfolder import RunFolder, features_cache_dir
from serlib.common.runtime import device_choice
from serlib.features.encoders import INPUTS, RANDOM_WEIGHTS_SEED, encoder_description
from serlib.features.layers import SSL_INPUTS, FeatureKey
from serlib.features.shards import MEMO, make_folder, mark_cache, root_lock

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the stored layout or the computation changes


KEY_FOLDER = re.compile(rf"({'|'.join(INPUTS)})-[0-9a-f]{{16}}")


# Fields of the features sections that do not determine a clip's stored features. The others enter
# the key: today's by name (existing caches stay valid), a field added later only when set off its
# default (``non_default``), so adding one invalidates nothing and changing it recomputes.
NOT_IN_KEY = {
    "features": ("frames", "cache_dir", "device", "threads", "wav2vec2", "logmel"),
    "wav2vec2": ("batch_size", "batching", "max_batch_seconds", "mixed_precision"),
    "logmel": (),
}


def _added(section, named: dict, name: str) -> dict:
    skip = set(named) | set(NOT_IN_KEY[name])
    return {k: v for k, v in non_default(section).items() if k not in skip}


def inputs_for_run(cfg: Config) -> list[str]:
    """The cached inputs the run's systems (and its layer probe) read; both when no system is configured.
    A system reading several wav2vec2 layers (``wav2vec2_layers``) reads the wav2vec2 cache."""
    used = {"wav2vec2" if s.input in SSL_INPUTS else s.input for s in cfg.systems.values()}
    if cfg.analysis.layer_probe is not None:
        used.add("wav2vec2")
    return [i for i in INPUTS if i in used] if used else list(INPUTS)


def encoder_compute(cfg: Config) -> str:
    """The wav2vec2 encoder's compute dtype for this config: "float16-autocast" when
    ``mixed_precision`` is on and ``features.device`` resolves to a GPU (as ``serlib.features.encoders``
    runs it), else "float32"."""
    device, _ = device_choice(cfg.features.device)
    return "float16-autocast" if cfg.features.wav2vec2.mixed_precision and device == "cuda" else "float32"


def cache_key(cfg: Config, feature: FeatureKey) -> dict:
    """Everything that determines a clip's stored features for ``feature`` (besides its content).

    Args:
        cfg: the run configuration (its ``features`` section).
        feature: the input and, for wav2vec2, the layer as the cache names it (``LayerPlan.key``).
    """
    input, f = feature.input, cfg.features
    key = {"format": CACHE_FORMAT, "input": input, "sample_rate": f.sample_rate}
    key |= _added(f, key, "features")
    if input == "logmel":
        m = f.logmel
        named = {
            "n_mels": m.n_mels,
            "win_ms": m.win_ms,
            "hop_ms": m.hop_ms,
            "log_floor": m.log_floor,
            "standardise": m.standardise,
        }
        return key | named | _added(m, named, "logmel")
    if input != "wav2vec2":
        raise ConfigError(f"unknown feature input {input!r}; expected one of {', '.join(INPUTS)}")
    if feature.layer is None:
        raise ValueError("a wav2vec2 cache key names its layer: build it with serlib.features.layers.LayerPlan.key")
    w = f.wav2vec2
    named = {
        "model_id": w.model_id,
        "revision": w.revision,
        "weights": w.weights,
        "layer": feature.layer,  # as the cache names it: index N is stored as "last"
        "config_overrides": w.config_overrides,
    }
    key |= named | _added(w, named, "wav2vec2")
    compute = encoder_compute(cfg)
    if compute != "float32":  # fp16 autocast on a GPU stores other values than fp32: another key (fp32 keys unchanged)
        key["compute"] = compute
    if Path(w.model_id).is_dir():  # a local folder: its files' sizes and times stand for its content
        files = sorted(
            (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(w.model_id).iterdir() if p.is_file()
        )
        key["model_files"] = json_digest(files, algorithm="sha1")
    if w.weights == "random":  # random initialisation can change with the library versions
        from importlib.metadata import version  # the installed version without importing transformers (~2 s)

        key |= {
            "seed": RANDOM_WEIGHTS_SEED,
            "torch": torch.__version__.split("+")[0],
            "transformers": version("transformers"),
        }
    return key


def key_name(cfg: Config, feature: FeatureKey) -> str:
    """``<input>-<16 hex of the key>``: the key folder's name, the same in every cache."""
    return f"{feature.input}-{json_digest(cache_key(cfg, feature), algorithm='sha1')}"


def key_folder(cfg: Config, folder: RunFolder, feature: FeatureKey) -> Path:
    """``<cache>/<input>-<16 hex of the key>``."""
    return features_cache_dir(cfg, folder) / key_name(cfg, feature)


def write_key(kdir: Path, cfg: Config, feature: FeatureKey, stats: dict, device: torch.device) -> dict:
    """Create or update ``key.json``; remembers the last measured throughput.

    Nothing is written when nothing was computed and the file already says the same (a cache that
    is only read, perhaps read-only, stays untouched).
    """
    path = kdir / "key.json"
    try:
        meta = json.loads(path.read_bytes()) if path.is_file() else {}
        meta = meta if isinstance(meta, dict) else {}
    except ValueError:
        warnings.warn(f"feature cache: {path} is not valid JSON; rewritten", UserWarning, stacklevel=2)
        meta = {}
    input = feature.input
    described = {
        "key": json.loads(json.dumps(cache_key(cfg, feature), default=str)),
        "encoder": encoder_description(cfg, input, feature.layer),
    }
    if not stats.get("computed") and all(meta.get(k) == v for k, v in described.items()):
        return meta
    meta |= described
    if stats.get("computed"):
        meta["last_compute"] = {
            "clips": stats["computed"],
            "seconds": round(stats["compute_seconds"], 3),
            "clips_per_s": round(stats["computed"] / max(stats["compute_seconds"], 1e-9), 3),
            "device": str(device),
            "torch_threads": 1 if input == "logmel" else cfg.features.threads or torch.get_num_threads(),
            "mean_batch": round(stats["computed"] / max(stats["batches"], 1), 2),
            "batching": cfg.features.wav2vec2.batching if input == "wav2vec2" else "masked",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    try:
        write_json_atomic(path, meta)
    except OSError as err:
        if stats.get("computed"):
            raise
        log.debug("key.json not updated in %s: %s", kdir, err)  # read-only: it only describes the key
    return meta


# --------------------------------------------------------------------------- content hashes


def _hash_file(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_stamp(st: os.stat_result) -> list[int]:
    """What the memo compares before trusting a file's hash: size, mtime, inode and ctime (nanoseconds).

    ``ctime`` changes on every write and cannot be set back by a user (``touch -d`` and ``os.utime``
    set the mtime, and the system sets ctime to now): audio rewritten with the same size and mtime is
    hashed again.
    """
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def content_hashes(paths: list[str], cache_root: Path) -> tuple[list[Optional[str]], dict[str, str]]:
    """Content hash of each file (memoised by path and ``file_stamp``); unreadable files give None.

    A corrupt memo is named in a warning and rebuilt; a memo that cannot be written (a read-only
    cache) is left as it is.

    Returns:
        The hashes in ``paths`` order and ``{path: reason}`` for files that could not be read.
    """
    memo = _read_memo(cache_root / MEMO)
    hashes, errors, new = [], {}, {}
    for path in paths:
        try:
            stamp = file_stamp(os.stat(path))
            entry = memo.get(path)
            if not entry or entry[:-1] != stamp:  # an entry of the older [size, mtime, hash] form: hashed again
                memo[path] = new[path] = [*stamp, _hash_file(path)]
            hashes.append(memo[path][-1])
        except OSError as err:
            hashes.append(None)
            errors[path] = f"{type(err).__name__}: {err.strerror or err}"
    if new:
        _update_memo(cache_root, new)
    return hashes, errors


def _read_memo(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        memo = json.loads(path.read_bytes())
        if not isinstance(memo, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        warnings.warn(
            f"feature cache: {path} cannot be read ({err}); treated as missing: content hashes are "
            f"recomputed and the file rewritten",
            UserWarning,
            stacklevel=3,
        )
        return {}
    return {p: e for p, e in memo.items() if isinstance(e, list) and len(e) in (3, 5) and isinstance(e[-1], str)}


def _update_memo(cache_root: Path, new: dict) -> None:
    """Merge ``new`` entries into the memo under the cache root's lock (another extraction's stay)."""
    if not make_folder(cache_root):
        return
    mark_cache(cache_root)
    with root_lock(cache_root):
        memo = _read_memo(cache_root / MEMO) | new
        try:
            write_json_atomic(cache_root / MEMO, memo)
        except OSError as err:  # a read-only cache: the memo only saves re-hashing
            log.debug("content hashes not memoised in %s: %s", cache_root, err)
