"""Distillation with tiny random teachers of several architectures: teachers checked before they run, their outputs
cached and verified, the student trained on soft targets, the reports, and a student that loads like any model."""

import json
import math
import random
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from helpers import script_main
from transformers import (
    AutoModel,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertTokenizer,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    pipeline,
)

import polyhead.distill.cache as cache_module
import polyhead.distill.job as job_module
from polyhead.distill import (
    DistillArguments,
    format_distillation_table,
    parse_distill_args,
    parse_teacher,
    resolve_teachers,
    run,
)
from polyhead.distill.cache import teacher_logits
from polyhead.distill.job import plan_distillation
from polyhead.distill.trainer import (
    DistillationTrainer,
    distillation_loss,
    gold_weight_at,
    pack_targets,
    soft_targets,
)
from polyhead.evaluation.agreement import MARGIN_EDGES, agreement_by_margin, bucket_names, top2_margin
from polyhead.evaluation.scoring import evaluate_saved_model
from polyhead.publishing.model_card import render_model_card
from polyhead.publishing.upload import publish_model
from polyhead.remote_code import MULTI_LABEL, MULTIPLE_CHOICE, SINGLE_LABEL
from polyhead.saving import save_model_folder
from polyhead.testing_utils import SPECIAL_TOKENS, WORDS, tiny_multitask_config, tiny_tokenizer
from polyhead.training.arguments import DataArguments, ModelArguments, MultitaskTrainingArguments
from polyhead.training.trainer import build_model, load_tokenizer
from polyhead_remote.modeling_multitask import MultitaskModel


ROOT = Path(__file__).resolve().parent.parent
SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}


