"""Plots of the data notebook (``01_data``): class balance and duration distributions.

Each function takes ``ax=None`` (a new figure when None), draws, and returns the figure; it never
saves or shows (``serlib.report.display.show_figure`` does both).
"""

from __future__ import annotations

from typing import Optional

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from serlib.common.facts import CLASSES, CORPORA, SUBSETS

CLASS_COLOURS = dict(zip(CLASSES, sns.color_palette("colorblind", len(CLASSES))))


def _axes(ax: Optional[plt.Axes], size: tuple = (6.0, 3.6)) -> tuple[plt.Figure, plt.Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=size)
        return fig, ax
    return ax.figure, ax


def plot_class_balance(
    manifest: pd.DataFrame, by: str = "corpus", normalise: bool = False, ax: Optional[plt.Axes] = None
) -> plt.Figure:
    """Grouped bars of class counts (or shares) per corpus or per subset.

    Args:
        manifest: kept utterances (columns ``label`` and ``by``).
        by: "corpus" or "split".
        normalise: bars show the share of each class within a group (0-1) instead of counts.
        ax: axes to draw on; None makes a new figure.

    Returns:
        The figure.
    """
    if by not in ("corpus", "split"):
        raise ValueError(f"plot_class_balance: by must be 'corpus' or 'split', got {by!r}")
    order = [g for g in (CORPORA if by == "corpus" else SUBSETS) if g in set(manifest[by])]
    counts = (
        manifest.groupby([by, "label"])
        .size()
        .unstack(fill_value=0)
        .reindex(index=order, columns=list(CLASSES), fill_value=0)
    )
    if normalise:
        counts = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
    fig, ax = _axes(ax)
    counts.plot.bar(ax=ax, color=[CLASS_COLOURS[c] for c in CLASSES], rot=0, width=0.8)
    ax.set_xlabel({"corpus": "corpus", "split": "subset"}[by])
    ax.set_ylabel("share of utterances" if normalise else "utterances")
    if normalise:
        ax.axhline(1 / len(CLASSES), color="0.4", lw=0.8, ls="--")
    ax.legend(ncol=len(CLASSES), loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=9, frameon=False)
    return fig


def plot_durations(scanned: pd.DataFrame, min_duration_s: float = 1.0, ax: Optional[plt.Axes] = None) -> plt.Figure:
    """Distributions of clip duration per corpus (every scanned file), with the MCULP cut-off.

    Args:
        scanned: utterances with ``corpus`` and ``duration_s``.
        min_duration_s: MCULP's minimum duration, drawn as a vertical line.
        ax: axes to draw on; None makes a new figure.

    Returns:
        The figure.
    """
    fig, ax = _axes(ax, (7.0, 3.6))
    order = [c for c in CORPORA if c in set(scanned["corpus"])]
    sns.histplot(
        data=scanned,
        x="duration_s",
        hue="corpus",
        hue_order=order,
        stat="density",
        common_norm=False,
        element="step",
        fill=False,
        bins=40,
        ax=ax,
    )
    ax.axvline(min_duration_s, color="firebrick", lw=1.0, ls="--")
    ax.text(
        min_duration_s,
        ax.get_ylim()[1] * 0.95,
        f" {min_duration_s:g} s cut-off",
        color="firebrick",
        fontsize=9,
        va="top",
    )
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("density (per corpus)")
    return fig
