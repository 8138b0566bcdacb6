"""Classification metrics against scikit-learn on a case where macro and micro averages differ."""

import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from serlib.modelling.metrics import classification_metrics


def test_macro_recall_and_f1_on_an_imbalanced_case():
    y_true = [0] * 10 + [1] * 3 + [2] * 2
    y_pred = [0] * 9 + [1] + [1, 0, 0] + [2, 0]
    m = classification_metrics(y_true, y_pred)
    # by hand: recalls 0.9, 1/3, 0.5 -> macro 0.578; accuracy (micro recall) 11/15 = 0.733
    assert m["macro_recall"] == pytest.approx((0.9 + 1 / 3 + 0.5) / 3) == m["uar"]
    assert m["accuracy"] == pytest.approx(11 / 15) != pytest.approx(m["macro_recall"])
    assert m["macro_recall"] == pytest.approx(recall_score(y_true, y_pred, average="macro"))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["macro_f1"] != pytest.approx(f1_score(y_true, y_pred, average="micro"))
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert m["per_class_recall"]["sad_fear"] == pytest.approx(1 / 3)


def test_one_uar_definition_a_class_without_clips_is_left_out():
    from serlib.analysis import stats
    from serlib.modelling.metrics import metrics_from_counts

    y_true, y_pred = [0, 0, 1, 1, 1], [0, 1, 1, 1, 2]  # no clip of class 2, one predicted as 2
    m = classification_metrics(y_true, y_pred)
    # by hand: recalls 1/2 and 2/3 over the two classes present; class 2 has no recall (not a recall of 0)
    assert m["uar"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["uar"] == pytest.approx(recall_score(y_true, y_pred, labels=[0, 1], average="macro"))
    assert m["uar"] != pytest.approx(recall_score(y_true, y_pred, labels=[0, 1, 2], average="macro", zero_division=0))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=[0, 1], average="macro"))
    counts = [[1, 1, 0], [0, 2, 1], [0, 0, 0]]
    assert metrics_from_counts(counts)["uar"] == pytest.approx(m["uar"])
    assert stats.metrics_from_counts is metrics_from_counts  # the statistics score with the same definition
    table = stats.speaker_bootstrap(y_true, y_pred, ["a"] * 5, n_resamples=10).set_index("metric")
    assert table.at["uar", "value"] == pytest.approx(m["uar"]) and table.at["macro_f1", "value"] == m["macro_f1"]
