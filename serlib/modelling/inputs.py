"""The split data a system trains on: one input's cached features, split by a protocol, on the training device.

- ``load_split_data(cfg, folder, features, device, protocol)`` -> ``SplitData``: the run's manifest and the
  cached features of explicit cache keys (``serlib.features.layers.FeatureKey``), split into train / val /
  test by the protocol's subsets (``serlib.data.protocols.protocol_subsets``). One key loads a tensor
  (``split_features``), several stream from the cache as one ``LayerStack`` (``split_layers``).
- ``system_data(cfg, folder, name, device, protocol)``: what system ``name`` reads (its input and layers,
  from the run's ``LayerPlan``; ``layers: best`` asks the per-layer probe).
- ``SplitData.from_tensors``: split data from tensors already in memory (tests, ``serlib doctor``).

It reads the manifest and the feature cache and builds neither (``serlib.pipeline`` makes sure they
exist before training starts). The fingerprint of the features and their split enters every run key.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

from serlib.common.config import Config, ConfigError
from serlib.common.facts import CLASSES, SUBSETS
from serlib.common.runfolder import RunFolder
from serlib.data.protocols import MAIN_PROTOCOL, protocol_subsets
from serlib.data.stage import load_manifest
from serlib.features.layers import FeatureKey, Layer, LayerPlan, plan_layers
from serlib.features.load import FeatureSet, load_features
from serlib.features.stream import LayerStack, open_layers
from serlib.modelling import probe
from serlib.modelling.placement import Placement, plan_placement, stream_threads, streamed, to_training_layout

log = logging.getLogger("serlib")


@dataclass
class SplitData:
    """One input's features split by a protocol, on the training device (what ``train.fit`` trains on)."""

    input: str  # "logmel", "wav2vec2" (one layer) or "wav2vec2_layers" (several, a LayerStack)
    x: dict  # split -> (n, channels, frames) float32 tensor, or (n, layers, channels, frames) LayerStack
    y: dict  # split -> (n,) long tensor of label indices
    utt_ids: dict  # split -> list[str]
    fingerprint: str  # identity of the features and the split (part of every run key)
    lengths: Optional[dict] = None  # split -> (n,) long: real frames per clip (None: every clip fills the
    # window; models then run unmasked and Tri-Aug spans the whole window)
    protocol: str = MAIN_PROTOCOL  # the evaluation protocol the subsets come from (``serlib.data.protocols``)
    placement: Optional[Placement] = None  # where ``x`` lives (``serlib.modelling.placement``)
    layers: Optional[list] = None  # the encoder layers the features are ("last" or indices; None: log-Mel)

    @classmethod
    def from_tensors(
        cls, train: tuple, val: tuple, test: Optional[tuple] = None, input: str = "tensors"
    ) -> "SplitData":
        """Split data from tensors already in memory (tests, ``serlib doctor``).

        Args:
            train, val, test: each ``(x, y)`` or ``(x, y, lengths)``: ``x`` (n, channels, frames), ``y`` (n,)
                label indices, ``lengths`` (n,) real frames per clip.
            input: what the features are (named in messages).
        """
        splits = {"train": train, "val": val} | ({"test": test} if test is not None else {})
        lengths = {s: part[2] for s, part in splits.items() if len(part) > 2 and part[2] is not None}
        return cls(
            input,
            {s: part[0] for s, part in splits.items()},
            {s: part[1] for s, part in splits.items()},
            {s: [] for s in splits},
            "",
            lengths or None,
        )

    def split_lengths(self, split: str) -> Optional[torch.Tensor]:
        """``(n,)`` real frames of ``split``'s clips, or None when every clip fills the window."""
        return None if self.lengths is None else self.lengths.get(split)

    @property
    def device(self) -> torch.device:
        """The training device (the features may sit on the host: ``placement``)."""
        return torch.device(self.placement.device) if self.placement is not None else self.x["train"].device

    @property
    def channels(self) -> int:
        x = self.x["train"]
        return int(x.channels) if isinstance(x, LayerStack) else int(x.shape[1])

    @property
    def frames(self) -> int:
        return int(self.x["train"].shape[-1])

    @property
    def stacked(self) -> Optional[int]:
        """How many layers each clip holds when the features are several layers (a ``LayerStack``), else None."""
        x = self.x["train"]
        return len(x.layers) if isinstance(x, LayerStack) else None


