import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F
from transformers import AutoModel

from polyhead import MultitaskModel
from polyhead.remote_code import MultitaskOutput
from polyhead.saving import check_weights_match_config
from polyhead.testing_utils import ENCODER_FAMILIES, tiny_multitask_config


def count_encoder_calls(model):
    calls = []
    handle = model.encoder.register_forward_hook(lambda *args: calls.append(1))
    return calls, handle


@pytest.mark.parametrize("family", ENCODER_FAMILIES)
def test_every_encoder_family_answers_all_tasks_in_one_pass_and_round_trips(family, batch, tmp_path):
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config(family)).eval()
    calls, handle = count_encoder_calls(model)
    output = model(**batch)
    handle.remove()
    assert len(calls) == 1
    assert {task: tuple(value.shape) for task, value in output.logits.items()} == {
        "sentiment": (2, 2),
        "topic": (2, 4),
        "emotions": (2, 4),
    }
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(reloaded).__name__ == "MultitaskModel"
    for (name, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), name
    again = reloaded(**batch)
    for task in output.logits:  # bitwise: equal weights and the same shapes run the same kernels on any CPU
        torch.testing.assert_close(again.logits[task], output.logits[task], rtol=0, atol=0)


def test_losses_match_cross_entropy_and_bce(model, batch):
    labels = {
        "sentiment": torch.tensor([1, 0]),
        "topic": torch.tensor([3, 1]),
        "emotions": torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]),
    }
    output = model(**batch, labels=labels)
    expected = {
        "sentiment": F.cross_entropy(output.logits["sentiment"], labels["sentiment"]),
        "topic": F.cross_entropy(output.logits["topic"], labels["topic"]),
        "emotions": F.binary_cross_entropy_with_logits(output.logits["emotions"], labels["emotions"]),
    }
    for task, loss in expected.items():
        torch.testing.assert_close(output.task_losses[task], loss)
    torch.testing.assert_close(output.loss, sum(expected.values()))


def test_single_task_labels_and_ignored_rows(model, batch):
    output = model(**batch, task="topic", labels=torch.tensor([2, -100]))
    assert list(output.logits) == ["topic"]
    torch.testing.assert_close(output.loss, F.cross_entropy(output.logits["topic"][:1], torch.tensor([2])))
    multi = model(**batch, task="emotions", labels=torch.tensor([[1, 0, 0, 1], [-100] * 4]))
    expected = F.binary_cross_entropy_with_logits(multi.logits["emotions"][:1], torch.tensor([[1.0, 0, 0, 1]]))
    torch.testing.assert_close(multi.loss, expected)