def _bert_teacher(folder, labels, problem_type=SINGLE_LABEL, bias=None, seed=0):
    """A tiny random BERT classifier with the preset tokenizer; `bias` tilts its answers towards one class."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(SPECIAL_TOKENS) + len(WORDS),
        max_position_embeddings=80,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type=problem_type,
        **SIZES,
    )
    model = BertForSequenceClassification(config)
    if bias is not None:
        with torch.no_grad():
            model.classifier.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


def _distilbert_teacher(folder, labels, seed=1):
    """A tiny random multi-label DistilBERT with its own tokenizer (another vocabulary order, lower-cased)."""
    torch.manual_seed(seed)
    vocab = SPECIAL_TOKENS + list(reversed(WORDS)) + ["extra", "words"]
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, model_max_length=64)
    config = DistilBertConfig(
        vocab_size=len(vocab),
        max_position_embeddings=80,
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=37,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type=MULTI_LABEL,
    )
    DistilBertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _multitask_teacher(folder, seed=2):
    torch.manual_seed(seed)
    model = MultitaskModel(tiny_multitask_config()).eval()
    save_model_folder(model, tiny_tokenizer(), folder)
    return str(folder)


def _texts(n, seed=0, pairs=False):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        row = {"text": " ".join(rng.sample(WORDS, 5))}
        if pairs:
            row["text_pair"] = " ".join(rng.sample(WORDS, 3))
        rows.append(row)
    return rows


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    return {
        "sentiment": _bert_teacher(root / "sst2-bert", ["negative", "positive"], bias=[0.0, 3.0]),
        "emotions": _distilbert_teacher(root / "emotion-distilbert", ["anger", "joy", "fear"]),
        "nli": _bert_teacher(root / "nli-bert", ["entailment", "neutral", "contradiction"], seed=3),
        "multitask": _multitask_teacher(root / "polyhead-model"),
    }


def _training_args(tmp_path, **kwargs):
    defaults = {
        "output_dir": str(tmp_path / "run"),
        "num_train_epochs": 2,
        "per_device_train_batch_size": 8,
        "learning_rate": 5e-3,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "seed": 0,
        "use_cpu": True,
    }
    return MultitaskTrainingArguments(**{**defaults, **kwargs})


# --- teachers ---------------------------------------------------------------------------------------------------


def test_parse_teacher_forms():
    assert parse_teacher("sentiment=org/sst2") == parse_teacher("sentiment=org/sst2")
    spec = parse_teacher("org/multitask:topic,emotions")
    assert (spec.source, spec.name, spec.tasks) == ("org/multitask", None, ["topic", "emotions"])
    assert parse_teacher("mood=models/mt:emotions").name == "mood"
    with pytest.raises(ValueError, match="expected"):
        parse_teacher("name=")


def test_repeated_teacher_and_texts_flags_add_up(tmp_path):
    argv = ["--teacher", "a=x", "--texts", "t1.jsonl", "--teacher=y:topic", "z", "--output_dir", str(tmp_path)]
    _, _, distill_args, training_args = parse_distill_args([*argv, "--texts", "t2.jsonl", "--gold_weight", "0.3"])
    assert distill_args.teacher == ["a=x", "y:topic", "z"] and distill_args.texts == ["t1.jsonl", "t2.jsonl"]
    assert distill_args.gold_weight == 0.3 and training_args.output_dir == str(tmp_path)
    with pytest.raises(ValueError, match="gold_weight must be in"):
        parse_distill_args([*argv, "--gold_weight", "2"])


def test_resolve_teachers_reads_labels_problem_types_and_names(teachers):
    resolved = resolve_teachers(
        [f"sentiment={teachers['sentiment']}", teachers["emotions"], f"{teachers['multitask']}:topic"]
    )
    tasks = {name: task for teacher in resolved for name, task in teacher.tasks.items()}
    assert list(tasks) == ["sentiment", "emotion-distilbert", "topic"]
    assert tasks["sentiment"]["labels"] == ["negative", "positive"]
    assert tasks["emotion-distilbert"]["problem_type"] == MULTI_LABEL
    assert tasks["topic"]["teacher_task"] == "topic"
    assert [t.kind for t in resolved] == ["sequence-classification", "sequence-classification", "multitask"]
    everything = resolve_teachers([teachers["multitask"]])[0]
    assert list(everything.tasks) == ["sentiment", "topic", "emotions"]
    assert everything.tasks["emotions"]["threshold"] == 0.4


# --- bad input: refused before any teacher runs -----------------------------------------------------------------


@pytest.fixture
def no_teacher_runs(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a teacher ran before the inputs were checked")

    monkeypatch.setattr(cache_module, "load_teacher", refuse)


def _bad(tmp_path, teachers_list, texts=None, model_args=None, data_args=None, **distill):
    texts = texts or [_jsonl(tmp_path / "texts.jsonl", _texts(20))]
    distill_args = DistillArguments(teacher=teachers_list, texts=texts, **distill)
    return run(model_args or ModelArguments(), data_args or DataArguments(), distill_args, _training_args(tmp_path))


def test_not_a_sequence_classifier_is_refused(tmp_path, teachers, no_teacher_runs):
    folder = tmp_path / "mlm"
    BertForMaskedLM(BertConfig(vocab_size=99, **SIZES)).save_pretrained(folder)
    with pytest.raises(ValueError, match="is not a sequence classifier.*BertForMaskedLM"):
        _bad(tmp_path, [str(folder)])


def test_regression_teacher_is_refused(tmp_path, no_teacher_runs):
    folder = _bert_teacher(tmp_path / "stsb", ["score"], problem_type="regression")
    with pytest.raises(ValueError, match="regression model.*refused"):
        _bad(tmp_path, [folder])


def test_two_teachers_on_one_task_name_are_refused(tmp_path, teachers, no_teacher_runs):
    with pytest.raises(ValueError, match=r"Two teachers map to one task name \('sentiment'"):
        _bad(tmp_path, [f"sentiment={teachers['sentiment']}", teachers["multitask"]])


def test_unreadable_text_files_are_refused(tmp_path, teachers, no_teacher_runs):
    with pytest.raises(ValueError, match="not found"):
        _bad(tmp_path, [teachers["sentiment"]], texts=[str(tmp_path / "missing.jsonl")])
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "good"}\n{"text": oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match="broken.jsonl, line 2: not a JSON object"):
        _bad(tmp_path, [teachers["sentiment"]], texts=[str(broken)])
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"text\n\xff\xfe\x00bad\n")
    with pytest.raises(ValueError, match="binary.csv"):
        _bad(tmp_path, [teachers["sentiment"]], texts=[str(binary)])


def test_empty_text_column_is_refused(tmp_path, teachers, no_teacher_runs):
    blank = _jsonl(tmp_path / "blank.jsonl", [{"text": " "}, {"text": None}, {"text": ""}])
    with pytest.raises(ValueError, match="text column 'text' is empty"):
        _bad(tmp_path, [teachers["sentiment"]], texts=[blank])
    other = _jsonl(tmp_path / "other.jsonl", [{"message": "good"}])
    with pytest.raises(ValueError, match=r"column\(s\) \['text'\] not found; available columns: \['message'\]"):
        _bad(tmp_path, [teachers["sentiment"]], texts=[other])


def test_text_files_whose_other_columns_differ_are_read_as_one_table(tmp_path):
    from polyhead.distill.corpus import load_corpus

    labelled = _jsonl(
        tmp_path / "train.jsonl", [{"text": "good day", "label": "positive"}, {"text": "bad", "label": "x"}]
    )
    traffic = _jsonl(tmp_path / "traffic.jsonl", [{"text": "hello", "id": 7}, {"text": "  "}])
    corpus = load_corpus([labelled, traffic])
    assert corpus.texts == ["good day", "bad", "hello"] and corpus.pairs is None
    pairs = _jsonl(tmp_path / "pairs.jsonl", [{"text": "a", "text_pair": "b", "score": 1.5}])
    assert load_corpus([pairs, pairs], text_pair_column="text_pair").pairs == ["b", "b"]
    for suffix in ("jsonl", "csv"):
        with_text = tmp_path / f"with_text.{suffix}"
        without = tmp_path / f"without.{suffix}"
        if suffix == "csv":
            with_text.write_text("text,label\ngood,positive\n", encoding="utf-8")
            without.write_text("message\nhello\n", encoding="utf-8")
        else:
            _jsonl(with_text, [{"text": "good", "label": "positive"}])
            _jsonl(without, [{"message": "hello"}])
        message = rf"without\.{suffix}: column\(s\) \['text'\] not found; available columns: \['message'\]"
        with pytest.raises(ValueError, match=message):
            load_corpus([str(with_text), str(without)])


def test_student_positions_too_short_for_max_length_are_refused(tmp_path, teachers, no_teacher_runs):
    with pytest.raises(ValueError, match="max_length=500 is more than encoder 'tiny-random-bert' allows"):
        _bad(tmp_path, [teachers["sentiment"]], model_args=ModelArguments(max_length=500))


def test_other_bad_inputs_are_refused_before_teachers_run(tmp_path, teachers, no_teacher_runs):
    with pytest.raises(ValueError, match="read sentence pairs: name the pair column"):
        _bad(tmp_path, [f"nli={teachers['nli']}"], pair_tasks="nli")
    with pytest.raises(ValueError, match=r"pair_tasks \['nope'\] are no teacher's task"):
        _bad(tmp_path, [teachers["sentiment"]], pair_tasks="nope")
    with pytest.raises(ValueError, match=r"has no task\(s\) \['nope'\]"):
        _bad(tmp_path, [f"{teachers['multitask']}:nope"])
    gold = datasets.DatasetDict(test=datasets.Dataset.from_dict({"text": ["good"], "label": ["great"]}))
    data_args = DataArguments(tasks=[{"name": "sentiment", "dataset": gold}])
    with pytest.raises(ValueError, match=r"label\(s\) \['great'\].*not in its label map \['negative', 'positive'\]"):
        _bad(tmp_path, [f"sentiment={teachers['sentiment']}"], data_args=data_args)
    with pytest.raises(ValueError, match=r"--tasks \['sentiment'\] have no teacher"):
        _bad(tmp_path, [f"mood={teachers['sentiment']}"], data_args=data_args)
    with pytest.raises(ValueError, match="gold_weight > 0 mixes in gold labels"):
        _bad(tmp_path, [teachers["sentiment"]], gold_weight=0.5)


def test_teacher_given_as_a_training_run_folder_is_pointed_at_its_model(tmp_path, no_teacher_runs):
    run_folder = tmp_path / "run"
    model = _multitask_teacher(run_folder / "model")
    with pytest.raises(ValueError, match=rf"'{run_folder}' is a training run's folder; its model is {model}: give "):
        _bad(tmp_path, [str(run_folder)])
    with pytest.raises(ValueError, match=rf"give that, --teacher mood={model}:topic\.$"):  # the same name and task
        _bad(tmp_path, [f"mood={run_folder}:topic"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="'.*empty' is a folder without config.json: give the folder of a"):
        _bad(tmp_path, [str(tmp_path / "empty")])
    assert list(resolve_teachers([f"mood={model}:topic"])[0].tasks) == ["mood"]


def test_multiple_choice_tasks_of_a_polyhead_teacher_are_refused(tmp_path, no_teacher_runs):
    tasks = {"sentiment": {"labels": ["negative", "positive"]}, "copa": {"problem_type": MULTIPLE_CHOICE}}
    folder = str(tmp_path / "mc")
    save_model_folder(MultitaskModel(tiny_multitask_config(tasks=tasks)), tiny_tokenizer(), folder)
    message = r"task\(s\) \['copa'\] are multiple-choice .* distillation does not support: pick its other tasks"
    for source in (folder, f"{folder}:copa", f"{folder}:sentiment,copa", f"choice={folder}:copa"):
        with pytest.raises(ValueError, match=rf"{message}, --teacher {folder}:sentiment\.$"):
            _bad(tmp_path, [source])
    assert list(resolve_teachers([f"{folder}:sentiment"])[0].tasks) == ["sentiment"]
    only = str(tmp_path / "mc-only")
    save_model_folder(MultitaskModel(tiny_multitask_config(tasks={"copa": tasks["copa"]})), tiny_tokenizer(), only)
    with pytest.raises(ValueError, match="multiple-choice .*: it has no other task to distil"):
        _bad(tmp_path, [only])


@pytest.fixture(scope="module")
def misfits(tmp_path_factory):
    """Teachers named like tasks of the `teachers` polyhead model whose heads they do not fit (or extend)."""
    root = tmp_path_factory.mktemp("misfits")
    return {
        "extends": _bert_teacher(root / "neg3", ["negative", "positive", "neutral"]),
        "reordered": _bert_teacher(root / "posneg", ["positive", "negative"]),
        "multi_label": _bert_teacher(root / "ml", ["negative", "positive"], problem_type=MULTI_LABEL),
    }


def test_init_from_tasks_the_teachers_do_not_fit_are_refused_before_teachers_run(
    tmp_path, teachers, misfits, no_teacher_runs
):
    """A teacher named like a task of --init_from continues its head: its outputs must fit that head, as training's
    data must (problem type, pair input, labels in the head's order, new labels only with --extend_labels)."""
    model_args = ModelArguments(init_from=teachers["multitask"])  # sentiment: negative, positive; emotions: multi
    pairs = [_jsonl(tmp_path / "pairs.jsonl", _texts(20, pairs=True))]
    fix = "name its task apart with --teacher new_name=source"
    refused = [
        (f"sentiment={teachers['nli']}", r"teacher's labels \['entailment', 'neutral', 'contradiction'\] do not "),
        (f"sentiment={misfits['reordered']}", r"\['positive', 'negative'\] do not start with the model's labels"),
        (f"sentiment={misfits['multi_label']}", "is multi_label_classification but the model's head is single_label"),
        (f"sentiment={misfits['extends']}", r"labels \['neutral'\] are not in .* Pass --extend_labels true"),
    ]
    for teacher, message in refused:
        with pytest.raises(ValueError, match=rf"--init_from '.*polyhead-model': Task 'sentiment': .*{message}.*{fix}"):
            _bad(tmp_path, [teacher], model_args=model_args)
    with pytest.raises(ValueError, match="Task 'sentiment': the model's head reads one text but the data gives pairs"):
        _bad(tmp_path, [f"sentiment={teachers['sentiment']}"], pairs, model_args, pair_tasks="sentiment")
    extend = ModelArguments(init_from=teachers["multitask"], extend_labels=True)
    with pytest.raises(ValueError, match="do not start with the model's labels"):  # --extend_labels only appends
        _bad(tmp_path, [f"sentiment={misfits['reordered']}"], model_args=extend)
    texts = [_jsonl(tmp_path / "texts.jsonl", _texts(20))]
    distill_args = DistillArguments(teacher=[f"sentiment={misfits['extends']}", teachers["sentiment"]], texts=texts)
    plan = plan_distillation(extend, DataArguments(), distill_args)
    model = build_model(extend, plan.heads)  # what run does once the teachers ran: now sure to work
    assert model.config.tasks["sentiment"]["labels"] == ["negative", "positive", "neutral"]
    assert model.config.task_names == ["sentiment", "topic", "emotions", "sst2-bert"]
    with pytest.raises(ValueError, match="neg3 is not a polyhead multitask model folder"):  # a standard checkpoint
        _bad(tmp_path, [teachers["sentiment"]], model_args=ModelArguments(init_from=misfits["extends"]))


def test_train_tasks_without_a_teacher_are_refused_before_teachers_run(tmp_path, teachers, no_teacher_runs):
    known = r"the teachers' tasks are \['sst2-bert'\]"
    with pytest.raises(ValueError, match=rf"--train_tasks \['sst2_bert'\] have no teacher: {known}"):
        _bad(tmp_path, [teachers["sentiment"]], model_args=ModelArguments(train_tasks="sst2-bert,sst2_bert"))
    grown = ModelArguments(init_from=teachers["multitask"], train_tasks="topic")  # the model's, but no teacher's
    with pytest.raises(ValueError, match=rf"--train_tasks \['topic'\] have no teacher: {known}"):
        _bad(tmp_path, [teachers["sentiment"]], model_args=grown)


def test_held_out_texts_are_scored_and_never_trained_on(tmp_path, teachers, no_teacher_runs, caplog):
    rows = _texts(30, seed=7, pairs=True)
    texts = _jsonl(tmp_path / "texts.jsonl", rows)
    # Held-out: 2 rows also in --texts (one with another pair text: a different row), 8 new ones, 1 blank.
    held = [rows[3], rows[10], {"text": rows[12]["text"], "text_pair": "other"}, *_texts(8, seed=8, pairs=True)]
    held_file = _jsonl(tmp_path / "held.jsonl", [*held, {"text": " ", "text_pair": "x"}])
    sources = [f"nli={teachers['nli']}", teachers["sentiment"]]
    common = {"teacher": sources, "texts": [texts], "text_pair_column": "text_pair", "pair_tasks": "nli"}
    plan = plan_distillation(ModelArguments(), DataArguments(), DistillArguments(**common, held_out_texts=[held_file]))
    held_rows = [(plan.corpus.texts[i], plan.corpus.pairs[i]) for i in plan.held_out_rows]
    assert held_rows == [(row["text"], row["text_pair"]) for row in held]  # in file order, the blank row dropped
    trained = {(plan.corpus.texts[i], plan.corpus.pairs[i]) for i in plan.train_rows}
    assert len(plan.train_rows) == 28 and not trained & set(held_rows)  # every other --texts row trains
    assert "2 of the 30 training rows repeat a held-out text: kept out of training" in caplog.text
    assert plan.num_unlabeled == 30 + 11
    speed = job_module.speed_rows(plan)  # timed on a seeded shuffle of them, not the first file's rows first
    assert sorted(speed) == list(plan.held_out_rows) and list(speed) != sorted(speed)
    capped = DistillArguments(**common, held_out_texts=[held_file], max_held_out=4, held_out_fraction=0.5)
    plan = plan_distillation(ModelArguments(), DataArguments(), capped)
    assert list(plan.held_out_rows) == [30, 31, 32, 33]  # a seeded 4 of the file's rows, after the 30 --texts
    kept = {(plan.corpus.texts[i], plan.corpus.pairs[i]) for i in plan.held_out_rows}
    assert len(plan.train_rows) == 30 - len(kept & {(row["text"], row["text_pair"]) for row in rows})
    with pytest.raises(ValueError, match="Every training text is also a held-out text"):
        plan_distillation(ModelArguments(), DataArguments(), DistillArguments(**{**common, "held_out_texts": [texts]}))
    with pytest.raises(ValueError, match=r"not found.*missing\.jsonl"):
        _bad(tmp_path, sources, held_out_texts=[str(tmp_path / "missing.jsonl")])
    gold = datasets.DatasetDict(train=datasets.Dataset.from_dict({"text": ["good"], "label": ["positive"]}))
    data_args = DataArguments(tasks=[{"name": "sst2-bert", "dataset": gold}])
    born_again = DistillArguments(teacher=[teachers["sentiment"]], held_out_texts=[held_file], gold_weight=0.5)
    with pytest.raises(ValueError, match="--held_out_texts needs --texts"):
        plan_distillation(ModelArguments(), data_args, born_again)


def test_gold_train_rows_that_repeat_a_held_out_text_do_not_train(tmp_path, teachers, no_teacher_runs):
    """--texts = a task's train texts and gold labels mixed in: the gold copy of a held-out text must not train."""
    rows = [{"text": row["text"], "label": "positive"} for row in _texts(20, seed=9)]
    gold = datasets.DatasetDict(train=datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in ("text", "label")}))
    texts = _jsonl(tmp_path / "texts.jsonl", rows)
    data_args = DataArguments(tasks=[{"name": "sst2-bert", "dataset": gold, "validation_size": 0, "test_size": 0}])
    distill_args = DistillArguments(teacher=[teachers["sentiment"]], texts=[texts], gold_weight=0.5)
    plan = plan_distillation(ModelArguments(), data_args, distill_args)
    held = {plan.corpus.texts[i] for i in plan.held_out_rows}
    assert len(held) == 2 and not held & {plan.corpus.texts[i] for i in plan.train_rows}
    assert len(plan.train_rows) == 2 * (20 - 2)  # each other text twice: unlabeled from --texts, with its gold label


