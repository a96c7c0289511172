"""Teachers and texts checked before any teacher runs: a teacher's tokenizer (missing, or larger than its vocabulary,
or without a pad token), its label map, the length it runs at, the cache key following the tokenizer, teacher paths
holding '=' or ':', the flags an error names, options that would be ignored or misread (the task-sampling
--temperature, --pair_tasks on a polyhead teacher's single-text task) and text columns that are not strings."""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from helpers import script_main
from test_distill import (  # noqa: F401  (fixtures)
    SIZES,
    _bad,
    _bert_teacher,
    _jsonl,
    _texts,
    no_teacher_runs,
    teachers,
)
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    BertTokenizer,
    GPT2Config,
    GPT2ForSequenceClassification,
    PreTrainedTokenizerFast,
)

import polyhead.distill.cache as cache_module
from polyhead.distill import DistillArguments, parse_distill_args, parse_teacher, plan_distillation, resolve_teachers
from polyhead.distill.cache import teacher_logits
from polyhead.distill.corpus import load_corpus
from polyhead.distill.teachers import load_teacher
from polyhead.saving import save_model_folder
from polyhead.testing_utils import SPECIAL_TOKENS, WORDS, tiny_multitask_config, tiny_tokenizer
from polyhead.training.arguments import DataArguments, ModelArguments
from polyhead_remote.modeling_multitask import MultitaskModel


def _copy(source, folder):
    shutil.copytree(source, folder)
    return str(folder)


def _without_tokenizer(source, folder):
    """A copy of a teacher folder with its tokenizer files removed (the model and config kept)."""
    _copy(source, folder)
    for path in folder.iterdir():
        if path.name.startswith(("tokenizer", "vocab", "special_tokens", "added_tokens")):
            path.unlink()
    return str(folder)


def _save_tokenizer(folder, vocab):
    """Replaces a teacher folder's tokenizer with a BERT tokenizer of `vocab` (tokens in id order)."""
    for path in folder.iterdir():
        if path.name.startswith(("tokenizer", "vocab", "special_tokens")):
            path.unlink()
    BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}).save_pretrained(folder)


# --- the teacher's tokenizer ------------------------------------------------------------------------------------


def test_a_teacher_without_tokenizer_files_is_refused_before_it_runs(tmp_path, teachers, no_teacher_runs):  # noqa: F811
    plain = _without_tokenizer(teachers["sentiment"], tmp_path / "sst2-no-tokenizer")
    polyhead = _without_tokenizer(teachers["multitask"], tmp_path / "polyhead-no-tokenizer")
    for source, spec in ((plain, plain), (polyhead, f"{polyhead}:topic"), (polyhead, f"mood={polyhead}:topic")):
        with pytest.raises(ValueError, match=rf"^Teacher '{re.escape(source)}' holds no tokenizer files \(tokenizer"):
            _bad(tmp_path, [spec])
    # A tokenizer config alone builds a tokenizer of special tokens only: every word would be unknown.
    config_only = _without_tokenizer(teachers["sentiment"], tmp_path / "config-only")
    (tmp_path / "config-only" / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 64}))
    with pytest.raises(ValueError, match=rf"^Teacher '{re.escape(config_only)}': The tokenizer has no vocabulary"):
        _bad(tmp_path, [config_only])


def test_a_tokenizer_larger_than_the_teachers_vocabulary_is_refused(tmp_path, teachers, no_teacher_runs):  # noqa: F811
    folder = tmp_path / "sst2-other-tokenizer"
    _copy(teachers["sentiment"], folder)
    vocab_size = len(SPECIAL_TOKENS) + len(WORDS)  # the teacher's embeddings
    _save_tokenizer(folder, SPECIAL_TOKENS + WORDS + ["extra", "words"])
    message = rf"^Teacher '{re.escape(str(folder))}': The tokenizer has {vocab_size + 2} tokens, more .* {vocab_size} "
    with pytest.raises(ValueError, match=message):
        _bad(tmp_path, [str(folder)])


