# Copyright 2025 The polyhead authors.
# Licensed under the Apache License, Version 2.0.
"""Single-label (multi-class) classification metric: accuracy plus macro precision, recall and F1.

This file is a self-contained `evaluate` module: `evaluate.load("path/to/multiclass_classification")` copies it into
the `HF_MODULES_CACHE` and imports it from there, so it must not import anything relative to its own folder.
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, precision_recall_fscore_support


_DESCRIPTION = """\
Metrics for single-label classification, where every example has exactly one class id out of `num_labels`:

- accuracy: fraction of examples whose predicted id equals the reference id;
- precision_macro / recall_macro / f1_macro: unweighted mean over classes of the per-class precision, recall and F1.
  Classes with no predicted (or no reference) examples contribute 0 instead of raising (`zero_division=0`).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`):
        Predicted class ids.
    references (`list` of `int`):
        Reference (gold) class ids.
    labels (`list` of `int`, *optional*):
        Class ids to average over. Defaults to the sorted union of ids seen in `predictions` and `references`; pass
        `list(range(num_labels))` so classes absent from a small evaluation set still count (as 0) in the macro mean.

Returns:
    `dict[str, float]` with keys `accuracy`, `precision_macro`, `recall_macro` and `f1_macro`, each in [0, 1].

Examples:
    >>> metric = evaluate.load("polyhead/evaluation/metrics/multiclass_classification")
    >>> metric.compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2])["accuracy"]
    0.75
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
class MulticlassClassification(evaluate.Metric):
    """Accuracy and macro-averaged precision, recall and F1 for single-label classification."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, labels=None) -> dict[str, float]:
        precision, recall, f1, _ = precision_recall_fscore_support(
            references, predictions, labels=labels, average="macro", zero_division=0
        )
        return {
            "accuracy": float(accuracy_score(references, predictions)),
            "precision_macro": float(precision),
            "recall_macro": float(recall),
            "f1_macro": float(f1),
        }