def test_task_subset_runs_only_those_heads(model, batch):
    full = model(**batch)
    subset = model(**batch, task=["emotions", "sentiment"])
    assert list(subset.logits) == ["emotions", "sentiment"]
    torch.testing.assert_close(subset.logits["emotions"], full.logits["emotions"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "nope"}, r"Unknown task\(s\) \['nope'\]: this model has tasks \['sentiment', 'topic', 'emotions'\]"),
        ({"task": []}, r"task is empty: name some of this model's tasks \['sentiment'"),
        ({"labels": torch.tensor([0, 1])}, "pass task='name' or labels="),
        ({"task": "sentiment", "labels": torch.tensor([0, 2])}, r"Task 'sentiment': label values \[2\] are outside"),
        ({"task": "topic", "labels": torch.tensor([0.0, 1.0])}, "must be integer class ids"),
        ({"task": "emotions", "labels": torch.tensor([1, 0])}, r"multi-hot of shape \(batch_size, 4\)"),
        ({"task": "emotions", "labels": torch.full((2, 4), 2.0)}, "outside its 4 labels"),
        (
            {"task": "topic", "labels": {"sentiment": torch.tensor([0, 1])}},
            r"task\(s\) \['sentiment'\] that do not run",
        ),
    ],
)
def test_bad_inputs_get_clear_errors(model, batch, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model(**batch, **kwargs)


def test_mean_pooling_ignores_padding(model, tokenizer):
    alone = tokenizer(["i love this movie"], return_tensors="pt")
    padded = tokenizer(
        ["i love this movie", "the phone is bad and not good at all today"], padding=True, return_tensors="pt"
    )
    a = model(**alone).logits
    b = model(**padded).logits
    for task in a:
        torch.testing.assert_close(a[task][0], b[task][0], rtol=1e-4, atol=1e-5)


def test_cls_and_mean_pooling_differ(batch):
    torch.manual_seed(0)
    mean = MultitaskModel(tiny_multitask_config(pooling="mean")).eval()
    cls = MultitaskModel(tiny_multitask_config(pooling="cls")).eval()
    cls.load_state_dict(mean.state_dict())
    assert not torch.allclose(mean(**batch).pooled_output, cls(**batch).pooled_output)
    hidden = mean.encoder(**batch).last_hidden_state
    torch.testing.assert_close(cls(**batch).pooled_output, hidden[:, 0])


def test_add_task_leaves_other_heads_untouched_and_round_trips(model, batch, tmp_path):
    before = model(**batch).logits
    model.add_task("language", ["en", "fr", "de"])
    model.add_task("tags", ["x", "y"], problem_type="multi_label_classification", threshold=0.7)
    after = model(**batch).logits
    for task in before:  # float32 tolerance: more heads make a wider fused matmul, which BLAS may sum in another order
        torch.testing.assert_close(after[task], before[task], rtol=1.3e-6, atol=1e-5)
    assert after["language"].shape == (2, 3)
    assert model.config.tasks["tags"] == {
        "labels": ["x", "y"],
        "problem_type": "multi_label_classification",
        "threshold": 0.7,
    }
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.task_names == ["sentiment", "topic", "emotions", "language", "tags"]
    torch.testing.assert_close(reloaded(**batch).logits["language"], after["language"])
    with pytest.raises(ValueError, match="already exists"):
        model.add_task("topic", ["a", "b"])


def test_remove_task(model, batch, tmp_path):
    before = model(**batch).logits
    model.remove_task("topic")
    assert model.config.task_names == ["sentiment", "emotions"] and "topic" not in model.heads
    torch.testing.assert_close(model(**batch).logits["sentiment"], before["sentiment"])
    model.save_pretrained(tmp_path)
    assert AutoModel.from_pretrained(tmp_path).config.task_names == ["sentiment", "emotions"]
    with pytest.raises(KeyError, match="Unknown task 'topic'"):
        model.remove_task("topic")


def test_frozen_encoder_trains_heads_only(model, batch):
    model.train()
    model.freeze_encoder()
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    heads_before = {k: v.clone() for k, v in model.heads.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(**batch, labels={"sentiment": torch.tensor([1, 0])}).loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in model.encoder.parameters())
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, encoder_before[key])
    assert not torch.equal(model.heads["sentiment"].weight, heads_before["sentiment.weight"])
    model.freeze_encoder(False)
    assert all(p.requires_grad for p in model.encoder.parameters())


def test_from_encoder_pretrained_keeps_the_pretrained_weights(tmp_path, tasks, batch):
    torch.manual_seed(1)
    encoder = AutoModel.from_config(tiny_multitask_config().encoder).eval()
    encoder.save_pretrained(tmp_path / "encoder")
    model = MultitaskModel.from_encoder_pretrained(tmp_path / "encoder", tasks=tasks, pooling="cls").eval()
    assert model.config.pooling == "cls" and model.config.task_names == list(tasks)
    expected = encoder(**batch).last_hidden_state[:, 0]
    torch.testing.assert_close(model(**batch).pooled_output, expected)
    assert model.encoder.pooler is None  # we pool ourselves


def test_training_steps_lower_the_loss(model, batch):
    model.train()
    labels = {"sentiment": torch.tensor([1, 0]), "emotions": torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]])}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def _edit_config(folder, edit):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def test_config_and_weights_that_disagree_are_refused(model, tmp_path):
    model.save_pretrained(tmp_path)
    _edit_config(tmp_path, lambda c: c["tasks"].append({"name": "new", "labels": ["a", "b"]}))
    with pytest.raises(ValueError, match=r"disagree: no weights for \['heads.new.bias', 'heads.new.weight'\]"):
        AutoModel.from_pretrained(tmp_path)
    _edit_config(tmp_path, lambda c: c["tasks"].pop(0) and c["tasks"].pop())
    with pytest.raises(ValueError, match=r"weights for \['heads.sentiment.bias', 'heads.sentiment.weight'\] whose"):
        AutoModel.from_pretrained(tmp_path)


def test_head_size_mismatch_is_refused(model, tmp_path):
    model.save_pretrained(tmp_path)
    _edit_config(tmp_path, lambda c: c["tasks"][1].update(labels=["a", "b", "c"]))
    shapes = r"\['heads.topic.bias: \[4\] in the checkpoint, \[3\] in the config', 'heads.topic.weight: "
    with pytest.raises(ValueError, match=rf"disagree: weights of the wrong shape for {shapes}.*--extend_labels true"):
        AutoModel.from_pretrained(tmp_path)


def test_output_loading_info_still_works(model, tmp_path):
    model.save_pretrained(tmp_path)
    reloaded, info = MultitaskModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_from_encoder_pretrained_builds_no_random_encoder(tmp_path, tasks, monkeypatch):
    AutoModel.from_config(tiny_multitask_config().encoder).save_pretrained(tmp_path / "encoder")
    import polyhead_remote.modeling_multitask as modeling

    def refuse(*args, **kwargs):
        raise AssertionError("a random encoder was built only to be thrown away")

    monkeypatch.setattr(modeling.AutoModel, "from_config", refuse)
    model = MultitaskModel.from_encoder_pretrained(tmp_path / "encoder", tasks=tasks)
    assert model.task_names == list(tasks)


