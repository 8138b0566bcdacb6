"""What the features notebook (``02_features``) shows, computed: the extraction table (Table S10),
the feature statistics over true frames (Table S11), the 2-D PCA of utterance-pooled features
(Fig. S10), one masked log-Mel window per class (Fig. S11), clip lengths in frames (Fig. S12) and
the notes on the encoder and on clips that could not be read.

Inputs are the feature summary ``serlib.pipeline.ensure_features`` returns and the padded
``FeatureSet`` of each input (``serlib.features.load.load_features``): ``x`` ``(n, channels,
frames)`` with ``lengths`` ``(n,)`` true frames per clip. Every statistic counts true frames only,
whatever the padding holds. The figures themselves are drawn by ``serlib.report.featureplots``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA

from serlib.common.config import Config
from serlib.common.facts import CLASSES
from serlib.common.paper import PAPER_INPUT_CHANNELS
from serlib.common.runfolder import RunFolder
from serlib.features.encoders import encoder_description
from serlib.features.layers import plan_layers
from serlib.features.load import FeatureSet, load_features

# --------------------------------------------------------------------------- loading and Table S10


def load_timed(
    cfg: Config, folder: RunFolder, manifest: pd.DataFrame, inputs: Sequence[str]
) -> tuple[dict[str, FeatureSet], dict[str, float]]:
    """Load every input of the run as one padded tensor, the way training reads them, and time it.

    Args:
        cfg: the run configuration.
        folder: the run folder (its cache must be filled: ``serlib.pipeline.ensure_features``).
        manifest: the clips to load.
        inputs: e.g. ``["wav2vec2", "logmel"]``.

    Returns:
        ``({input: FeatureSet}, {input: seconds the load took})``.
    """
    loaded, seconds = {}, {}
    for name in inputs:
        start = time.perf_counter()
        loaded[name] = load_features(cfg, folder, manifest, plan_layers(cfg).key(name))
        seconds[name] = time.perf_counter() - start
    return loaded, seconds


def extraction_table(
    summary: dict, loaded: Mapping[str, FeatureSet], load_seconds: Mapping[str, float]
) -> pd.DataFrame:
    """Table S10: per input, what the extraction step did now, its throughput, the cache and the load.

    Args:
        summary: ``serlib.features.extract.extract_for_run``'s summary (``{"inputs": {input: stats}, ...}``).
        loaded: ``{input: FeatureSet}`` (``load_timed``).
        load_seconds: ``{input: seconds}`` (``load_timed``).

    Returns:
        One row per loaded input. Throughput, device, threads and mean batch are those of the last
        computation when every clip came from the cache now.
    """
    rows = []
    for name, features in loaded.items():
        s = summary["inputs"][name]
        last = s["last_compute"] or {}
        rows.append(
            {
                "input": name,
                "clips": s["clips"],
                "failed": len(s["failed"]),
                "computed now": s["computed"],
                "cached": s["cached"],
                "step s": s["seconds"],
                "clips/s": s["clips_per_s"] or last.get("clips_per_s"),
                "device": last.get("device", s["device"]),
                "threads": last.get("torch_threads"),
                "mean batch": last.get("mean_batch"),
                "cache MiB": s["cache_bytes"] / 2**20,
                "load s (all clips)": load_seconds[name],
                "tensor": "x".join(map(str, features.x.shape)),
                "weights": s["weights"],
                "encoder": s["encoder"],
            }
        )
    return pd.DataFrame(rows)


def audio_minutes(summary: dict) -> float:
    """Minutes of audio behind the summary's clips (0 when the manifest held no durations)."""
    return (summary["audio_seconds"] or 0) / 60


# --------------------------------------------------------------------------- Table S11


