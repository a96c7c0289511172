"""The distillation job's checks: a checkpoint of another student is refused before any teacher runs, test and
held-out texts never train the student (a single-text task compares the text alone), the --init_from model's tasks
without a teacher are warned about and measured (with a frozen encoder too, where they share a taught head), a head
a teacher continues decides at the teacher's thresholds, a tokenizer of another vocabulary than the --init_from
model's is refused, and a tiny random student of larger teachers is warned about."""

import json
from pathlib import Path

import datasets
import pytest
import torch
from helpers import script_main
from test_distill import (  # noqa: F401  (fixtures)
    _bert_teacher,
    _jsonl,
    _texts,
    _training_args,
    no_teacher_runs,
    teachers,
)
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

import polyhead.distill.cache as cache_module
import polyhead.distill.job as job_module
from polyhead.distill import DistillArguments, plan_distillation, run
from polyhead.distill.report import format_distillation_table
from polyhead.publishing.model_card import render_model_card
from polyhead.remote_code import MULTI_LABEL
from polyhead.saving import save_model_folder
from polyhead.testing_utils import SPECIAL_TOKENS, TINY_TASKS, WORDS, tiny_multitask_config, tiny_tokenizer
from polyhead.training.arguments import DataArguments, ModelArguments
from polyhead.training.trainer import load_tokenizer
from polyhead_remote.modeling_multitask import MultitaskModel


LOGGER = "polyhead.distill.job"
COMMON = ["--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true", "--speed_texts", "2"]


def _refuse_teachers(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a teacher ran before the inputs were checked")

    monkeypatch.setattr(cache_module, "load_teacher", refuse)


def test_resuming_a_checkpoint_of_other_teachers_is_refused_before_teachers_run(tmp_path, teachers, monkeypatch):  # noqa: F811 (the fixture's value)
    """Run 1 teaches `s`; run 2 teaches `e` in the same --output_dir: resuming run 1's checkpoint would load no `e`
    head and report a random one, so it is refused in one line; starting afresh there is warned about."""
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(24))
    out = str(tmp_path / "o11")
    first = DistillArguments(teacher=[f"s={teachers['sentiment']}"], texts=[texts], speed_texts=2)
    run(
        ModelArguments(),
        DataArguments(),
        first,
        _training_args(tmp_path, output_dir=out, max_steps=2, save_strategy="steps", save_steps=2),
    )
    saved = (tmp_path / "o11" / "model" / "model.safetensors").read_bytes()
    _refuse_teachers(monkeypatch)
    main = script_main("distill")
    argv = ["--teacher", f"e={teachers['emotions']}", "--texts", texts, "--output_dir", out, *COMMON]
    with pytest.raises(SystemExit) as failed:
        main([*argv, "--resume_from_checkpoint", "true"])
    message = str(failed.value.code)
    assert message.startswith("error: Cannot resume from") and "checkpoint-2" in message and "\n" not in message
    second = DistillArguments(teacher=[f"e={teachers['emotions']}"], texts=[texts], speed_texts=2)
    with pytest.raises(ValueError, match="it was trained as another model"):  # the API too, before any teacher
        run(
            ModelArguments(),
            DataArguments(),
            second,
            _training_args(tmp_path, output_dir=out, resume_from_checkpoint="true"),
        )
    assert (tmp_path / "o11" / "model" / "model.safetensors").read_bytes() == saved  # run 1's model is untouched


def test_starting_afresh_beside_an_earlier_runs_checkpoints_is_warned_about(tmp_path, teachers, caplog):  # noqa: F811 (the fixture's value)
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(24))
    (tmp_path / "run" / "checkpoint-2").mkdir(parents=True)
    distill_args = DistillArguments(teacher=[f"s={teachers['sentiment']}"], texts=[texts], speed_texts=2)
    with caplog.at_level("WARNING", logger=LOGGER):
        run(ModelArguments(), DataArguments(), distill_args, _training_args(tmp_path, max_steps=1))
    assert "holds checkpoints of an earlier run (checkpoint-2): this run starts afresh" in caplog.text


def _gold(train_texts, test_texts):
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict({"text": rows, "label": ["positive"] * len(rows)})
            for split, rows in (("train", train_texts), ("test", test_texts))
        }
    )