# --- the cache --------------------------------------------------------------------------------------------------


def test_teacher_outputs_are_cached_verified_and_never_reused_for_other_texts(tmp_path, teachers, monkeypatch, caplog):
    teacher = resolve_teachers([teachers["sentiment"]])[0]
    loads = []
    real_load = cache_module.load_teacher
    monkeypatch.setattr(cache_module, "load_teacher", lambda t: loads.append(t) or real_load(t))
    texts = [row["text"] for row in _texts(12)]
    first = teacher_logits(teacher, texts, None, 32, 4, tmp_path / "cache", progress=False)
    again = teacher_logits(teacher, texts, None, 32, 4, tmp_path / "cache", progress=False)
    assert len(loads) == 1  # the second call read the file
    np.testing.assert_array_equal(first["sst2-bert"][1], again["sst2-bert"][1])
    other = teacher_logits(teacher, texts[::-1], None, 32, 4, tmp_path / "cache", progress=False)
    assert len(loads) == 2  # other texts: computed, not read
    np.testing.assert_allclose(other["sst2-bert"][1], first["sst2-bert"][1][::-1], atol=1e-5)
    files = sorted((tmp_path / "cache").glob("*.safetensors"))
    assert len(files) == 2
    # A file for other texts put under this key's name is detected and recomputed.
    current = cache_module.cache_path(tmp_path / "cache", teacher, _key_of(files, first, texts, teacher))
    other_file = next(f for f in files if f != current)
    current.write_bytes(other_file.read_bytes())
    again = teacher_logits(teacher, texts, None, 32, 4, tmp_path / "cache", progress=False)
    assert len(loads) == 3 and "computed for another teacher or other settings" in caplog.text
    np.testing.assert_allclose(again["sst2-bert"][1], first["sst2-bert"][1], atol=1e-6)
    # A changed teacher (other weights in the same folder) is a different key.
    assert teacher.identity() == resolve_teachers([teachers["sentiment"]])[0].identity()


def test_a_teacher_runs_each_distinct_text_or_pair_once(teachers, monkeypatch):
    ran = []
    real_run = cache_module.run_batches
    monkeypatch.setattr(
        cache_module, "run_batches", lambda f, t, texts, *a: ran.append(list(texts)) or real_run(f, t, texts, *a)
    )
    base = [row["text"] for row in _texts(6)]
    texts = base + base[:2]  # e.g. held-out texts that are also gold test rows
    sentiment = resolve_teachers([teachers["sentiment"]])[0]
    rows, logits = teacher_logits(sentiment, texts, None, 32, 4, None, progress=False)["sst2-bert"]
    assert ran == [base] and list(rows) == list(range(8))
    np.testing.assert_array_equal(logits[6:], logits[:2])  # each repeat gets its text's logits
    _, alone = teacher_logits(sentiment, base, None, 32, 4, None, progress=False)["sst2-bert"]
    np.testing.assert_allclose(logits[:6], alone, atol=1e-6)
    # Pairs: the same text with another pair is another input; a repeated (text, pair) runs once.
    ran.clear()
    nli = resolve_teachers([f"nli={teachers['nli']}"], pair_tasks=["nli"])[0]
    text, x, y = (" ".join(WORDS[i : i + 3]) for i in (0, 3, 6))
    pair_texts, pairs = [text, text, text, "c d"], [x, y, x, None]
    rows, logits = teacher_logits(nli, pair_texts, pairs, 32, 4, None, progress=False)["nli"]
    assert ran == [[text, text]] and list(rows) == [0, 1, 2]  # (text, x) and (text, y); the row without a pair skipped
    np.testing.assert_array_equal(logits[2], logits[0])
    assert not np.allclose(logits[1], logits[0])


def _key_of(files, first, texts, teacher):
    from polyhead.distill.teachers import fingerprint

    texts_hash = fingerprint(list(texts), None)
    settings = {"max_length": 32, "tasks": teacher.tasks, "format": cache_module.CACHE_FORMAT}
    return fingerprint(teacher.identity(), settings, texts_hash)


# --- the loss ---------------------------------------------------------------------------------------------------