def _fingerprint(
    parts: Sequence[tuple[torch.Tensor, torch.Tensor]],
    utt_ids: Sequence[str],
    labels: Sequence[str],
    splits: Sequence[str],
    chunk: int = 256,
) -> str:
    """A cheap identity of feature tensors plus their manifest rows (per-utterance sums, rounded).

    ``parts``: one ``(source, index)`` per split, the split being ``source[index]`` (a CPU tensor
    (n, channels, frames) and its rows). Works chunk by chunk on the CPU, so a paper-scale split is never
    copied whole and the result does not depend on the training device.
    """
    sums = []
    for source, index in parts:
        for i in range(0, len(index), chunk):
            block = source[index[i : i + chunk]].cpu().double()  # (chunk, channels, frames)
            # several layers: (chunk, layers x channels, frames)
            block = block.flatten(1, 2) if block.dim() == 4 else block
            sums.append(torch.stack([block.sum(dim=(1, 2)), block.abs().sum(dim=(1, 2))], 1))
    digest = hashlib.sha256()
    shapes = [[len(index), *source.shape[1:]] for source, index in parts]
    digest.update(json.dumps([shapes, list(utt_ids), list(labels), list(splits)]).encode())
    digest.update(np.round(torch.cat(sums).numpy(), 3).tobytes())
    return digest.hexdigest()[:16]


def _split_rows(
    manifest: pd.DataFrame,
    utt_ids: Sequence[str],
    feature_lengths: torch.Tensor,
    source,
    input: str,
    device: torch.device,
) -> tuple[dict, dict, dict, dict, str]:
    """The manifest's train / val / test rows among the clips with features (``utt_ids``, ``source``'s rows).

    Manifest rows without features (a clip the feature stage skipped) are reported and left out.
    Returns (split -> row indices into ``source``, labels on ``device``, utt_ids, lengths on ``device``,
    the fingerprint of the features and the split).
    """
    position = {u: i for i, u in enumerate(utt_ids)}
    missing = [u for u in manifest["utt_id"] if u not in position]
    if missing:
        log.info(
            f"serlib.train: {len(missing)} manifest utterance(s) have no {input} features and are "
            f"left out (first: {missing[0]})"
        )
    rows = manifest[manifest["utt_id"].isin(position)]
    index, y, ids, lengths, labels = {}, {}, {}, {}, {}
    for split in SUBSETS:
        part = rows[rows["split"] == split]
        if part.empty:
            raise ConfigError(
                f"the manifest has no '{split}' utterances with {input} features; check data.split (and data.folds)"
            )
        index[split] = torch.tensor([position[u] for u in part["utt_id"]], dtype=torch.long)
        lengths[split] = feature_lengths[index[split]].to(device)  # (n_split,)
        labels[split] = [CLASSES[CLASSES.index(c)] for c in part["label"]]  # a label outside CLASSES fails here
        y[split] = torch.tensor([CLASSES.index(c) for c in labels[split]], dtype=torch.long, device=device)
        ids[split] = list(part["utt_id"])
    order = ("train", "val", "test")
    fp = _fingerprint(
        [(source, index[s]) for s in order],
        [i for s in order for i in ids[s]],
        [c for s in order for c in labels[s]],
        [s for s in order for _ in ids[s]],
    )
    return index, y, ids, lengths, fp


def split_features(
    features: FeatureSet, manifest: pd.DataFrame, input: str, device: torch.device, free_bytes: Optional[int] = None
) -> SplitData:
    """Align a FeatureSet with the manifest and split it into train / val / test (the manifest's ``split``).

    Manifest rows without features (a clip the feature stage skipped) are reported and left out.
    Where the features live is ``serlib.modelling.placement.plan_placement``'s choice for ``device``
    (on a GPU: float16, resident when they fit in its free memory, else pinned host memory; ``free_bytes``
    replaces the measured free memory, for tests); labels and lengths go to ``device``. The fingerprint is
    computed on the CPU from float32 values before anything moves, so it does not depend on the device.
    """
    source = features.x.cpu()  # float32, or float16 from the cache (the same values): the fingerprint agrees
    index, y, ids, lengths, fp = _split_rows(manifest, features.utt_ids, features.lengths, source, input, device)
    elements = sum(len(i) for i in index.values()) * source.shape[1] * source.shape[2]
    placement = plan_placement(elements, device, free_bytes)
    x = {split: to_training_layout(source[i], placement) for split, i in index.items()}  # (n_split, channels, frames)
    data = SplitData(input, x, y, ids, fp, lengths)
    data.placement = placement
    return data


