"""The feature cache: computed once per clip, keyed by its content and by what computes it (paper 2.3, 3.4).

The paper recomputes wav2vec2 embeddings every epoch; serlib computes them once per clip and
trains from the cache (``serlib.features.extract`` fills it and loads from it).

Cache layout (``features.cache_dir``, default ``<run>/data/features``; shareable between runs)::

    <cache>/content_hashes.json          path -> (size, mtime, content hash) memo
    <cache>/<input>-<key id>/key.json    what determines the features + the encoder description
    <cache>/<input>-<key id>/shard-*.npy (channels, frames) float16, clips one after another in time
    <cache>/<input>-<key id>/shard-*.json [[content hash, frame offset, frames], ...] for that shard

An entry is keyed by the clip's content hash inside a folder keyed by everything else that
determines it (encoder id + revision, weights mode, seed, layer, overrides, sample rate, log-Mel
settings). Each clip's full frame sequence is stored (no padding); trimming/padding to
``features.frames`` happens at load time, so changing ``frames`` recomputes nothing. A shard is
written to a temporary name and renamed, then its index is renamed in: a shard counts only once
its index exists, so an interrupted extraction keeps every flushed shard and resumes from there.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from serlib.common.config import Config, ConfigError, non_default
from serlib.common.io import write_json_atomic
from serlib.common.runfolder import RunFolder, features_cache_dir
from serlib.features.encoders import INPUTS, RANDOM_WEIGHTS_SEED, encoder_description, trim_span

CACHE_FORMAT = 1  # bump when the stored layout or the computation changes
SHARD_CLIPS = 64  # clips per shard file
SHARD_SECONDS = 30.0  # flush a partial shard at least this often (bounds work lost to a kill)


# --------------------------------------------------------------------------- keys and hashes


# Fields of the features sections that do not determine a clip's stored features. The others enter
# the key: today's by name (existing caches stay valid), a field added later only when set off its
# default (``non_default``), so adding one invalidates nothing and changing it recomputes.
NOT_IN_KEY = {"features": ("frames", "cache_dir", "device", "threads", "wav2vec2", "logmel"),
              "wav2vec2": ("batch_size", "batching", "max_batch_seconds", "mixed_precision"), "logmel": ()}


def _added(section, named: dict, name: str) -> dict:
    skip = set(named) | set(NOT_IN_KEY[name])
    return {k: v for k, v in non_default(section).items() if k not in skip}


def cache_key(cfg: Config, input: str) -> dict:
    """Everything that determines a clip's stored features for ``input`` (besides its content)."""
    f = cfg.features
    key = {"format": CACHE_FORMAT, "input": input, "sample_rate": f.sample_rate}
    key |= _added(f, key, "features")
    if input == "logmel":
        m = f.logmel
        named = {"n_mels": m.n_mels, "win_ms": m.win_ms, "hop_ms": m.hop_ms, "log_floor": m.log_floor,
                 "standardise": m.standardise}
        return key | named | _added(m, named, "logmel")
    if input != "wav2vec2":
        raise ConfigError(f"unknown feature input {input!r}; expected one of {', '.join(INPUTS)}")
    w = f.wav2vec2
    named = {"model_id": w.model_id, "revision": w.revision, "weights": w.weights, "layer": w.layer,
             "config_overrides": w.config_overrides}
    key |= named | _added(w, named, "wav2vec2")
    if Path(w.model_id).is_dir():  # a local folder: its files' sizes and times stand for its content
        files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                       for p in Path(w.model_id).iterdir() if p.is_file())
        key["model_files"] = hashlib.sha1(json.dumps(files).encode()).hexdigest()[:16]
    if w.weights == "random":  # random initialisation can change with the library versions
        from importlib.metadata import version  # the installed version without importing transformers (~2 s)

        key |= {"seed": RANDOM_WEIGHTS_SEED, "torch": torch.__version__.split("+")[0],
                "transformers": version("transformers")}
    return key


def key_folder(cfg: Config, folder: RunFolder, input: str) -> Path:
    """``<cache>/<input>-<16 hex of the key>``."""
    key = cache_key(cfg, input)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return features_cache_dir(cfg, folder) / f"{input}-{digest}"


