"""`polyhead.evaluation.metrics`: hand-computed scores, offline loading of local evaluate modules, plots."""

import csv
import socket

import evaluate
import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from polyhead.evaluation.metrics import (
    METRIC_KEYS,
    MULTI_LABEL,
    SINGLE_LABEL,
    classification_report_text,
    compute_task_metrics,
    confusion_counts,
    load_metric,
    macro_average,
    metric_path,
    most_confused_classes,
    most_confused_pairs,
    normalize_rows,
    primary_metric,
    write_confusion_matrix_csv,
)
from polyhead.evaluation.plots import plot_confusion_matrix


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Single-label: one error (true 2 predicted as 1). Per class (P, R, F1): 0 → (1, 1, 1), 1 → (1/2, 1, 2/3),
# 2 → (1, 1/2, 2/3).
SL_PRED, SL_REF = [0, 1, 1, 2], [0, 1, 2, 2]
# Multi-label: pooled TP = 2, FP = 1 (label 2 on row 0), FN = 0. Per label (P, R, F1): 0 → (1, 1, 1), 1 → (1, 1, 1),
# 2 → (0, 0, 0) since it is predicted once wrongly and never present.
ML_PRED, ML_REF = [[1, 0, 1], [0, 1, 0]], [[1, 0, 0], [0, 1, 0]]


