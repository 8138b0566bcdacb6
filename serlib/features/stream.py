"""Several encoder layers read batch by batch from the memory-mapped cache, and pooled layer statistics (issue 12).

Thirteen wav2vec2-base layers of 768 x 400 frames for 8952 clips would take about 70 GB in memory:
``LayerStack`` never holds them. It maps every layer's shards (``numpy`` memory maps: the operating
system pages them in and out) and copies only a batch's clips, ``(batch, layers, channels, frames)``
in float16, centre-trimmed and zero-padded as ``load_features`` does. Every shard's CRC-32 is checked
once when the stack is opened (a sequential read, no memory held), so a damaged shard fails there,
named, and not halfway through training.

``pooled_stats`` reduces one layer to the per-layer probe's input: the mean and standard deviation of
each channel over a clip's real frames inside the window, streamed shard by shard. Both read through the
cache's one shard reader (``serlib.features.shards.ShardReader``) and name each layer's folder by an
explicit ``FeatureKey`` (``serlib.features.layers.LayerPlan.key``).
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
from serlib.features.encoders import trim_span
from serlib.features.keys import content_hashes, key_folder
from serlib.features.layers import FeatureKey, Layer
from serlib.features.load import damaged, kept_rows
from serlib.features.shards import ShardReader, cache_bytes, touch_last_used


class LayerStack:
    """``(n, layers, channels, frames)`` features of several layers, read per batch from memory-mapped shards.

    It answers what the training engine asks of a feature tensor (``len``, ``shape``, ``dim``, ``device``,
    ``x[index]``): ``gather(index, frames)`` returns a fresh float16 CPU tensor; ``subset(index)`` a
    stack over some of its clips (a split) without reading anything.
    """

    dtype = torch.float16
    device = torch.device("cpu")
    threads = 1  # threads copying a batch out of the maps (``serlib.modelling.placement.streamed`` sets it on a GPU)

    def __init__(
        self,
        arrays: list[dict[str, np.ndarray]],
        rows: list[list[tuple[str, int, int]]],
        frames: int,
        channels: int,
        layers: Sequence[Layer],
    ):
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
        stack = LayerStack(
            self.arrays,
            [[layer_rows[i] for i in picked] for layer_rows in self.rows],
            self.frames,
            self.channels,
            self.layers,
        )
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
                    out[j, position, :, :kept] = arrays[npy][:, offset + start : offset + start + kept]

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


def open_layers(
    cfg: Config, folder: RunFolder, manifest: pd.DataFrame, features: Sequence[FeatureKey]
) -> tuple[LayerStack, list[str], list[str]]:
    """The manifest's clips over several wav2vec2 layers' cache folders, memory-mapped (reads the cache only).

    Rows whose extraction failed are left out with a warning, as ``load_features`` does; a clip some layer
    lacks without a recorded failure is a ``FeaturesMissingError``. Every shard's CRC-32 is checked here.

    Args:
        features: one ``FeatureKey`` per layer, in the stack's order.

    Returns:
        (the stack, utt_ids kept in manifest order, utt_ids left out).
    """
    paths = manifest["path"].astype(str).tolist()
    readers = [ShardReader(key_folder(cfg, folder, feature)) for feature in features]
    for reader in readers:
        reader.verify()  # the CRC-32 of every byte, once, before anything trains on the maps
    kdirs = [reader.kdir for reader in readers]
    hashes, _ = content_hashes(paths, kdirs[0].parent)
    present = [i for i, h in enumerate(hashes) if h is not None and all(h in r.index for r in readers)]
    keep, missing = kept_rows(cfg, folder, manifest, "wav2vec2", present, kdirs[0])
    rows = [[reader.index[hashes[i]] for i in keep] for reader in readers]
    counts = {tuple(reader.index[hashes[i]][2] for reader in readers) for i in keep}
    layers = [feature.layer for feature in features]
    if any(len(set(c)) > 1 for c in counts):
        raise ValueError(
            f"wav2vec2 layers {layers}: a clip has different frame counts in different layers' "
            f"caches ({', '.join(map(str, kdirs))}); prune them (serlib cache prune) and extract again"
        )
    for kdir in kdirs:
        touch_last_used(kdir)
    channels = next((c for c in (reader.channels() for reader in readers) if c), None)
    stack = LayerStack(
        [reader.memory_maps() for reader in readers], rows, cfg.features.frames, int(channels or 0), layers
    )
    return stack, manifest.iloc[keep]["utt_id"].tolist(), missing


def pooled_stats(
    cfg: Config, folder: RunFolder, manifest: pd.DataFrame, feature: FeatureKey
) -> tuple[list[str], np.ndarray]:
    """Mean and standard deviation of every channel over each clip's real frames in the window, for one layer.

    Streams the layer's shards one at a time (each checked against its CRC-32). Clips without features
    (a recorded extraction failure) are left out.

    Returns:
        (utt_ids in manifest order, ``(clips, 2 x channels)`` float32: the means, then the stds).

    Raises:
        FeaturesMissingError: a damaged shard (dropped: the next extraction recomputes its clips).
    """
    kdir = key_folder(cfg, folder, feature)
    hashes, _ = content_hashes(manifest["path"].astype(str).tolist(), kdir.parent)
    reader = ShardReader(kdir)
    present = [i for i, h in enumerate(hashes) if h is not None and h in reader.index]
    keep, _ = kept_rows(cfg, folder, manifest, "wav2vec2", present, kdir)
    out = np.zeros((len(keep), 2 * (reader.channels() or 0)), dtype=np.float32)
    for j, clip in reader.clips([(j, hashes[i]) for j, i in enumerate(keep)], cfg.features.frames):
        clip = clip.astype(np.float32)  # (channels, kept)
        out[j] = np.concatenate([clip.mean(axis=1), clip.std(axis=1)])
    if reader.failed:
        raise damaged(cfg, feature, reader)
    touch_last_used(kdir)
    return manifest.iloc[keep]["utt_id"].tolist(), out


def layer_bytes(cfg: Config, folder: RunFolder, features: Sequence[FeatureKey]) -> dict:
    """Bytes on disk of each layer's cache folder, by layer."""
    return {feature.layer: cache_bytes(Path(key_folder(cfg, folder, feature))) for feature in features}
