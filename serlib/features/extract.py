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

For wav2vec2, every layer the run caches (``serlib.features.layers.LayerPlan.cached``: what its systems
and its layer probe read) has its own key folder; a clip that any of them lacks is encoded once, and
that one pass fills every layer it lacks (``Wav2Vec2Encoder.forward_layers``).

A clip that cannot be read is reported with its path and reason (a warning, and
``<run>/data/features_failed.csv``) and the run goes on; at load time its manifest row is
dropped with a warning (``serlib.features.load``: the read side), never zero-filled.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from serlib.common.audio import load_audio, probe_samples
from serlib.common.config import Config
from serlib.common.io import write_csv_atomic, write_json_atomic
from serlib.common.progress import Progress
from serlib.common.runfolder import RunFolder
from serlib.common.runtime import cpu_threads, resolve_device
from serlib.data.stage import load_manifest
from serlib.features.cache import CacheNotWritableError, clean_cache_root
from serlib.features.encoders import build_encoder
from serlib.features.keys import content_hashes, inputs_for_run, key_folder, write_key
from serlib.features.layers import LayerPlan, plan_layers
from serlib.features.shards import (
    ShardWriter,
    cache_bytes,
    clean_temporary,
    is_read_only_error,
    key_lock,
    make_folder,
    read_index,
    touch_last_used,
)

log = logging.getLogger("serlib")


# --------------------------------------------------------------------------- extraction


def plan_batches(
    jobs: list[tuple[str, str, int]], batch_size: int, max_samples: int, mix: bool
) -> list[list[tuple[str, str, int]]]:
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


def _encode_batch(
    encoder,
    batch,
    sample_rate: int,
    device,
    writers: dict,
    needs: dict,
    failures: dict,
    threads: Optional[int] = None,
    waves: Optional[dict] = None,
) -> int:
    """Load (unless ``waves`` were loaded ahead), encode and store one batch; returns how many clips were stored.

    ``writers``: layer -> ``ShardWriter`` (one per cached layer; ``None`` for log-Mel); ``needs``: digest -> the
    layers that clip lacks. Every layer of a clip comes from the same encoder pass and goes to its writer.
    A clip whose features hold NaN or inf once stored as float16 (as the cache stores them: a value above
    65504 becomes inf there) is not stored: it becomes a ``failures`` row. From a GPU the features come back
    in float16 (half the bytes over the bus; the cache's precision).
    """
    if waves is None:
        with cpu_threads(1):
            waves = _load_batch(batch, sample_rate, encoder.min_samples, failures)
    paths = {digest: path for digest, path, _ in batch}
    layers = list(writers)
    stored = 0
    groups: dict[int, list[str]] = {}
    for digest, wave in waves.items():  # the header's length is checked, not trusted
        groups.setdefault(0 if encoder.mixes_lengths else len(wave), []).append(digest)
    for digests in groups.values():
        outputs = encode_waves(encoder, [waves[d] for d in digests], device, threads, every_layer=len(layers) > 1)
        for digest, frames in zip(digests, outputs):  # (channels, frames), or (layers, channels, frames)
            bad = frames.size - int(np.count_nonzero(np.isfinite(frames.astype(np.float16))))
            if bad:  # never cached: a NaN feature would turn every weight of a model trained on it to NaN
                failures[paths[digest]] = f"non-finite features: {bad} of {frames.size} values are NaN or inf"
                continue
            for position, layer in enumerate(layers):
                if layer in needs[digest]:
                    writers[layer].add(digest, frames[position] if len(layers) > 1 else frames)
            stored += 1
    return stored


