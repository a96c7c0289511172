"""Bulk prediction: every task's label and score for every row of a CSV/JSONL/Parquet file, streamed and resumable.

[`predict_file`] reads the input in chunks (`chunk_size` rows), runs each chunk in batches of similar length (less
padding), and appends the chunk's rows, in input order, to the output with the input columns kept and, per task,
`<task>` (the label; for a multi-label task the list of labels at or above their thresholds, tuned per label when the
config has them, as the pipeline does) and `<task>_score` (its probability; a list for multi-label tasks). Output is
JSONL (one object a line) or Parquet (one part file per chunk while running, merged at the end). Input columns come
back as the file holds them: CSV cells are read as text (an empty cell as missing), JSON Lines values as written (no
type is guessed per chunk). Before anything is written the whole input is read once, so a malformed row, a missing or
empty text and, for Parquet output, a column without one Parquet type are refused wherever they are, and a refused run
leaves no output behind. An interrupted run continues with `resume=True`: the rows already written are counted and
skipped, so none is duplicated, and must have the columns this run writes (an output of another model or input is
refused). Entry point: `scripts/predict.py`.
"""

import dataclasses
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from polyhead.decisions import best_labels, decision_thresholds, kept
from polyhead.decisions import scores as decision_scores
from polyhead.encoders import check_max_length, check_positive_int, default_max_length
from polyhead.remote_code import MULTI_LABEL, MultitaskConfig, MultitaskModel, collection_paused, multitask_inputs
from polyhead.run_folder import check_model_source, model_loading
from polyhead.serving.settings import TORCH_DTYPES, read_serving_file


INPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
OUTPUT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
PARTS_SUFFIX = ".parts"
# How the Parquet parts' column types merge: a column that is null throughout a chunk takes the other chunks' type,
# and integers beside decimals become floating point (as pyarrow types them within one chunk); other mixes are refused.
PARQUET_PROMOTION = "permissive"
JSONL_RULE = "the input must be JSON Lines, one JSON object a line"  # .json included: a JSON array is refused
EXTRA_FIELD = multitask_inputs.EXTRA_FIELD


@dataclasses.dataclass
class PredictResult:
    """What [`predict_file`] did: rows written in this run, rows found from an earlier run, and the output path."""

    output: Path
    rows_written: int
    rows_resumed: int
    seconds: float


def load_model(
    model_dir: str | os.PathLike,
    onnx_file: str | None = None,
    num_threads: int | None = None,
    dtype: str = "float32",
    compile: bool = False,
):
    """The torch `MultitaskModel` in `dtype`, or with `onnx_file` (e.g. `"onnx/model.onnx"`) an
    `OnnxMultitaskModel`. `"bfloat16"` runs the encoder's matmuls on the AMX units of Intel Xeon CPUs from Sapphire
    Rapids on and is slower than float32 on CPUs without bfloat16 instructions (docs/design.md). `compile=True`: the
    compiled path (`polyhead.serving.compiled.compile_model`; `dtype="auto"` picks bfloat16 where the CPU runs it
    faster)."""
    _check_dtype(dtype, onnx_file, compile)
    check_model_source(model_dir)
    if onnx_file:
        from polyhead.serving.onnx_multitask import OnnxMultitaskModel, onnx_unsupported

        unsupported = (
            None
            if Path(model_dir, onnx_file).is_file()
            else onnx_unsupported(MultitaskConfig.from_pretrained(model_dir))
        )
        if unsupported:  # the missing graph's message would send the user to an export that refuses this model
            raise ValueError(f"{model_dir} has no ONNX graph: {unsupported}. Drop --onnx.")
        return OnnxMultitaskModel.from_pretrained(model_dir, onnx_file, num_threads=num_threads)
    if num_threads:
        torch.set_num_threads(num_threads)
    with model_loading(model_dir):
        model = MultitaskModel.from_pretrained(model_dir)
    if compile:
        from polyhead.serving.compiled import compile_model

        return compile_model(model, dtype)
    return model.to(TORCH_DTYPES[dtype]).eval()


def local_model_folder(model_dir: str | os.PathLike) -> str | os.PathLike:
    """`model_dir`, or for a Hub model id the local snapshot of its repository (downloaded into the Hub cache unless
    there already; offline, the cached one): a published model is then served as its folder is, its `serving.json`
    pick and `onnx/` graphs included."""
    if Path(model_dir).is_dir():
        return model_dir
    from huggingface_hub import snapshot_download

    with model_loading(model_dir):  # no such repository, or no connection: named as both
        return snapshot_download(str(model_dir))


