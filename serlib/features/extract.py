"""Feature extraction into the cache, and loading from it (paper 2.3, 3.4).

Clips are sorted by length and cut into batches of at most ``batch_size`` clips and
``max_batch_seconds`` of padded audio (``plan_batches``). Padding never changes a clip's
features: the encoders mask it out of every statistic (``serlib.features.encoders``), so a
clip's frames equal its one-clip-alone frames to float rounding (tests/test_features.py). With
``features.wav2vec2.batching: equal`` only clips of exactly equal sample count share a batch
(the rule before masking; RAVDESS has 104 distinct lengths in 1440 files, EmoDB 530 in 535).

The cache checks what it reads and is locked while an extraction fills it (``serlib.features.cache``):
a damaged shard is dropped and its clips recomputed by the next extraction, a second extraction on
the same key folder waits and reuses the first's work, and a read-only cache serves a run whose
clips are all cached.

A clip that cannot be read is reported with its path and reason (a warning, and
``<run>/data/features_failed.csv``) and the run goes on; at load time its manifest row is
dropped with a warning (``FeatureSet.missing``), never zero-filled. Loading only reads the
cache: ``serlib.pipeline.ensure_features`` (or ``serlib features``) fills it first.
"""
from __future__ import annotations

import json
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from serlib.common.audio import load_audio, probe_samples
from serlib.common.config import Config
from serlib.common.facts import CLASSES
from serlib.common.io import write_csv_atomic, write_json_atomic
from serlib.common.runfolder import RunFolder
from serlib.common.runtime import cpu_threads, resolve_device
from serlib.data.stage import load_manifest
from serlib.features.cache import (CacheNotWritableError, ShardWriter, cache_bytes, clean_cache_root, clean_temporary,
                                   content_hashes, drop_shard, fill_from_cache, inputs_for_run, is_read_only_error,
                                   key_folder, key_lock, make_folder, read_index, read_shards, shard_index,
                                   stored_channels, touch_last_used, write_key)
from serlib.features.encoders import build_encoder, encoder_description


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


# --------------------------------------------------------------------------- extraction