def encode_waves(
    encoder, waves: Sequence[np.ndarray], device, threads: Optional[int] = None, every_layer: bool = False
) -> list[np.ndarray]:
    """One zero-padded, masked call of ``encoder`` over ``waves``: each clip's own frames ``(channels, frames_i)``
    (padding sliced off), in float16 from a GPU (half the bytes over the bus; the cache's precision).
    ``every_layer``: ``(layers, channels, frames_i)`` of each of the encoder's ``layers`` from the one pass."""
    lengths = [len(w) for w in waves]
    padded = np.zeros((len(waves), max(lengths)), dtype=np.float32)  # (batch, samples), zeros at the end
    for row, wave in zip(padded, waves):
        row[: len(wave)] = wave
    with cpu_threads(1 if encoder.name == "logmel" else threads):
        inputs = torch.from_numpy(padded).to(device), torch.tensor(lengths, device=device)
        out = torch.stack(encoder.forward_layers(*inputs), 1) if every_layer else encoder(*inputs)
        out = (out.half() if out.device.type != "cpu" else out).cpu().numpy()  # (batch, [layers,] channels, frames)
    return [clip[..., : encoder.frames_for(n)] for clip, n in zip(out, lengths)]


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


# Bytes of GPU memory per padded audio sample in wav2vec2's first conv layer, where a batch peaks: its
# output (conv_dim[0] channels per conv_stride[0] samples) in fp16, the length-aware group norm's fp32
# output and its one-clip fp32 temporary: 2 + 4 + 4 bytes per value (512 / 5 x 10 ~ 1 kB per sample).
FIRST_CONV_BYTES_PER_VALUE = 10
PREFETCH_DEVICES = ("cuda",)  # where the next batch is loaded in a thread while one encodes
GPU_BATCH_FRACTION = 0.5  # share of free GPU memory one extraction batch may take (CHOSEN, not measured)


def gpu_batch_samples(
    cfg: Config, device: torch.device, upper: int, free_bytes: Optional[int] = None
) -> tuple[int, str]:
    """Most padded samples per wav2vec2 batch that fit ``GPU_BATCH_FRACTION`` of free memory, at most ``upper``."""
    w = cfg.features.wav2vec2
    from_config = dict(w.config_overrides or {})
    channels = (from_config.get("conv_dim") or [512])[0]
    stride = (from_config.get("conv_stride") or [5])[0]
    if free_bytes is None:
        free_bytes = int(torch.cuda.mem_get_info(device)[0])
    per_sample = channels / stride * FIRST_CONV_BYTES_PER_VALUE
    fits = int(free_bytes * GPU_BATCH_FRACTION / per_sample)
    sr = cfg.features.sample_rate
    if fits >= upper:
        return upper, f"max_batch_seconds; {free_bytes / 1e9:.1f} GB free would allow {fits / sr:.0f} s"
    return max(fits, sr), (
        f"{free_bytes / 1e9:.1f} GB free allows {fits / sr:.0f} s at ~{per_sample:.0f} bytes per "
        f"sample in the first conv layer; max_batch_seconds {upper / sr:.0f} s"
    )


