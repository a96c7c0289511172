"""A live demo of a polyhead multitask classifier: every task answered for one text, as label charts.

Written into a Space by `scripts/make_space.py` next to `space_config.json` (the model, its pinned revision, the
examples and the metrics table); runs on a Hugging Face Space (Gradio SDK) and locally with `python app.py`, also
offline against a model folder. It imports only gradio, pandas, torch and transformers: polyhead is not installed
on a Space. The model runs through its own remote code, exactly as a Hub user runs it:
`pipeline("multitask-classification", model=..., trust_remote_code=True, revision=...)`.
"""

import os


# Nothing leaves the machine: no usage analytics, no version check, no Hub telemetry (set before gradio is imported).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
from transformers import AutoConfig, pipeline  # noqa: E402


logger = logging.getLogger("polyhead-space")
HERE = Path(__file__).resolve().parent
CONFIG_FILE = HERE / "space_config.json"
PIPELINE_TASK = "multitask-classification"  # copies of the config's constants (pinned by tests/test_space.py)
MULTI_LABEL = "multi_label_classification"
MAX_BATCH_ROWS = 10_000  # a free CPU Space answers ~100 short texts a second: bigger files belong to predict.py
BATCH_CHUNK = 64  # rows per pipeline call in batch mode: the progress bar moves once per chunk
TOP_LABELS = 10  # a single-label chart's bars: a 50-class task stays readable
NO_LABEL = "(no label above its threshold)"
# System fonts only: the default theme would fetch Google Fonts, which an offline machine cannot reach.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


class InputError(ValueError):
    """Bad input from the page; its message is shown there as is."""


def load_settings(path: Path = CONFIG_FILE) -> dict:
    """The Space's settings written by make_space.py; a local model path is relative to this folder."""
    settings = json.loads(path.read_text(encoding="utf-8"))
    local = HERE / settings["model"]
    if settings.get("local") and local.is_dir():
        settings["model"] = str(local)
    return settings


def check_local_model(settings: dict) -> None:
    """A readable `InputError` when the Space was made from a local model folder that is not here (e.g. uploaded)."""
    if settings.get("local") and not Path(settings["model"]).is_dir():
        repo = settings.get("repo_id") or "org/name"
        raise InputError(
            f"The local model folder {settings['model']} no longer exists: this Space was made from a folder and runs "
            "only where that folder is. Remake the Space from the model's Hub repo (`python scripts/make_space.py "
            f"{repo} DIR`, after publishing the model with scripts/publish.py), then upload DIR."
        )


def load_classifier(model: str, revision: str | None):
    """The model's own pipeline; a readable `InputError` when `model` is not a polyhead multitask model."""
    try:
        config = AutoConfig.from_pretrained(model, revision=revision, trust_remote_code=True)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"Could not load a model from {model!r}: {_one_line(error)}") from error
    if not isinstance(getattr(config, "tasks", None), dict):
        raise InputError(
            f"{model!r} is not a polyhead multitask model: its config (model_type {config.model_type!r}) has no "
            "tasks. Point the Space at a model folder or repo written by polyhead."
        )
    return pipeline(PIPELINE_TASK, model=model, revision=revision, trust_remote_code=True)


def task_specs(classifier) -> dict[str, dict]:
    return dict(classifier.model.config.tasks)


def text_tasks(classifier) -> list[str]:
    """The tasks that answer a text or a sentence pair: all but the multiple-choice ones, which need answer choices."""
    config = classifier.model.config
    # the model's own rule; remote code older than `tasks_of_kind` has no multiple-choice tasks
    return config.tasks_of_kind(False) if hasattr(config, "tasks_of_kind") else list(config.tasks)


def left_out_note(classifier) -> str:
    """The page's sentence naming the multiple-choice tasks it leaves out, or `""`."""
    left_out = [task for task in task_specs(classifier) if task not in text_tasks(classifier)]
    if not left_out:
        return ""
    return (
        f"Not on this page: the multiple-choice task(s) {', '.join(f'`{t}`' for t in left_out)}. They rank answer "
        "choices given with each text, which this page does not take: run them with the pipeline, "
        "`{'text': ..., 'choices': [...]}`."
    )


def input_rules(classifier):
    """The model's own input checks: the module `multitask_inputs` of its remote code, whose `check_row_index` and
    `check_text_rows` polyhead's bulk prediction (scripts/predict.py) applies to a file too, so a CSV is refused here
    as there (this page runs without polyhead). None for remote code older than them: the pipeline then refuses a bad
    text when its rows are predicted."""
    package = type(classifier).__module__.rpartition(".")[0]
    name = f"{package}.multitask_inputs"
    try:
        module = sys.modules.get(name) or importlib.import_module(name)
    except ImportError:
        return None
    return module if hasattr(module, "check_text_rows") and hasattr(module, "check_row_index") else None


