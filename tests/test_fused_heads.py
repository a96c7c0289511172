"""Hundreds of heads as one matmul: same logits as one `nn.Linear` per task, unchanged checkpoint format, a weight
cache that follows every parameter change, and vectorised postprocessing equal to the per-task rules."""

import random

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F
from transformers import AutoModel, pipeline

from polyhead import MultitaskModel
from polyhead.testing_utils import tiny_multitask_config
from polyhead_remote.pipelines import multitask_base


def many_tasks(count: int, seed: int = 0) -> dict[str, dict]:
    rng = random.Random(seed)
    tasks = {}
    for index in range(count):
        size = rng.randint(2, 20)
        spec = {"labels": [f"l{j}" for j in range(size)]}
        if index % 3 == 2:
            spec.update(problem_type="multi_label_classification", threshold=rng.choice([0.3, 0.5, 0.7]))
        tasks[f"task{index}"] = spec
    return tasks


def reference_logits(model, batch) -> dict[str, torch.Tensor]:
    """What one `nn.Linear` per task gives (the pre-fusion computation)."""
    with torch.no_grad():
        pooled = model.encode(**batch)
        return {name: F.linear(pooled, head.weight, head.bias) for name, head in model.heads.items()}


def test_fused_logits_equal_one_linear_per_task(tokenizer, batch):
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config(tasks=many_tasks(40))).eval()
    expected = reference_logits(model, batch)
    with torch.no_grad():
        logits = model(**batch).logits
    assert list(logits) == model.task_names
    for name in expected:
        torch.testing.assert_close(logits[name], expected[name])
    with torch.no_grad():
        subset = model(**batch, task=["task7", "task3"]).logits
    torch.testing.assert_close(subset["task3"], expected["task3"])
    assert list(subset) == ["task7", "task3"]


def test_state_dict_keeps_one_linear_per_task(model):
    assert isinstance(model.heads["topic"], torch.nn.Linear)
    keys = {key for key in model.state_dict() if key.startswith("heads.")}
    assert keys == {f"heads.{task}.{p}" for task in model.task_names for p in ("weight", "bias")}
    assert "_fused_cache" not in str(list(model.state_dict()))


def test_cache_follows_in_place_updates_reloads_and_moves(model, batch):
    with torch.no_grad():
        before = model(**batch).logits["topic"].clone()
        model.heads["topic"].bias.add_(1.0)  # an optimizer step is an in-place update like this one
        torch.testing.assert_close(model(**batch).logits["topic"], before + 1.0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["heads.emotions.bias"] += 2.0
    model.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits["emotions"], reference_logits(model, batch)["emotions"])
    model.to(torch.float64)
    with torch.no_grad():
        assert model(**batch).logits["sentiment"].dtype == torch.float64
    model.to(torch.float32)
    model.add_task("extra", ["a", "b", "c"])
    model.remove_task("sentiment")
    with torch.no_grad():
        logits = model(**batch).logits
    assert list(logits) == ["topic", "emotions", "extra"]
    torch.testing.assert_close(logits["extra"], reference_logits(model, batch)["extra"])


def test_cache_follows_a_replaced_head_and_the_task_order(model, batch):
    with torch.no_grad():
        model(**batch)  # fills the cache
        model.heads["topic"] = torch.nn.Linear(32, 4)
        logits = model(**batch).logits
        torch.testing.assert_close(logits["topic"], reference_logits(model, batch)["topic"])
        reordered = model(**batch, task=["emotions", "topic", "sentiment"]).logits
    for name, expected in reference_logits(model, batch).items():
        torch.testing.assert_close(reordered[name], expected)


def test_training_reaches_every_head(model, batch):
    model.train()
    labels = {"sentiment": torch.tensor([0, 1]), "topic": torch.tensor([1, 2]), "emotions": torch.ones(2, 4)}
    model(**batch, labels=labels).loss.backward()
    for name, head in model.heads.items():
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0, name