@pytest.mark.parametrize("weighted", [False, True])
def test_single_label_loss_with_class_weights_ignores_minus_100_rows(model, weighted):
    logits = torch.randn(4, 4, requires_grad=True)
    labels = torch.tensor([0, -100, 3, 1])
    weights = torch.tensor([1.0, 2.0, 0.5, 3.0]) if weighted else None
    loss = model.task_loss("topic", logits, labels, class_weights=weights)
    keep = labels != -100
    torch.testing.assert_close(loss, F.cross_entropy(logits[keep], labels[keep], weight=weights))
    ignored = model.task_loss("topic", logits, torch.full((4,), -100), class_weights=weights)
    assert ignored.item() == 0.0 and ignored.requires_grad  # no NaN, graph stays connected


@pytest.mark.parametrize("weighted", [False, True])
def test_multi_label_loss_with_pos_weight_ignores_minus_100_rows(model, weighted):
    logits = torch.randn(3, 4, requires_grad=True)
    labels = torch.tensor([[1, 0, 0, 1], [-100, -100, -100, -100], [0, 1, 1, 0]])
    weights = torch.tensor([1.0, 2.0, 0.5, 3.0]) if weighted else None
    loss = model.task_loss("emotions", logits, labels, class_weights=weights)
    keep = torch.tensor([True, False, True])
    expected = F.binary_cross_entropy_with_logits(logits[keep], labels[keep].float(), pos_weight=weights)
    torch.testing.assert_close(loss, expected)
    ignored = model.task_loss("emotions", logits, torch.full((3, 4), -100), class_weights=weights)
    assert ignored.item() == 0.0 and ignored.requires_grad


def test_label_smoothing_matches_torch_and_smooths_multi_label_targets(model):
    logits, labels = torch.randn(4, 4), torch.tensor([0, -100, 3, 1])
    keep = labels != -100
    smoothed = model.task_loss("topic", logits, labels, label_smoothing=0.2)
    torch.testing.assert_close(smoothed, F.cross_entropy(logits[keep], labels[keep], label_smoothing=0.2))
    assert smoothed.item() != pytest.approx(model.task_loss("topic", logits, labels).item())
    logits, labels = torch.randn(2, 4), torch.tensor([[1, 0, 0, 1], [0, 1, 1, 0]])
    expected = F.binary_cross_entropy_with_logits(logits, labels * 0.8 + 0.1)  # 1 -> 0.9, 0 -> 0.1
    torch.testing.assert_close(model.task_loss("emotions", logits, labels, label_smoothing=0.2), expected)


def test_label_smoothing_leaves_out_a_multiple_choice_rows_padding(model):
    from polyhead_remote.modeling_multitask_heads import choice_logits

    # Row 0 has 3 real choices, row 1 has 2 (its third is padding at the dtype's lowest value).
    scores = torch.tensor([[0.5], [1.5], [-1.0], [2.0], [0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    logits, labels = choice_logits(scores, mask), torch.tensor([1, 0])
    loss = model.task_loss("topic", logits, labels, label_smoothing=0.3)  # the loss reads only the logits' shape
    rows = [torch.tensor([0.5, 1.5, -1.0]), torch.tensor([2.0, 0.0])]
    by_hand = [0.7 * -row.log_softmax(0)[label] + 0.3 * -row.log_softmax(0).mean() for row, label in zip(rows, labels)]
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, torch.stack(by_hand).mean())


def test_resize_token_embeddings_delegates_to_the_encoder_and_round_trips(model, tokenizer, tmp_path):
    assert model.get_encoder() is model.encoder
    assert model.get_input_embeddings() is model.encoder.get_input_embeddings()
    tokenizer.add_tokens(["polyheadword"])
    model.resize_token_embeddings(len(tokenizer))
    assert model.get_input_embeddings().num_embeddings == len(tokenizer) == model.config.encoder.vocab_size
    batch = tokenizer(["i love polyheadword"], return_tensors="pt")
    assert batch["input_ids"].max() == len(tokenizer) - 1
    model.save_pretrained(tmp_path)
    reloaded = MultitaskModel.from_pretrained(tmp_path).eval()
    model.eval()
    with torch.no_grad():
        for task, logits in model(**batch).logits.items():
            torch.testing.assert_close(reloaded(**batch).logits[task], logits)


def test_weights_of_the_wrong_shape_are_refused_even_when_mismatches_are_ignored(model, tmp_path):
    model.save_pretrained(tmp_path)
    _edit_config(tmp_path, lambda c: c["tasks"][1].update(labels=["a", "b", "c"]))
    with pytest.raises(ValueError, match=r"weights of the wrong shape for \['heads.topic"):
        AutoModel.from_pretrained(tmp_path, ignore_mismatched_sizes=True)


def _drop_weight(folder, name):
    weights = load_file(folder / "model.safetensors")
    del weights[name]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: _edit_config(f, lambda c: c["tasks"].append({"name": "new", "labels": ["a", "b"]})), "no weights"),
        (lambda f: _edit_config(f, lambda c: c["tasks"].pop(0)), "weights for ['heads.sentiment.bias'"),
        (lambda f: _edit_config(f, lambda c: c["tasks"][1].update(labels=["a", "b"])), "[4] in the checkpoint"),
        (
            lambda f: _drop_weight(f, "encoder.embeddings.LayerNorm.bias"),
            "no weights for ['encoder.embeddings.LayerNorm.bias']",
        ),
    ],
)
def test_a_folder_is_refused_before_publishing_with_the_message_it_is_refused_with_at_load(
    model, tmp_path, edit, message
):
    # One rule: the check before publishing (saving.check_weights_match_config) is the Hub file's check at load.
    model.save_pretrained(tmp_path)
    edit(tmp_path)
    with pytest.raises(ValueError) as at_load:
        AutoModel.from_pretrained(tmp_path, ignore_mismatched_sizes=True)
    with pytest.raises(ValueError) as before_publishing:
        check_weights_match_config(tmp_path)
    assert message in str(at_load.value)
    assert str(before_publishing.value) == f"{tmp_path}: {at_load.value}"