def nli_task(specs: dict[str, dict]) -> str | None:
    """The task zero-shot classification runs through (labels include 'entailment'), as the pipeline chooses it."""
    found = [task for task, spec in specs.items() if "entailment" in {str(x).lower() for x in spec["labels"]}]
    return found[0] if len(found) == 1 else None


def token_limit(classifier) -> int:
    """How many tokens the pipeline reads by default (it truncates the rest)."""
    default = getattr(classifier, "_default_max_length", None)  # the pipeline's rule, where its version has one
    return (default() if callable(default) else None) or classifier.tokenizer.model_max_length


def truncation_note(classifier, text: str, pair: str | None) -> str:
    """A sentence saying the input was cut, or `""`."""
    length = len(classifier.tokenizer(text, pair or None, truncation=False, verbose=False)["input_ids"])
    limit = token_limit(classifier)
    if length <= limit:
        return ""
    return (
        f"Note: the input is {length} tokens long; the model reads only the first {limit} (the rest was truncated, "
        "as the pipeline does)."
    )


def label_value(answer: list[dict]) -> dict[str, float] | str:
    """A `gr.Label` value: `{label: score}`, best first; `NO_LABEL` for a multi-label task with no label kept."""
    return {item["label"]: float(item["score"]) for item in answer} if answer else NO_LABEL


def classify(classifier, text: str, pair: str, tasks: list[str]) -> tuple[dict, str]:
    """`({task: label value}, note)` for the selected tasks: the pipeline's answer on the text (or the pair), passed
    as typed (a byte-level BPE tokenizer such as RoBERTa's reads a leading space or a trailing newline as a token: the
    page answers as the pipeline, the Batch tab and scripts/predict.py do). A blank second text means one text."""
    text, pair = text or "", pair or ""
    if not text.strip():
        raise InputError("The text is empty: type a text to classify.")
    if not tasks:
        raise InputError("No task is selected: tick at least one task.")
    choice_tasks = [task for task in tasks if task not in text_tasks(classifier)]
    if choice_tasks:
        raise InputError(
            f"Task(s) {choice_tasks} are multiple-choice: they need answer choices, which this page does not take. "
            f"Pick among {text_tasks(classifier)}."
        )
    inputs = {"text": text, "text_pair": pair} if pair.strip() else text
    answers = classifier(inputs, tasks=list(tasks), top_k=None)
    note = truncation_note(classifier, text, pair if pair.strip() else None)
    return {task: label_value(answer) for task, answer in answers.items()}, note


def zero_shot(classifier, text: str, candidates: str, template: str, multi_label: bool) -> tuple[dict, str]:
    """`({label: score}, note)`: transformers' zero-shot classification through the model's NLI task, on the text and
    the template as typed (a blank template is the default)."""
    text = text or ""
    if not text.strip():
        raise InputError("The text is empty: type a text to classify.")
    labels = [label.strip() for label in (candidates or "").split(",") if label.strip()]
    if not labels:
        raise InputError("No candidate labels: type some, separated by commas (e.g. politics, sport, music).")
    template = template if (template or "").strip() else "This example is {}."
    if "{}" not in template:
        raise InputError(f"The hypothesis template {template!r} has no '{{}}' where the label goes.")
    answer = classifier(text, candidate_labels=labels, hypothesis_template=template, multi_label=multi_label)
    scores = dict(zip(answer["labels"], map(float, answer["scores"])))
    return scores, truncation_note(classifier, text, template.format(labels[0]))


def read_csv(classifier, path: str | None, text_column: str, pair_column: str) -> pd.DataFrame:
    """The uploaded CSV, checked: it has the named columns and at most `MAX_BATCH_ROWS` rows, and with the model's
    input rules ([`input_rules`]) as scripts/predict.py checks a file: no row with more fields than the header, and
    every text and second text (when its column is named) one the pipeline takes (not empty, valid Unicode)."""
    if not path:
        raise InputError("No file: upload a CSV file with a text column.")
    name = Path(path).name
    if Path(path).suffix.lower() != ".csv":
        raise InputError(
            f"{name} is not a .csv file: this page reads CSV files only; save it as CSV (a header line naming the "
            "columns, then one row per text)."
        )
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[], dtype=str)
    except UnicodeDecodeError as error:
        raise InputError(f"{name} is not UTF-8 text ({_one_line(error)}): save it as UTF-8.") from error
    except ValueError as error:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise InputError(f"The file could not be read as CSV: {_one_line(error)}") from error
    rules = input_rules(classifier)
    if rules is not None:
        try:
            rules.check_row_index(frame, name)
        except ValueError as error:
            raise InputError(str(error)) from None
    if not text_column:
        raise InputError(
            f"No text column named: type the name of the column that holds the texts (the CSV's columns: "
            f"{', '.join(map(repr, frame.columns))})."
        )
    for column in filter(None, (text_column, pair_column)):
        if column not in frame.columns:
            raise InputError(
                f"The CSV has no column {column!r} (its columns: {', '.join(map(repr, frame.columns))}): "
                "type the name of the column that holds the texts."
            )
    if len(frame) > MAX_BATCH_ROWS:
        raise InputError(f"The CSV has {len(frame)} rows; this page takes at most {MAX_BATCH_ROWS}.")
    for column in filter(None, (text_column, pair_column)):
        try:
            if rules is not None:
                rules.check_text_rows(frame[column].tolist(), column)
        except ValueError as error:
            raise InputError(str(error)) from None
    return frame


