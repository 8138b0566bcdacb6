"""Several encoder layers read batch by batch from the memory-mapped cache, and pooled layer statistics (issue 12).

Thirteen wav2vec2-base layers of 768 x 400 frames for 8952 clips would take about 70 GB in memory:
``LayerStack`` never holds them. It maps every layer's shards (``numpy`` memory maps: the operating
system pages them in and out) and copies only a batch's clips, ``(batch, layers, channels, frames)``
in float16, centre-trimmed and zero-padded as ``load_features`` does. Every shard's CRC-32 is checked
once when the stack is opened (a sequential read, no memory held), so a damaged shard fails there,
named, and not halfway through training.

``pooled_stats`` reduces one layer to the per-layer probe's input: the mean and standard deviation of
each channel over a clip's real frames inside the window, streamed shard by shard.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

from serlib.common.config import Config
from serlib.common.runfolder import RunFolder
from serlib.features.cache import (BadShardError, cache_bytes, content_hashes, drop_shard, key_folder, load_shard, read_shards,
                                   shard_index, touch_last_used)
from serlib.features.encoders import trim_span
from serlib.features.extract import FeaturesMissingError, kept_rows
from serlib.features.layers import Layer, at_layer


class LayerStack:
    """``(n, layers, channels, frames)`` features of several layers, read per batch from memory-mapped shards.

    It answers what the training engine asks of a feature tensor (``len``, ``shape``, ``dim``, ``device``,
    ``x[index]``): ``gather(index, frames)`` returns a fresh float16 CPU tensor; ``subset(index)`` a
    stack over some of its clips (a split) without reading anything.
    """

    dtype = torch.float16
    device = torch.device("cpu")
    threads = 1  # threads copying a batch out of the maps (``serlib.modelling.placement.streamed`` sets it on a GPU)

    def __init__(self, arrays: list[dict[str, np.ndarray]], rows: list[list[tuple[str, int, int]]], frames: int,
                 channels: int, layers: Sequence[Layer]):
        self.arrays, self.rows, self.frames, self.channels = arrays, rows, frames, channels
        self.layers = list(layers)
        self.lengths = torch.tensor([min(count, frames) for _, _, count in rows[0]], dtype=torch.long)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.rows[0]), len(self.layers), self.channels, self.frames)

    def __len__(self) -> int:
        return len(self.rows[0])

    def dim(self) -> int:
        return 4

    def is_pinned(self) -> bool:
        return False

    def numel(self) -> int:
        return int(np.prod(self.shape))

    def subset(self, index: torch.Tensor | Sequence[int]) -> "LayerStack":
        picked = [int(i) for i in (index.tolist() if isinstance(index, torch.Tensor) else index)]
        stack = LayerStack(self.arrays, [[layer_rows[i] for i in picked] for layer_rows in self.rows], self.frames,
                           self.channels, self.layers)
        stack.threads = self.threads
        return stack

    def gather(self, index: torch.Tensor | Sequence[int], frames: Optional[int] = None) -> torch.Tensor:
        """Clips ``index`` as a float16 ``(batch, layers, channels, frames)`` CPU tensor (cut to ``frames``).

        With ``threads`` > 1 the clips are copied by that many threads (NumPy's copies release the GIL), as
        on a GPU machine, where the host's cores have nothing else to do while the GPU trains.
        """
        picked = index.tolist() if isinstance(index, torch.Tensor) else list(index)
        width = self.frames if frames is None else min(frames, self.frames)
        out = np.zeros((len(picked), len(self.layers), self.channels, width), dtype=np.float16)

        def copy(part: range) -> None:
            for j in part:
                for position, (arrays, layer_rows) in enumerate(zip(self.arrays, self.rows)):
                    npy, offset, count = layer_rows[picked[j]]
                    start, kept = trim_span(count, self.frames)
                    kept = min(kept, width)
                    out[j, position, :, :kept] = arrays[npy][:, offset + start:offset + start + kept]

        workers = max(1, min(self.threads, len(picked)))
        if workers == 1:
            copy(range(len(picked)))
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(copy, [range(k, len(picked), workers) for k in range(workers)]))
        return torch.from_numpy(out)

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, slice):
            key = range(*key.indices(len(self)))
        return self.gather(key)


def open_layers(cfg: Config, folder: RunFolder, manifest: pd.DataFrame,
                layers: Sequence[Layer]) -> tuple[LayerStack, list[str], list[str]]:
    """The manifest's clips over ``layers`` of the wav2vec2 cache, memory-mapped (reads the cache only).

    Rows whose extraction failed are left out with a warning, as ``load_features`` does; a clip some layer
    lacks without a recorded failure is a ``FeaturesMissingError``. Every shard's CRC-32 is checked here.

    Returns:
        (the stack, utt_ids kept in manifest order, utt_ids left out).
    """
    paths = manifest["path"].astype(str).tolist()
    arrays, indexes, kdirs, channels = [], [], [], None
    for layer in layers:
        layer_cfg = at_layer(cfg, layer)
        kdir = key_folder(layer_cfg, folder, "wav2vec2")
        shards, _ = read_shards(kdir)
        for npy, shard in list(shards.items()):
            try:
                load_shard(kdir, shard)  # the CRC-32 of every byte, once, before anything trains on it
            except (BadShardError, OSError) as err:
                drop_shard(kdir, npy, str(err))
                del shards[npy]
        arrays.append({npy: np.load(kdir / npy, mmap_mode="r") for npy in shards})
        indexes.append(shard_index(shards))
        kdirs.append(kdir)
        channels = channels or next((s.channels for s in shards.values()), None)
    hashes, _ = content_hashes(paths, kdirs[0].parent)
    present = [i for i, h in enumerate(hashes) if h is not None and all(h in index for index in indexes)]
    keep, missing = kept_rows(cfg, folder, manifest, "wav2vec2", present, kdirs[0])
    rows = [[index[hashes[i]] for i in keep] for index in indexes]
    counts = {tuple(index[hashes[i]][2] for index in indexes) for i in keep}
    if any(len(set(c)) > 1 for c in counts):
        raise ValueError(f"wav2vec2 layers {list(layers)}: a clip has different frame counts in different layers' "
                         f"caches ({', '.join(map(str, kdirs))}); prune them (serlib cache prune) and extract again")
    for kdir in kdirs:
        touch_last_used(kdir)
    stack = LayerStack(arrays, rows, cfg.features.frames, int(channels or 0), layers)
    return stack, manifest.iloc[keep]["utt_id"].tolist(), missing


def pooled_stats(cfg: Config, folder: RunFolder, manifest: pd.DataFrame, layer: Layer) -> tuple[list[str], np.ndarray]:
    """Mean and standard deviation of every channel over each clip's real frames in the window, for one layer.

    Streams the layer's shards one at a time (each checked against its CRC-32). Clips without features
    (a recorded extraction failure) are left out.

    Returns:
        (utt_ids in manifest order, ``(clips, 2 x channels)`` float32: the means, then the stds).
    """
    layer_cfg = at_layer(cfg, layer)
    kdir = key_folder(layer_cfg, folder, "wav2vec2")
    paths = manifest["path"].astype(str).tolist()
    hashes, _ = content_hashes(paths, kdir.parent)
    shards, _ = read_shards(kdir)
    index = shard_index(shards)
    present = [i for i, h in enumerate(hashes) if h is not None and h in index]
    keep, _ = kept_rows(cfg, folder, manifest, "wav2vec2", present, kdir)
    wanted: dict[str, list[int]] = {}
    for j, i in enumerate(keep):
        wanted.setdefault(hashes[i], []).append(j)
    channels = next(iter(shards.values())).channels if shards else 0
    out = np.zeros((len(keep), 2 * channels), dtype=np.float32)
    frames = cfg.features.frames
    for npy, shard in shards.items():
        rows = [r for r in shard.rows if r[0] in wanted]
        if not rows:
            continue
        try:
            array = load_shard(kdir, shard)  # (channels, total frames) float16, CRC-32 checked
        except (BadShardError, OSError) as err:  # as load_features: dropped, named, the fix said
            drop_shard(kdir, npy, str(err))
            raise FeaturesMissingError(
                f"wav2vec2 {layer}: the damaged shard {kdir / npy} was dropped; recompute its {len(shard.rows)} "
                f"clip(s): `serlib features {cfg.source or 'PARAMS.yaml'}` (or run notebook 02_features)") from err
        for digest, offset, count in rows:
            start, kept = trim_span(count, frames)
            clip = array[:, offset + start:offset + start + kept].astype(np.float32)
            stats = np.concatenate([clip.mean(axis=1), clip.std(axis=1)])
            for j in wanted[digest]:
                out[j] = stats
    touch_last_used(kdir)
    return manifest.iloc[keep]["utt_id"].tolist(), out


def layer_bytes(cfg: Config, folder: RunFolder, layers: Sequence[Layer]) -> dict:
    """Bytes on disk of each layer's cache folder."""
    return {layer: cache_bytes(Path(key_folder(at_layer(cfg, layer), folder, "wav2vec2"))) for layer in layers}
