"""Frozen-encoder features, computed once and read from an on-disk cache (paper 2.3, 3.4).

The paper recomputes wav2vec2 embeddings every epoch; serlib computes them once per clip and
trains from the cache.

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

Clips are sorted by length and cut into batches of at most ``batch_size`` clips and
``max_batch_seconds`` of padded audio. Padding never changes a clip's features: the encoders
mask it out of every statistic (``serlib.encoders``), so a clip's frames equal its
one-clip-alone frames to float rounding (tests/test_features.py). With
``features.wav2vec2.batching: equal`` only clips of exactly equal sample count share a batch
(the rule before masking; RAVDESS has 104 distinct lengths in 1440 files, EmoDB 530 in 535).

A clip that cannot be read is reported with its path and reason (a warning, and
``<run>/data/features_failed.csv``) and the run goes on; at load time its manifest row is
dropped with a warning (``FeatureSet.missing``), never zero-filled.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import CLASSES
from .config import Config, ConfigError
from .encoders import (INPUTS, RANDOM_WEIGHTS_SEED, build_encoder, cpu_threads, encoder_description, load_audio,
                       probe_samples, resolve_device, trim_span)
from .runfolder import RunFolder, features_cache_dir

CACHE_FORMAT = 1  # bump when the stored layout or the computation changes
SHARD_CLIPS = 64  # clips per shard file
SHARD_SECONDS = 30.0  # flush a partial shard at least this often (bounds work lost to a kill)


@dataclass
class FeatureSet:
    """Features of a manifest's clips, padded to one tensor.

    Attributes:
        x: ``(n, channels, frames)`` float32, centre-trimmed / zero-padded at the end.
        lengths: ``(n,)`` long, true frames per clip (``<= frames``).
        utt_ids: manifest order, clips that failed to load left out.
        labels: ``(n,)`` long indices into ``serlib.CLASSES`` (None if the manifest has no labels).
        input: "wav2vec2" or "logmel".
        description: what computed them (``encoder_description``).
        missing: utt_ids of manifest rows dropped because their audio could not be read.
    """

    x: torch.Tensor
    lengths: torch.Tensor
    utt_ids: list[str]
    labels: Optional[torch.Tensor]
    input: str
    description: str
    missing: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- keys and hashes


def cache_key(cfg: Config, input: str) -> dict:
    """Everything that determines a clip's stored features for ``input`` (besides its content)."""
    f = cfg.features
    key = {"format": CACHE_FORMAT, "input": input, "sample_rate": f.sample_rate}
    if input == "logmel":
        m = f.logmel
        return key | {"n_mels": m.n_mels, "win_ms": m.win_ms, "hop_ms": m.hop_ms, "log_floor": m.log_floor,
                     "standardise": m.standardise}
    if input != "wav2vec2":
        raise ConfigError(f"unknown feature input {input!r}; expected one of {', '.join(INPUTS)}")
    w = f.wav2vec2
    key |= {"model_id": w.model_id, "revision": w.revision, "weights": w.weights, "layer": w.layer,
            "config_overrides": w.config_overrides}
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
        _write_json(memo_path, memo)
    return hashes, errors


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


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
        _write_json(self.kdir / f"{name}.json", rows)
        self.clips, self.rows = [], []


def cache_bytes(path: Path) -> int:
    """Bytes on disk under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# --------------------------------------------------------------------------- extraction


def inputs_for_run(cfg: Config) -> list[str]:
    """The inputs the run's systems read; both when no system is configured."""
    used = {s.input for s in cfg.systems.values()}
    return [i for i in INPUTS if i in used] if used else list(INPUTS)


def _batches(jobs: list[tuple[str, str, int]], batch_size: int, max_samples: int,
             mix: bool) -> list[list[tuple[str, str, int]]]:
    """Cut ``(digest, path, samples)`` jobs, sorted by length, into batches.

    A batch holds at most ``batch_size`` clips and, padded to its longest clip, at most
    ``max_samples`` samples (a longer clip goes alone). ``mix`` False: equal sample counts only.
    """
    batches, current = [], []
    for job in sorted(jobs, key=lambda j: j[2]):
        full = len(current) == batch_size or (len(current) + 1) * job[2] > max_samples
        if current and (full or (not mix and job[2] != current[0][2])):
            batches.append(current)
            current = []
        current.append(job)
    return batches + ([current] if current else [])


def _encode_batch(encoder, batch, sample_rate: int, device, writer: ShardWriter, failures: dict,
                  threads: Optional[int] = None) -> int:
    """Load, encode and store one batch; returns how many clips were stored."""
    with cpu_threads(1):
        waves = _load_batch(batch, sample_rate, encoder.min_samples, failures)
    groups: dict[int, list[str]] = {}
    for digest, wave in waves.items():  # the header's length is checked, not trusted
        groups.setdefault(0 if encoder.mixes_lengths else len(wave), []).append(digest)
    for digests in groups.values():
        lengths = [len(waves[d]) for d in digests]
        padded = np.zeros((len(digests), max(lengths)), dtype=np.float32)  # (batch, samples), zeros at the end
        for row, digest in zip(padded, digests):
            row[:len(waves[digest])] = waves[digest]
        with cpu_threads(1 if encoder.name == "logmel" else threads):
            out = encoder(torch.from_numpy(padded).to(device),
                          torch.tensor(lengths, device=device)).cpu().numpy()  # (batch, channels, frames)
        for digest, clip, n in zip(digests, out, lengths):
            writer.add(digest, clip[:, :encoder.frames_for(n)])
    return len(waves)