@pytest.mark.parametrize("size", [0, 100])
def test_truncated_weights_name_the_file(model, tmp_path, size):
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:size])
    with pytest.raises(OSError, match=f"model.safetensors.*{tmp_path.name}|{tmp_path.name}.*model.safetensors"):
        AutoModel.from_pretrained(tmp_path)


def test_hidden_states_attention_weights_and_tuples_as_transformers_models_return_them(model, batch, tmp_path):
    # The encoder's hidden states and attention weights when asked, per call or in the config, and a tuple when
    # return_dict is False (the call's or the config's), as transformers' models return them.
    with torch.no_grad():
        expected = model.encoder(**batch, output_hidden_states=True).hidden_states
        output = model(**batch, output_hidden_states=True)
    assert list(output.keys()) == ["logits", "pooled_output", "hidden_states"] and len(expected) == 3
    for ours, theirs in zip(output.hidden_states, expected, strict=True):
        torch.testing.assert_close(ours, theirs)
    assert [type(value) for value in model(**batch, return_dict=False)] == [dict, torch.Tensor]
    # sdpa attention computes no weights (transformers 5 returns none): refused, naming the fix.
    with pytest.raises(ValueError, match=r"encoder runs 'sdpa' attention.*load the model with attn_implementation"):
        model(**batch, output_attentions=True)
    model.save_pretrained(tmp_path)
    eager = MultitaskModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert eager.encoder.config._attn_implementation == "eager"  # the model's choice reaches its encoder
    attentions = eager(**batch, output_attentions=True).attentions
    length = batch["input_ids"].shape[1]
    assert [tuple(value.shape) for value in attentions] == [
        (2, 4, length, length)
    ] * 2  # (rows, heads, length, length)
    configured = MultitaskModel.from_pretrained(tmp_path, return_dict=False, output_hidden_states=True).eval()
    values = configured(**batch, labels={"sentiment": torch.tensor([1, 0])})
    assert [type(value) for value in values] == [torch.Tensor, dict, dict, torch.Tensor, tuple]  # loss ... hidden
    assert isinstance(configured(**batch, return_dict=True), MultitaskOutput)


def test_a_head_starts_with_normal_weights_of_the_encoders_initializer_range_and_zero_bias(model):
    # transformers' weight-init hook, the model's own: the same start on every release (tests/test_cross_version.py).
    model.config.encoder.initializer_range = 0.5
    model.add_task("language", [f"l{i}" for i in range(40)])
    head = model.heads["language"]
    assert 0.45 < head.weight.std().item() < 0.55 and not head.bias.any()
    config = tiny_multitask_config(pooling="native")
    encoder = AutoModel.from_config(config.encoder)
    weights = {name: value.clone() for name, value in encoder.state_dict().items() if not name.startswith("pooler")}
    fresh = MultitaskModel(config, encoder=encoder)
    assert not any(layer.bias.any() for layer in [*fresh.heads.values(), fresh.native_pooler.dense])
    for name, value in fresh.encoder.state_dict().items():  # the encoder keeps its own init
        assert torch.equal(value, weights[name]), name
