"""Figures of the training and ablation notebooks: Tri-Aug (Fig. 1), the network (Fig. 2),
learning curves (Fig. 3) and ablation deltas (Fig. S30). Each function draws into given axes (or new ones),
returns the figure, and never saves or shows it (``serlib.report.display.show_figure`` does that).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.patches import FancyBboxPatch
from matplotlib.ticker import MaxNLocator

from serlib.analysis.training import Curve, lr_reductions


def _axes(ax: Optional[plt.Axes], figsize: tuple[float, float]) -> tuple[plt.Figure, plt.Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def plot_triaug(
    variants: Mapping[str, torch.Tensor], axes: Optional[Sequence[plt.Axes]] = None, frame_ms: float = 20.0
) -> plt.Figure:
    """Fig. 1: one clip's features, clean and under each Tri-Aug operation.

    Args:
        variants: title -> (channels, frames) tensor, e.g. {"original": x, "noise": ..., "all three": ...}.
        axes: one axes per variant (default: a new column of panels).
        frame_ms: frame hop, for the time axis.
    """
    if axes is None:
        fig, axes = plt.subplots(len(variants), 1, figsize=(8, 1.7 * len(variants)), sharex=True)
        axes = np.atleast_1d(axes)
    fig = axes[0].figure
    values = torch.stack([v.detach().cpu().float() for v in variants.values()])
    lo, hi = np.percentile(values.numpy(), [1, 99.5])
    for ax, (title, x) in zip(axes, variants.items()):
        x = x.detach().cpu().float().numpy()  # (channels, frames)
        extent = (0, x.shape[1] * frame_ms / 1000, 0, x.shape[0])
        ax.imshow(
            x, origin="lower", aspect="auto", cmap="magma", vmin=lo, vmax=hi, extent=extent, interpolation="nearest"
        )
        ax.set_ylabel("channel")
        ax.set_title(title, fontsize=9, loc="left")
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def _box(ax: plt.Axes, y: float, text: str, colour: str, height: float = 0.8) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (0.05, y - height / 2),
            0.9,
            height,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=colour,
            edgecolor="#333333",
            linewidth=0.8,
        )
    )
    ax.text(0.5, y, text, ha="center", va="center", fontsize=9)


def plot_model_structure(
    summary: pd.DataFrame, input_label: str, ax: Optional[plt.Axes] = None, title: str = ""
) -> plt.Figure:
    """Fig. 2: the network as a top-down chart, one box per layer of ``model_summary``.

    Args:
        summary: ``serlib.modelling.models.model_summary`` output (layer, kind, detail, output_shape, params).
        input_label: text of the input box, e.g. "input 768 x 400 (wav2vec 2.0)".
        ax: axes to draw into.
        title: optional title (the total parameter count is appended).
    """
    n = len(summary) + 1
    fig, ax = _axes(ax, (7.5, 0.75 * n + 0.6))
    colours = {"ResBlock": "#cfe3f7", "Linear": "#f7d9c4", "GlobalAvgPool": "#e6e6e6"}
    _box(ax, n - 0.5, input_label, "#ffffff")
    for i, row in enumerate(summary.itertuples()):
        y = n - 1.5 - i
        params = f"{row.params / 1e6:.3f} M" if row.params >= 1e5 else f"{row.params:,}"
        text = f"{row.layer}: {row.kind} [{row.detail}]\nout {row.output_shape}  |  params {params}"
        _box(ax, y, text, colours.get(row.kind, "#dff0d8"))
        ax.annotate("", xy=(0.5, y + 0.42), xytext=(0.5, y + 0.58), arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_xlim(0, 1)
    ax.set_ylim(0, n)
    ax.axis("off")
    total = int(summary["params"].sum())
    ax.set_title(f"{title}  (total {total / 1e6:.2f} M parameters)".strip(), fontsize=10)
    return fig


def plot_learning_curves(
    history: pd.DataFrame,
    best_epoch: int,
    max_epochs: int,
    ax: Optional[plt.Axes] = None,
    title: str = "",
    chance: float = 1 / 3,
) -> plt.Figure:
    """Fig. 3: train and validation accuracy per epoch, LR reductions, the kept checkpoint and the stop.

    Args:
        history: ``history.csv`` of one run (epoch, train_acc, val_acc, lr).
        best_epoch: epoch of the kept checkpoint.
        max_epochs: the epoch cap; a run that ended before it was stopped early.
        ax: axes to draw into.
        title: panel title.
        chance: accuracy of guessing (a dotted line).
    """
    fig, ax = _axes(ax, (7, 3.6))
    ax.plot(history["epoch"], history["train_acc"], label="train", color="#1f77b4")
    ax.plot(history["epoch"], history["val_acc"], label="validation", color="#d62728")
    ax.axhline(chance, color="grey", linestyle=":", linewidth=0.8, label="chance")
    for i, epoch in enumerate(lr_reductions(history)):
        ax.axvline(epoch, color="#2ca02c", linestyle="--", linewidth=0.9, label="LR halved" if i == 0 else None)
    best_acc = float(history.loc[history["epoch"] == best_epoch, "val_acc"].iloc[0])
    ax.plot(
        [best_epoch],
        [best_acc],
        marker="*",
        markersize=12,
        color="#d62728",
        linestyle="none",
        label=f"kept checkpoint (epoch {best_epoch})",
    )
    last = int(history["epoch"].iloc[-1])
    if last < max_epochs:
        ax.axvline(last, color="black", linestyle="-.", linewidth=0.9, label=f"early stop (epoch {last})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0.5, max(last, 2) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=9, loc="lower right")
    return fig


def plot_learning_curve_panels(
    curves: Sequence[Curve], max_epochs: int, axes: Optional[Sequence[plt.Axes]] = None
) -> plt.Figure:
    """Fig. 3: ``plot_learning_curves`` of several runs side by side.

    Args:
        curves: ``serlib.analysis.training.learning_curves``, one panel each.
        max_epochs: the epoch cap of the run.
        axes: one axes per curve (default: a new row of panels).
    """
    if axes is None:
        _, grid = plt.subplots(1, len(curves), figsize=(6.5 * len(curves), 3.6), squeeze=False)
        axes = grid[0]
    for ax, curve in zip(axes, curves):
        plot_learning_curves(curve.history, curve.best_epoch, max_epochs, ax=ax, title=curve.title)
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def plot_ablation_deltas(table: pd.DataFrame, ax: Optional[plt.Axes] = None) -> plt.Figure:
    """Test-accuracy change of each ablation against Full, this run beside the paper (points).

    Args:
        table: rows = variants (column ``variant``), columns ``delta_test_pp`` and ``paper_delta_test_pp``.
    """
    fig, ax = _axes(ax, (6, 3.2))
    rows = table[table["variant"] != "Full"]
    position = np.arange(len(rows))
    ax.bar(position - 0.2, rows["delta_test_pp"], width=0.4, label="this run", color="#1f77b4")
    ax.bar(position + 0.2, rows["paper_delta_test_pp"], width=0.4, label="paper", color="#bbbbbb")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(position)
    ax.set_xticklabels(rows["variant"])
    ax.set_ylabel("test accuracy - Full (pp)")
    ax.legend(fontsize=9)
    return fig


def plot_reliability(table: pd.DataFrame, ece: Optional[float] = None, ax: Optional[plt.Axes] = None) -> plt.Figure:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with the clips per bin.

    Args:
        table: ``serlib.analysis.stats.reliability_table`` output (lo, hi, clips, confidence, accuracy).
        ece: the expected calibration error, shown in the title.
        ax: axes to draw into.
    """
    fig, ax = _axes(ax, (4.6, 4.2))
    used = table[table["clips"] > 0]
    width = float((table["hi"] - table["lo"]).iloc[0])
    ax.bar(
        used["lo"],
        used["accuracy"],
        width=width,
        align="edge",
        color="#4c9be8",
        edgecolor="white",
        label="accuracy in bin",
    )
    ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=0.9, label="perfect calibration")
    ax.plot(used["confidence"], used["accuracy"], "o", color="#d62728", markersize=4, label="mean confidence")
    for row in used.itertuples():
        ax.text(row.lo + width / 2, min(row.accuracy, 0.95) + 0.02, str(row.clips), ha="center", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability" + (f" (ECE {ece:.3f})" if ece is not None else ""), fontsize=10)
    ax.legend(fontsize=9, loc="upper left")
    return fig


def plot_layer_weights(weights: pd.DataFrame, ax: Optional[plt.Axes] = None) -> plt.Figure:
    """Fig. S27: the learned softmax weight of every layer (bars: mean over seeds, dots: each seed), one colour per
    ``wav2vec2_layers`` system, the uniform start dashed (``serlib.analysis.layerstats.layer_weights``)."""
    systems = list(dict.fromkeys(weights["system"]))
    indices = sorted(set(weights["index"]))
    fig, ax = _axes(ax, (max(4.5, 0.5 * len(indices) * len(systems) + 2), 3.2))
    width = 0.8 / len(systems)
    for k, name in enumerate(systems):
        part = weights[weights["system"] == name]
        mean = part.groupby("index")["weight"].mean().reindex(indices)
        offset = (k - (len(systems) - 1) / 2) * width
        ax.bar(np.array(indices) + offset, mean.to_numpy(), width=width * 0.9, alpha=0.7, label=name)
        ax.plot(part["index"].to_numpy() + offset, part["weight"].to_numpy(), "k.", markersize=4)
    ax.axhline(1 / len(indices), color="grey", linestyle="--", linewidth=0.8, label="uniform (start)")
    ax.set_xticks(indices)
    last = set(weights.loc[weights["layer"] == "last", "index"])
    ax.set_xticklabels([f"{i} (last)" if i in last else str(i) for i in indices], fontsize=9)
    ax.set_xlabel("encoder layer (0 = the transformer's input)")
    ax.set_ylabel("softmax weight")
    ax.legend(fontsize=8)
    return fig