def test_soft_targets_and_loss():
    logits = np.array([[2.0, 0.0, -1.0]])
    probabilities = soft_targets(SINGLE_LABEL, logits, 2.0)
    np.testing.assert_allclose(probabilities, torch.softmax(torch.tensor(logits) / 2, -1).numpy())
    packed = torch.tensor(pack_targets(SINGLE_LABEL, logits, 2.0))
    assert packed.shape == (1, 4) and packed[0, -1] == -100
    # A student that equals its teacher has zero KL; another one pays T^2 * KL.
    assert distillation_loss(SINGLE_LABEL, torch.tensor(logits), packed, 2.0).item() == pytest.approx(0, abs=1e-6)
    student = torch.tensor([[0.0, 1.0, 0.0]])
    expected = 4.0 * torch.nn.functional.kl_div(torch.log_softmax(student / 2, -1), packed[:, :3], reduction="sum")
    assert distillation_loss(SINGLE_LABEL, student, packed, 2.0).item() == pytest.approx(expected.item(), rel=1e-5)
    # Gold mixing: (1 - w) * soft + w * cross-entropy on rows with a gold label.
    gold = torch.tensor(pack_targets(SINGLE_LABEL, logits, 2.0, [1]))
    ce = torch.nn.functional.cross_entropy(student, torch.tensor([1])).item()
    mixed = distillation_loss(SINGLE_LABEL, student, gold, 2.0, gold_weight=0.25).item()
    assert mixed == pytest.approx(0.75 * expected.item() + 0.25 * ce, rel=1e-5)
    # Multi-label: BCE against the teacher's per-label probabilities (no temperature).
    multi = torch.tensor(pack_targets(MULTI_LABEL, logits, 2.0))
    assert multi.shape == (1, 6)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(student, torch.sigmoid(torch.tensor(logits)).float())
    assert distillation_loss(MULTI_LABEL, student, multi, 2.0).item() == pytest.approx(bce.item(), rel=1e-5)


# --- end to end -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, teachers):
    tmp_path = tmp_path_factory.mktemp("distilled")
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(80, pairs=True))
    rng = random.Random(5)
    gold_rows = {
        split: {
            "text": [" ".join(rng.sample(WORDS, 5)) for _ in range(n)],
            "label": [rng.choice(["negative", "positive"]) for _ in range(n)],
        }
        for split, n in (("train", 16), ("test", 12))
    }
    gold = datasets.DatasetDict({split: datasets.Dataset.from_dict(rows) for split, rows in gold_rows.items()})
    distill_args = DistillArguments(
        teacher=[
            f"sentiment={teachers['sentiment']}",
            teachers["emotions"],
            f"nli={teachers['nli']}",
            f"{teachers['multitask']}:topic",
        ],
        texts=[texts],
        text_pair_column="text_pair",
        pair_tasks="nli",
        gold_weight=0.5,
        speed_texts=16,
        teacher_batch_size=8,
    )
    data_args = DataArguments(tasks=[{"name": "sentiment", "dataset": gold, "validation_size": 0}])  # 16 train rows
    args = _training_args(tmp_path, num_train_epochs=3, eval_strategy="epoch")
    results = run(ModelArguments(), data_args, distill_args, args)
    return results, Path(args.model_dir), args


def test_run_reports_agreement_test_scores_and_speed(distilled):
    results, folder, _ = distilled
    summary = results["distillation"]
    assert set(summary["agreement"]) == {"sentiment", "emotion-distilbert", "nli", "topic"}
    # The biased sentiment teacher always answers "positive": the student learns to agree.
    assert summary["agreement"]["sentiment"]["value"] == 1.0
    assert summary["agreement"]["emotion-distilbert"]["metric"] == "f1_macro"
    assert set(summary["agreement"]["emotion-distilbert"]["per_label_f1"]) == {"anger", "joy", "fear"}
    assert summary["num_texts"]["held_out"] == 8 and summary["num_texts"]["unlabeled"] == 80
    assert summary["num_texts"]["train"]["sentiment"] == 72 + 16  # unlabeled training texts + gold train texts
    side = summary["test"]["sentiment"]
    assert side["n"] == 12 and set(side) == {"metric", "n", "teacher", "student", "agreement"}
    assert side["agreement"] == 1.0  # on the test rows too, the student answers "positive" as its teacher does
    assert side["teacher"]["accuracy"] == pytest.approx(
        results["tasks"]["sentiment"]["accuracy"], abs=1.0
    )  # both scored on the same 12 rows
    assert results["split"] == "test" and list(results["tasks"]) == ["sentiment"]
    speed = summary["speed"]
    assert speed["texts"] == 8 and speed["num_teachers"] == 4 and len(speed["per_teacher"]) == 4
    assert speed["student_seconds"] > 0 and speed["speedup"] > 0
    saved = json.loads((folder / "results.json").read_text())
    assert saved["distillation"]["agreement"] == json.loads(json.dumps(summary["agreement"]))
    info = json.loads((folder / "training_args.json").read_text())
    assert info["distillation"]["gold_weight"] == 0.5 and len(info["distillation"]["teachers"]) == 4
    # Joint batches (the default): per epoch, the 88 texts once for the three single-text tasks (11 batches of 8)
    # and the 72 pairs for nli (9 batches); 3 epochs.
    assert summary["joint_batches"] is True and info["distillation"]["joint_batches"] is True
    assert info["log_history"][-1]["step"] == 3 * (11 + 9)
    assert info["num_train_examples"] == {"sentiment": 88, "emotion-distilbert": 88, "topic": 88, "nli": 72}
    table = format_distillation_table(results)
    assert "sentiment" in table and "texts/s" in table and "emotion-distilbert" in table


def test_run_reports_agreement_by_teacher_margin(distilled):
    results, folder, _ = distilled
    saved = json.loads((folder / "results.json").read_text())["distillation"]["agreement"]
    for task in ("sentiment", "nli", "topic"):  # the single-label tasks
        entry = saved[task]
        buckets = entry["by_teacher_margin"]
        assert list(buckets) == ["[0, 0.2)", "[0.2, 0.5)", "[0.5, 1]"]
        assert sum(bucket["n"] for bucket in buckets.values()) == entry["n"] == 8
        agreed = sum(bucket["agreement"] * bucket["n"] for bucket in buckets.values() if bucket["n"])
        assert agreed == pytest.approx(entry["value"] * entry["n"])  # the buckets split the overall agreement
        assert entry["confident"] == {"min_margin": 0.5, **buckets["[0.5, 1]"]}
    assert "by_teacher_margin" not in saved["emotion-distilbert"] and "confident" not in saved["emotion-distilbert"]
    # The sentiment teacher's bias (0, 3) gives it a margin of about 0.9 on every text: all 8 are confident.
    assert saved["sentiment"]["confident"] == {"min_margin": 0.5, "n": 8, "agreement": 1.0}
    assert saved["sentiment"]["by_teacher_margin"]["[0, 0.2)"] == {"n": 0, "agreement": None}
    table = format_distillation_table(results)
    assert _column(table, "agree@margin>=0.5", "sentiment") == "1.000 (8)"
    assert _column(table, "agree@margin>=0.5", "emotion-distilbert") == "-"


def test_agreement_on_test_rows_by_hand():
    single = {"problem_type": SINGLE_LABEL, "labels": ["a", "b", "c"]}
    teacher = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])  # answers a, b, c
    assert job_module._agreement(single, [0, 1, 1], teacher) == pytest.approx(2 / 3)
    multi = {"problem_type": MULTI_LABEL, "labels": ["x", "y"]}
    teacher = np.array([[5.0, -5.0], [5.0, 5.0]])  # decisions at 0.5: [1, 0], [1, 1]
    # label x: both right (F1 1); label y: the student misses its one positive (F1 0): macro 0.5
    assert job_module._agreement(multi, [[1, 0], [1, 0]], teacher) == pytest.approx(0.5)


# --- agreement by the teacher's confidence (top-2 softmax margin) -----------------------------------------------


def _hand_margin(row):
    """p1 - p2 of softmax(row), written out."""
    exp = sorted((math.exp(value) for value in row), reverse=True)
    return (exp[0] - exp[1]) / sum(exp)


# Teacher logits over 3 classes and whether the student gave the teacher's answer on each row.
MARGIN_LOGITS = [[0.0, 0.0, 0.0], [1.0, 0.9, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 9.0]]
MARGIN_AGREES = [True, False, True, True, False, True]


def test_top2_margin_by_hand():
    margins = top2_margin(np.array(MARGIN_LOGITS))
    expected = [_hand_margin(row) for row in MARGIN_LOGITS]
    np.testing.assert_allclose(margins, expected, rtol=1e-12)
    # 0, 0.04, 0.36, 0.68, 0.86, 1.0: two unsure rows, one in between, three confident ones
    assert [bucket for bucket in np.digitize(margins, [0.2, 0.5])] == [0, 0, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="classes >= 2"):
        top2_margin(np.array([[1.0], [2.0]]))


def test_agreement_by_margin_buckets_edges_and_empty_buckets():
    report = agreement_by_margin(top2_margin(np.array(MARGIN_LOGITS)), np.array(MARGIN_AGREES))
    assert list(report["by_teacher_margin"]) == ["[0, 0.2)", "[0.2, 0.5)", "[0.5, 1]"] == bucket_names(MARGIN_EDGES)
    assert report["by_teacher_margin"] == {
        "[0, 0.2)": {"n": 2, "agreement": 0.5},
        "[0.2, 0.5)": {"n": 1, "agreement": 1.0},
        "[0.5, 1]": {"n": 3, "agreement": pytest.approx(2 / 3)},
    }
    assert report["confident"] == {"min_margin": 0.5, "n": 3, "agreement": pytest.approx(2 / 3)}
    # A lower edge belongs to its bucket, 1.0 to the last (closed) one.
    edges = agreement_by_margin(np.array([0.0, 0.2, 0.5, 1.0]), np.array([True, False, True, False]))
    assert [b["n"] for b in edges["by_teacher_margin"].values()] == [1, 1, 2]
    assert edges["confident"]["agreement"] == 0.5
    # A teacher unsure on every text: the other buckets are empty, their agreement None, not 0 or NaN.
    unsure = agreement_by_margin(np.array([0.05, 0.1]), np.array([True, False]))
    assert unsure["by_teacher_margin"]["[0.2, 0.5)"] == {"n": 0, "agreement": None}
    assert unsure["confident"] == {"min_margin": 0.5, "n": 0, "agreement": None}
    json.dumps(unsure, allow_nan=False)  # results.json stays valid JSON
    with pytest.raises(ValueError, match="same rows"):
        agreement_by_margin(np.array([0.1, 0.2]), np.array([True]))