def test_training_texts_that_repeat_a_test_row_do_not_train(tmp_path, teachers, no_teacher_runs, caplog):  # noqa: F811
    """--texts holding the gold test texts, and a born-again run whose gold train split repeats test texts: the test
    scores and their agreement are measured on texts the student never trained on."""
    rows = _texts(30, seed=11)
    texts = _jsonl(tmp_path / "texts.jsonl", rows)
    words = [row["text"] for row in rows]
    data_args = DataArguments(
        tasks=[{"name": "sentiment", "dataset": _gold(words[:14], words[14:30]), "validation_size": 0}]
    )
    distill_args = DistillArguments(teacher=[f"sentiment={teachers['sentiment']}"], texts=[texts], gold_weight=0.5)
    with caplog.at_level("WARNING", logger=LOGGER):
        plan = plan_distillation(ModelArguments(), data_args, distill_args)
    trained = {plan.corpus.texts[i] for i in plan.train_rows}
    tested = set(words[14:30])
    assert trained and not trained & tested
    assert "repeat a test row of --tasks ['sentiment']: kept out of training" in caplog.text
    caplog.clear()
    born_again = DistillArguments(teacher=[f"sentiment={teachers['sentiment']}"], gold_weight=1.0)
    data_args = DataArguments(
        tasks=[{"name": "sentiment", "dataset": _gold(words[:20], words[16:26]), "validation_size": 0}]
    )
    with caplog.at_level("WARNING", logger=LOGGER):
        plan = plan_distillation(ModelArguments(), data_args, born_again)
    assert sorted(plan.corpus.texts[i] for i in plan.train_rows) == sorted(words[:16])  # 4 of 20 are test texts
    assert "4 of the 20 training rows repeat a test row of --tasks ['sentiment']: kept out of training" in caplog.text
    every = DataArguments(tasks=[{"name": "sentiment", "dataset": _gold(words[:5], words[:5]), "validation_size": 0}])
    with pytest.raises(ValueError, match="Every training text is also a test row"):
        plan_distillation(ModelArguments(), every, born_again)


def test_single_text_tasks_never_train_on_a_held_out_text_with_another_pair(tmp_path, teachers, caplog):  # noqa: F811 (the fixture's value)
    """A single-text head reads the text alone: a --texts row whose text is held out with another pair text would
    teach it the held-out input; the pair task still trains on that row (its input differs)."""
    rows = _texts(30, seed=7, pairs=True)
    texts = _jsonl(tmp_path / "texts.jsonl", rows)
    held = [rows[3], {"text": rows[12]["text"], "text_pair": "other"}, *_texts(6, seed=8, pairs=True)]
    distill_args = DistillArguments(
        teacher=[f"nli={teachers['nli']}", f"sentiment={teachers['sentiment']}"],
        texts=[texts],
        held_out_texts=[_jsonl(tmp_path / "held.jsonl", held)],
        text_pair_column="text_pair",
        pair_tasks="nli",
    )
    with caplog.at_level("WARNING", logger=LOGGER):
        plan = plan_distillation(ModelArguments(), DataArguments(), distill_args)
    assert "kept out of the single-text tasks' training (they read the text alone)" in caplog.text
    outputs = job_module.label_with_teachers(plan, distill_args, str(tmp_path), progress=False)
    tokenizer = load_tokenizer(ModelArguments())
    held_texts = {row["text"] for row in held}
    for joint in (True, False):
        train, _, _ = job_module.build_datasets(plan, outputs, tokenizer, 32, 2.0, joint_batches=joint)
        single = train["sentiment"]
        read = {tokenizer.decode(ids, skip_special_tokens=True) for ids in single["input_ids"]}
        assert len(single) == 30 - 2 and not read & held_texts  # rows 3 and 12 do not teach it
        assert len(train["nli"]) == 30 - 1  # row 12 with its own pair still teaches the pair task