def chosen_backend(
    model_dir: str | os.PathLike, onnx_file: str | None, dtype: str | None, compile: bool | None = None
) -> tuple[str | None, str, bool]:
    """`(onnx_file, dtype, compile)`: as given, else (none given) the folder's `serving.json`, the path that
    `scripts/benchmark.py --choose --write` measured fastest on this machine, else torch float32, eager. `compile`
    without a `dtype`: `"auto"` (bfloat16 where the CPU runs it faster than float32)."""
    if onnx_file is None and dtype is None and compile is None:
        chosen = read_serving_file(str(model_dir)) or {}
        return chosen.get("onnx_file"), chosen.get("dtype", "float32"), chosen.get("compile", False)
    return onnx_file, dtype or ("auto" if compile else "float32"), bool(compile)


def _check_dtype(dtype: str, onnx_file: str | None, compile: bool = False) -> None:
    if dtype not in TORCH_DTYPES and not (compile and dtype == "auto"):
        raise ValueError(f"dtype must be one of {list(TORCH_DTYPES)}, got {dtype!r}.")
    if onnx_file and (dtype != "float32" or compile):
        option = "compile=True" if compile else f"dtype={dtype!r}"
        raise ValueError(
            f"{option} is for the torch model: an ONNX graph runs in the precision it was exported in "
            "(onnx/model_quantized.onnx for int8)."
        )


def predict_file(
    model_dir: str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    text_column: str = "text",
    text_pair_column: str | None = None,
    onnx_file: str | None = None,
    batch_size: int = 64,
    chunk_size: int = 4096,
    max_length: int | None = None,
    num_threads: int | None = None,
    dtype: str | None = None,
    compile: bool | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> PredictResult:
    r"""
    Predicts every task for every row of `input_path` and writes `output_path` (see the module docstring).

    Args:
        model_dir: a saved multitask model folder.
        input_path: `.csv`, `.jsonl` (or `.json`: JSON Lines, one object a line) or `.parquet`.
        output_path: `.jsonl` or `.parquet`, another file than the input.
        text_column, text_pair_column: the text (and optional second text, e.g. an NLI hypothesis) columns.
        onnx_file: run the ONNX graph (`"onnx/model.onnx"` or `"onnx/model_quantized.onnx"`) on onnxruntime.
        batch_size: texts per forward; chunk_size: rows read, sorted by length and written at a time.
        max_length: truncation length (default: the length the model was trained at, see
            `polyhead.encoders.default_max_length`).
        num_threads: torch / onnxruntime threads.
        dtype: the torch model's precision, `"float32"` or `"bfloat16"` (see [`load_model`]). Without `onnx_file`
            and `dtype`, the folder's `serving.json` chooses (see [`chosen_backend`]), else torch float32.
        compile: the compiled path (torch.compile, shape buckets; see `polyhead.serving.compiled`), in bfloat16
            where the CPU runs it faster than float32 unless `dtype` says otherwise.
        resume: continue an interrupted run into the existing output; overwrite: start again.

    Example:

    ```python
    >>> predict_file("outputs/model", "tweets.csv", "predictions.parquet", onnx_file="onnx/model.onnx")
    ```
    """
    import time

    start = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    for name, value in (("batch_size", batch_size), ("chunk_size", chunk_size), ("num_threads", num_threads)):
        if value is not None:
            check_positive_int(name, value)  # a negative batch size wrote the rows unpredicted (range() is empty)
    check_model_source(model_dir)
    model_dir = local_model_folder(model_dir)
    onnx_file, dtype, compile = chosen_backend(model_dir, onnx_file, dtype, compile)
    _check_dtype(dtype, onnx_file, compile)  # before the output is touched
    writer = _writer_for(output_path, input_path, resume, overwrite)  # touches nothing before writer.start
    input_columns = _input_columns(input_path, chunk_size)  # an input that is missing or has no rows is named first
    model = load_model(model_dir, onnx_file, num_threads, dtype, compile)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if max_length is None:
        max_length = default_max_length(tokenizer, model.config.encoder)
    check_max_length(max_length, model.config.encoder, f"the encoder of {model_dir}", tokenizer, "--max-length")
    specs = answered_tasks(model.config)
    text_columns = {text_column: "--text-column"}
    if text_pair_column:
        text_columns.setdefault(text_pair_column, "--text-pair-column")
    rows = _checked_rows(input_path, chunk_size, text_columns, specs, parquet=isinstance(writer, _ParquetWriter))
    found = None if overwrite else writer.columns()  # --overwrite replaces the rows found
    _check_resumed_columns(output_path, found, [*input_columns, *_prediction_columns(specs)])
    writer.start(overwrite)  # every check passed: the output is written from here on
    done = writer.rows_done()
    bar = tqdm(total=rows, initial=done, unit="rows", disable=not progress, desc="Predicting")
    written = 0
    for offset, chunk in _read_chunks(input_path, chunk_size, skip=done):
        texts = _column(chunk, text_column, offset, input_path)
        pairs = None
        if text_pair_column:
            pairs = _column(chunk, text_pair_column, offset, input_path, "--text-pair-column")
        predictions = predict_texts(model, tokenizer, texts, pairs, batch_size, max_length)
        with collection_paused():  # with hundreds of tasks, the rows' lists would trigger many full collections
            writer.write(_with_predictions(chunk, predictions, specs))
        written += len(chunk)
        bar.update(len(chunk))
    bar.close()
    writer.close()
    return PredictResult(output_path, written, done, time.perf_counter() - start)


def predict_texts(
    model, tokenizer, texts: list[str], pairs: list[str] | None = None, batch_size: int = 64, max_length: int = 512
) -> dict[str, np.ndarray]:
    """Per task, the `(len(texts), num_labels)` probabilities (softmax, or sigmoid for multi-label), in input order.

    Texts run in batches of similar length (sorted by characters), so little compute goes to padding."""
    check_positive_int("batch_size", batch_size)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]) + (len(pairs[i]) if pairs else 0))
    specs = answered_tasks(model.config)
    scores = {task: np.zeros((len(texts), len(spec["labels"])), np.float32) for task, spec in specs.items()}
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch_pairs = [pairs[i] for i in rows] if pairs else None
        inputs = tokenizer(
            [texts[i] for i in rows], batch_pairs, padding=True, truncation=True, max_length=max_length,
            return_tensors="pt",
        )  # fmt: skip
        with torch.inference_mode():
            logits = model(**inputs).logits
        for task in specs:
            scores[task][rows] = decision_scores(specs[task]["problem_type"], logits[task])
    return scores