@pytest.fixture
def no_network(monkeypatch):
    """Offline mode flags set, and any socket connection attempt fails loudly."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize(
    ("problem_type", "module_name"),
    [(SINGLE_LABEL, "multiclass_classification"), (MULTI_LABEL, "multilabel_classification")],
)
def test_local_module_loads_offline(no_network, problem_type, module_name):
    path = metric_path(problem_type)
    assert (path / f"{module_name}.py").is_file()
    metric = evaluate.load(str(path), keep_in_memory=True)
    assert isinstance(metric, evaluate.Metric)
    # evaluate copies the script into HF_MODULES_CACHE/evaluate_modules/metrics/<name>/<hash>/ and imports it there.
    assert type(metric).__module__.startswith(f"evaluate_modules.metrics.{module_name}.")
    assert metric.description and metric.citation and metric.inputs_description
    assert set(metric.features) == {"predictions", "references"}


def test_load_metric_is_cached(no_network):
    assert load_metric(SINGLE_LABEL) is load_metric(SINGLE_LABEL)
    assert load_metric(MULTI_LABEL) is not load_metric(SINGLE_LABEL)


def test_single_label_metrics_by_hand():
    results = compute_task_metrics(SINGLE_LABEL, np.array(SL_PRED), np.array(SL_REF))
    assert list(results) == list(METRIC_KEYS[SINGLE_LABEL])
    assert all(type(value) is float for value in results.values())
    assert results["accuracy"] == pytest.approx(0.75)
    assert results["precision_macro"] == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert results["recall_macro"] == pytest.approx((1 + 1 + 1 / 2) / 3)
    assert results["f1_macro"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_single_label_num_labels_counts_absent_classes():
    results = compute_task_metrics(SINGLE_LABEL, SL_PRED, SL_REF, num_labels=4)
    assert results["accuracy"] == pytest.approx(0.75)
    assert results["precision_macro"] == pytest.approx(2.5 / 4)
    assert results["f1_macro"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 4)


def test_multi_label_metrics_by_hand():
    results = compute_task_metrics(MULTI_LABEL, np.array(ML_PRED), np.array(ML_REF))
    assert list(results) == list(METRIC_KEYS[MULTI_LABEL])
    assert all(type(value) is float for value in results.values())
    assert results["precision_micro"] == pytest.approx(2 / 3)
    assert results["recall_micro"] == pytest.approx(1.0)
    assert results["f1_micro"] == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))  # 0.8
    assert results["precision_macro"] == pytest.approx(2 / 3)
    assert results["recall_macro"] == pytest.approx(2 / 3)
    assert results["f1_macro"] == pytest.approx(2 / 3)
    assert results["exact_match"] == pytest.approx(0.5)
    assert results["label_accuracy"] == pytest.approx(5 / 6)


def test_perfect_predictions_score_one():
    assert set(compute_task_metrics(SINGLE_LABEL, SL_REF, SL_REF).values()) == {1.0}
    results = compute_task_metrics(MULTI_LABEL, ML_REF, ML_REF)
    # Label 2 is never present nor predicted: zero_division=0 scores it 0, so only the macro averages stay below 1.
    assert {key for key, value in results.items() if value != 1.0} == {"f1_macro", "precision_macro", "recall_macro"}
    assert results["f1_macro"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "call",
    [
        lambda: load_metric("regression"),
        lambda: primary_metric("regression"),
        lambda: compute_task_metrics("regression", [0], [0]),
        lambda: confusion_counts("regression", [0], [0], 1),
    ],
)
def test_unknown_problem_type_lists_choices(call):
    with pytest.raises(ValueError, match="multi_label_classification.*single_label_classification"):
        call()


def test_wrong_shapes_raise():
    with pytest.raises(ValueError, match="1-D"):
        compute_task_metrics(SINGLE_LABEL, ML_PRED, ML_REF)
    with pytest.raises(ValueError, match="2-D"):
        compute_task_metrics(MULTI_LABEL, SL_PRED, SL_REF)
    with pytest.raises(ValueError, match="shape"):
        compute_task_metrics(SINGLE_LABEL, [0, 1], [0, 1, 2])


def test_primary_metric():
    assert primary_metric(SINGLE_LABEL) == "f1_macro"
    assert primary_metric(MULTI_LABEL) == "f1_micro"


def test_macro_average():
    single = {"accuracy": 0.5, "precision_macro": 0.4, "recall_macro": 0.6, "f1_macro": 0.2}
    multi = dict.fromkeys(METRIC_KEYS[MULTI_LABEL], 0.5) | {"f1_micro": 0.9, "f1_macro": 0.6}
    averaged = macro_average({"sentiment": single, "topics": multi})
    assert averaged["accuracy"] == pytest.approx(0.5)  # single-label task only
    assert averaged["exact_match"] == pytest.approx(0.5)  # multi-label task only
    assert averaged["f1_macro"] == pytest.approx((0.2 + 0.6) / 2)
    assert averaged["precision_macro"] == pytest.approx((0.4 + 0.5) / 2)
    assert averaged["primary"] == pytest.approx((0.2 + 0.9) / 2)  # f1_macro of sentiment, f1_micro of topics
    assert set(averaged) == set(single) | set(multi) | {"primary"}


def test_macro_average_explicit_problem_types_and_errors():
    partial = {"a": {"f1_macro": 0.4, "f1_micro": 0.8}, "b": {"f1_macro": 0.6, "f1_micro": 0.2}}
    averaged = macro_average(partial, problem_types={"a": SINGLE_LABEL, "b": MULTI_LABEL})
    assert averaged["primary"] == pytest.approx((0.4 + 0.2) / 2)
    with pytest.raises(ValueError, match="problem type of task 'a'"):
        macro_average(partial)
    assert macro_average({}) == {}


def test_confusion_counts():
    matrix = confusion_counts(SINGLE_LABEL, SL_PRED, SL_REF, num_labels=4)
    expected = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]  # rows: reference, columns: prediction
    np.testing.assert_array_equal(matrix, expected)
    per_label = confusion_counts(MULTI_LABEL, ML_PRED, ML_REF, num_labels=3)
    np.testing.assert_array_equal(per_label, [[1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 0, 0]])  # [tn, fp, fn, tp]


def test_classification_report_text():
    report = classification_report_text(SINGLE_LABEL, SL_PRED, SL_REF, ["negative", "neutral", "positive", "mixed"])
    assert all(name in report for name in ("negative", "neutral", "positive", "mixed", "accuracy", "macro avg"))
    assert "0.7500" in report
    report = classification_report_text(MULTI_LABEL, ML_PRED, ML_REF, ["sports", "politics", "tech"])
    assert all(name in report for name in ("sports", "politics", "tech", "micro avg", "samples avg"))
    assert "0.8000" in report  # micro F1


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    height, width = matplotlib.image.imread(path).shape[:2]
    assert height > 100 and width > 100
    return height, width


def test_plot_single_label(tmp_path):
    open_figures = plt.get_fignums()
    small = plot_confusion_matrix(
        SINGLE_LABEL, SL_PRED, SL_REF, ["neg", "neu", "pos"], "sentiment", tmp_path / "a.png"
    )
    assert small == tmp_path / "a.png"
    names = [f"a_rather_long_intent_name_{i}" for i in range(20)]
    rng = np.random.default_rng(0)
    references = rng.integers(0, 20, 200)
    large = plot_confusion_matrix(SINGLE_LABEL, references[::-1], references, names, "intents", tmp_path / "b/c.png")
    small_size, large_size = _assert_png(small), _assert_png(large)
    assert large_size[0] > small_size[0] and large_size[1] > small_size[1]  # figure grows with the label count
    assert plt.get_fignums() == open_figures  # nothing left open in pyplot


def test_plot_multi_label(tmp_path):
    open_figures = plt.get_fignums()
    path = plot_confusion_matrix(
        MULTI_LABEL, ML_PRED, ML_REF, ["sports", "politics", "tech"], "topics", tmp_path / "m.png"
    )
    assert path.stat().st_size > 0
    _assert_png(path)
    assert plt.get_fignums() == open_figures


def test_normalised_matrix_and_most_confused_classes():
    counts = np.array([[8, 2, 0, 0], [0, 1, 9, 0], [0, 0, 5, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(normalize_rows(counts)[0], [0.8, 0.2, 0, 0])
    assert normalize_rows(counts)[3].tolist() == [0, 0, 0, 0]  # a label absent from the references
    assert most_confused_pairs(counts, 5) == [(1, 2, 9), (0, 1, 2)]
    assert most_confused_classes(counts, 2) == [1, 2]  # class 1: 9 + 2 errors, class 2: 9


def test_large_label_set_plot_stays_readable_and_the_csv_holds_the_full_matrix(tmp_path):
    names = [f"intent_{i:03d}" for i in range(151)]
    rng = np.random.default_rng(0)
    references = rng.integers(0, 151, 3000)
    predictions = np.where(rng.random(3000) < 0.8, references, rng.integers(0, 151, 3000))
    predictions[references == 7] = 8  # one class always mistaken for another
    path = plot_confusion_matrix(SINGLE_LABEL, predictions, references, names, "clinc", tmp_path / "cm.png")
    height, width = _assert_png(path)
    assert height < 1500 and width < 2500  # a most-confused view, not a 151 x 151 grid of unreadable cells
    medium = plot_confusion_matrix(
        SINGLE_LABEL, predictions % 30, references % 30, names[:30], "t", tmp_path / "m.png"
    )
    assert _assert_png(medium)[0] > 1000  # up to 30 labels: the full matrix, sized so every name fits
    csv_path = write_confusion_matrix_csv(SINGLE_LABEL, predictions, references, names, tmp_path / "cm.csv")
    rows = list(csv.reader(csv_path.open()))
    assert rows[0][1:] == names and len(rows) == 152 and all(len(row) == 152 for row in rows)
    assert int(rows[8][9]) == (references == 7).sum()  # row intent_007, column intent_008
    assert sum(int(v) for row in rows[1:] for v in row[1:]) == 3000
    multi = write_confusion_matrix_csv(
        MULTI_LABEL, ML_PRED, ML_REF, ["sports", "politics", "tech"], tmp_path / "m.csv"
    )
    assert next(csv.reader(multi.open())) == ["label", "tn", "fp", "fn", "tp"]
