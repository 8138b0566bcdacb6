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