def test_the_cache_key_follows_the_teachers_tokenizer(tmp_path, teachers, monkeypatch):  # noqa: F811
    """Another vocabulary order with the same weights gives other logits: the cached ones are not reused."""
    folder = tmp_path / "sst2"
    _copy(teachers["sentiment"], folder)
    loads = []
    real_load = cache_module.load_teacher
    monkeypatch.setattr(cache_module, "load_teacher", lambda t: loads.append(t) or real_load(t))
    texts = [row["text"] for row in _texts(12)]
    teacher = resolve_teachers([str(folder)])[0]
    first = teacher_logits(teacher, texts, None, 32, 4, tmp_path / "cache", progress=False)["sst2"][1]
    teacher_logits(teacher, texts, None, 32, 4, tmp_path / "cache", progress=False)
    assert len(loads) == 1  # same teacher, same tokenizer: read back
    before = teacher.identity()
    _save_tokenizer(folder, SPECIAL_TOKENS + list(reversed(WORDS)))
    changed = resolve_teachers([str(folder)])[0]
    assert changed.identity() != before
    second = teacher_logits(changed, texts, None, 32, 4, tmp_path / "cache", progress=False)["sst2"][1]
    assert len(loads) == 2 and not np.allclose(first, second)


def _unpadded_tokenizer(folder):
    """A word-level tokenizer with an eos token but no pad token (as GPT-2's), saved in `folder`."""
    vocab = {"<|endoftext|>": 0, "[UNK]": 1, **{word: i + 2 for i, word in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", eos_token="<|endoftext|>", model_max_length=64
    )
    fast.save_pretrained(folder)
    return len(vocab)


def _gpt2_teacher(folder, pad_token_id=None):
    """A tiny random GPT-2 classifier (it reads each text's last token, found with `config.pad_token_id`) whose
    tokenizer has no pad token."""
    size = _unpadded_tokenizer(folder)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=size, n_positions=64, n_embd=32, n_layer=2, n_head=4, num_labels=2, pad_token_id=pad_token_id
    )
    config.eos_token_id = config.bos_token_id = 0
    GPT2ForSequenceClassification(config).save_pretrained(folder)
    return str(folder)


def _one_by_one(teacher, texts):
    """The teacher's logits, each text alone (no padding): what batches must reproduce."""
    model, tokenizer = load_teacher(teacher)
    with torch.no_grad():
        return np.stack([model(**tokenizer([text], return_tensors="pt")).logits[0].numpy() for text in texts])


def test_a_teacher_whose_tokenizer_has_no_pad_token(tmp_path, monkeypatch):
    """GPT-2's tokenizer has no pad token: labelling crashed inside transformers ("Asking to pad but the tokenizer
    does not have a padding token"). Its config's pad_token_id pads the batches (and finds each text's last token);
    without one, refused before any teacher runs, in one line."""
    texts = [row["text"] for row in _texts(10)]
    refused = _gpt2_teacher(tmp_path / "gpt2")
    message = (
        rf"^Teacher '{re.escape(refused)}': its tokenizer has no pad token and its config no pad_token_id, so texts "
        r"cannot be labelled in batches: set \"pad_token_id\" in its config.json \(e.g. its eos token's id, 0\)\.$"
    )
    with monkeypatch.context() as patched:
        patched.setattr(cache_module, "load_teacher", lambda *a: pytest.fail("a teacher ran before the checks"))
        with pytest.raises(ValueError, match=message):
            _bad(tmp_path, [f"g={refused}"])
        argv = ["--teacher", f"g={refused}", "--texts", _jsonl(tmp_path / "t.jsonl", _texts(20))]
        with pytest.raises(SystemExit) as failed:
            script_main("distill")([*argv, "--output_dir", str(tmp_path / "out"), "--report_to", "none"])
        assert str(failed.value.code).startswith("error: Teacher ") and "\n" not in str(failed.value.code)
    padded = resolve_teachers([f"g={_gpt2_teacher(tmp_path / 'gpt2-pad', pad_token_id=0)}"])[0]
    batched = teacher_logits(padded, texts, None, 32, 4, progress=False)["g"][1]
    np.testing.assert_allclose(batched, _one_by_one(padded, texts), atol=1e-5)