def test_agreement_report_breaks_single_label_tasks_down_by_teacher_margin(monkeypatch):
    """`agreement_report` on known student answers and teacher margins: the buckets as computed by hand, no
    breakdown for a multi-label task."""
    specs = {
        "question": {"problem_type": SINGLE_LABEL, "labels": ["a", "b", "c"]},
        "tags": {"problem_type": MULTI_LABEL, "labels": ["x", "y"]},
    }
    teacher = np.array(MARGIN_LOGITS).argmax(axis=-1)
    student = np.where(MARGIN_AGREES, teacher, (teacher + 1) % 3)
    tags = np.array([[1, 0], [1, 1]])
    outputs = {"question": (student, teacher), "tags": (tags, tags)}

    def fake_score_model(model, tokenizer, held_out, split, batch_size, progress):
        tasks = {"question": {"accuracy": float((student == teacher).mean())}, "tags": {"f1_macro": 1.0}}
        return {"tasks": tasks}, outputs

    monkeypatch.setattr(job_module, "score_model", fake_score_model)
    model = types.SimpleNamespace(config=types.SimpleNamespace(task=specs.__getitem__))
    held_out = {"question": [None] * 6, "tags": [None] * 2}
    margins = {"question": top2_margin(np.array(MARGIN_LOGITS))}
    report = job_module.agreement_report(model, None, held_out, 8, False, margins)
    question = report["question"]
    assert question["value"] == pytest.approx(4 / 6) and question["n"] == 6
    assert {name: bucket["n"] for name, bucket in question["by_teacher_margin"].items()} == {
        "[0, 0.2)": 2,
        "[0.2, 0.5)": 1,
        "[0.5, 1]": 3,
    }
    assert [bucket["agreement"] for bucket in question["by_teacher_margin"].values()] == pytest.approx([0.5, 1, 2 / 3])
    assert question["confident"]["n"] == 3 and question["confident"]["agreement"] == pytest.approx(2 / 3)
    assert "by_teacher_margin" not in report["tags"] and "confident" not in report["tags"]
    assert "confident" not in job_module.agreement_report(model, None, held_out, 8, False)["question"]


def _summary(agreement):
    teachers = [{"source": f"org/{task}", "tasks": {task: task}} for task in agreement]
    return {"distillation": {"teachers": teachers, "agreement": agreement, "test": {}}}


def _column(table, header, task):
    """The cell of `task`'s row under `header` (the columns are right-aligned to the header's end)."""
    lines = table.splitlines()
    end = lines[0].index(header) + len(header)
    row = next(line for line in lines if line.startswith(task + " "))
    return row[:end].split("  ")[-1].strip()


def test_table_shows_agreement_where_the_teacher_is_confident():
    agreement = {
        "question": {
            "metric": "accuracy",
            "value": 0.865,
            "n": 1000,
            "confident": {"min_margin": 0.5, "n": 167, "agreement": 1.0},
        },
        "emotion": {
            "metric": "accuracy",
            "value": 0.893,
            "n": 1000,
            "confident": {"min_margin": 0.5, "n": 494, "agreement": 491 / 494},
        },
        "unsure": {
            "metric": "accuracy",
            "value": 0.5,
            "n": 4,
            "confident": {"min_margin": 0.5, "n": 0, "agreement": None},
        },
        "tags": {"metric": "f1_macro", "value": 0.9, "n": 1000},
    }
    table = format_distillation_table(_summary(agreement))
    header = "agree@margin>=0.5"
    assert header in table.splitlines()[0]
    assert _column(table, header, "question") == "1.000 (167)"
    assert _column(table, header, "emotion") == "0.994 (494)"
    assert _column(table, header, "unsure") == "- (0)"  # an empty bucket: no agreement, said how many
    assert _column(table, header, "tags") == "-"  # multi-label: no margin breakdown
    assert _column(table, "agreement", "emotion") == "0.893"  # the columns before it did not move
    assert "top-2 softmax margin (p1 - p2) is >= 0.5" in table


def test_speed_rounds_interleave_student_and_teachers_and_keep_the_median(tmp_path, teachers, monkeypatch):
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(40))
    sources = [teachers["emotions"], f"s={teachers['sentiment']}"]
    distill_args = DistillArguments(teacher=sources, texts=[texts], speed_texts=4, speed_rounds=3)
    plan = plan_distillation(ModelArguments(), DataArguments(), distill_args)
    calls = []
    # Round by round: student, first teacher, second teacher; one slow outlier per model.
    seconds = iter([1.0, 4.0, 6.0, 9.0, 40.0, 6.0, 2.0, 4.0, 60.0])

    def fake_timed(forward, tokenizer, *args):
        calls.append(tokenizer)
        return next(seconds)

    monkeypatch.setattr(job_module, "_timed", fake_timed)
    student = types.SimpleNamespace(eval=lambda: None, device="cpu")
    speed = job_module.measure_speed(plan, student, "student", 16, distill_args, progress=False)
    assert calls[0] == calls[3] == calls[6] == "student" and len(calls) == 9
    assert speed["rounds"] == 3 and speed["student_seconds"] == 2.0
    assert list(speed["per_teacher"].values()) == [4.0, 6.0]
    assert speed["teachers_seconds"] == 10.0 and speed["speedup"] == 5.0


def test_two_teachers_of_one_source_are_timed_and_reported_apart(tmp_path, teachers, monkeypatch):
    """`--teacher mt:sentiment --teacher mood=mt:topic`: two teachers run one after another, but their timings went
    into one list keyed by the source, and only their median counted."""
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(40))
    source = teachers["multitask"]
    entries = [f"{source}:sentiment", f"mood={source}:topic"]
    distill_args = DistillArguments(teacher=entries, texts=[texts], speed_texts=4, speed_rounds=1)
    plan = plan_distillation(ModelArguments(), DataArguments(), distill_args)
    assert list(plan.max_lengths) == entries  # one token budget per --teacher entry
    seconds = iter([1.0, 4.0, 6.0])  # student, then each teacher
    monkeypatch.setattr(job_module, "_timed", lambda *args: next(seconds))
    student = types.SimpleNamespace(eval=lambda: None, device="cpu")
    speed = job_module.measure_speed(plan, student, "student", 16, distill_args, progress=False)
    assert speed["num_teachers"] == 2 and speed["per_teacher"] == {entries[0]: 4.0, entries[1]: 6.0}
    assert speed["teachers_seconds"] == 10.0 and speed["speedup"] == 10.0


def test_bf16_training_reports_on_the_float32_student_it_saves(tmp_path, teachers, monkeypatch):
    """After `--bf16` training the reports (agreement, test scores, speed) run the student as saved, in float32,
    not under the autocast wrapper the Trainer put around its forward."""
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(24))
    distill_args = DistillArguments(teacher=[teachers["emotions"]], texts=[texts], speed_texts=4, speed_rounds=1)
    timed = {}
    measure = job_module.measure_speed

    def record(plan, model, *args):
        timed["model"] = model
        return measure(plan, model, *args)

    monkeypatch.setattr(job_module, "measure_speed", record)
    run(ModelArguments(), DataArguments(), distill_args, _training_args(tmp_path, max_steps=2, bf16=True))
    saved = MultitaskModel.from_pretrained(tmp_path / "run" / "model").eval()
    inputs = {"input_ids": torch.tensor([[2, 5, 6, 7, 3]]), "attention_mask": torch.ones(1, 5, dtype=torch.long)}
    with torch.inference_mode():
        reported, shipped = timed["model"](**inputs).logits, saved(**inputs).logits
    for task in shipped:
        torch.testing.assert_close(reported[task], shipped[task], rtol=0, atol=1e-6)


def test_student_config_follows_the_teachers(distilled):
    _, folder, _ = distilled
    config = json.loads((folder / "config.json").read_text())
    tasks = {task["name"]: task for task in config["tasks"]}
    assert tasks["sentiment"]["labels"] == ["negative", "positive"]
    assert tasks["emotion-distilbert"]["problem_type"] == MULTI_LABEL
    assert tasks["nli"].get("text_pair") is True
    assert tasks["topic"]["labels"] == ["movies", "tech", "sport", "money"]


