# Copyright 2025 The polyhead authors.
# Licensed under the Apache License, Version 2.0.
"""Multi-label classification metric: micro/macro precision, recall and F1, exact match and label accuracy.

This file is a self-contained `evaluate` module: `evaluate.load("path/to/multilabel_classification")` copies it into
the `HF_MODULES_CACHE` and imports it from there, so it must not import anything relative to its own folder.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, hamming_loss, precision_recall_fscore_support


_DESCRIPTION = """\
Metrics for multi-label classification, where every example has any number of the `num_labels` labels, encoded as a
multi-hot row of 0/1 integers:

- f1_micro / precision_micro / recall_micro: computed from true/false positives and false negatives pooled over all
  labels and examples;
- f1_macro / precision_macro / recall_macro: unweighted mean over labels of the per-label scores (`zero_division=0`:
  a label never predicted or never present scores 0 instead of raising);
- exact_match: subset accuracy, the fraction of examples whose whole predicted label set equals the reference set;
- label_accuracy: 1 - Hamming loss, the fraction of individual (example, label) decisions that are correct.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `int`):
        Predicted multi-hot rows, shape `(num_examples, num_labels)`, values 0 or 1.
    references (`list` of `list` of `int`):
        Reference multi-hot rows with the same shape.

Returns:
    `dict[str, float]` with keys `f1_micro`, `f1_macro`, `precision_micro`, `recall_micro`, `precision_macro`,
    `recall_macro`, `exact_match` and `label_accuracy`, each in [0, 1].

Examples:
    >>> metric = evaluate.load("polyhead/evaluation/metrics/multilabel_classification")
    >>> metric.compute(predictions=[[1, 0], [1, 1]], references=[[1, 0], [0, 1]])["exact_match"]
    0.5
"""

_CITATION = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V. and Thirion, B. and Grisel, O. and
          Blondel, M. and Prettenhofer, P. and Weiss, R. and Dubourg, V. and Vanderplas, J. and Passos, A. and
          Cournapeau, D. and Brucher, M. and Perrot, M. and Duchesnay, E.},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MultilabelClassification(evaluate.Metric):
    """Micro/macro precision, recall and F1, exact match and label accuracy for multi-label classification."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/model_evaluation.html#multilabel-ranking-metrics"
            ],
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        y_pred, y_true = np.asarray(predictions, dtype=np.int64), np.asarray(references, dtype=np.int64)
        if y_pred.ndim != 2 or y_pred.shape != y_true.shape:
            raise ValueError(
                f"predictions and references must be multi-hot rows of one length; got shapes {y_pred.shape} and "
                f"{y_true.shape}."
            )
        results = {}
        for average in ("micro", "macro"):
            precision, recall, f1, _ = precision_recall_fscore_support(
                y_true, y_pred, average=average, zero_division=0
            )
            results.update(
                {
                    f"f1_{average}": float(f1),
                    f"precision_{average}": float(precision),
                    f"recall_{average}": float(recall),
                }
            )
        results["exact_match"] = float(accuracy_score(y_true, y_pred))
        results["label_accuracy"] = float(1.0 - hamming_loss(y_true, y_pred))
        return results
