"""Figures of the features notebook (``02_features``): the 2-D PCA of pooled features (Fig. S10),
masked log-Mel windows (Fig. S11) and clip lengths against the window (Fig. S12).

Each function draws what ``serlib.analysis.featurestats`` computed into given axes (or new ones),
returns the figure, and never saves or shows it (``serlib.report.display.show_figure`` does both).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from serlib.analysis.featurestats import Projection, WindowExample
from serlib.common.facts import CLASSES, CORPORA


def plot_feature_pca(projections: Mapping[str, Projection], axes: Optional[np.ndarray] = None) -> plt.Figure:
    """Fig. S10: each input's clips on two principal components, coloured by class (left) and corpus (right).

    Args:
        projections: ``{input: Projection}`` (``featurestats.feature_pca``), one row of panels each.
        axes: ``(inputs, 2)`` axes to draw into (default: a new figure).

    Returns:
        The figure.
    """
    if axes is None:
        _, axes = plt.subplots(len(projections), 2, figsize=(11, 4.6 * len(projections)), squeeze=False)
    fig = axes[0][0].figure
    for row, (name, projection) in zip(axes, projections.items()):
        for ax, column, values, groups in (
            (row[0], "label", projection.labels, CLASSES),
            (row[1], "corpus", projection.corpora, CORPORA),
        ):
            for group in groups:
                chosen = values == group  # (n,)
                if chosen.any():
                    ax.scatter(
                        projection.points[chosen, 0],
                        projection.points[chosen, 1],
                        s=9,
                        alpha=0.6,
                        label=f"{group} ({chosen.sum()})",
                    )
            ax.set_title(f"{name}: coloured by {column}")
            ax.set_xlabel(f"PC1 ({100 * projection.explained[0]:.1f}%)")
            ax.set_ylabel(f"PC2 ({100 * projection.explained[1]:.1f}%)")
            ax.legend(fontsize=9, markerscale=2)
    fig.tight_layout()
    return fig


def plot_window_examples(
    examples: Sequence[WindowExample], hop_ms: float = 20.0, axes: Optional[Sequence[plt.Axes]] = None
) -> plt.Figure:
    """Fig. S11: one fixed window per class as the model sees it; padding grey, right of a dashed line.

    Args:
        examples: ``featurestats.class_examples``, one panel each.
        hop_ms: frame hop, for the time axis.
        axes: one axes per example (default: a new row of panels sharing the y axis).

    Returns:
        The figure.
    """
    if axes is None:
        _, axes = plt.subplots(1, len(examples), figsize=(14, 3.4), sharey=True)
        axes = np.atleast_1d(axes)
    fig, hop_s, image = axes[0].figure, hop_ms / 1000, None
    cmap = plt.get_cmap("magma").with_extremes(bad="0.85")  # masked (padded) frames in grey
    for ax, example in zip(axes, examples):
        if example.values is None:
            ax.set_title(f"{example.label}: no clip")
            continue
        channels, frames = example.values.shape
        image = ax.imshow(
            example.values, origin="lower", aspect="auto", cmap=cmap, extent=(0, frames * hop_s, 0, channels)
        )
        ax.axvline(example.true_frames * hop_s, color="cyan", ls="--", lw=1)
        ax.set_title(f"{example.label}: {example.utt_id}", fontsize=9)
        ax.set_xlabel("time in the window (s)")
    axes[0].set_ylabel("mel band")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="log power")
    return fig


def plot_clip_lengths(
    clips: pd.DataFrame, window: int, hop_ms: float = 20.0, ax: Optional[plt.Axes] = None
) -> plt.Figure:
    """Fig. S12: histograms of clip length in frames per corpus, with the fixed window as a dashed line.

    Args:
        clips: ``featurestats.clip_frames`` (columns ``corpus`` and ``frames``).
        window: the fixed number of frames (``features.frames``).
        hop_ms: frame hop, for the axis label.
        ax: axes to draw into (default: a new figure).

    Returns:
        The figure.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.4))
    frames = clips["frames"].to_numpy()  # (n,)
    for corpus in CORPORA:
        chosen = (clips["corpus"] == corpus).to_numpy()
        if chosen.any():
            ax.hist(frames[chosen], bins=40, alpha=0.55, label=f"{corpus} ({chosen.sum()})")
    ax.axvline(window, color="black", ls="--", label=f"window = {window} frames")
    ax.set_xlabel(f"frames per clip ({hop_ms:g} ms each)")
    ax.set_ylabel("clips")
    ax.legend(fontsize=9)
    return ax.figure


def plot_layer_probe(table: pd.DataFrame, ax: Optional[plt.Axes] = None, chance: float = 1 / 3) -> plt.Figure:
    """Fig. S13: the per-layer probe's test UAR by layer with its 95 % interval, validation UAR beside it,
    the layer validation chose ringed (``serlib.analysis.layerstats.probe_table``)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(max(4.5, 0.55 * len(table) + 2), 3.4))
    x = table["index"].to_numpy(int)
    uar = table["uar"].to_numpy(float)
    errors = np.vstack([uar - table["uar_lo"].to_numpy(float), table["uar_hi"].to_numpy(float) - uar])
    ax.errorbar(x, uar, yerr=errors, fmt="o-", color="#1f77b4", capsize=4, label="test UAR (95 % interval)")
    ax.plot(
        x,
        table["val_uar"].to_numpy(float),
        "s--",
        color="#ff7f0e",
        markerfacecolor="none",
        label="val. UAR (chooses the layer)",
    )
    chosen = table["chosen on val"] == "✓"
    if chosen.any():
        ax.plot(
            x[chosen.to_numpy()],
            uar[chosen.to_numpy()],
            "o",
            markersize=14,
            markerfacecolor="none",
            markeredgecolor="black",
            label="chosen on val",
        )
    ax.axhline(chance, color="grey", linestyle=":", linewidth=0.8, label="chance")
    ax.set_xticks(x)
    ax.set_xticklabels(
        [str(i) + (" (last)" if "last" in name else "") for i, name in zip(x, table["layer"])], fontsize=9
    )
    ax.set_xlabel("encoder layer (0 = the transformer's input)")
    ax.set_ylabel("UAR")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="lower right")
    return fig
