"""The end-of-run table of a distillation run (the model card's tables are `polyhead.publishing.model_card`'s)."""

from collections.abc import Mapping
from typing import Any

from polyhead.evaluation.agreement import CONFIDENT_MARGIN, forgetting_text, gold_text, temperature_text
from polyhead.run_folder import RESULTS_FILE


CONFIDENT_HEADER = f"agree@margin>={CONFIDENT_MARGIN:g}"  # held-out agreement where the teacher is confident
CONFIDENT_WIDTH = len(CONFIDENT_HEADER) + 2


def format_distillation_table(results: Mapping[str, Any]) -> str:
    r"""
    Plain text: per task its teacher, the student's agreement with it on held-out texts (all of them, and those where
    the teacher is confident: top-2 softmax margin >= `CONFIDENT_MARGIN`, with their number; single-label tasks) and,
    with a labelled test split, the agreement on its rows and teacher and student accuracy and macro F1; then the
    soft targets' temperature (each task's where they differ), how the `--init_from` model's untaught tasks still
    answer, and the speed of the student against the teachers run
    one after another.

    Example:

    ```python
    >>> print(format_distillation_table(results))
    ```
    """
    summary = results["distillation"]
    owner = {task: teacher["source"] for teacher in summary["teachers"] for task in teacher["tasks"]}
    width = max([16, *(len(task) + 2 for task in owner)])  # a long task name does not shift its row's cells
    header = (
        f"{'task':<{width}}{'agreement':>11}{'n':>7}{CONFIDENT_HEADER:>{CONFIDENT_WIDTH}}{'test agree':>12}"
        f"{'teacher acc':>13}{'student acc':>13}{'teacher F1':>12}{'student F1':>12}  teacher"
    )
    lines = [header, "-" * len(header)]
    for task, source in owner.items():
        agreement = summary["agreement"].get(task, {})
        test = summary["test"].get(task)
        cells = [_cell(agreement.get("value"), 11), f"{agreement.get('n', 0):>7}", _confident(agreement)]
        cells.append(_cell((test or {}).get("agreement"), 12))
        for side, key in (
            ("teacher", "accuracy"),
            ("student", "accuracy"),
            ("teacher", "f1_macro"),
            ("student", "f1_macro"),
        ):
            value = (test or {}).get(side, {})
            value = value.get(key, value.get("exact_match")) if key == "accuracy" else value.get(key)
            cells.append(_cell(value, 13 if key == "accuracy" else 12))
        lines.append(f"{task:<{width}}{''.join(cells)}  {source}")
    lines.append(
        f"\n{CONFIDENT_HEADER}: agreement on the held-out texts where the teacher's top-2 softmax margin (p1 - p2) "
        f"is >= {CONFIDENT_MARGIN:g} (how many); {RESULTS_FILE} has every margin bucket."
    )
    for sentence in (temperature_text(summary), gold_text(summary), forgetting_text(summary)):
        if sentence:
            lines.append(f"\n{sentence}")
    speed = summary.get("speed")
    if speed:
        lines.append(
            f"\nSpeed on {speed['texts']} held-out texts (batch {speed['batch_size']}, {speed['torch_threads']} "
            f"thread(s), {speed['device']}): student {speed['student_texts_per_second']:.1f} texts/s, the "
            f"{speed['num_teachers']} teacher(s) one after another {speed['teachers_texts_per_second']:.1f} texts/s: "
            f"{speed['speedup']:.2f}x."
        )
    return "\n".join(lines)


def _confident(agreement: Mapping[str, Any]) -> str:
    """`0.994 (494)`: the agreement where the teacher is confident (a fraction, as the table's other cells), and on
    how many texts; `- (0)` when the teacher was confident on none, `-` without a breakdown (multi-label tasks)."""
    confident = agreement.get("confident")
    if confident is None:
        text = "-"
    else:
        value = confident["agreement"]
        text = f"{'-' if value is None else f'{value:.3f}'} ({confident['n']})"
    return f"{text:>{CONFIDENT_WIDTH}}"


def _cell(value: float | None, width: int) -> str:
    return f"{value:>{width}.3f}" if value is not None else f"{'-':>{width}}"


__all__ = ["format_distillation_table"]