def _load_batch(batch, sample_rate: int, min_samples: int, failures: dict) -> dict[str, np.ndarray]:
    """``{digest: waveform}`` of a batch's readable clips; the others go to ``failures``."""
    waves = {}
    for digest, path, _ in batch:
        try:
            wave = load_audio(path, sample_rate)
            if len(wave) < min_samples:
                raise ValueError(f"{len(wave)} samples is shorter than one frame ({min_samples})")
            waves[digest] = wave
        except Exception as err:  # one bad clip never stops the run
            failures[path] = f"{type(err).__name__}: {err}"
    return waves


def _compute(cfg: Config, kdir: Path, input: str, jobs: dict[str, str], failures: dict,
             device: torch.device) -> dict:
    """Encode the ``{digest: path}`` clips missing from the cache; returns timing statistics."""
    sr = cfg.features.sample_rate
    if cfg.features.threads is not None and cfg.features.threads < 1:
        raise ConfigError(f"features.threads must be a positive integer or null, got {cfg.features.threads}")
    probed = []
    for digest, path in jobs.items():
        try:
            probed.append((digest, path, probe_samples(path, sr)))
        except Exception as err:
            failures[path] = f"{type(err).__name__}: {err}"
    w = cfg.features.wav2vec2
    batch_size = w.batch_size if input == "wav2vec2" else 64
    mix = input == "logmel" or w.batching == "masked"
    batches = _batches(probed, batch_size, int(w.max_batch_seconds * sr), mix)
    stats = {"computed": 0, "batches": len(batches), "compute_seconds": 0.0}
    if not batches:
        return stats
    start = time.perf_counter()
    encoder = build_encoder(cfg.features, input, device)
    writer = ShardWriter(kdir)
    bar = tqdm(total=len(probed), unit="clip", desc=f"{input} features", mininterval=1.0)
    try:
        for batch in batches:
            stats["computed"] += _encode_batch(encoder, batch, sr, device, writer, failures, cfg.features.threads)
            bar.update(len(batch))
    finally:  # keep what was computed, also on Ctrl-C or an error
        writer.flush()
        bar.close()
    stats["compute_seconds"] = time.perf_counter() - start
    return stats


def _write_key(kdir: Path, cfg: Config, input: str, stats: dict, device: torch.device) -> dict:
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
    _write_json(path, meta)
    return meta


def extract(cfg: Config, folder: RunFolder, manifest: pd.DataFrame, input: str,
            device: Optional[torch.device] = None) -> dict:
    """Fill the cache for ``input`` over the manifest's clips (only what is missing).

    Args:
        cfg: the run configuration.
        folder: the run folder (locates the default cache).
        manifest: needs ``utt_id`` and ``path`` columns.
        input: "wav2vec2" or "logmel".
        device: default ``features.device``.

    Returns:
        Statistics: clips, computed, cached, failed (``{utt_id: reason}``), seconds, clips_per_s, ...
    """
    start = time.perf_counter()
    device = device or resolve_device(cfg.features.device)
    kdir = key_folder(cfg, folder, input)
    kdir.mkdir(parents=True, exist_ok=True)
    paths = manifest["path"].astype(str).tolist()
    hashes, failures = content_hashes(paths, kdir.parent)
    index = read_index(kdir)
    jobs = {h: p for h, p in zip(hashes, paths) if h is not None and h not in index}
    stats = _compute(cfg, kdir, input, jobs, failures, device)
    meta = _write_key(kdir, cfg, input, stats, device)
    failed = {u: f"{p}: {failures[p]}" for u, p in zip(manifest["utt_id"], paths) if p in failures}
    for utt, reason in failed.items():
        warnings.warn(f"{input}: skipped {utt} ({reason})", stacklevel=2)
    seconds = time.perf_counter() - start
    return {
        "clips": len(paths), "computed": stats["computed"], "cached": sum(h in index for h in hashes),
        "failed": failed, "seconds": round(seconds, 3),
        "clips_per_s": round(stats["computed"] / stats["compute_seconds"], 3) if stats["computed"] else None,
        "last_compute": meta.get("last_compute"), "cache_dir": str(kdir), "cache_bytes": cache_bytes(kdir),
        "encoder": meta["encoder"], "weights": cfg.features.wav2vec2.weights if input == "wav2vec2" else "n/a",
        "device": str(device)}