def true_frame_sums(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip and channel, the sum and the sum of squares of the values in the clip's true frames.

    Float64, one clip at a time (a float64 copy of a whole run's tensor would not fit in memory). Frames
    at or past a clip's length are masked to 0, so whatever the padding holds never enters a sum.

    Args:
        x: ``(n, channels, frames)`` features.
        lengths: ``(n,)`` true frames per clip.

    Returns:
        ``(sums, squares)``, each ``(n, channels)`` float64.
    """
    frame = torch.arange(x.shape[2])  # (frames,)
    sums, squares = [], []
    for clip, length in zip(x, lengths):
        kept = torch.where(frame < length, clip.double(), 0.0)  # (channels, frames), padding -> 0
        sums.append(kept.sum(-1))
        squares.append((kept**2).sum(-1))
    return torch.stack(sums), torch.stack(squares)


def pooled_means(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(n, channels)`` float64: each clip's per-channel mean over its true frames (an empty clip gives 0)."""
    sums, _ = true_frame_sums(x, lengths)
    return sums / lengths[:, None].clamp(min=1)


def value_statistics(x: torch.Tensor, lengths: torch.Tensor) -> dict:
    """Mean and std of every value in the true frames of all clips, and the spread of channel means.

    Args:
        x: ``(n, channels, frames)`` features.
        lengths: ``(n,)`` true frames per clip.

    Returns:
        ``{"value mean", "value std", "channel-mean spread"}``: the mean and the (population) std over
        all true-frame values of all channels; the std over channels of the mean, across clips, of each
        clip's true-frame channel mean.
    """
    sums, squares = true_frame_sums(x, lengths)  # (n, channels) each
    values = lengths.double().sum() * x.shape[1]  # true-frame values of all clips and channels
    mean = sums.sum() / values
    std = torch.sqrt(squares.sum() / values - mean**2)
    channel_means = sums / lengths[:, None].clamp(min=1)  # (n, channels)
    return {
        "value mean": mean.item(),
        "value std": std.item(),
        "channel-mean spread": channel_means.mean(0).std().item(),
    }


def feature_statistics(loaded: Mapping[str, FeatureSet]) -> pd.DataFrame:
    """Table S11: per input, true frames per clip against the fixed window, padding, value statistics.

    Args:
        loaded: ``{input: FeatureSet}``.

    Returns:
        One row per input: clips, channels, frames (the window); mean / min / max true frames; the share
        of clips that fill the window (at least as long as it: trimmed or exact) and of padded frames, in %;
        and ``value_statistics`` over true frames only.
    """
    rows = []
    for name, features in loaded.items():
        clips, channels, frames = features.x.shape
        true = features.lengths.double()  # (n,)
        rows.append(
            {
                "input": name,
                "clips": clips,
                "channels": channels,
                "frames": frames,
                "true frames mean": true.mean().item(),
                "true frames min": int(true.min()),
                "true frames max": int(true.max()),
                "full window %": 100 * (features.lengths == frames).double().mean().item(),
                "padding %": 100 * (1 - true.sum().item() / (clips * frames)),
                **value_statistics(features.x, features.lengths),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- Fig. S10


@dataclass
class Projection:
    """Clips of one input projected on the first two principal components.

    Attributes:
        points: ``(n, 2)`` coordinates on PC1 and PC2.
        explained: ``(2,)`` share of the variance each component explains (0-1).
        labels: ``(n,)`` class of each clip.
        corpora: ``(n,)`` corpus of each clip.
    """

    points: np.ndarray
    explained: np.ndarray
    labels: np.ndarray
    corpora: np.ndarray


def standardise(values: np.ndarray) -> np.ndarray:
    """``(n, d)`` -> ``(n, d)``: each column to zero mean and unit (population) std; a constant column -> 0."""
    return (values - values.mean(0)) / (values.std(0) + 1e-8)


def pca_2d(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``values`` ``(n, d)`` on their first two principal components.

    Returns:
        ``(points (n, 2), explained variance ratio (2,))``, with scikit-learn's sign convention.
    """
    pca = PCA(n_components=2, random_state=0).fit(values)
    return pca.transform(values), pca.explained_variance_ratio_


def feature_pca(loaded: Mapping[str, FeatureSet], manifest: pd.DataFrame) -> dict[str, Projection]:
    """Fig. S10's data: per input, clips pooled over their true frames, channels standardised, on 2 PCs.

    Args:
        loaded: ``{input: FeatureSet}``.
        manifest: holds ``utt_id``, ``label`` and ``corpus`` of every loaded clip.

    Returns:
        ``{input: Projection}``.
    """
    rows = manifest.set_index("utt_id")
    projections = {}
    for name, features in loaded.items():
        pooled = standardise(pooled_means(features.x, features.lengths).numpy())  # (n, channels)
        points, explained = pca_2d(pooled)
        meta = rows.loc[features.utt_ids]
        projections[name] = Projection(points, explained, meta["label"].to_numpy(), meta["corpus"].to_numpy())
    return projections


# --------------------------------------------------------------------------- Fig. S11 and S12


@dataclass
class WindowExample:
    """One clip's fixed window as the model sees it, padding masked.

    Attributes:
        label: the class the clip stands for.
        utt_id: the clip, None when the class has no loaded clip.
        values: ``(channels, frames)`` masked array, frames past ``true_frames`` masked (None without a clip).
        true_frames: frames of the clip in the window.
    """

    label: str
    utt_id: Optional[str]
    values: Optional[np.ma.MaskedArray]
    true_frames: int = 0


def masked_window(features: FeatureSet, i: int) -> np.ma.MaskedArray:
    """Clip ``i`` of ``features`` as ``(channels, frames)``, its padded frames masked."""
    x = features.x[i].numpy()  # (channels, frames)
    padded = np.arange(x.shape[1]) >= features.lengths[i].item()  # (frames,)
    return np.ma.masked_where(np.broadcast_to(padded, x.shape), x)


def class_examples(manifest: pd.DataFrame, features: FeatureSet) -> list[WindowExample]:
    """Fig. S11's data: the first loaded clip of each class, in manifest order, as a masked window.

    Args:
        manifest: holds ``utt_id`` and ``label``.
        features: e.g. the log-Mel ``FeatureSet``.

    Returns:
        One ``WindowExample`` per class of ``serlib.common.facts.CLASSES`` (empty for a class without a clip).
    """
    position = {u: i for i, u in enumerate(features.utt_ids)}
    loaded = manifest[manifest["utt_id"].isin(position)]
    examples = []
    for label in CLASSES:
        chosen = loaded.loc[loaded["label"] == label, "utt_id"]
        if chosen.empty:
            examples.append(WindowExample(label, None, None))
            continue
        i = position[chosen.iloc[0]]
        examples.append(
            WindowExample(label, chosen.iloc[0], masked_window(features, i), int(features.lengths[i].item()))
        )
    return examples


def clip_frames(manifest: pd.DataFrame, loaded: Mapping[str, FeatureSet], hop_ms: float) -> pd.DataFrame:
    """Fig. S12's data: each clip's length in frames before the fixed window (from its duration).

    Args:
        manifest: holds ``utt_id``, ``corpus`` and ``duration_s``.
        loaded: ``{input: FeatureSet}``; the clips of the first input are counted.
        hop_ms: the frame hop.

    Returns:
        One row per clip: ``utt_id``, ``corpus``, ``frames`` (duration / hop, rounded).
    """
    utt_ids = next(iter(loaded.values())).utt_ids
    meta = manifest.set_index("utt_id").loc[utt_ids]
    frames = np.round(meta["duration_s"].to_numpy() / (hop_ms / 1000))  # (n,)
    return pd.DataFrame({"utt_id": utt_ids, "corpus": meta["corpus"].to_numpy(), "frames": frames})


# --------------------------------------------------------------------------- notes


def encoder_notes(cfg: Config, inputs: Sequence[str]) -> dict[str, str]:
    """The notes above the features: random weights, a reduced encoder, and what computed each input.

    Returns:
        ``{"random": warning or "", "reduced": paper note or "", "encoders": one line per input}``.
    """
    w2v = cfg.features.wav2vec2
    random = (
        "RANDOM encoder weights. The wav2vec2 features of this run come from a randomly initialised "
        "encoder (fixed seed), not from pretrained wav2vec 2.0: they exercise the pipeline but carry none "
        "of its learned speech knowledge, so no number built on them speaks to the paper's claims. "
        "Set features.wav2vec2.weights: pretrained on a machine that has the weights."
    )
    reduced = (
        f"Reduced encoder (CHOSEN for this profile's time budget): features.wav2vec2.config_overrides = "
        f"{w2v.config_overrides}. The paper uses the full wav2vec 2.0-base (12 layers, "
        f"{PAPER_INPUT_CHANNELS['wav2vec2']} wide, 7 conv layers of 512)."
    )
    return {
        "random": random if w2v.weights == "random" else "",
        "reduced": reduced if w2v.config_overrides else "",
        "encoders": " | ".join(f"{name}: {encoder_description(cfg, name)}" for name in inputs),
    }


def failed_clips_note(folder: RunFolder, shown: int = 5) -> str:
    """A warning naming the clips whose features could not be computed ("" when there are none)."""
    failed = pd.read_csv(folder.features_failed)
    if not len(failed):
        return ""
    return (
        f"{len(failed)} clip(s) could not be read and are left out of the features (rows dropped, never "
        f"zero-filled): " + "; ".join(f"{r.utt_id}: {r.reason}" for r in failed.head(shown).itertuples())
    )