def test_a_teacher_with_duplicate_labels_is_refused_before_it_runs(tmp_path, no_teacher_runs):  # noqa: F811
    """Two outputs named alike passed every check and failed deep in the student's config: now one line."""
    folder = _bert_teacher(tmp_path / "dup", ["pos", "pos", "neg"])
    message = (
        rf"^Teacher '{re.escape(folder)}': its id2label \['pos', 'pos', 'neg'\] cannot be a task's label map "
        r"\(Task 'dup': duplicate labels \['pos'\]\): give each of its outputs a label name of its own in its "
        r"config.json \(id2label and label2id\)\.$"
    )
    with pytest.raises(ValueError, match=message):
        _bad(tmp_path, [folder])
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(20))
    argv = ["--teacher", folder, "--texts", texts, "--output_dir", str(tmp_path / "out"), "--report_to", "none"]
    with pytest.raises(SystemExit) as failed:
        script_main("distill")(argv)
    assert str(failed.value.code).startswith(f"error: Teacher '{folder}': its id2label")


def test_each_teacher_runs_at_the_length_it_answers_at_on_its_own(tmp_path, teachers):  # noqa: F811
    """A polyhead teacher ran at 128 tokens (or its positions) whatever it was trained at, so adding
    --teacher <init_from>:<task> taught other answers than the model gives: it now runs at its trained length, as its
    pipeline and evaluation do. A standard checkpoint runs at 128, or its tokenizer's model_max_length when shorter.
    --teacher_max_length still sets every teacher's."""
    torch.manual_seed(0)
    poly8 = str(tmp_path / "poly8")
    save_model_folder(
        MultitaskModel(tiny_multitask_config()).eval(),
        tiny_tokenizer(),
        poly8,
        max_length=8,
    )
    recorded = shutil.copytree(poly8, tmp_path / "recorded")
    (recorded / "training_args.json").write_text(json.dumps({"model": {"max_length": 12}}))
    sources = [f"{poly8}:sentiment", f"mood={recorded}:topic", teachers["emotions"], teachers["sentiment"]]
    texts = [_jsonl(tmp_path / "texts.jsonl", _texts(20))]
    plan = plan_distillation(ModelArguments(), DataArguments(), DistillArguments(teacher=sources, texts=texts))
    assert list(plan.max_lengths.values()) == [8, 12, 64, 64]  # in --teacher order
    given = DistillArguments(teacher=sources, texts=texts, teacher_max_length=20)
    assert set(plan_distillation(ModelArguments(), DataArguments(), given).max_lengths.values()) == {20}
    # The polyhead teacher's labels are its own answers on long texts (its pipeline truncates at 8 tokens).
    long_texts = [" ".join(WORDS[i % len(WORDS)] for i in range(start, start + 30)) for start in range(6)]
    teacher = plan.teachers[0]
    labels = teacher_logits(teacher, long_texts, None, list(plan.max_lengths.values())[0], 4, progress=False)
    model, tokenizer = load_teacher(teacher)
    assert tokenizer.model_max_length == 8
    with torch.no_grad():
        own = model(**tokenizer(long_texts, padding=True, truncation=True, return_tensors="pt"), task="sentiment")
    np.testing.assert_allclose(labels["sentiment"][1], own.logits["sentiment"].numpy(), atol=1e-5)


# --- teacher paths ----------------------------------------------------------------------------------------------