def load_split_data(
    cfg: Config, folder: RunFolder, features: Sequence[FeatureKey], device: torch.device, protocol: str = MAIN_PROTOCOL
) -> SplitData:
    """The run's manifest and the cached features of ``features``, split by ``protocol`` and on ``device``.

    Reads only. ``features``: the cache folders (``LayerPlan.key``): one is loaded as a tensor, several
    wav2vec2 layers stream from the cache (``LayerStack``). ``protocol``: "split" (the paper's), "fold<k>"
    (``data.folds``), "loco-<corpus>" (``serlib.data.protocols``).

    Raises:
        FileNotFoundError: no manifest, or clips without cached features (``serlib.pipeline`` builds both).
    """
    manifest = load_manifest(folder)
    manifest = manifest.assign(split=protocol_subsets(folder, protocol, manifest).to_numpy())
    if len(features) > 1:
        data = split_layers(cfg, folder, manifest, list(features), device)
    else:
        feature = features[0]
        # On a GPU the features are placed in float16 (the cache's precision): loading them so halves the host peak.
        dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
        data = split_features(
            load_features(cfg, folder, manifest, feature, dtype=dtype), manifest, feature.input, device
        )
        data.layers = None if feature.layer is None else [feature.layer]
    data.protocol = protocol
    return data


def split_layers(
    cfg: Config, folder: RunFolder, manifest: pd.DataFrame, features: list[FeatureKey], device: torch.device
) -> SplitData:
    """``split_features`` for several layers: each split a ``LayerStack`` over the memory-mapped cache."""
    stack, utt_ids, _ = open_layers(cfg, folder, manifest, features)
    stack.threads = stream_threads(device)
    index, y, ids, lengths, fp = _split_rows(manifest, utt_ids, stack.lengths, stack, "wav2vec2", device)
    x = {split: stack.subset(i) for split, i in index.items()}  # views over the maps: nothing is read here
    data = SplitData("wav2vec2_layers", x, y, ids, fp, lengths, layers=[feature.layer for feature in features])
    data.placement = streamed(stack.numel() * 2, device)
    return data


def system_layers_for(
    cfg: Config, folder: RunFolder, name: str, protocol: str = MAIN_PROTOCOL, plan: Optional[LayerPlan] = None
) -> Optional[list[Layer]]:
    """The encoder layers system ``name`` reads under ``protocol`` (None: log-Mel); ``layers: best`` asks the
    per-layer probe for its choice on that protocol's validation split (``serlib.modelling.probe``).
    ``plan``: the run's layers (default: ``plan_layers(cfg)``)."""
    plan = plan or plan_layers(cfg)
    best = probe.best_layer(cfg, folder, protocol) if plan.uses_best(name) else None
    return plan.system_layers(name, best)


def system_features(
    cfg: Config, folder: RunFolder, name: str, protocol: str = MAIN_PROTOCOL, plan: Optional[LayerPlan] = None
) -> list[FeatureKey]:
    """The cache folders system ``name`` reads under ``protocol``: log-Mel's, or one per encoder layer."""
    plan = plan or plan_layers(cfg)
    return plan.input_keys(cfg.systems[name].input, system_layers_for(cfg, folder, name, protocol, plan))


def system_data(
    cfg: Config, folder: RunFolder, name: str, device: torch.device, protocol: str = MAIN_PROTOCOL
) -> SplitData:
    """The features system ``name`` reads (its input and layers), split by ``protocol`` and on ``device``."""
    return load_split_data(cfg, folder, system_features(cfg, folder, name, protocol), device, protocol)