def _compute(
    cfg: Config,
    targets: dict,
    input: str,
    jobs: dict[str, str],
    needs: dict,
    failures: dict,
    device: torch.device,
    progress: Optional[Progress] = None,
) -> dict:
    """Encode the ``{digest: path}`` clips some target lacks (``needs``: digest -> layers); returns timing statistics.

    ``targets``: layer -> key folder (``{None: folder}`` for log-Mel).
    """
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
    max_samples = int(w.max_batch_seconds * sr)
    if input == "wav2vec2" and device.type == "cuda":  # max_batch_seconds is an upper bound; free memory decides
        max_samples, why = gpu_batch_samples(cfg, device, max_samples)
        log.info(f"serlib.features: wav2vec2 batches of <= {max_samples / sr:.0f} s of padded audio ({why})")
    batches = plan_batches(probed, batch_size, max_samples, mix)
    stats = {"computed": 0, "batches": len(batches), "compute_seconds": 0.0}
    if not batches:
        return stats
    start = time.perf_counter()
    layers = [layer for layer in targets if layer is not None]
    encoder = build_encoder(cfg.features, input, device, layers or None)
    writers = {layer: ShardWriter(kdir) for layer, kdir in targets.items()}
    bar = tqdm(total=len(probed), unit="clip", desc=f"{input} features", mininterval=1.0)
    # On a GPU the next batch is decoded and resampled in a thread while this one encodes; on the CPU the
    # cores are the encoder's, and torch's thread count is process-wide, so batches load in turn.
    ahead = ThreadPoolExecutor(max_workers=1) if device.type in PREFETCH_DEVICES else None
    load = lambda b: _load_batch(b, sr, encoder.min_samples, failures)  # noqa: E731
    try:
        pending = ahead.submit(load, batches[0]) if ahead else None
        for number, batch in enumerate(batches):
            waves = pending.result() if ahead else None
            if ahead and number + 1 < len(batches):
                pending = ahead.submit(load, batches[number + 1])
            stats["computed"] += _encode_batch(
                encoder, batch, sr, device, writers, needs, failures, cfg.features.threads, waves
            )
            bar.update(len(batch))
            if progress is not None:
                progress(f"{input} features: {bar.n:,}/{len(probed):,} clips", force=number + 1 == len(batches))
    finally:  # keep what was computed, also on Ctrl-C or an error
        if ahead:
            ahead.shutdown(wait=True, cancel_futures=True)
        for writer in writers.values():
            writer.flush()
        bar.close()
    stats["compute_seconds"] = time.perf_counter() - start
    stats["by_layer"] = {layer: writer.added for layer, writer in writers.items()}
    return stats


def extract(
    cfg: Config,
    folder: RunFolder,
    manifest: pd.DataFrame,
    input: str,
    device: Optional[torch.device] = None,
    plan: Optional[LayerPlan] = None,
) -> dict:
    """Fill the cache for ``input`` over the manifest's clips (only what is missing).

    For wav2vec2 every layer the run caches (``LayerPlan.cached``) has its own key folder; a clip that any
    of them lacks is encoded once and each missing layer stored from that pass.

    Args:
        cfg: the run configuration.
        folder: the run folder (locates the default cache).
        manifest: needs ``utt_id`` and ``path`` columns.
        input: "wav2vec2" or "logmel".
        device: default ``features.device``.
        plan: the run's layers (default: ``plan_layers(cfg)``).

    Returns:
        Statistics: clips, computed, cached, failed (``{utt_id: reason}``), seconds, clips_per_s, ...;
        for wav2vec2 also ``layers``: one row per cached layer (its folder, bytes, clips computed now).
    """
    start = time.perf_counter()
    device = device or resolve_device(cfg.features.device)
    plan = plan or plan_layers(cfg)
    features = {feature.layer: feature for feature in plan.keys(input)}  # layer (None: log-Mel) -> its folder's key
    targets = {layer: key_folder(cfg, folder, feature) for layer, feature in features.items()}
    root = next(iter(targets.values())).parent
    paths = manifest["path"].astype(str).tolist()
    hashes, failures = content_hashes(paths, root)
    clean_cache_root(root)
    exists = {layer: make_folder(kdir) for layer, kdir in targets.items()}  # False: read-only, never held this key
    with ExitStack() as locks:  # a second extraction waits here, then finds it all cached (locks in name order)
        for layer, kdir in sorted(targets.items(), key=lambda item: item[1].name):
            if exists[layer]:
                locks.enter_context(key_lock(kdir))
                clean_temporary(kdir)
        indexes = {layer: read_index(kdir) for layer, kdir in targets.items()}  # damaged shards dropped here
        needs = {h: [layer for layer in targets if h not in indexes[layer]] for h in set(hashes) if h is not None}
        needs = {h: layers for h, layers in needs.items() if layers}
        jobs = {h: p for h, p in zip(hashes, paths) if h in needs}
        try:
            stats = _compute(
                cfg, targets, input, jobs, needs, failures, device, Progress(folder.progress, "features", 5.0)
            )
        except OSError as err:
            if not is_read_only_error(err):
                raise
            kdirs = ", ".join(str(targets[layer]) for layer in targets if any(layer in n for n in needs.values()))
            raise CacheNotWritableError(
                f"{input}: the feature cache {kdirs} cannot be written ({err.strerror or err}) and {len(jobs)} "
                f"clip(s) are not cached in it; make it writable or set features.cache_dir to a folder you "
                f"can write"
            ) from err
        by_layer = stats.get("by_layer", {})
        metas = {
            layer: write_key(
                targets[layer], cfg, features[layer], {**stats, "computed": by_layer.get(layer, 0)}, device
            )
            for layer in targets
        }
    for kdir in targets.values():
        touch_last_used(kdir)
    main = _main_layer(plan, targets) if input == "wav2vec2" else None
    kdir, meta = targets[main], metas[main]
    failed = {u: f"{p}: {failures[p]}" for u, p in zip(manifest["utt_id"], paths) if p in failures}
    for utt, reason in failed.items():
        warnings.warn(f"{input}: skipped {utt} ({reason})", stacklevel=2)
    seconds = time.perf_counter() - start
    out = {
        "clips": len(paths),
        "computed": stats["computed"],
        "cached": sum(h is not None and h not in needs for h in hashes),
        "failed": failed,
        "seconds": round(seconds, 3),
        "clips_per_s": round(stats["computed"] / stats["compute_seconds"], 3) if stats["computed"] else None,
        "last_compute": meta.get("last_compute"),
        "cache_dir": str(kdir),
        "cache_bytes": cache_bytes(kdir),
        "encoder": meta["encoder"],
        "weights": cfg.features.wav2vec2.weights if input == "wav2vec2" else "n/a",
        "device": str(device),
    }
    if input == "wav2vec2":
        out["layers"] = [
            {
                "layer": layer,
                "cache_dir": str(targets[layer]),
                "cache_bytes": cache_bytes(targets[layer]),
                "computed": by_layer.get(layer, 0),
                "clips": len(read_index(targets[layer])),
            }
            for layer in targets
        ]
    return out