def test_teacher_paths_holding_equals_signs_and_colons_are_paths(tmp_path, teachers, no_teacher_runs):  # noqa: F811
    equals = _copy(teachers["sentiment"], tmp_path / "sst2_lr=5e-5")
    colon = _copy(teachers["sentiment"], tmp_path / "v1:final")
    polyhead = _copy(teachers["multitask"], tmp_path / "mt:v2")
    assert parse_teacher(equals) == parse_teacher(equals.__str__())
    assert (parse_teacher(equals).source, parse_teacher(equals).name) == (equals, None)
    assert (parse_teacher(f"s={equals}").source, parse_teacher(f"s={equals}").name) == (equals, "s")
    spec = parse_teacher(f"s={colon}")
    assert (spec.source, spec.name, spec.tasks) == (colon, "s", None)
    spec = parse_teacher(f"mood={polyhead}:topic")
    assert (spec.source, spec.name, spec.tasks) == (polyhead, "mood", ["topic"])
    resolved = resolve_teachers([equals, f"s={colon}", f"mood={polyhead}:topic"])
    assert [list(teacher.tasks) for teacher in resolved] == [["sst2_lr_5e-5"], ["s"], ["mood"]]
    # A missing path is still one source, named whole in the error; a name holds no path separator.
    spec = parse_teacher(str(tmp_path / "gone" / "sst2_lr=5e-5"))
    assert (spec.source, spec.name) == (str(tmp_path / "gone" / "sst2_lr=5e-5"), None)
    # The documented forms are unchanged.
    assert parse_teacher("sentiment=org/sst2") == parse_teacher("sentiment=org/sst2")
    assert (parse_teacher("sentiment=org/sst2").source, parse_teacher("sentiment=org/sst2").name) == (
        "org/sst2",
        "sentiment",
    )
    spec = parse_teacher("org/multitask:topic,emotions")
    assert (spec.source, spec.name, spec.tasks) == ("org/multitask", None, ["topic", "emotions"])
    spec = parse_teacher("mood=models/mt:emotions")
    assert (spec.source, spec.name, spec.tasks) == ("models/mt", "mood", ["emotions"])


# --- options that would be ignored or misread -------------------------------------------------------------------


def test_a_too_long_teacher_max_length_names_its_own_flag(tmp_path, teachers, no_teacher_runs):  # noqa: F811
    with pytest.raises(ValueError, match=r"teacher_max_length=500 is more .* Use --teacher_max_length 80 or less\.$"):
        _bad(tmp_path, [teachers["sentiment"]], teacher_max_length=500)
    # below its special tokens the teacher read texts uncut (a run at 2 reported agreement 0.0), now refused
    with pytest.raises(ValueError, match=r"^teacher_max_length=2 leaves no room .* use teacher_max_length >= 5\.$"):
        _bad(tmp_path, [teachers["sentiment"]], teacher_max_length=2)


def test_the_task_sampling_temperature_is_refused_where_it_would_be_ignored(tmp_path, teachers, no_teacher_runs):  # noqa: F811
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(20))
    argv = ["--teacher", teachers["sentiment"], "--texts", texts, "--output_dir", str(tmp_path / "out")]
    for flags in (["--temperature", "0.5"], ["--temperature=2"]):  # the default value, given: still a mix-up
        with pytest.raises(ValueError, match=r"^--temperature .* task-sampling temperature .* --distill_temperature"):
            parse_distill_args([*argv, *flags])
    with pytest.raises(SystemExit) as failed:
        script_main("distill")([*argv, "--temperature", "0.5"])
    assert str(failed.value.code).startswith("error: --temperature 0.5 is the task-sampling temperature")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"temperature": 0.5}))
    with pytest.raises(ValueError, match="task-sampling temperature"):
        parse_distill_args([str(config), *argv])
    # With temperature sampling it is used, and a run without it is untouched.
    assert parse_distill_args([*argv, "--sampling", "temperature", "--temperature", "0.5"])[1].temperature == 0.5
    assert parse_distill_args([*argv, "--distill_temperature", "0.5"])[2].distill_temperature == 0.5