def answered_tasks(config) -> dict:
    """`{task: spec}` of the tasks that bulk prediction answers: all but the multiple-choice ones (a text without
    answer choices gives them nothing to rank; the pipeline leaves them out too)."""
    answered = {task: config.tasks[task] for task in config.tasks_of_kind(False)}
    if not answered:
        raise ValueError(
            f"Every task of this model is multiple-choice ({config.task_names}): bulk prediction answers texts, not "
            "choice lists; rank choices with the pipeline ({'text': ..., 'choices': [...]})."
        )
    return answered


def _prediction_columns(specs: dict) -> list[str]:
    return [column for task in specs for column in (task, f"{task}_score")]


def _with_predictions(chunk: pd.DataFrame, scores: dict[str, np.ndarray], specs: dict) -> pd.DataFrame:
    chunk = chunk.reset_index(drop=True)
    columns = {}  # joined to the chunk at once: inserting hundreds of tasks' columns one by one fragments the frame
    for task, spec in specs.items():
        labels, probabilities = np.asarray(spec["labels"], dtype=object), scores[task]
        if spec["problem_type"] == MULTI_LABEL:
            # As the pipeline: the labels at or above their threshold (tuned per label, else the task's), best first,
            # compared in float32 as the pipeline compares them. Ranked for all rows at once, then cut into rows.
            order = np.argsort(-probabilities, axis=1, kind="stable")
            keep = np.take_along_axis(kept(probabilities, decision_thresholds(spec)), order, axis=1)
            names = labels[order[keep]].tolist()
            values = np.take_along_axis(probabilities, order, axis=1)[keep].astype(float).tolist()
            ends = np.cumsum(keep.sum(axis=1)).tolist()
            rows = list(map(slice, [0, *ends[:-1]], ends))
            columns[task] = [names[row] for row in rows]
            columns[f"{task}_score"] = [values[row] for row in rows]
        else:
            best = best_labels(probabilities)
            columns[task] = labels[best].tolist()
            columns[f"{task}_score"] = probabilities[np.arange(len(best)), best].astype(float).tolist()
    return pd.concat([chunk, pd.DataFrame(columns, index=chunk.index)], axis=1)