# Loads the student in a process where this project cannot be imported: only its own remote code answers.
LOAD_WITHOUT_POLYHEAD = textwrap.dedent(
    """
    import json, sys
    class Blocker:
        def find_spec(self, name, path=None, target=None):
            top = name.split(".")[0]
            if top in {"polyhead", "polyhead_remote"} or top.startswith(("configuration_multi", "modeling_multi")):
                raise ImportError(f"blocked import of {name}")
    sys.meta_path.insert(0, Blocker())
    sys.path = [p for p in sys.path if p not in ("", ".")]
    from transformers import pipeline
    classifier = pipeline("multitask-classification", model=sys.argv[1], trust_remote_code=True)
    print(json.dumps({"model": type(classifier.model).__name__, "answer": classifier(sys.argv[2], top_k=None)}))
    """
)


@pytest.mark.slow
def test_student_loads_with_remote_code_and_publishes_with_its_distillation_card(distilled, tmp_path):
    results, folder, _ = distilled
    text = "i love this movie"
    done = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_POLYHEAD, str(folder), text],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])
    local = pipeline("multitask-classification", model=str(folder), trust_remote_code=True)(text, top_k=None)
    assert remote["model"] == "MultitaskModel" and set(remote["answer"]) == set(local)
    for task, answers in local.items():
        assert [a["label"] for a in remote["answer"][task]] == [a["label"] for a in answers]
        np.testing.assert_allclose([a["score"] for a in remote["answer"][task]], [a["score"] for a in answers])
    publish_model(folder, "org/student", dry_run_dir=tmp_path / "upload")
    readme = (tmp_path / "upload" / "README.md").read_text()
    assert "## Distillation" in readme and "top-1 agreement" in readme and "On the labelled test data" in readme
    assert "| 1.0000 | 8 | 1.0000 (8) |" in readme  # sentiment: agreement where its teacher is confident
    assert "Where the teacher is confident (margin ≥ 0.5)" in readme and "top-2 softmax probability" in readme
    assert "teacher(s) run one after another" in readme
    assert AutoModel.from_pretrained(tmp_path / "upload", trust_remote_code=True).config.task_names == list(local)


def test_card_without_labelled_test_data_shows_agreement_only():
    results = {
        "tasks": {},
        "split": None,
        "distillation": {
            "teachers": [{"source": "org/sst2", "tasks": {"sentiment": "sentiment"}}],
            "agreement": {"sentiment": {"metric": "accuracy", "value": 0.97, "n": 100}},
            "test": {},
        },
    }
    config = {"tasks": {"sentiment": {"labels": ["negative", "positive"]}}}
    card = render_model_card(config, results, repo_id="org/student")
    assert "| `sentiment` | `org/sst2` | top-1 agreement | 0.9700 | 100 | - |" in card  # no margin breakdown in it
    assert "On the labelled test data" not in card and "texts/s" not in card
    assert "top-2 softmax probability" not in card


def test_card_of_a_born_again_student_says_where_its_agreement_is_and_how_gold_labels_came_in():
    test = {"metric": "f1_macro", "n": 50, "teacher": {"f1_macro": 0.8}, "student": {"f1_macro": 0.82}}
    results = {
        "tasks": {"sentiment": {"f1_macro": 0.82}},
        "split": "test",
        "distillation": {
            "teachers": [{"source": "org/sst2", "tasks": {"sentiment": "sentiment"}}],
            "agreement": {},
            "test": {"sentiment": {**test, "agreement": 0.9}},
            "gold_weight": 1.0,
            "gold_weight_schedule": "linear",
        },
    }
    config = {"tasks": {"sentiment": {"labels": ["negative", "positive"]}}}
    card = render_model_card(config, results, repo_id="org/student")
    assert "No held-out unlabeled texts: the teachers labelled the tasks' own train texts" in card
    assert "| `sentiment` | `org/sst2` | 0.9000 | 50 |" in card  # the test rows' agreement, no empty held-out cells
    assert "Held-out texts" not in card
    assert "Gold labels mixed in on their rows, annealed: the gold weight grew from 0 to 1 over training." in card
    results["distillation"].update(agreement={"sentiment": {"metric": "accuracy", "value": 0.9, "n": 9}})
    results["distillation"].update(gold_weight=0.3, gold_weight_schedule="constant")
    card = render_model_card(config, results, repo_id="org/student")
    assert "No held-out" not in card and "Gold labels mixed in on their rows with weight 0.3." in card
    results["distillation"]["gold_weight"] = 0.0
    assert "Gold labels" not in render_model_card(config, results, repo_id="org/student")


def test_card_shows_agreement_where_the_teacher_is_confident():
    agreement = {
        "question": {"metric": "accuracy", "value": 0.865, "n": 1000, "confident": {"n": 167, "agreement": 1.0}},
        "unsure": {"metric": "accuracy", "value": 0.5, "n": 4, "confident": {"n": 0, "agreement": None}},
        "tags": {"metric": "f1_macro", "value": 0.9, "n": 1000},
    }
    results = {"tasks": {}, "split": None, **_summary(agreement)}
    config = {"tasks": {task: {"labels": ["a", "b"]} for task in agreement}}
    card = render_model_card(config, results, repo_id="org/student")
    assert "| Held-out texts | Where the teacher is confident (margin ≥ 0.5): value (texts) |" in card
    assert "| `question` | `org/question` | top-1 agreement | 0.8650 | 1000 | 1.0000 (167) |" in card
    assert "| `unsure` | `org/unsure` | top-1 agreement | 0.5000 | 4 | - (0) |" in card
    assert "| `tags` | `org/tags` | F1 vs the teacher's decisions | 0.9000 | 1000 | - |" in card
    assert "top-1 minus its top-2 softmax probability" in card


def test_student_grown_from_an_existing_model(tmp_path, teachers):
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(24))
    distill_args = DistillArguments(teacher=[f"mood={teachers['emotions']}"], texts=[texts], speed_texts=2)
    model_args = ModelArguments(init_from=teachers["multitask"])
    results = run(model_args, DataArguments(), distill_args, _training_args(tmp_path, max_steps=2))
    config = json.loads((Path(tmp_path / "run" / "model") / "config.json").read_text())
    assert [task["name"] for task in config["tasks"]] == ["sentiment", "topic", "emotions", "mood"]
    assert list(results["distillation"]["agreement"]) == ["mood"]


def test_train_tasks_train_only_their_teachers_and_score_the_others(tmp_path, teachers, monkeypatch):
    """With --train_tasks, the other teachers' answers do not train the student (their heads are frozen and, as in
    training, their tasks are only scored): no train rows, no loss; their agreement is still reported."""
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(24))
    distill_args = DistillArguments(
        teacher=[f"mood={teachers['emotions']}", f"{teachers['multitask']}:sentiment"], texts=[texts], speed_texts=2
    )
    trained = set()
    original = job_module.DistillationTrainer.compute_loss

    def compute_loss(self, model, inputs, *args, **kwargs):
        if model.training:
            trained.update(self.batch_tasks(inputs["task"]))
        return original(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(job_module.DistillationTrainer, "compute_loss", compute_loss)
    for joint in (True, False):
        model_args = ModelArguments(init_from=teachers["multitask"], train_tasks="mood")
        distill_args.joint_batches = joint
        results = run(model_args, DataArguments(), distill_args, _training_args(tmp_path, max_steps=3))
        summary = results["distillation"]
        assert summary["num_texts"]["train"] == {"mood": len(_texts(24)) - summary["num_texts"]["held_out"]}
        assert sorted(summary["agreement"]) == ["mood", "sentiment"]
        assert trained == {"mood"}
    both = ModelArguments(init_from=teachers["multitask"])
    summary = run(both, DataArguments(), distill_args, _training_args(tmp_path, max_steps=1))["distillation"]
    assert sorted(summary["num_texts"]["train"]) == ["mood", "sentiment"]
    assert trained == {"mood", "sentiment"}


def test_student_learns_the_teachers_soft_targets(tmp_path, teachers):
    """Agreement on held-out texts is higher after training than for the same untrained student."""
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(120, seed=7))
    distill_args = DistillArguments(teacher=[teachers["emotions"]], texts=[texts], speed_texts=4)
    before = run(
        ModelArguments(), DataArguments(), distill_args, _training_args(tmp_path, max_steps=1, learning_rate=1e-9)
    )
    after = run(ModelArguments(), DataArguments(), distill_args, _training_args(tmp_path, num_train_epochs=6))
    task = "emotion-distilbert"
    gained = after["distillation"]["agreement"][task]["metrics"]["label_accuracy"]
    assert gained > before["distillation"]["agreement"][task]["metrics"]["label_accuracy"]


# --- joint batches: one encoder pass per text trains every single-text head ---------------------------------------