def test_pair_tasks_naming_a_polyhead_teachers_single_text_task_are_refused(tmp_path, teachers, no_teacher_runs):  # noqa: F811
    texts = _jsonl(tmp_path / "pairs.jsonl", _texts(20, pairs=True))
    message = r"pair_tasks \['topic'\]: task\(s\) of polyhead teacher .* read single texts"
    with pytest.raises(ValueError, match=message):
        _bad(
            tmp_path,
            [f"{teachers['multitask']}:topic"],
            texts=[texts],
            text_pair_column="text_pair",
            pair_tasks="topic",
        )
    with pytest.raises(ValueError, match=message):
        resolve_teachers([teachers["multitask"], f"nli={teachers['nli']}"], pair_tasks=["nli", "topic"])
    resolved = resolve_teachers([teachers["multitask"], f"nli={teachers['nli']}"], pair_tasks=["nli"])
    assert [task["text_pair"] for teacher in resolved for task in teacher.tasks.values()] == [False] * 3 + [True]


# --- texts ------------------------------------------------------------------------------------------------------


def test_json_numbers_in_the_text_column_are_called_not_strings(tmp_path, caplog):
    numbers = _jsonl(tmp_path / "numbers.jsonl", [{"text": 12345 + i} for i in range(5)])
    with pytest.raises(
        ValueError, match=r"text column 'text' holds no text: 5 of 5 row\(s\) are not strings \(e\.g\."
    ):
        load_corpus(numbers)
    csv = tmp_path / "numbers.csv"  # a CSV cell is text as written: digits too (JSON Lines says which is which)
    csv.write_text("text\n" + "".join(f"{i}\n" for i in range(30)), encoding="utf-8")
    assert load_corpus(str(csv)).texts == [str(i) for i in range(30)]
    mixed = _jsonl(tmp_path / "mixed.jsonl", [{"text": "good movie"}, {"text": 7}, {"text": None}])
    with caplog.at_level("WARNING", logger="polyhead.distill.corpus"):
        assert load_corpus(mixed).texts == ["good movie"]
    assert "2 row(s) without text in 'text' dropped (1 of 3 row(s) are not strings" in caplog.text


def test_a_hub_teacher_is_read_at_the_commit_its_revision_points_at_and_its_cache_follows_it(tmp_path, monkeypatch):
    """transformers 5 no longer records a config's commit, so every Hub teacher had commit None: after the repo's
    main moved, the cached answers of the earlier model were reused. The commit is read from the cache's snapshot
    folder (offline here), every file is read at it, and it keys the cache."""
    from huggingface_hub import constants

    repo = tmp_path / "hub-cache" / "models--org--teacher"
    commits = ["a" * 40, "b" * 40]
    for seed, commit in enumerate(commits):
        _bert_teacher(repo / "snapshots" / commit, ["negative", "positive"], seed=seed)
    (repo / "refs").mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    texts = [row["text"] for row in _texts(6)]
    answers = []
    for commit in commits:
        (repo / "refs" / "main").write_text(commit)  # main moves to a new commit
        (teacher,) = resolve_teachers(["org/teacher"])
        assert teacher.commit == commit and teacher.identity()["commit"] == commit
        cached = teacher_logits(teacher, texts, None, 32, 4, tmp_path / "cache", progress=False)["teacher"][1]
        fresh = teacher_logits(teacher, texts, None, 32, 4, progress=False)["teacher"][1]
        np.testing.assert_allclose(cached, fresh, atol=1e-6)  # the answers of the model main points at now
        answers.append(cached)
    assert np.abs(answers[0] - answers[1]).max() > 1e-3
    assert len(list((tmp_path / "cache").iterdir())) == 2