def _column(chunk: pd.DataFrame, column: str, offset: int, path: Path, option: str = "--text-column") -> list[str]:
    """The column's texts; an error naming the rows for a value the pipeline refuses as a text (missing, non-text,
    empty, or not valid Unicode: the pipeline's rule, `check_text_rows`, which a Space's batch upload applies too)."""
    if column not in chunk.columns:
        raise KeyError(f"No column {column!r} in the input (columns: {list(chunk.columns)}): pass {option}.")
    values = chunk[column].tolist()
    multitask_inputs.check_text_rows(values, column, offset, str(path))
    return values


# ------------------------------------------------------------------------------------------------------ input


def _input_format(path: Path) -> str:
    fmt = INPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"Unsupported input {path.name}: use one of {', '.join(INPUT_FORMATS)}.")
    if not path.is_file():
        raise FileNotFoundError(f"Input file {path} does not exist.")
    return fmt


def _read_chunks(path: Path, chunk_size: int, skip: int = 0) -> Iterator[tuple[int, pd.DataFrame]]:
    """`(first row index, DataFrame)` chunks of the input, in order, after the first `skip` rows. Values come as the
    file holds them, whatever the chunk: CSV cells as text, JSON Lines values as written, Parquet in the file's types
    (an integer column with nulls keeps its integers)."""
    fmt, offset = _input_format(path), 0
    if fmt == "parquet":
        import pyarrow.parquet as pq

        batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_size)
        chunks = (batch.to_pandas(integer_object_nulls=True) for batch in batches)
    elif fmt == "csv":
        chunks = _csv_chunks(path, chunk_size)
    else:
        chunks = _jsonl_chunks(path, chunk_size)
    for chunk in chunks:
        start, offset = offset, offset + len(chunk)
        if offset <= skip:
            continue
        yield max(start, skip), chunk.iloc[max(0, skip - start) :]


def _csv_chunks(path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Every cell as text (`00123` stays `00123`, `2023` and `True` are texts in every chunk), an empty cell missing
    (written as null), the columns the header names: a row with more fields than the header is refused (on the first
    data row pandas took the first column as the index, so the predictions scored the next one: `check_row_index`,
    which a Space's batch upload applies too)."""
    try:
        with pd.read_csv(path, chunksize=chunk_size, dtype=str, keep_default_na=False, na_values=[""]) as reader:
            for chunk in reader:
                multitask_inputs.check_row_index(chunk, str(path))
                yield chunk
    except pd.errors.EmptyDataError:  # blank lines only: no header, no rows
        return
    except pd.errors.ParserError as error:
        raise ValueError(_csv_problem(path, error)) from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error}): save it as UTF-8.") from None


def _csv_problem(path: Path, error: Exception) -> str:
    message = str(error).strip().removeprefix("Error tokenizing data. C error: ")
    extra = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if extra:
        expected, line, found = extra.groups()
        return f"{path} line {line} has {found} fields but the header names {expected} {EXTRA_FIELD}."
    return f"{path} is not a valid CSV file ({message}): fix that row, or save the file again as CSV."


def _jsonl_chunks(path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Each line's object, values as written (an integer stays an integer beside a null, a numeric text stays a
    number); a line that is not a JSON object is refused with its number."""
    rows, objects = [], 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip(b"\r\n"))
            except ValueError as error:  # not JSON, or not UTF-8
                row = error
            if not isinstance(row, dict):
                raise ValueError(_jsonl_problem(path, number, line, row, first=objects == 0))
            rows.append(row)
            objects += 1
            if len(rows) == chunk_size:
                yield _frame(rows)
                rows = []
    if rows:
        yield _frame(rows)


def _jsonl_problem(path: Path, number: int, line: bytes, row, first: bool) -> str:
    if first and line.lstrip().startswith(b"["):
        return (
            f"{path} is a JSON array, not JSON Lines: {JSONL_RULE} (`jq -c '.[]' {path.name} > {path.stem}.jsonl` "
            "converts it)."
        )
    if isinstance(row, json.JSONDecodeError):
        what = f"is not valid JSON ({row.msg} at column {row.colno})"
    elif isinstance(row, ValueError):
        what = f"is not UTF-8 text ({row})"
    else:
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(row), "a number")
        what = f"is {kind}, not a JSON object"
    return f"{path} line {number} {what}: {JSONL_RULE}."


def _frame(rows: list[dict]) -> pd.DataFrame:
    """The rows' keys as columns in the order they first appear, a missing key a null, every value as parsed."""
    columns = dict.fromkeys(key for row in rows for key in row)
    index = pd.RangeIndex(len(rows))
    return pd.DataFrame(
        {column: pd.Series([row.get(column) for row in rows], index=index, dtype=object) for column in columns},
        index=index,
    )