def test_folder_written_with_plain_linear_heads_loads(tmp_path, model, tokenizer, batch):
    # A folder saved before fusion: its safetensors hold `heads.<task>.weight|bias` written by one nn.Linear each.
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    plain = {name: torch.nn.Linear(32, len(spec["labels"])) for name, spec in model.config.tasks.items()}
    for name, head in plain.items():
        weights[f"heads.{name}.weight"], weights[f"heads.{name}.bias"] = head.weight.detach(), head.bias.detach()
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded = AutoModel.from_pretrained(tmp_path, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = loaded(**batch).logits
        pooled = loaded.encode(**batch)
        for name, head in plain.items():
            torch.testing.assert_close(logits[name], head(pooled))


def expected_answers(model, tokenizer, text, top_k=1) -> dict[str, list[tuple[str, float]]]:
    """Each task's answer by the per-task rules, from one nn.Linear per task (stable sort: ties keep label order)."""
    logits = reference_logits(model, tokenizer(text, return_tensors="pt"))
    answers = {}
    for name, spec in model.config.tasks.items():
        multi = spec["problem_type"] == "multi_label_classification"
        scores = torch.sigmoid(logits[name][0]) if multi else torch.softmax(logits[name][0], -1)
        pairs = sorted(zip(spec["labels"], scores.tolist()), key=lambda p: p[1], reverse=True)
        if multi:
            limits = dict(zip(spec["labels"], spec.get("thresholds") or [spec.get("threshold", 0.5)] * len(pairs)))
            pairs = [(label, score) for label, score in pairs if score >= limits[label]]
        elif top_k is not None:
            pairs = pairs[:top_k]
        answers[name] = pairs
    return answers


def assert_answers(result, expected):
    assert list(result) == list(expected)
    for name, pairs in expected.items():
        assert [item["label"] for item in result[name]] == [label for label, _ in pairs], name
        assert [item["score"] for item in result[name]] == pytest.approx([s for _, s in pairs], abs=1e-6), name


def test_vectorised_postprocessing_matches_the_per_task_rules(tokenizer):
    torch.manual_seed(0)
    tasks = many_tasks(60)
    tasks["task2"]["thresholds"] = [0.2 + 0.03 * j for j in range(len(tasks["task2"]["labels"]))]
    model = MultitaskModel(tiny_multitask_config(tasks=tasks)).eval()
    classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    texts = ["i love this movie", "bad phone", "the team win the game today and the people are happy"]
    for top_k in (1, 3, None):
        results = classifier(texts, batch_size=2, top_k=top_k)
        for text, result in zip(texts, results):
            assert_answers(result, expected_answers(model, tokenizer, text, top_k))


@pytest.mark.parametrize("batch_size", [1, 3])
def test_tokenizer_heads_and_ranking_run_once_per_group_of_rows(tokenizer, monkeypatch, batch_size):
    # A list's rows are tokenized (one call), then its heads (one matmul) and ranking run, per `_RANKED_ROWS` rows
    # across batches: at batch size 1, one tokenizer call per text costs ~1.5 ms after an encoder pass, and with
    # hundreds of heads one matmul per text would read every head's weights again. Groups of 4 rows here.
    monkeypatch.setattr(multitask_base, "_RANKED_ROWS", 4)
    torch.manual_seed(2)
    model = MultitaskModel(tiny_multitask_config(tasks=many_tasks(9))).eval()
    classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    texts = [" ".join(["good movie"] * (1 + i % 4)) + f" {i}" for i in range(11)]
    width = sum(len(spec["labels"]) for spec in model.config.tasks.values())
    linear, heads = F.linear, []
    tokenize, tokenized = type(tokenizer).__call__, []

    def recorded(features, weight, bias=None):
        if weight.shape[0] == width:  # the fused heads, not an encoder layer
            heads.append(len(features))
        return linear(features, weight, bias)

    def recorded_tokenizer(self, text=None, *args, **kwargs):
        tokenized.append(len(text))
        return tokenize(self, text, *args, **kwargs)

    monkeypatch.setattr(F, "linear", recorded)
    monkeypatch.setattr(type(tokenizer), "__call__", recorded_tokenizer)
    results = classifier(texts, batch_size=batch_size, top_k=2)
    monkeypatch.undo()
    # whole batches join a group until it holds 4 rows or more; the last group takes what is left
    group = -(-4 // batch_size) * batch_size
    assert heads == tokenized == [group] * (11 // group) + [11 % group] * (11 % group > 0)
    for text, result in zip(texts, results):
        assert_answers(result, expected_answers(model, tokenizer, text, 2))


def test_requested_task_order_and_one_problem_type_at_a_time(tokenizer):
    torch.manual_seed(1)
    model = MultitaskModel(tiny_multitask_config(tasks=many_tasks(12))).eval()
    classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    texts = ["i love this movie", "bad phone"]
    expected = [expected_answers(model, tokenizer, text) for text in texts]
    subsets = [
        ["task5", "task0", "task11", "task2", "task1"],  # mixed types, out of config order
        ["task2", "task8", "task5"],  # multi-label only
        ["task4", "task0"],  # single-label only
        ["task8"],
    ]
    for tasks in subsets:
        for batch_size in (1, 2):
            for result, full in zip(classifier(texts, tasks=tasks, batch_size=batch_size), expected):
                assert_answers(result, {name: full[name] for name in tasks})


def test_ties_keep_label_order(tokenizer):
    # Zero heads: every softmax score ties (the first label is the top one) and every sigmoid is exactly 0.5, at the
    # threshold, so every multi-label label is returned, in label order.
    model = MultitaskModel(tiny_multitask_config(tasks=many_tasks(9))).eval()
    for head in model.heads.values():
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
    classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    for batch_size in (1, 2):
        for result in classifier(["i love this movie", "bad"], batch_size=batch_size, threshold=0.5, top_k=2):
            for name, spec in model.config.tasks.items():
                multi = spec["problem_type"] == "multi_label_classification"
                assert [item["label"] for item in result[name]] == spec["labels"][: None if multi else 2], name


def test_pipeline_sees_weight_changes_between_calls(tokenizer):
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config(tasks=many_tasks(9))).eval()
    classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    texts = ["i love this movie", "bad phone", "the team win"]
    classifier(texts, batch_size=1)
    with torch.no_grad():
        model.heads["task4"].bias[3] += 100.0  # label l3 of a single-label task now always wins
        model.heads["task5"].bias -= 100.0  # a multi-label task now returns nothing
    for result in classifier(texts, batch_size=1) + classifier(texts, batch_size=2):
        assert [item["label"] for item in result["task4"]] == ["l3"] and result["task5"] == []


def test_many_tasks_evaluate_without_plots_and_the_card_summarises(tmp_path, tokenizer):
    import datasets
    from huggingface_hub import ModelCard

    from polyhead.evaluation.scoring import evaluate_model
    from polyhead.publishing.model_card import render_model_card

    torch.manual_seed(0)
    tasks = many_tasks(30)
    model = MultitaskModel(tiny_multitask_config(tasks=tasks)).eval()
    encoded = tokenizer(["i love this movie", "bad phone", "the team win"])
    sets = {}
    for name, spec in tasks.items():
        multi = spec.get("problem_type") == "multi_label_classification"
        labels = [[1.0] + [0.0] * (len(spec["labels"]) - 1)] * 3 if multi else [0, 1, 1]
        sets[name] = datasets.Dataset.from_dict({**encoded, "labels": labels})
    results = evaluate_model(model, tokenizer, sets, output_dir=tmp_path, progress=False)
    assert len(results["tasks"]) == 30 and not list(tmp_path.glob("*.png"))
    assert len(list(tmp_path.glob("confusion_matrix_*.csv"))) == 30
    classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    widget = [{"text": text, "output": classifier(text)} for text in ("i love this movie", "bad phone")]
    card = render_model_card(model.config, results, repo_id="org/many", widget=widget)
    assert "### `task0`" not in card and "30 tasks" in card and "lowest-scoring tasks" in card
    data = ModelCard(card).data
    assert len(data.eval_results) >= 30
    # widget, usage snippet and example answers show the first 20 tasks, and say so
    shown = {f"task{i}" for i in range(20)}
    assert {item["label"].split(":")[0] for item in data.widget[0]["output"]} <= shown
    assert "(the first 20 of 30 tasks)" in card and '"task19"' in card and '"task20"' not in card
    examples = card.split("### Example answers")[1].split("\n#")[0]
    assert examples.count("| 10 more tasks | not shown |") == 2
    assert "`task19`" in examples and "`task20`" not in examples


def test_many_tasks_train_evaluate_and_publish_a_summarised_card(tmp_path):
    """End to end above the card's 20-task limit: train, evaluate every split in one pass, results.json, card."""
    import datasets
    from huggingface_hub import ModelCard

    from polyhead.publishing.model_card import write_model_card
    from polyhead.tasks import TaskSpec
    from polyhead.testing_utils import WORDS
    from polyhead.training.arguments import DataArguments, ModelArguments, MultitaskTrainingArguments
    from polyhead.training.trainer import run

    rng = random.Random(0)
    specs = []
    for index, (name, spec) in enumerate(many_tasks(24).items()):
        multi = spec.get("problem_type") == "multi_label_classification"
        labels = spec["labels"][:4]

        def split(n, labels=labels, multi=multi):
            texts = [" ".join(rng.choices(WORDS, k=5)) for _ in range(n)]
            targets = [rng.sample(labels, 2) if multi else rng.choice(labels) for _ in range(n)]
            return datasets.Dataset.from_dict({"text": texts, "label": targets})

        data = datasets.DatasetDict(train=split(8), validation=split(4), test=split(4 + index % 3))
        specs.append(TaskSpec(name, dataset=data, labels=labels, problem_type=spec.get("problem_type")))
    args = MultitaskTrainingArguments(
        output_dir=str(tmp_path / "run"), num_train_epochs=1, per_device_train_batch_size=8, eval_strategy="epoch",
        save_strategy="no", report_to="none", disable_tqdm=True, seed=0,
    )  # fmt: skip
    results = run(ModelArguments(), DataArguments(tasks=specs), args)["multitask"]
    folder = tmp_path / "run" / "model"
    assert len(results["tasks"]) == 24 and results["num_examples"]["task2"] == 6
    assert len(list(folder.glob("classification_report_*.txt"))) == 24 and not list(folder.glob("*.png"))
    card = write_model_card(folder, repo_id="org/many").read_text()
    assert "24 tasks" in card and "lowest-scoring tasks" in card and "### `task0`" not in card
    assert "(the first 20 of 24 tasks)" in card
    assert len(ModelCard(card).data.eval_results) >= 24


def test_heads_that_are_not_plain_linear_still_run(model, batch):
    class Scaled(torch.nn.Module):  # e.g. a quantized or adapter-wrapped head: no plain weight to concatenate
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return 2 * self.inner(x)

    expected = reference_logits(model, batch)
    model.heads["topic"] = Scaled(model.heads["topic"])
    with torch.no_grad():
        logits = model(**batch).logits
    torch.testing.assert_close(logits["topic"], 2 * expected["topic"])
    torch.testing.assert_close(logits["emotions"], expected["emotions"])