def test_init_from_tasks_without_a_teacher_are_warned_about_and_measured(tmp_path, teachers, caplog):  # noqa: F811 (the fixture's value)
    """The starting model's heads no teacher covers: their answers may drift with the encoder. A warning names them
    and the remedies, and results.json scores them against their own answers before training on held-out texts."""
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(40))
    start = teachers["multitask"]
    distill_args = DistillArguments(teacher=[f"mood={teachers['emotions']}"], texts=[texts], speed_texts=2)
    args = _training_args(tmp_path, max_steps=4, learning_rate=5e-3)
    with caplog.at_level("WARNING", logger=LOGGER):
        results = run(ModelArguments(init_from=start), DataArguments(), distill_args, args)
    untaught = ["sentiment", "topic", "emotions"]
    assert f"its task(s) {untaught} have no teacher" in caplog.text
    assert f"--teacher {start}:sentiment,topic,emotions" in caplog.text and "--freeze_encoder true" in caplog.text
    forgetting = results["distillation"]["forgetting"]
    assert forgetting["init_from"] == start and list(forgetting["tasks"]) == untaught
    assert all(row["n"] == 4 and 0.0 <= row["agreement"] <= 1.0 for row in forgetting["tasks"].values())
    sentence = f"Tasks of {start} without a teacher, agreement with its answers on 4 held-out texts: sentiment "
    assert sentence in format_distillation_table(results)
    card = render_model_card(
        json.loads((Path(args.output_dir) / "model" / "config.json").read_text()), results, repo_id="org/student"
    )
    assert sentence.replace("sentiment", "`sentiment`") in card
    caplog.clear()
    frozen = ModelArguments(init_from=start, freeze_encoder=True)  # the untaught heads then answer as before
    with caplog.at_level("WARNING", logger=LOGGER):
        results = run(frozen, DataArguments(), distill_args, args)
    assert "have no teacher" not in caplog.text
    assert all(row["agreement"] == 1.0 for row in results["distillation"]["forgetting"]["tasks"].values())


def test_init_from_tasks_sharing_a_taught_head_are_warned_about_with_a_frozen_encoder(tmp_path, teachers, caplog):  # noqa: F811 (the fixture's value)
    """--freeze_encoder keeps untaught heads as they were, but not a head an untaught task shares with a taught one:
    that head trains, so the untaught task's answers move; the warning names it."""
    tasks = {"sentiment": TINY_TASKS["sentiment"], "polarity": TINY_TASKS["sentiment"], "topic": TINY_TASKS["topic"]}
    config = tiny_multitask_config(tasks=tasks, shared_heads={"sentiment": ["sentiment", "polarity"]})
    start = str(tmp_path / "shared-start")
    save_model_folder(MultitaskModel(config).eval(), tiny_tokenizer(), start)
    texts = [_jsonl(tmp_path / "texts.jsonl", _texts(20))]
    distill_args = DistillArguments(teacher=[f"sentiment={teachers['sentiment']}"], texts=texts)
    with caplog.at_level("WARNING", logger=LOGGER):
        plan_distillation(ModelArguments(init_from=start, freeze_encoder=True), DataArguments(), distill_args)
    assert "its task(s) ['polarity'] have no teacher, but share their head with a taught task" in caplog.text
    assert f"--teacher {start}:polarity." in caplog.text and "topic" not in caplog.text  # topic's head stays
    caplog.clear()
    with caplog.at_level("WARNING", logger=LOGGER):
        plan_distillation(ModelArguments(init_from=start), DataArguments(), distill_args)
    assert "its task(s) ['polarity', 'topic'] have no teacher, but the encoder under their heads" in caplog.text


def test_a_tiny_random_student_of_larger_teachers_is_warned_about(tmp_path, teachers, no_teacher_runs, caplog):  # noqa: F811
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(SPECIAL_TOKENS) + len(WORDS),
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=80,
        num_labels=2,
    )
    larger = str(tmp_path / "wider-bert")
    BertForSequenceClassification(config).save_pretrained(larger)
    tiny_tokenizer().save_pretrained(larger)
    texts = [_jsonl(tmp_path / "texts.jsonl", _texts(20))]
    with caplog.at_level("WARNING", logger=LOGGER):
        plan_distillation(
            ModelArguments(), DataArguments(), DistillArguments(teacher=[teachers["sentiment"]], texts=texts)
        )
    assert "tiny random encoder" not in caplog.text  # a teacher as tiny as the student: a test setup
    with caplog.at_level("WARNING", logger=LOGGER):
        plan_distillation(ModelArguments(), DataArguments(), DistillArguments(teacher=[larger], texts=texts))
    assert "The student is 'tiny-random-bert', a tiny random encoder for tests (32 wide), the default " in caplog.text
    assert f"teacher(s) ['{larger}'] are larger" in caplog.text and "--encoder_name_or_path" in caplog.text


def test_task_names_whose_metrics_collide_are_refused_before_any_teacher_runs(tmp_path, teachers, no_teacher_runs):  # noqa: F811 (the fixture's value)
    """Evaluation during training would log a multi-label `mood`'s `label_accuracy` and a single-label
    `mood_label`'s `accuracy` as one metric: refused before the teachers label anything, not after."""
    texts = [_jsonl(tmp_path / "texts.jsonl", _texts(20))]
    distill_args = DistillArguments(
        teacher=[f"mood={teachers['emotions']}", f"mood_label={teachers['sentiment']}"], texts=texts
    )
    evaluating = _training_args(tmp_path, eval_strategy="epoch")
    with pytest.raises(ValueError, match="Tasks 'mood' and 'mood_label' would both report the metric eval_mood_label"):
        run(ModelArguments(), DataArguments(), distill_args, evaluating)