def _input_columns(path: Path, chunk_size: int) -> list[str]:
    """The columns of the input's first chunk (those of the output's first rows); an error when it has no rows."""
    _input_format(path)  # an unsupported or missing file is named first
    if path.stat().st_size == 0:
        raise ValueError(f"Input file {path} is empty (0 bytes): nothing to predict; pass the file with the texts.")
    first = next(_read_chunks(path, chunk_size), None)
    if first is None:
        raise ValueError(
            f"Input file {path} has no data rows (a header or blank lines at most): nothing to predict; add the "
            "texts, one row each, or pass the file with them."
        )
    return list(first[1].columns)


def _checked_rows(path: Path, chunk_size: int, text_columns: dict[str, str], specs: dict, parquet: bool) -> int:
    """The input's row count, after reading it whole once before the output is touched: a malformed row, a missing or
    empty text, an input column named like a prediction column and, for Parquet output, a column without one Parquet
    type are refused before the run, wherever they are, instead of after the rows before them were written."""
    rows, types = 0, {}
    for offset, chunk in _read_chunks(path, chunk_size):
        for column, option in text_columns.items():
            _column(chunk, column, offset, path, option)
        clash = [column for column in _prediction_columns(specs) if column in chunk.columns]
        if clash:
            raise ValueError(f"{path}: input columns {clash} would be overwritten by predictions: rename them.")
        if parquet:
            _check_parquet_types(chunk, offset, path, types)
        rows = offset + len(chunk)
    return rows


def _check_parquet_types(chunk: pd.DataFrame, offset: int, path: Path, types: dict) -> None:
    """Each input column must convert to Parquet as the part files do, and to types that merge (`types`: each column's
    type so far): a JSON Lines column with numbers in some rows and texts in others failed after every row had run."""
    import pyarrow as pa

    last, fix = offset + len(chunk) - 1, "write a .jsonl output, or give the column one type"
    rows = f"rows {offset}-{last}" if last > offset else f"row {offset}"
    for name in chunk.columns:
        try:
            found = pa.array(chunk[name], from_pandas=True).type  # what DataFrame.to_parquet does to the column
        except (pa.ArrowException, OverflowError) as error:
            raise ValueError(
                f"{path}: column {name!r} cannot be a Parquet column in {rows} ({error}): {fix}."
            ) from None
        known = types.setdefault(name, found)
        both = [pa.schema({name: known}), pa.schema({name: found})]
        try:
            types[name] = pa.unify_schemas(both, promote_options=PARQUET_PROMOTION).field(name).type
        except pa.ArrowException:
            raise ValueError(
                f"{path}: column {name!r} holds {known} values in earlier rows and {found} values in {rows}, but a "
                f"Parquet column has one type: {fix}."
            ) from None


# ------------------------------------------------------------------------------------------------------ output


def _writer_for(path: Path, input_path: Path, resume: bool, overwrite: bool):
    """The output's writer; an output that is the input, has another format or exists without `resume`/`overwrite`
    is refused. Nothing is touched (replaced, created) before the writer's `start`."""
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"Unsupported output {path.name}: use one of {', '.join(OUTPUT_FORMATS)}.")
    parts = path.with_name(path.name + PARTS_SUFFIX)
    source = input_path.resolve()
    if source == path.resolve() or parts.resolve() in source.parents or _same_file(path, input_path):
        raise ValueError(f"The output {path} would replace the input {input_path}: name another output file.")
    if not (resume or overwrite) and (path.exists() or parts.exists()):
        found = f"{path} already exists" if path.exists() else f"{parts} holds the rows of an unfinished run"
        raise FileExistsError(f"{found}: pass --resume to continue it or --overwrite to start again.")
    if fmt == "parquet" and not overwrite and path.exists() and not parts.exists():
        raise FileExistsError(f"{path} is a finished prediction file: pass --overwrite to predict again.")
    return _JsonlWriter(path, parts) if fmt == "jsonl" else _ParquetWriter(path, parts)


def _same_file(path: Path, other: Path) -> bool:
    return path.exists() and other.exists() and os.path.samefile(path, other)  # a hard link too