def predict_frame(classifier, frame: pd.DataFrame, text_column: str, pair_column: str, progress=None) -> pd.DataFrame:
    """The rows with, per task that answers texts, `<task>` (the label; for a multi-label task the JSON list of labels
    above threshold) and `<task>_score`: the columns of polyhead's bulk prediction (scripts/predict.py). With a
    second-text column every row is a sentence pair ([`read_csv`] refuses an empty second text, as predict.py does)."""
    specs = {task: task_specs(classifier)[task] for task in text_tasks(classifier)}
    clash = [column for task in specs for column in (task, f"{task}_score") if column in frame.columns]
    if clash:
        raise InputError(f"Input columns {clash} would be overwritten by predictions: rename them in the CSV.")
    texts = frame[text_column].tolist()
    pairs = frame[pair_column].tolist() if pair_column else None
    inputs = [{"text": t, "text_pair": p} for t, p in zip(texts, pairs)] if pairs else texts
    answers = []
    for start in range(0, len(inputs), BATCH_CHUNK):
        if progress is not None:
            progress((start, len(inputs)), desc="Predicting", unit="rows")
        answers += classifier(inputs[start : start + BATCH_CHUNK], batch_size=32)
    columns = {}
    for task, spec in specs.items():
        if spec.get("problem_type") == MULTI_LABEL:
            columns[task] = [json.dumps([item["label"] for item in answer[task]]) for answer in answers]
            columns[f"{task}_score"] = [json.dumps([item["score"] for item in answer[task]]) for answer in answers]
        else:
            columns[task] = [answer[task][0]["label"] for answer in answers]
            columns[f"{task}_score"] = [answer[task][0]["score"] for answer in answers]
    return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _shown(error: Exception) -> str:
    """The page's message for an error: bad input as is; anything else named and logged with its traceback."""
    if isinstance(error, (InputError, ValueError, TypeError)):
        return f"**Error:** {_one_line(error)}"
    logger.exception("Unexpected error")
    return f"**Something went wrong** ({type(error).__name__}): {_one_line(error)}. The Space's logs have details."