def _hash_file(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_hashes(paths: list[str], cache_root: Path) -> tuple[list[Optional[str]], dict[str, str]]:
    """Content hash of each file (memoised by path, size and mtime); unreadable files give None.

    Returns:
        The hashes in ``paths`` order and ``{path: reason}`` for files that could not be read.
    """
    memo_path = cache_root / "content_hashes.json"
    memo = json.loads(memo_path.read_text()) if memo_path.is_file() else {}
    hashes, errors, changed = [], {}, False
    for path in paths:
        try:
            st = os.stat(path)
            entry = memo.get(path)
            if not entry or entry[:2] != [st.st_size, st.st_mtime_ns]:
                memo[path], changed = [st.st_size, st.st_mtime_ns, _hash_file(path)], True
            hashes.append(memo[path][2])
        except OSError as err:
            hashes.append(None)
            errors[path] = f"{type(err).__name__}: {err.strerror or err}"
    if changed:
        write_json_atomic(memo_path, memo)
    return hashes, errors


# --------------------------------------------------------------------------- the shard store


def read_index(kdir: Path) -> dict[str, tuple[str, int, int]]:
    """``{content hash: (shard .npy name, frame offset, frames)}`` over every completed shard."""
    index = {}
    for meta in sorted(kdir.glob("shard-*.json")):
        npy = meta.with_suffix(".npy").name
        for digest, offset, frames in json.loads(meta.read_text()):
            index[digest] = (npy, offset, frames)
    return index


class ShardWriter:
    """Collects computed clips and writes them as atomic shards (``.npy`` then its ``.json`` index)."""

    def __init__(self, kdir: Path):
        self.kdir, self.clips, self.rows, self.last_flush = kdir, [], [], time.monotonic()
        kdir.mkdir(parents=True, exist_ok=True)

    def add(self, digest: str, clip: np.ndarray) -> None:
        """``clip``: ``(channels, frames)``; stored as float16."""
        self.clips.append(clip.astype(np.float16))
        self.rows.append(digest)
        if len(self.clips) >= SHARD_CLIPS or time.monotonic() - self.last_flush > SHARD_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.clips:
            return
        name = f"shard-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        offsets = np.cumsum([0] + [c.shape[1] for c in self.clips])
        tmp = self.kdir / f".{name}.npy.tmp"
        with open(tmp, "wb") as fh:  # channel-major: loading copies rows without a transpose
            np.save(fh, np.concatenate(self.clips, axis=1))  # (channels, total frames)
        os.replace(tmp, self.kdir / f"{name}.npy")
        rows = [[d, int(o), int(c.shape[1])] for d, o, c in zip(self.rows, offsets, self.clips)]
        write_json_atomic(self.kdir / f"{name}.json", rows)
        self.clips, self.rows = [], []


def cache_bytes(path: Path) -> int:
    """Bytes on disk under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def write_key(kdir: Path, cfg: Config, input: str, stats: dict, device: torch.device) -> dict:
    """Create or update ``key.json``; remembers the last measured throughput."""
    path = kdir / "key.json"
    meta = json.loads(path.read_text()) if path.is_file() else {}
    meta |= {"key": cache_key(cfg, input), "encoder": encoder_description(cfg, input)}
    if stats.get("computed"):
        meta["last_compute"] = {
            "clips": stats["computed"], "seconds": round(stats["compute_seconds"], 3),
            "clips_per_s": round(stats["computed"] / max(stats["compute_seconds"], 1e-9), 3),
            "device": str(device),
            "torch_threads": 1 if input == "logmel" else cfg.features.threads or torch.get_num_threads(),
            "mean_batch": round(stats["computed"] / max(stats["batches"], 1), 2),
            "batching": cfg.features.wav2vec2.batching if input == "wav2vec2" else "masked",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json_atomic(path, meta)
    return meta


# --------------------------------------------------------------------------- reading


def fill_from_cache(x: torch.Tensor, lengths: torch.Tensor, rows: list, kdir: Path, frames: int) -> None:
    """Fill ``x`` ``(n, channels, frames)`` from the cache; ``rows`` = [(i, (npy, offset, count))].

    Same result as ``fit_frames`` per clip (centre trim, padding at the end), without temporaries.
    """
    by_shard: dict[str, list] = {}
    for i, (npy, offset, count) in rows:
        by_shard.setdefault(npy, []).append((i, offset, count))
    for npy, clips in by_shard.items():  # one shard in memory at a time, converted once (fast path)
        shard = torch.from_numpy(np.load(kdir / npy)).to(x.dtype)  # (channels, total frames)
        for i, offset, count in clips:
            start, kept = trim_span(count, frames)
            x[i, :, :kept] = shard[:, offset + start:offset + start + kept]
            x[i, :, kept:] = 0
            lengths[i] = kept


def stored_channels(kdir: Path, index: dict, cfg: Config, input: str) -> int:
    if index:
        npy = next(iter(index.values()))[0]
        return int(np.load(kdir / npy, mmap_mode="r").shape[0])
    if input == "logmel":
        return cfg.features.logmel.n_mels
    return int(cfg.features.wav2vec2.config_overrides.get("hidden_size", 768))
