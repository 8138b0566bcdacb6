"""Figures of the confusion notebook (``05_confusion``): the confusion matrix beside the paper's (Fig. 4) and
the prosody of correct and misclassified clips (Fig. S40). Each function draws into given axes (or new ones),
returns the figure, and never saves or shows it (``serlib.report.display.show_figure`` does that).
"""

from __future__ import annotations

from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from serlib.analysis.prosody import PROSODY_LABELS, with_outcome
from serlib.common.facts import CLASSES


def plot_confusion(
    conf: pd.DataFrame,
    ax=None,
    title: str = "",
    cmap: str = "Blues",
    vmin: float = 0.0,
    vmax: float = 1.0,
    center: Optional[float] = None,
) -> plt.Figure:
    """One row-normalised confusion matrix as an annotated seaborn heatmap."""

    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.6))
    sns.heatmap(
        conf.astype(float),
        annot=True,
        fmt=".3f",
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        center=center,
        square=True,
        cbar=True,
        ax=ax,
        linewidths=0.5,
        linecolor="white",
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return ax.figure


def plot_confusion_beside_paper(conf: pd.DataFrame, paper_conf: pd.DataFrame, run_title: str) -> plt.Figure:
    """Fig. 4: this run's matrix, the paper's, and their difference, side by side."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    plot_confusion(conf, ax=axes[0], title=run_title)
    plot_confusion(paper_conf.loc[CLASSES, CLASSES], ax=axes[1], title="paper (Table 7)")
    plot_confusion(
        conf - paper_conf.loc[CLASSES, CLASSES],
        ax=axes[2],
        title="this run - paper",
        cmap="RdBu_r",
        vmin=-0.5,
        vmax=0.5,
        center=0.0,
    )
    fig.tight_layout()
    return fig


def plot_prosody_by_outcome(
    preds: pd.DataFrame,
    prosody: pd.DataFrame,
    descriptors: tuple = (
        "f0_mean_hz",
        "f0_range_st",
        "f0_slope_st_s",
        "rms_mean_db",
        "rms_slope_db_s",
        "onset_rate_hz",
    ),
) -> plt.Figure:
    """Fig. S40: box plots of prosody descriptors per true class, correct vs misclassified side by side."""
    merged = with_outcome(preds, prosody)
    cols = 3
    rows = int(np.ceil(len(descriptors) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(13, 3.4 * np.ceil(len(descriptors) / cols)), squeeze=False)
    for ax, column in zip(axes.flat, descriptors):
        sns.boxplot(
            data=merged,
            x="label",
            y=column,
            hue="outcome",
            order=list(CLASSES),
            hue_order=["correct", "misclassified"],
            palette={"correct": "#4c9be8", "misclassified": "#e8794c"},
            ax=ax,
            fliersize=2,
        )
        ax.set_title(PROSODY_LABELS[column], fontsize=10)
        ax.set_xlabel("true class")
        ax.set_ylabel("")
        if ax is not axes.flat[0] and ax.get_legend() is not None:
            ax.get_legend().remove()
    for ax in list(axes.flat)[len(descriptors) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