def build_app(classifier, settings: dict) -> gr.Blocks:
    """The page: a Classify tab (text, second text for pair tasks, task filter, a label chart per task, examples),
    a Zero-shot tab when the model has an NLI task, a Batch (CSV) tab, and the evaluation table."""
    specs = task_specs(classifier)
    names = text_tasks(classifier)  # the multiple-choice tasks need choices: not on this page (the note says so)
    if not names:
        raise InputError(
            f"Every task of this model is multiple-choice ({list(specs)}): this page answers texts, and they need "
            "answer choices; run them with the pipeline, {'text': ..., 'choices': [...]}."
        )
    has_pairs = any(specs[task].get("text_pair") for task in names)
    with gr.Blocks(title=settings["title"]) as demo:
        gr.Markdown(f"# {settings['title']}\n\n{settings.get('description', '')}")
        if left_out_note(classifier):
            gr.Markdown(left_out_note(classifier), elem_id="left-out")
        with gr.Tab("Classify"):
            text = gr.Textbox(label="Text", lines=3, elem_id="text")
            pair = gr.Textbox(
                label="Second text (sentence-pair tasks: " + ", ".join(t for t in names if specs[t].get("text_pair"))
                + "); leave empty for one text",
                lines=2, visible=has_pairs, elem_id="text-pair",
            )  # fmt: skip
            chosen = gr.CheckboxGroup(names, value=names, label="Tasks", elem_id="tasks")
            submit = gr.Button("Classify", variant="primary", elem_id="submit")
            status = gr.Markdown(elem_id="status")
            charts = [chart(task, specs[task], f"task-{i}") for i, task in enumerate(names)]
            if settings.get("examples"):
                gr.Examples(settings["examples"], inputs=[text], label="Examples (from the model card)")

            def run(text_value, pair_value, selected):
                try:
                    values, note = classify(classifier, text_value, pair_value, selected)
                except Exception as error:  # the page's boundary: a message, never a traceback
                    return [_shown(error), *(gr.update(value=None) for _ in names)]
                return [note, *(gr.update(value=values.get(t), visible=t in values) for t in names)]

            submit.click(run, [text, pair, chosen], [status, *charts])
            text.submit(run, [text, pair, chosen], [status, *charts])
        if nli_task(specs):
            with gr.Tab("Zero-shot"):
                zs_text = gr.Textbox(label="Text", lines=3, elem_id="zs-text")
                zs_labels = gr.Textbox(label="Candidate labels, comma-separated", elem_id="zs-labels")
                zs_template = gr.Textbox(value="This example is {}.", label="Hypothesis template", elem_id="zs-tpl")
                zs_multi = gr.Checkbox(label="Several labels can be true (multi-label)", elem_id="zs-multi")
                zs_submit = gr.Button("Classify zero-shot", variant="primary", elem_id="zs-submit")
                zs_status = gr.Markdown(elem_id="zs-status")
                zs_chart = gr.Label(label="Zero-shot", elem_id="zs-label")

                def run_zero_shot(text_value, labels, template, multi):
                    try:
                        scores, note = zero_shot(classifier, text_value, labels, template, multi)
                    except Exception as error:  # the page's boundary: a message, never a traceback
                        return _shown(error), None
                    return note, scores

                zs_submit.click(run_zero_shot, [zs_text, zs_labels, zs_template, zs_multi], [zs_status, zs_chart])
        with gr.Tab("Batch (CSV)"):
            gr.Markdown(
                f"Upload a CSV file (at most {MAX_BATCH_ROWS:,} rows): every row comes back with, per task, `<task>` "
                "(the label; for a multi-label task the list of labels kept) and `<task>_score`."
            )
            upload = gr.File(label="CSV file", file_types=[".csv"], type="filepath", elem_id="csv")
            text_column = gr.Textbox(value="text", label="Text column", elem_id="text-column")
            pair_column = gr.Textbox(
                label="Second text column (pair tasks; optional: when named, every row needs a second text)",
                visible=has_pairs,
            )
            batch_submit = gr.Button("Predict the file", variant="primary", elem_id="batch-submit")
            batch_status = gr.Markdown(elem_id="batch-status")
            result = gr.File(label="Predictions (CSV)", elem_id="predictions")

            def run_batch(path, column, second, progress=gr.Progress()):  # noqa: B008 (gradio's progress idiom)
                try:
                    column, second = (column or "").strip(), (second or "").strip()
                    frame = read_csv(classifier, path, column, second)
                    predicted = predict_frame(classifier, frame, column, second, progress)
                except Exception as error:  # the page's boundary: a message, never a traceback
                    return _shown(error), None
                out = Path(tempfile.mkdtemp(prefix="polyhead-space-")) / f"{Path(path).stem}-predictions.csv"
                predicted.to_csv(out, index=False)
                return f"{len(predicted)} rows predicted: download the file below.", str(out)

            batch_submit.click(run_batch, [upload, text_column, pair_column], [batch_status, result])
        if settings.get("metrics_table"):
            gr.Markdown("## Evaluation (from the model card)\n\n" + settings["metrics_table"])
    return demo


def chart(task: str, spec: dict, elem_id: str) -> gr.Label:
    """A task's label chart: a multi-label task shows every label kept, a single-label task its `TOP_LABELS` best."""
    if spec.get("problem_type") == MULTI_LABEL:
        return gr.Label(label=f"{task} (multi-label: every label at or above its threshold)", elem_id=elem_id)
    return gr.Label(label=task, num_top_classes=TOP_LABELS, elem_id=elem_id)


def error_app(message: str) -> gr.Blocks:
    """The page shown when the model cannot be loaded: the reason, readable."""
    with gr.Blocks(title="Model not loaded") as demo:
        gr.Markdown(f"# The model could not be loaded\n\n{message}", elem_id="status")
    return demo


def main() -> None:
    logging.basicConfig(level=logging.WARNING)  # errors and their tracebacks go to the Space logs
    settings = load_settings()
    try:
        check_local_model(settings)
        demo = build_app(load_classifier(settings["model"], settings.get("revision")), settings)
    except InputError as error:
        logger.error("%s", error)
        demo = error_app(str(error))
    demo.queue().launch(theme=THEME)


if __name__ == "__main__":
    main()