@pytest.fixture(scope="module")
def joint_setup(tmp_path_factory, teachers):
    """Three single-text teachers (one with 6 gold train rows, gold_weight 0.5) and a pair teacher on 40 texts, and
    the datasets of both batch layouts."""
    tmp_path = tmp_path_factory.mktemp("joint")
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(40, seed=3, pairs=True))
    rows = {"text": ["good movie", "bad phone"] * 3, "label": ["positive"] * 6}
    test = {"text": ["good food", "bad service"] * 3, "label": ["positive"] * 6}  # apart from train: never trained on
    gold = datasets.DatasetDict(train=datasets.Dataset.from_dict(rows), test=datasets.Dataset.from_dict(test))
    distill_args = DistillArguments(
        teacher=[
            f"sentiment={teachers['sentiment']}",
            teachers["emotions"],
            f"{teachers['multitask']}:topic",
            f"nli={teachers['nli']}",
        ],
        texts=[texts],
        text_pair_column="text_pair",
        pair_tasks="nli",
        gold_weight=0.5,
    )
    data_args = DataArguments(tasks=[{"name": "sentiment", "dataset": gold, "validation_size": 0}])
    plan = plan_distillation(ModelArguments(), data_args, distill_args)
    outputs = job_module.label_with_teachers(plan, distill_args, str(tmp_path), progress=False)
    tokenizer = load_tokenizer(ModelArguments())
    layouts = {
        joint: job_module.build_datasets(plan, outputs, tokenizer, 32, 2.0, joint_batches=joint)
        for joint in (True, False)
    }
    return plan, tokenizer, layouts, outputs


JOINT = "sentiment+emotion-distilbert+topic"


def _joint_trainer(tmp_path, joint_setup, joint=True, loss_weights=None, gold=None, **kwargs):
    plan, tokenizer, layouts, _ = joint_setup
    train, held_out, _ = layouts[joint]
    torch.manual_seed(0)
    return DistillationTrainer(
        model=build_model(ModelArguments(), plan.heads),
        args=_training_args(tmp_path, **kwargs),
        train_datasets=train,
        eval_datasets=held_out,
        processing_class=tokenizer,
        loss_weights=loss_weights,
        distill_temperature=2.0,
        **(gold or {"gold_weight": 0.5}),
    )


def test_held_out_margins_are_the_teachers_on_the_held_out_rows(joint_setup):
    """`build_datasets` carries the teacher's top-2 softmax margin of each held-out row, in the held-out datasets'
    order, for the single-label tasks, whichever batch layout."""
    plan, _, layouts, outputs = joint_setup
    for joint in (True, False):
        _, held_out, margins = layouts[joint]
        assert set(margins) == {"sentiment", "topic", "nli"}  # not the multi-label emotion-distilbert
        for task, task_margins in margins.items():
            labelled, logits = outputs[task]
            where = {int(row): i for i, row in enumerate(labelled)}
            rows = [where[int(row)] for row in plan.held_out_rows if int(row) in where]
            expected = [_hand_margin(row) for row in logits[rows].tolist()]
            assert len(task_margins) == len(held_out[task]) == len(rows) > 0
            np.testing.assert_allclose(task_margins, expected, rtol=1e-6)
            teacher_answers = logits[rows].argmax(axis=-1).tolist()
            assert held_out[task]["labels"] == teacher_answers  # same rows, same order


def test_joint_batches_pass_each_text_once_per_epoch(tmp_path, joint_setup):
    plan, _, layouts, _ = joint_setup
    joint, _, _ = layouts[True]
    per_task, _, _ = layouts[False]
    n = len(plan.train_rows)  # 36 unlabeled + 6 gold train texts; the pair task reads the 36 with a pair
    assert list(joint) == [JOINT, "nli"] and len(joint[JOINT]) == n == 42 and len(joint["nli"]) == 36
    assert list(per_task) == ["sentiment", "emotion-distilbert", "topic", "nli"]
    assert job_module.rows_per_task(joint) == job_module.rows_per_task(per_task)
    # Steps per epoch, batch 8: the joint texts once (ceil(42/8) = 6) plus the pair task's 5, not 6 per task.
    assert len(_joint_trainer(tmp_path, joint_setup).get_train_dataloader()) == 6 + 5
    assert len(_joint_trainer(tmp_path, joint_setup, joint=False).get_train_dataloader()) == 3 * 6 + 5
    # A joint row is every task's packed row, in order; a gold text carries its gold label in its own task's part.
    row = joint[JOINT][n - 1]["labels"]
    assert (
        row
        == per_task["sentiment"][n - 1]["labels"]
        + per_task["emotion-distilbert"][n - 1]["labels"]
        + (per_task["topic"][n - 1]["labels"])
    )
    assert row[2] == 1.0  # sentiment's part: 2 soft targets, then the gold class "positive"


def test_joint_loss_is_the_sum_of_the_task_distillation_losses(tmp_path, joint_setup):
    trainer = _joint_trainer(tmp_path, joint_setup, loss_weights={"topic": 3.0})
    model = trainer.model.eval()
    batches = [batch for batch in trainer.get_train_dataloader() if batch["task"] == JOINT]
    assert batches and any((batch["labels"][:, 2] != -100).any() for batch in batches)  # gold rows among them
    widths = {"sentiment": 3, "emotion-distilbert": 6, "topic": 5}  # K + 1 single-label, 2K multi-label
    for batch in batches:
        inputs = {key: value for key, value in batch.items() if key not in ("task", "labels")}
        expected, start = 0.0, 0
        for task, width in widths.items():
            logits = model(**inputs, task=task).logits[task]  # one forward per task, by hand
            part = batch["labels"][:, start : start + width]
            problem = model.config.tasks[task]["problem_type"]
            loss = distillation_loss(problem, logits, part, temperature=2.0, gold_weight=0.5)
            expected += loss.item() * (3.0 if task == "topic" else 1.0)
            start += width
        assert trainer.compute_loss(model, batch).item() == pytest.approx(expected, rel=1e-5)


def test_teacher_annealing_moves_the_loss_from_the_teachers_to_the_gold_labels(tmp_path, joint_setup):
    """`gold_weight_schedule="linear"`: at a share p of the steps, rows with a gold label weigh the gold loss by
    p * gold_weight (Clark et al. 2019's teacher annealing), rows without one keep the soft loss alone."""
    gold = {"gold_weight": 0.8, "gold_weight_schedule": "linear"}
    trainer = _joint_trainer(tmp_path, joint_setup, gold=gold)
    model = trainer.model.eval()
    batch = next(b for b in trainer.get_train_dataloader() if b["task"] == JOINT and (b["labels"][:, 2] != -100).any())
    inputs = {key: value for key, value in batch.items() if key not in ("task", "labels")}
    trainer.state.max_steps = 10
    for step, weight in ((0, 0.0), (5, 0.4), (10, 0.8)):
        trainer.state.global_step = step
        assert trainer.current_gold_weight() == pytest.approx(weight)
        expected, start = 0.0, 0
        for task, width in {"sentiment": 3, "emotion-distilbert": 6, "topic": 5}.items():
            part = batch["labels"][:, start : start + width]
            problem = model.config.tasks[task]["problem_type"]
            logits = model(**inputs, task=task).logits[task]
            expected += distillation_loss(problem, logits, part, temperature=2.0, gold_weight=weight).item()
            start += width
        assert trainer.compute_loss(model, batch).item() == pytest.approx(expected, rel=1e-5)
    # the gold loss differs from the soft one on this batch, so the weight changes the loss
    trainer.state.global_step = 0
    at_start = trainer.compute_loss(model, batch).item()
    trainer.state.global_step = 10
    assert trainer.compute_loss(model, batch).item() != pytest.approx(at_start, rel=1e-4)


def test_gold_weight_schedules_by_hand(tmp_path):
    assert [gold_weight_at("linear", 0.5, p) for p in (0.0, 0.5, 1.0, 1.5)] == [0.0, 0.25, 0.5, 0.5]
    assert gold_weight_at("constant", 0.5, 0.0) == gold_weight_at("constant", 0.5, 1.0) == 0.5
    with pytest.raises(
        ValueError, match=r"Unknown gold_weight_schedule 'cosine': use one of \['constant', 'linear'\]"
    ):
        DistillArguments(gold_weight_schedule="cosine")
    argv = ["--teacher", "a", "--output_dir", str(tmp_path), "--gold_weight_schedule", "linear"]
    assert parse_distill_args(argv)[2].gold_weight_schedule == "linear"


