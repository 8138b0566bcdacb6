"""serlib.report.featureplots: Figs. S10-S12 draw what featurestats computed, into given or new axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from serlib.analysis.featurestats import Projection, WindowExample
from serlib.report import featureplots


def test_pca_figure_has_a_row_per_input_coloured_by_class_and_corpus():
    projection = Projection(
        points=np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]),
        explained=np.array([0.5, 0.25]),
        labels=np.array(["negative", "negative", "sad_fear"]),
        corpora=np.array(["EmoDB", "RAVDESS", "EmoDB"]),
    )
    fig = featureplots.plot_feature_pca({"wav2vec2": projection, "logmel": projection})
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [
        "wav2vec2: coloured by label",
        "wav2vec2: coloured by corpus",
        "logmel: coloured by label",
        "logmel: coloured by corpus",
    ]
    assert axes[0].get_xlabel() == "PC1 (50.0%)" and axes[0].get_ylabel() == "PC2 (25.0%)"
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["negative (2)", "sad_fear (1)"]
    assert [t.get_text() for t in axes[1].get_legend().get_texts()] == [
        "RAVDESS (1)",
        "EmoDB (2)",
    ]  # corpus order of facts.CORPORA
    plt.close(fig)


def test_window_examples_mask_the_padding_and_name_a_class_without_clip():
    values = np.ma.masked_where(np.broadcast_to(np.arange(5) >= 3, (2, 5)), np.ones((2, 5)))
    examples = [WindowExample("negative", "a", values, 3), WindowExample("sad_fear", None, None)]
    fig, axes = plt.subplots(1, 2)
    assert featureplots.plot_window_examples(examples, hop_ms=20.0, axes=axes) is fig
    image = axes[0].images[0]
    assert image.get_array().mask[:, 3:].all() and not image.get_array().mask[:, :3].any()
    assert image.get_extent() == [0, 0.1, 0, 2]  # 5 frames of 20 ms, 2 channels
    assert axes[0].lines[0].get_xdata()[0] == 3 * 0.02  # the dashed line at the last true frame
    assert axes[1].get_title() == "sad_fear: no clip"
    plt.close(fig)


def test_clip_lengths_one_histogram_per_corpus_and_the_window():
    clips = pd.DataFrame({"corpus": ["EmoDB", "EmoDB", "CREMA-D"], "frames": [50.0, 450.0, 120.0]})
    fig = featureplots.plot_clip_lengths(clips, window=400)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["CREMA-D (1)", "EmoDB (2)", "window = 400 frames"]
    assert ax.get_xlabel() == "frames per clip (20 ms each)"
    plt.close(fig)