def extract_for_run(cfg: Config, folder: RunFolder, inputs: Optional[list[str]] = None) -> dict:
    """Fill the feature cache for the run's manifest; write ``data/features_summary.json``.

    Args:
        cfg: the run configuration.
        folder: the run folder holding ``data/manifest.csv``.
        inputs: default: the inputs ``cfg.systems`` read (both when there are no systems).

    Returns:
        The summary: ``{"inputs": {input: statistics}, "audio_seconds": ..., "clips": ...}``.
    """
    from .mculp import load_manifest

    manifest = load_manifest(folder)
    path = folder.data / "features_summary.json"
    earlier = json.loads(path.read_text()).get("inputs", {}) if path.is_file() else {}
    summary = {"clips": len(manifest), "inputs": earlier,  # inputs not extracted now keep their entry
               "audio_seconds": round(float(manifest["duration_s"].sum()), 1) if "duration_s" in manifest else None}
    for input in inputs or inputs_for_run(cfg):
        stats = extract(cfg, folder, manifest, input)
        summary["inputs"][input] = stats
        rate = f", {stats['clips_per_s']:.1f} clips/s" if stats["clips_per_s"] else ""
        print(f"{input}: {stats['clips']} clips ({stats['computed']} computed, {stats['cached']} cached, "
              f"{len(stats['failed'])} failed) in {stats['seconds']:.1f} s{rate}; "
              f"cache {stats['cache_bytes'] / 2**20:.1f} MiB in {stats['cache_dir']}")
    _write_json(path, summary)
    failed = [{"input": i, "utt_id": u, "reason": r}
              for i, stats in summary["inputs"].items() for u, r in stats["failed"].items()]
    pd.DataFrame(failed, columns=["input", "utt_id", "reason"]).to_csv(folder.data / "features_failed.csv",
                                                                       index=False)
    return summary


# --------------------------------------------------------------------------- loading


def _fill(x: torch.Tensor, lengths: torch.Tensor, rows: list, kdir: Path, frames: int) -> None:
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


def load_features(cfg: Config, folder: RunFolder, manifest: pd.DataFrame, input: str,
                  device: Optional[str | torch.device] = None, extract_missing: bool = True,
                  dtype: torch.dtype = torch.float32) -> FeatureSet:
    """The cached features of ``manifest``'s clips as one padded tensor.

    Clips not yet cached are computed first (``extract_missing``); rows whose audio cannot be
    read are dropped with a warning (listed in ``FeatureSet.missing``), never zero-filled.

    Args:
        cfg: the run configuration (``features.frames`` sets the tensor length).
        folder: the run folder.
        manifest: rows to load (e.g. one split), ``utt_id`` and ``path`` columns; order is kept.
        input: "wav2vec2" or "logmel".
        device: where ``x`` and ``lengths`` go (default CPU).
        extract_missing: compute clips missing from the cache instead of failing.
        dtype: of ``x`` (float32 per the contract; float16 halves the memory).

    Returns:
        A ``FeatureSet``: ``x`` ``(n, channels, frames)``, ``lengths`` ``(n,)``.
    """
    kdir = key_folder(cfg, folder, input)
    paths = manifest["path"].astype(str).tolist()
    hashes, _ = content_hashes(paths, kdir.parent)
    index = read_index(kdir)
    if extract_missing and any(h is None or h not in index for h in hashes):
        extract(cfg, folder, manifest[[h is None or h not in index for h in hashes]], input)
        index = read_index(kdir)
    keep = [i for i, h in enumerate(hashes) if h is not None and h in index]
    kept_rows = set(keep)
    missing = [u for i, u in enumerate(manifest["utt_id"]) if i not in kept_rows]
    if missing:
        warnings.warn(f"{input}: {len(missing)} manifest row(s) have no features (audio unreadable"
                      f"{'' if extract_missing else ', or not extracted yet: run `serlib features`'}) and are "
                      f"left out: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}", stacklevel=2)
    channels = _channels(kdir, index, cfg, input)
    frames = cfg.features.frames
    x = torch.empty((len(keep), channels, frames), dtype=dtype)  # (n, channels, frames), filled by _fill
    lengths = torch.zeros(len(keep), dtype=torch.long)
    with cpu_threads(1):  # thousands of small copies: thread sync would cost more than it saves
        _fill(x, lengths, [(j, index[hashes[i]]) for j, i in enumerate(keep)], kdir, frames)
    kept = manifest.iloc[keep]
    labels = (torch.tensor([CLASSES.index(lbl) for lbl in kept["label"]], dtype=torch.long)
              if "label" in kept else None)
    target = torch.device(device) if device is not None else torch.device("cpu")
    return FeatureSet(x=x.to(target), lengths=lengths.to(target), utt_ids=kept["utt_id"].tolist(),
                      labels=labels.to(target) if labels is not None else None, input=input,
                      description=encoder_description(cfg, input), missing=missing)


def _channels(kdir: Path, index: dict, cfg: Config, input: str) -> int:
    if index:
        npy = next(iter(index.values()))[0]
        return int(np.load(kdir / npy, mmap_mode="r").shape[0])
    if input == "logmel":
        return cfg.features.logmel.n_mels
    return int(cfg.features.wav2vec2.config_overrides.get("hidden_size", 768))
