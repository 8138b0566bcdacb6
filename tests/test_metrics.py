"""Classification metrics against scikit-learn on a case where macro and micro averages differ."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from serlib.modelling import metrics
from serlib.modelling.metrics import classification_metrics, metrics_from_counts


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
    # precision too: class 2 is predicted once (wrongly) but has no clip, so its precision of 0 is left out
    assert m["macro_precision"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert m["macro_precision"] == pytest.approx(precision_score(y_true, y_pred, labels=[0, 1], average="macro"))
    counts = [[1, 1, 0], [0, 2, 1], [0, 0, 0]]
    assert metrics_from_counts(counts)["uar"] == pytest.approx(m["uar"])
    assert stats.metrics_from_counts is metrics_from_counts  # the statistics score with the same definition
    table = stats.speaker_bootstrap(y_true, y_pred, ["a"] * 5, n_resamples=10).set_index("metric")
    assert table.at["uar", "value"] == pytest.approx(m["uar"]) and table.at["macro_f1", "value"] == m["macro_f1"]


def test_confusion_rows_are_the_true_class_and_sum_to_one():
    # 3 negative clips (2 right, 1 called pos_neutral), 1 sad_fear clip (right), 2 pos_neutral (both negative)
    y_true = [0, 0, 0, 1, 2, 2]
    y_pred = [0, 0, 2, 1, 0, 0]
    m = classification_metrics(y_true, y_pred)
    assert m["confusion"] == [[0.666667, 0.0, 0.333333], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    assert m["per_class_recall"] == {"negative": pytest.approx(2 / 3), "sad_fear": 1.0, "pos_neutral": 0.0}
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(3 / 6)
    # precision: negative 2/4, sad_fear 1/1, pos_neutral 0/1; pos_neutral is predicted once, wrongly
    assert m["macro_precision"] == pytest.approx((0.5 + 1 + 0) / 3)


def test_a_class_absent_from_the_truth_is_left_out_of_the_macro_averages():
    # the UAR definition: macro recall over the classes present in the truth; an absent class is left out (not 0),
    # and so are its precision and F1
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1])
    assert m["confusion"][2] == [0.0, 0.0, 0.0]
    assert m["uar"] == pytest.approx((0.5 + 1) / 2)
    assert m["macro_precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_other_class_counts_name_their_classes_by_index():
    m = classification_metrics([0, 1, 2, 3], [0, 1, 2, 2], n_classes=4)
    assert m["per_class_recall"] == {"0": 1.0, "1": 1.0, "2": 1.0, "3": 0.0}
    assert len(m["confusion"]) == 4 and m["uar"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    "y_true, y_pred, message",
    [
        ([0, 1], [0], "y_true and y_pred must be 1-D and the same length, got (2,) and (1,)"),
        ([[0, 1]], [[0, 1]], "y_true and y_pred must be 1-D and the same length, got (1, 2) and (1, 2)"),
        ([], [], "no utterances to score (empty split?)"),
    ],
)
def test_bad_input_is_refused_with_one_line(y_true, y_pred, message):
    with pytest.raises(ValueError) as err:
        classification_metrics(y_true, y_pred)
    assert str(err.value) == message


def test_one_clip_scores():
    m = classification_metrics([1], [1])
    assert m["accuracy"] == 1.0 and m["confusion"][1] == [0.0, 1.0, 0.0] and m["per_class_recall"]["sad_fear"] == 1.0
    assert classification_metrics([1.0, 2.0], [1.0, 2.0])["n"] == 2  # labels given as floats are indices


def test_indices_read_as_text_score_as_indices():
    # a CSV column of label indices arrives as strings: both sides are cast to integers before scoring
    as_numbers = classification_metrics([0, 1, 2, 2], [0, 1, 1, 2])
    assert classification_metrics(["0", "1", "2", "2"], [0, 1, 1, 2]) == as_numbers
    assert classification_metrics([0, 1, 2, 2], ["0", "1", "1", "2"]) == as_numbers


def test_a_class_never_predicted_has_precision_zero_without_a_warning():
    # pos_neutral has a clip but is never predicted: its precision is undefined and counts as 0, silently (no
    # scikit-learn UndefinedMetricWarning in the notebooks' output)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics([0, 1, 2], [0, 0, 1])
    assert m["macro_precision"] == pytest.approx((1 / 2 + 0 / 1 + 0) / 3)


def test_a_class_without_clips_has_a_zero_confusion_row_whatever_memory_is_reused(monkeypatch):
    # the row of a class with no clip is set to 0, not left as whatever the division's output buffer held: dirty a
    # freed block of the matrix's size just before (numpy hands recently freed small blocks out again)
    def dirty_then_score(counts):
        scores = metrics_from_counts(counts)
        for _ in range(8):
            np.full(np.shape(counts), 0.25).sum()
        return scores

    monkeypatch.setattr(metrics, "metrics_from_counts", dirty_then_score)
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1])
    assert m["confusion"][2] == [0.0, 0.0, 0.0] and m["per_class_recall"]["pos_neutral"] == 0.0
    assert m["confusion"][:2] == [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]]


def test_single_precision_counts_are_scored_in_double():
    counts = np.array([[5, 1, 1], [2, 3, 1], [1, 1, 7]])
    got = metrics_from_counts(counts.astype(np.float32))
    want = metrics_from_counts(counts)
    for name in metrics.METRICS:
        assert got[name].dtype == np.float64 and got[name] == want[name], name  # bit for bit, not to float32's 1e-7
    assert want["accuracy"] == pytest.approx(15 / 22) and want["uar"] == pytest.approx((5 / 7 + 3 / 6 + 7 / 9) / 3)


def test_counts_without_a_clip_score_nan_without_a_division_warning():
    # no clip at all: every metric is NaN; the 0 / 0 of accuracy is not reported (numpy's "Mean of empty slice" for
    # the averages over no class is the only warning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = metrics_from_counts(np.zeros((2, 3, 3)))
    assert all(np.isnan(v).all() and v.shape == (2,) for v in m.values())
    assert [str(w.message) for w in caught if "Mean of empty slice" not in str(w.message)] == []