def _main_layer(plan: LayerPlan, targets: dict):
    """The layer the summary's cache_dir names: the configured one when cached, else the deepest."""
    return plan.configured if plan.configured in targets else list(targets)[-1]


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
    try:
        earlier = json.loads(path.read_bytes()).get("inputs", {}) if path.is_file() else {}
    except (ValueError, AttributeError):  # damaged: rewritten whole below (it only describes the cache)
        earlier = {}
    summary = {
        "clips": len(manifest),
        "inputs": earlier,  # inputs not extracted now keep their entry
        "audio_seconds": round(float(manifest["duration_s"].sum()), 1) if "duration_s" in manifest else None,
    }
    plan = plan_layers(cfg)
    for input in inputs or inputs_for_run(cfg):
        stats = extract(cfg, folder, manifest, input, plan=plan)
        summary["inputs"][input] = stats
        rate = f", {stats['clips_per_s']:.1f} clips/s" if stats["clips_per_s"] else ""
        log.info(
            f"{input}: {stats['clips']} clips ({stats['computed']} computed, {stats['cached']} cached, "
            f"{len(stats['failed'])} failed) in {stats['seconds']:.1f} s{rate}; "
            f"cache {stats['cache_bytes'] / 2**20:.1f} MiB in {stats['cache_dir']}"
        )
    failed = [
        {"input": i, "utt_id": u, "reason": r}
        for i, stats in summary["inputs"].items()
        for u, r in stats["failed"].items()
    ]
    write_csv_atomic(pd.DataFrame(failed, columns=["input", "utt_id", "reason"]), folder.features_failed)
    write_json_atomic(path, summary)  # the summary last: it says the step finished
    return summary
