"""The layer probe's choice (validation only) and its split arrays (``serlib.modelling.probe``)."""

import numpy as np
import pandas as pd
import pytest

from serlib.common.facts import CLASSES
from serlib.modelling.probe import _split_arrays, choose_layer


def _table(val_uar, val_acc, index, test_uar):
    return pd.DataFrame({"val_uar": val_uar, "val_acc": val_acc, "index": index, "test_uar": test_uar})


def test_the_choice_is_the_best_validation_uar_never_the_test_score():
    table = _table([0.50, 0.70, 0.60], [0.9, 0.6, 0.6], [0, 6, 12], [0.95, 0.40, 0.50])
    assert choose_layer(table) == 1  # not row 0 (best test and validation accuracy), not row 2
    table["test_uar"] = [0.1, 0.2, 0.99]
    assert choose_layer(table) == 1


def test_ties_go_to_the_better_validation_accuracy_then_the_lower_layer():
    assert choose_layer(_table([0.7, 0.7, 0.6], [0.5, 0.8, 0.9], [0, 6, 12], [0.9, 0.1, 0.9])) == 1
    assert choose_layer(_table([0.7, 0.7, 0.7], [0.8, 0.8, 0.8], [12, 3, 6], [0.9, 0.1, 0.9])) == 1
    labelled = _table([0.7, 0.7], [0.8, 0.8], [9, 2], [0, 0]).set_axis(["x", "y"])
    assert choose_layer(labelled) == "y"  # the row label, for table["chosen"] = table.index == best


def _manifest():
    rows = [
        ("a", "train", CLASSES[0]),
        ("b", "test", CLASSES[1]),
        ("c", "val", CLASSES[2]),
        ("d", "train", CLASSES[2]),
        ("e", "test", CLASSES[0]),
        ("f", "val", CLASSES[1]),
    ]
    return pd.DataFrame(rows, columns=["utt_id", "split", "label"])


def test_split_arrays_follow_the_feature_order_not_the_manifest_order():
    ids = ["e", "d", "c", "b", "a", "f"]  # the cache's order
    x = np.arange(12.0).reshape(6, 2)  # row i belongs to ids[i]
    xs, ys, test_ids = _split_arrays(ids, x, _manifest())
    assert xs["train"].tolist() == [[2.0, 3.0], [8.0, 9.0]]  # d, a
    assert ys["train"].tolist() == [2, 0]
    assert xs["val"].tolist() == [[4.0, 5.0], [10.0, 11.0]] and ys["val"].tolist() == [2, 1]  # c, f
    assert xs["test"].tolist() == [[0.0, 1.0], [6.0, 7.0]] and ys["test"].tolist() == [0, 1]  # e, b
    assert list(test_ids) == ["e", "b"]
    assert ys["test"].dtype.kind == "i"


@pytest.mark.parametrize("missing", ["train", "val", "test"])
def test_split_arrays_refuse_a_subset_without_clips(missing):
    manifest = _manifest()
    manifest = manifest[manifest["split"] != missing]
    with pytest.raises(ValueError, match=f"no '{missing}' clips"):
        _split_arrays(list(manifest["utt_id"]), np.zeros((len(manifest), 2)), manifest)
