"""Reading cached features: a manifest's clips from one cache folder as one padded tensor (paper 2.3, 3.4).

The read side of the feature cache. ``load_features(cfg, folder, manifest, feature)`` reads the folder of
an explicit ``FeatureKey(input, layer)`` (``serlib.features.layers.LayerPlan.key``) through the cache's one
shard reader (``serlib.features.shards.ShardReader``: every byte checked against its shard's CRC-32) and
centre-trims or zero-pads each clip to ``features.frames``. Loading only reads the cache:
``serlib.pipeline.ensure_features`` (or ``serlib features``) fills it first (``serlib.features.extract``).

A clip whose extraction failed (``<run>/data/features_failed.csv``) is dropped with a warning
(``FeatureSet.missing``), never zero-filled; a clip never extracted is a ``FeaturesMissingError``, and so
is a damaged shard (dropped, so the next extraction recomputes its clips).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Optional

import pandas as pd
import torch

from serlib.common.config import Config
from serlib.common.facts import CLASSES
from serlib.common.runfolder import RunFolder
from serlib.common.runtime import cpu_threads
from serlib.features.encoders import encoder_description
from serlib.features.keys import content_hashes, key_folder
from serlib.features.layers import FeatureKey
from serlib.features.shards import ShardReader, touch_last_used


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


class FeaturesMissingError(FileNotFoundError):
    """Clips of a manifest have no cached features and no recorded extraction failure."""


def recorded_failures(folder: RunFolder, input: str) -> set[str]:
    """utt_ids whose ``input`` features could not be computed (``data/features_failed.csv``)."""
    if not folder.features_failed.is_file():
        return set()
    failed = pd.read_csv(folder.features_failed, dtype=str, keep_default_na=False)
    return set(failed.loc[failed["input"] == input, "utt_id"])


def kept_rows(
    cfg: Config, folder: RunFolder, manifest: pd.DataFrame, input: str, present: list[int], kdir
) -> tuple[list[int], list[str]]:
    """The manifest rows ``present`` in the cache, and the utt_ids of the others, warned about.

    Raises:
        FeaturesMissingError: a row is absent without a recorded extraction failure (never extracted).
    """
    kept = set(present)
    missing = [u for i, u in enumerate(manifest["utt_id"]) if i not in kept]
    never = sorted(set(missing) - recorded_failures(folder, input))
    if never:
        raise FeaturesMissingError(
            f"{input}: {len(never)} clip(s) of the manifest have no cached features in {kdir} (first: {never[0]}); "
            f"fill the cache first: `serlib features {cfg.source or 'PARAMS.yaml'}` (or run notebook 02_features)"
        )
    if missing:
        warnings.warn(
            f"{input}: {len(missing)} manifest row(s) have no features (their audio could not be "
            f"encoded: {folder.features_failed}) and are left out: {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}",
            stacklevel=3,
        )
    return list(present), missing


def damaged(cfg: Config, feature: FeatureKey, reader: ShardReader) -> FeaturesMissingError:
    """The error for shards ``reader`` found damaged while reading (they are dropped already)."""
    return FeaturesMissingError(
        f"{feature}: {len(reader.failed)} damaged shard(s) in {reader.kdir} were dropped ({', '.join(reader.failed)}); "
        f"recompute its {reader.failed_clips} clip(s): `serlib features {cfg.source or 'PARAMS.yaml'}` (or run "
        "notebook 02_features)"
    )


def fill_from_cache(
    x: torch.Tensor, lengths: torch.Tensor, reader: ShardReader, wanted: list[tuple[int, str]], frames: int
) -> None:
    """Fill rows of ``x`` ``(n, channels, frames)`` and ``lengths`` ``(n,)`` from the cache.

    ``wanted``: ``(row of x, content hash)``. Same result as ``fit_frames`` per clip (centre trim, padding at
    the end), without temporaries. The rows of a shard that fails its CRC-32 are left unfilled
    (``reader.failed`` names it).
    """
    for row, clip in reader.clips(wanted, frames):  # clip: (channels, kept) float16
        kept = clip.shape[1]
        x[row, :, :kept] = torch.from_numpy(clip)
        x[row, :, kept:] = 0
        lengths[row] = kept


def stored_channels(reader: ShardReader, cfg: Config, input: str) -> int:
    """The channels of the stored features (from the configuration when the folder is empty)."""
    if reader.index:
        return reader.shards[next(iter(reader.index.values()))[0]].channels
    if input == "logmel":
        return cfg.features.logmel.n_mels
    return int(cfg.features.wav2vec2.config_overrides.get("hidden_size", 768))


def load_features(
    cfg: Config,
    folder: RunFolder,
    manifest: pd.DataFrame,
    feature: FeatureKey,
    device: Optional[str | torch.device] = None,
    dtype: torch.dtype = torch.float32,
) -> FeatureSet:
    """The cached features of ``manifest``'s clips as one padded tensor (reads the cache only).

    Rows whose extraction failed (``data/features_failed.csv``) are dropped with a warning
    (listed in ``FeatureSet.missing``), never zero-filled.

    Args:
        cfg: the run configuration (``features.frames`` sets the tensor length).
        folder: the run folder.
        manifest: rows to load (e.g. one split), ``utt_id`` and ``path`` columns; order is kept.
        feature: the cache folder to read: the input and, for wav2vec2, the layer (``LayerPlan.key``).
        device: where ``x`` and ``lengths`` go (default CPU).
        dtype: of ``x`` (float32 per the contract; float16 halves the memory).

    Returns:
        A ``FeatureSet``: ``x`` ``(n, channels, frames)``, ``lengths`` ``(n,)``.

    Raises:
        FeaturesMissingError: clips that were never extracted, or a damaged shard (fill the cache first:
            ``serlib features PARAMS`` or ``serlib.pipeline.ensure_features``).
    """
    input, kdir = feature.input, key_folder(cfg, folder, feature)
    hashes, _ = content_hashes(manifest["path"].astype(str).tolist(), kdir.parent)
    reader = ShardReader(kdir)  # size and header checked; damaged shards dropped with a warning
    keep, missing = kept_rows(
        cfg, folder, manifest, input, [i for i, h in enumerate(hashes) if h is not None and h in reader.index], kdir
    )
    frames = cfg.features.frames
    x = torch.empty((len(keep), stored_channels(reader, cfg, input), frames), dtype=dtype)  # (n, channels, frames)
    lengths = torch.zeros(len(keep), dtype=torch.long)
    with cpu_threads(1):  # thousands of small copies: thread sync would cost more than it saves
        fill_from_cache(x, lengths, reader, [(j, hashes[i]) for j, i in enumerate(keep)], frames)
    if reader.failed:
        raise damaged(cfg, feature, reader)
    touch_last_used(kdir)
    kept = manifest.iloc[keep]
    labels = torch.tensor([CLASSES.index(lbl) for lbl in kept["label"]], dtype=torch.long) if "label" in kept else None
    target = torch.device(device) if device is not None else torch.device("cpu")
    return FeatureSet(
        x=x.to(target),
        lengths=lengths.to(target),
        utt_ids=kept["utt_id"].tolist(),
        labels=labels.to(target) if labels is not None else None,
        input=input,
        description=encoder_description(cfg, input, feature.layer),
        missing=missing,
    )