def plan_batches(jobs: list[tuple[str, str, int]], batch_size: int, max_samples: int,
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
    """Load, encode and store one batch; returns how many clips were stored.

    A clip whose encoder output holds NaN or inf is not stored: it becomes a ``failures`` row.
    """
    with cpu_threads(1):
        waves = _load_batch(batch, sample_rate, encoder.min_samples, failures)
    paths = {digest: path for digest, path, _ in batch}
    stored = 0
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
            frames = clip[:, :encoder.frames_for(n)]  # (channels, frames)
            bad = frames.size - int(np.count_nonzero(np.isfinite(frames)))
            if bad:  # never cached: a NaN feature would turn every weight of a model trained on it to NaN
                failures[paths[digest]] = f"non-finite features: {bad} of {frames.size} values are NaN or inf"
                continue
            writer.add(digest, frames)
            stored += 1
    return stored


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
    probed = []
    for digest, path in jobs.items():
        try:
            probed.append((digest, path, probe_samples(path, sr)))
        except Exception as err:
            failures[path] = f"{type(err).__name__}: {err}"
    w = cfg.features.wav2vec2
    batch_size = w.batch_size if input == "wav2vec2" else 64
    mix = input == "logmel" or w.batching == "masked"
    batches = plan_batches(probed, batch_size, int(w.max_batch_seconds * sr), mix)
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
    paths = manifest["path"].astype(str).tolist()
    hashes, failures = content_hashes(paths, kdir.parent)
    clean_cache_root(kdir.parent)
    exists = make_folder(kdir)  # False: a read-only cache that never held this key
    with key_lock(kdir) if exists else nullcontext():  # a second extraction waits here, then finds it all cached
        clean_temporary(kdir)
        index = read_index(kdir)  # damaged shards are dropped here: their clips are computed below
        jobs = {h: p for h, p in zip(hashes, paths) if h is not None and h not in index}
        try:
            stats = _compute(cfg, kdir, input, jobs, failures, device)
        except OSError as err:
            if not is_read_only_error(err):
                raise
            raise CacheNotWritableError(
                f"{input}: the feature cache {kdir} cannot be written ({err.strerror or err}) and {len(jobs)} "
                f"clip(s) are not cached in it; make it writable or set features.cache_dir to a folder you "
                f"can write") from err
        meta = write_key(kdir, cfg, input, stats, device)
    touch_last_used(kdir)
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
    manifest = load_manifest(folder)
    path = folder.features_summary
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
    failed = [{"input": i, "utt_id": u, "reason": r}
              for i, stats in summary["inputs"].items() for u, r in stats["failed"].items()]
    write_csv_atomic(pd.DataFrame(failed, columns=["input", "utt_id", "reason"]), folder.features_failed)
    write_json_atomic(path, summary)  # the summary last: it says the step finished
    return summary


class FeaturesMissingError(FileNotFoundError):
    """Clips of a manifest have no cached features and no recorded extraction failure."""


def recorded_failures(folder: RunFolder, input: str) -> set[str]:
    """utt_ids whose ``input`` features could not be computed (``data/features_failed.csv``)."""
    if not folder.features_failed.is_file():
        return set()
    failed = pd.read_csv(folder.features_failed, dtype=str, keep_default_na=False)
    return set(failed.loc[failed["input"] == input, "utt_id"])


def load_features(cfg: Config, folder: RunFolder, manifest: pd.DataFrame, input: str,
                  device: Optional[str | torch.device] = None, dtype: torch.dtype = torch.float32) -> FeatureSet:
    """The cached features of ``manifest``'s clips as one padded tensor (reads the cache only).

    Rows whose extraction failed (``data/features_failed.csv``) are dropped with a warning
    (listed in ``FeatureSet.missing``), never zero-filled.

    Args:
        cfg: the run configuration (``features.frames`` sets the tensor length).
        folder: the run folder.
        manifest: rows to load (e.g. one split), ``utt_id`` and ``path`` columns; order is kept.
        input: "wav2vec2" or "logmel".
        device: where ``x`` and ``lengths`` go (default CPU).
        dtype: of ``x`` (float32 per the contract; float16 halves the memory).

    Returns:
        A ``FeatureSet``: ``x`` ``(n, channels, frames)``, ``lengths`` ``(n,)``.

    Raises:
        FeaturesMissingError: clips that were never extracted (fill the cache first:
            ``serlib features PARAMS`` or ``serlib.pipeline.ensure_features``).
    """
    kdir = key_folder(cfg, folder, input)
    paths = manifest["path"].astype(str).tolist()
    hashes, _ = content_hashes(paths, kdir.parent)
    shards, _ = read_shards(kdir)  # size and header checked; damaged shards dropped with a warning
    index = shard_index(shards)
    keep = [i for i, h in enumerate(hashes) if h is not None and h in index]
    kept_rows = set(keep)
    missing = [u for i, u in enumerate(manifest["utt_id"]) if i not in kept_rows]
    never = sorted(set(missing) - recorded_failures(folder, input))
    if never:
        raise FeaturesMissingError(
            f"{input}: {len(never)} clip(s) of the manifest have no cached features in {kdir} (first: {never[0]}); "
            f"fill the cache first: `serlib features {cfg.source or 'PARAMS.yaml'}` (or run notebook 02_features)")
    if missing:
        warnings.warn(f"{input}: {len(missing)} manifest row(s) have no features (their audio could not be "
                      f"encoded: {folder.features_failed}) and are left out: {', '.join(missing[:5])}"
                      f"{' ...' if len(missing) > 5 else ''}", stacklevel=2)
    channels = stored_channels(kdir, index, cfg, input, shards)
    frames = cfg.features.frames
    x = torch.empty((len(keep), channels, frames), dtype=dtype)  # (n, channels, frames), filled from the shards
    lengths = torch.zeros(len(keep), dtype=torch.long)
    with cpu_threads(1):  # thousands of small copies: thread sync would cost more than it saves
        bad = fill_from_cache(x, lengths, [(j, index[hashes[i]]) for j, i in enumerate(keep)], kdir, frames,
                              shards)  # every byte read is checked against the shard's CRC-32
    if bad:
        for npy, reason in bad.items():
            drop_shard(kdir, npy, reason)
        clips = sum(len(shards[npy].rows) for npy in bad)
        raise FeaturesMissingError(
            f"{input}: {len(bad)} damaged shard(s) in {kdir} were dropped ({', '.join(bad)}); recompute their "
            f"{clips} clip(s): `serlib features {cfg.source or 'PARAMS.yaml'}` (or run notebook 02_features)")
    touch_last_used(kdir)
    kept = manifest.iloc[keep]
    labels = (torch.tensor([CLASSES.index(lbl) for lbl in kept["label"]], dtype=torch.long)
              if "label" in kept else None)
    target = torch.device(device) if device is not None else torch.device("cpu")
    return FeatureSet(x=x.to(target), lengths=lengths.to(target), utt_ids=kept["utt_id"].tolist(),
                      labels=labels.to(target) if labels is not None else None, input=input,
                      description=encoder_description(cfg, input), missing=missing)