def test_without_texts_the_teachers_label_the_gold_train_texts(tmp_path, teachers, monkeypatch):
    """Born-again distillation: no --texts, labelled --tasks with gold_weight > 0. Every teacher labels the gold train
    texts (the emotion teacher, with no gold data, trains on the sentiment task's texts), agreement is measured on the
    test rows, and the speed on them too."""
    rng = random.Random(7)
    splits = {
        split: datasets.Dataset.from_dict(
            {
                "text": [" ".join(rng.sample(WORDS, 5)) for _ in range(n)],
                "label": [rng.choice(["negative", "positive"]) for _ in range(n)],
            }
        )
        for split, n in (("train", 12), ("test", 10))
    }
    data_args = DataArguments(
        tasks=[{"name": "sentiment", "dataset": datasets.DatasetDict(splits), "validation_size": 0}]
    )
    teachers_list = [f"sentiment={teachers['sentiment']}", teachers["emotions"]]
    with pytest.raises(ValueError, match="No texts to distill on: pass unlabeled texts with --texts, or labelled"):
        run(ModelArguments(), data_args, DistillArguments(teacher=teachers_list), _training_args(tmp_path))
    loads = []
    monkeypatch.setattr(cache_module, "load_teacher", lambda *args, **kwargs: loads.append(args) or 1 / 0)
    with pytest.raises(ValueError, match="no held-out texts to evaluate on during training: set --eval_strategy no"):
        evaluating = _training_args(tmp_path, eval_strategy="epoch")
        run(ModelArguments(), data_args, DistillArguments(teacher=teachers_list, gold_weight=1.0), evaluating)
    assert loads == []  # refused before any teacher ran
    monkeypatch.undo()
    distill_args = DistillArguments(
        teacher=teachers_list, gold_weight=1.0, gold_weight_schedule="linear", speed_texts=8, teacher_batch_size=4
    )
    results = run(ModelArguments(), data_args, distill_args, _training_args(tmp_path / "born-again"))
    summary = results["distillation"]
    assert summary["num_texts"] == {
        "unlabeled": 0,
        "held_out": 0,
        "train": {"sentiment": 12, "emotion-distilbert": 12},
    }
    assert summary["agreement"] == {} and summary["gold_weight_schedule"] == "linear"
    assert summary["test"]["sentiment"]["n"] == 10 and results["num_examples"]["sentiment"] == 10
    assert summary["speed"]["texts"] == 8  # the test rows: the student never trained on them
    table = format_distillation_table(results)
    assert "Speed on 8" in table and "annealed: the gold weight grew from 0 to 1 over training" in table


def test_joint_and_pair_batches_log_task_losses_and_resume_on_the_same_weights(tmp_path, joint_setup):
    # 11 batches an epoch (6 joint, 5 pair), 2 epochs; resume from step 14 (epoch 2, 3 batches in).
    args = {"num_train_epochs": 2, "logging_steps": 1, "save_strategy": "steps", "save_steps": 14}
    trainer = _joint_trainer(tmp_path, joint_setup, **args)
    metrics = trainer.train().metrics
    assert trainer.state.global_step == 22
    assert {f"train_loss_{task}" for task in (*JOINT.split("+"), "nli")} <= set(metrics)
    steps = [entry for entry in trainer.state.log_history if "loss" in entry]
    joint_steps = [entry for entry in steps if "loss_topic" in entry]
    assert len(joint_steps) == 12 and len(steps) - len(joint_steps) == 10  # the others: nli alone
    for entry in joint_steps:  # a joint step's loss is the sum of its tasks' losses (each rounded to 4 digits)
        total = sum(entry[f"loss_{task}"] for task in JOINT.split("+"))
        assert "loss_nli" not in entry and entry["loss"] == pytest.approx(total, abs=1e-3)
    final_weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    resumed = _joint_trainer(tmp_path, joint_setup, dataloader_num_workers=1, **args)
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-14"))
    assert resumed.state.global_step == 22
    for key, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, final_weights[key])


def test_joint_batches_flag_defaults_on_and_refuses_pcgrad(tmp_path, teachers, no_teacher_runs):
    argv = ["--teacher", "x", "--texts", "t.jsonl", "--output_dir", str(tmp_path)]
    assert parse_distill_args(argv)[2].joint_batches is True
    assert parse_distill_args([*argv, "--joint_batches", "false"])[2].joint_batches is False
    texts = [_jsonl(tmp_path / "texts.jsonl", _texts(20))]
    distill_args = DistillArguments(teacher=[teachers["sentiment"]], texts=texts)
    with pytest.raises(ValueError, match="use --joint_batches false with --pcgrad"):
        run(ModelArguments(), DataArguments(), distill_args, _training_args(tmp_path, pcgrad=True))


def test_student_learns_several_teachers_from_joint_batches(tmp_path, teachers):
    """Two teachers on one set of batches (6 epochs of ceil(108 / 8) = 14 steps): agreement rises as with one."""
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(120, seed=7))
    distill_args = DistillArguments(
        teacher=[teachers["emotions"], f"{teachers['multitask']}:topic"], texts=[texts], speed_texts=4
    )
    before = run(
        ModelArguments(), DataArguments(), distill_args, _training_args(tmp_path, max_steps=1, learning_rate=1e-9)
    )
    after = run(ModelArguments(), DataArguments(), distill_args, _training_args(tmp_path, num_train_epochs=6))
    info = json.loads((tmp_path / "run" / "model" / "training_args.json").read_text())
    assert info["distillation"]["joint_batches"] is True and info["log_history"][-1]["step"] == 6 * 14
    task = "emotion-distilbert"
    gained = after["distillation"]["agreement"][task]["metrics"]["label_accuracy"]
    assert gained > before["distillation"]["agreement"][task]["metrics"]["label_accuracy"]


@pytest.mark.slow
def test_script_end_to_end_and_one_line_errors(tmp_path, teachers, capsys):
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(30))
    common = ["--num_train_epochs", "1", "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true"]
    main = script_main("distill")
    main(
        ["--texts", texts, "--speed_texts", "4", "--teacher", f"s={teachers['sentiment']}"]
        + ["--output_dir", str(tmp_path / "out"), *common]
    )
    out = capsys.readouterr().out
    assert "Distillation (" in out and "texts/s" in out
    assert (tmp_path / "out" / "model" / "results.json").is_file()
    assert list((tmp_path / "out" / "teacher_outputs").glob("*.safetensors"))
    with pytest.raises(SystemExit) as failed:  # sys.exit(message): status 1, one line, no traceback
        main(
            ["--texts", texts, "--teacher", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path / "bad"), *common]
        )
    assert str(failed.value.code).startswith("error: Teacher")


def test_the_script_subsamples_texts_with_data_seed_zero(tmp_path, teachers, monkeypatch):
    """`--data_seed 0 --seed 3`: the texts drawn by --max_texts are those of seed 0 (0 is a seed, not "unset")."""
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(30))
    main, plans = script_main("distill"), []
    monkeypatch.setitem(main.__globals__, "run", lambda *args, plan: plans.append(plan) or {})  # the plan only
    monkeypatch.setitem(main.__globals__, "format_distillation_table", lambda results: "")
    argv = ["--texts", texts, "--max_texts", "10", "--teacher", teachers["sentiment"], "--output_dir", str(tmp_path)]
    for seeds in (["--seed", "3", "--data_seed", "0"], ["--seed", "0"], ["--seed", "3"]):
        main([*argv, *seeds])
    drawn = [plan.corpus.texts for plan in plans]
    assert drawn[0] == drawn[1] != drawn[2]


def test_the_distill_package_is_installed():
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert "polyhead.distill" in packages  # setuptools lists packages explicitly: a new one must be named


def test_texts_without_a_pair_are_counted_for_the_pair_tasks(tmp_path, teachers, caplog):
    """They still teach the single-text tasks; the pair task learns from the others only, and the log says how many."""
    rows = _texts(12, seed=3, pairs=True) + _texts(4, seed=4)
    texts = _jsonl(tmp_path / "mixed.jsonl", rows)
    distill_args = DistillArguments(
        teacher=[f"nli={teachers['nli']}", teachers["sentiment"]],
        texts=[texts],
        text_pair_column="text_pair",
        pair_tasks="nli",
    )
    with caplog.at_level("WARNING", logger="polyhead.distill.job"):
        plan_distillation(ModelArguments(), DataArguments(), distill_args)
    assert (
        "4 of 16 texts have no 'text_pair': the pair task(s) ['nli'] are taught on the other 12 only." in caplog.text
    )


def test_evaluating_a_distilled_model_on_its_gold_train_file_scores_the_rows_held_out(tmp_path, teachers, monkeypatch):
    """The run records its gold data's absolute paths and checksums as training does: evaluating with the train file,
    from another working directory, scores the rows the run held out, not the rows the student trained on."""
    rng = random.Random(3)
    rows = [{"text": " ".join(rng.sample(WORDS, 5)), "label": rng.choice(["negative", "positive"])} for _ in range(40)]
    (tmp_path / "data").mkdir()
    gold = _jsonl(tmp_path / "data" / "gold.jsonl", rows)
    monkeypatch.chdir(tmp_path)
    data_args = DataArguments(tasks=["sentiment=data/gold.jsonl"])
    distill_args = DistillArguments(teacher=[f"sentiment={teachers['sentiment']}"], gold_weight=0.5, speed_texts=2)
    results = run(ModelArguments(), data_args, distill_args, _training_args(tmp_path, max_steps=1))
    model_dir = tmp_path / "run" / "model"
    recorded = json.loads((model_dir / "training_args.json").read_text())["data"]["tasks"][0]
    assert recorded["resolved_data_files"] == {"train": [str(Path(gold).resolve())]}
    monkeypatch.chdir(tmp_path / "data")
    scored = evaluate_saved_model(model_dir, ["sentiment=gold.jsonl"], output_dir=tmp_path / "eval")
    held_out = results["num_examples"]["sentiment"]
    assert 0 < held_out < len(rows) and scored["num_examples"] == {"sentiment": held_out}