def _emotions_config(tmp_path, name, **emotions):
    """A saved tiny polyhead model whose multi-label task `emotions` has the decision options `emotions`."""
    tasks = {**TINY_TASKS, "emotions": {**TINY_TASKS["emotions"], **emotions}}
    torch.manual_seed(0)
    return str(
        save_model_folder(MultitaskModel(tiny_multitask_config(tasks=tasks)).eval(), tiny_tokenizer(), tmp_path / name)
    )


def test_an_init_from_head_a_teacher_continues_decides_at_the_teachers_thresholds(tmp_path, teachers, caplog):  # noqa: F811 (the fixture's value)
    """The --init_from model decides `emotions` at 0.4; its teacher (a standard multi-label checkpoint) at 0.5. The
    student kept 0.4, so even a perfect copy of the teacher's probabilities answered otherwise: it now takes the
    teacher's threshold (a polyhead teacher's per-label ones). A head --train_tasks leaves frozen keeps its own."""
    start = teachers["multitask"]  # emotions: threshold 0.4
    standard = _bert_teacher(tmp_path / "emo", TINY_TASKS["emotions"]["labels"], problem_type=MULTI_LABEL)
    tuned = _emotions_config(tmp_path, "tuned", thresholds=[0.3, 0.6, 0.7, 0.2])
    texts = [_jsonl(tmp_path / "texts.jsonl", _texts(20))]

    def emotions_after(teacher, **model_kwargs):
        distill_args = DistillArguments(teacher=teacher, texts=texts, speed_texts=2)
        out = str(tmp_path / f"out{len(list(tmp_path.glob('out*')))}")
        args = _training_args(tmp_path, output_dir=out, max_steps=1)
        run(ModelArguments(init_from=start, **model_kwargs), DataArguments(), distill_args, args)
        config = json.loads((Path(out) / "model" / "config.json").read_text())
        return next(
            {k: v for k, v in task.items() if "threshold" in k}
            for task in config["tasks"]
            if task["name"] == "emotions"
        )

    with caplog.at_level("WARNING", logger="polyhead.training.trainer"):
        assert emotions_after([f"emotions={standard}"]) == {"threshold": 0.5}
    assert "Task 'emotions' of --init_from" in caplog.text and "0.4 become 0.5, its teacher's" in caplog.text
    assert emotions_after([f"{tuned}:emotions"]) == {"threshold": 0.4, "thresholds": [0.3, 0.6, 0.7, 0.2]}
    # Not trained (--train_tasks names another teacher's task): its frozen head keeps its answers, threshold included.
    kept = emotions_after([f"emotions={standard}", f"mood={teachers['sentiment']}"], train_tasks="mood")
    assert kept == {"threshold": 0.4}


def test_a_tokenizer_of_another_vocabulary_than_the_init_from_models_is_refused(tmp_path, teachers, no_teacher_runs):  # noqa: F811 (the fixture's value)
    """Same size, other ids: the student's embeddings would read other tokens, and its untaught tasks answer
    otherwise. Refused in one line before any teacher runs; the model's own vocabulary is accepted."""
    other = tmp_path / "reversed"
    BertTokenizer(vocab={token: i for i, token in enumerate(SPECIAL_TOKENS + list(reversed(WORDS)))}).save_pretrained(
        other
    )
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(20))
    start = teachers["multitask"]
    argv = ["--init_from", start, "--teacher", f"mood={teachers['sentiment']}", "--texts", texts, *COMMON]
    with pytest.raises(SystemExit) as failed:
        script_main("distill")([*argv, "--tokenizer_name_or_path", str(other), "--output_dir", str(tmp_path / "o")])
    message = str(failed.value.code)
    assert message.startswith(f"error: --tokenizer_name_or_path '{other}' has another vocabulary than the tokenizer ")
    assert f"of --init_from '{start}'" in message and "Leave --tokenizer_name_or_path out" in message
    assert "\n" not in message
    same = DistillArguments(teacher=[f"mood={teachers['sentiment']}"], texts=[texts])
    plan_distillation(ModelArguments(init_from=start, tokenizer_name_or_path=start), DataArguments(), same)