def _check_resumed_columns(path: Path, found: list[str] | None, expected: list[str]) -> None:
    """Rows resumed from an earlier run (`found`: their columns, None when there are none) must have the columns this
    run writes: appending another model's (or another input's) rows would mix two kinds of rows in one file."""
    if found is not None and set(found) != set(expected):
        raise ValueError(
            f"{path} holds rows with the columns {found}, but this model and input write {expected}: resume with the "
            "same model and input, or write a new output file (or pass --overwrite instead of --resume)."
        )


class _Writer:
    """Writes the output from `start` on, which replaces an earlier output when `overwrite` (before it: reads only)."""

    def __init__(self, path: Path, parts: Path):
        self.path, self.parts = path, parts

    def start(self, overwrite: bool) -> None:
        if overwrite:
            self.path.unlink(missing_ok=True)
            shutil.rmtree(self.parts, ignore_errors=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)


class _JsonlWriter(_Writer):
    """Appends one JSON object a line; a line cut by an interruption is dropped on resume."""

    def start(self, overwrite: bool) -> None:
        super().start(overwrite)
        if self.path.exists():
            data = self.path.read_bytes()
            keep = data.rfind(b"\n") + 1
            if keep < len(data):  # a half-written last line
                with open(self.path, "r+b") as handle:
                    handle.truncate(keep)

    def rows_done(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as handle:
            return sum(1 for _ in handle)

    def columns(self) -> list[str] | None:
        """The keys of the first row written, None before any."""
        if not self.path.exists():
            return None
        with open(self.path, "rb") as handle:
            line = handle.readline()
        if not line:
            return None
        try:
            row = json.loads(line)
        except ValueError:
            if line.startswith(b"{") and not line.endswith(b"\n"):
                return None  # the first row, cut mid-write: `start` drops it
            row = None
        if not isinstance(row, dict):
            raise ValueError(
                f"{self.path} is not a prediction file (its first line is not a JSON object): write a new output "
                "file, or pass --overwrite to replace it."
            )
        return list(row)

    def write(self, frame: pd.DataFrame) -> None:
        lines = "".join(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n" for row in _records(frame))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        pass


class _ParquetWriter(_Writer):
    """One part file per chunk in `<output>.parts/` (each written whole, then renamed), merged into the output."""

    def start(self, overwrite: bool) -> None:
        super().start(overwrite)
        self.parts.mkdir(exist_ok=True)

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet"))

    def rows_done(self) -> int:
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(part).metadata.num_rows for part in self._part_files())

    def columns(self) -> list[str] | None:
        """The columns of the first part written, None before any."""
        import pyarrow.parquet as pq

        parts = self._part_files()
        return pq.read_schema(parts[0]).names if parts else None

    def write(self, frame: pd.DataFrame) -> None:
        target = self.parts / f"part-{len(self._part_files()):06d}.parquet"
        tmp = target.with_suffix(".tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, target)

    def close(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = self._part_files()
        tables = [pq.read_table(part) for part in parts]
        if tables:
            try:
                table = pa.concat_tables(tables, promote_options=PARQUET_PROMOTION)
            except pa.ArrowException as error:  # parts of an earlier version's or another input's run
                raise ValueError(
                    f"The parts in {self.parts} do not merge into one Parquet file ({error}): pass --overwrite to "
                    "predict again, or write a .jsonl output."
                ) from None
            tmp = self.path.with_name(self.path.name + ".tmp")
            pq.write_table(table, tmp)
            os.replace(tmp, self.path)
        shutil.rmtree(self.parts)


def _records(frame: pd.DataFrame) -> Iterator[dict]:
    # Column by column (Python scalars, as `itertuples` gives): faster than `itertuples` (docs/design.md).
    columns = list(frame.columns)
    values = [_json_values(frame.iloc[:, i]) for i in range(len(columns))]
    for row in zip(*values):
        yield dict(zip(columns, row))


def _json_values(column: pd.Series) -> list:
    """The column's values, a missing one (NaN: a null in JSONL or Parquet input) as None: JSON has no NaN."""
    values = column.tolist()
    if column.dtype.kind in "fO" and column.isna().any():
        values = [None if isinstance(value, float) and math.isnan(value) else value for value in values]
    return values


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is pd.NA or value is pd.NaT:
        return None
    raise TypeError(f"Cannot write {type(value).__name__} to JSON")


__all__ = ["PredictResult", "load_model", "predict_file", "predict_texts"]
