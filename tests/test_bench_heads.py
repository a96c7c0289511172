"""The heads benchmark on a tiny random encoder: calibrated heads return what they are calibrated to, both kinds of
heads come from one run (no timing assertions)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, pipeline

from polyhead import MultitaskModel
from polyhead.benchmark import save_tiny_encoder, synthetic_texts
from polyhead.benchmark.heads import (
    calibrate_multi_label_heads,
    heads_table,
    labels_per_text,
    measure_heads,
    synthetic_tasks,
)


SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_heads.py"


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> str:
    return save_tiny_encoder(tmp_path_factory.mktemp("encoder"))


def returned_per_task(classifier, texts: list[str]) -> dict[str, float]:
    results = classifier(texts, batch_size=8)
    return {task: sum(len(result[task]) for result in results) / len(texts) for task in results[0]}


def test_calibrated_heads_return_the_asked_labels_per_text(tiny_encoder):
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    torch.manual_seed(0)
    model = MultitaskModel.from_encoder_pretrained(tiny_encoder, tasks=synthetic_tasks(12)).eval()
    weights = {name: head.weight.clone() for name, head in model.heads.items()}
    biases = {name: head.bias.clone() for name, head in model.heads.items()}
    texts = synthetic_texts(200)
    classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    before = returned_per_task(classifier, texts)
    calibrate_multi_label_heads(model, tokenizer, texts, per_text=1.5)
    after = returned_per_task(classifier, texts)
    for name, spec in model.config.tasks.items():
        assert torch.equal(model.heads[name].weight, weights[name])
        if spec["problem_type"] != "multi_label_classification":
            assert torch.equal(model.heads[name].bias, biases[name]) and after[name] == before[name] == 1.0
            continue
        # each label is above the threshold on a 1.5 / num_labels share of the texts (quantiles: up to ties)
        assert after[name] == pytest.approx(1.5, abs=0.1), (name, before[name])


def test_labels_per_text_of_a_multi_label_file(tmp_path):
    rows = [{"text": "a", "labels": ["x"]}, {"text": "b", "labels": ["x", "y"]}, {"text": "c", "labels": []}]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert labels_per_text(path) == 1.0


def test_both_kinds_of_heads_come_from_one_run(tiny_encoder):
    texts = synthetic_texts(16)
    rows = measure_heads(
        tiny_encoder, texts, task_counts=[1, 9], batch_sizes=[4, 1], repeats=1, batch1_texts=4,
        calibration_texts=synthetic_texts(64, seed=1), calibration_labels_per_text=1.0, per_text_calls=True,
    )  # fmt: skip
    assert [(r.num_tasks, r.heads, r.batch_size, r.calls) for r in rows] == [
        (1, "random", 4, "list"), (9, "random", 4, "list"), (9, "calibrated", 4, "list"),
        (1, "random", 1, "list"), (9, "random", 1, "list"), (9, "calibrated", 1, "list"),
        (1, "random", 1, "per text"), (9, "random", 1, "per text"), (9, "calibrated", 1, "per text"),
    ]  # fmt: skip
    assert [r.num_texts for r in rows] == [16] * 3 + [4] * 6
    by_key = {(r.num_tasks, r.heads, r.batch_size, r.calls): r for r in rows}
    for mode in ((4, "list"), (1, "list"), (1, "per text")):
        assert by_key[(1, "random", *mode)].ratio_to_one_task == 1.0
        assert by_key[(1, "random", *mode)].labels_per_text == 1.0
        # 6 single-label tasks (one label each) + 3 multi-label tasks: random heads return about half their labels
        assert by_key[(9, "calibrated", *mode)].labels_per_text < by_key[(9, "random", *mode)].labels_per_text
    # one text per call or a list at batch 1: the same answers, so the same labels per text
    for kind in ("random", "calibrated"):
        assert by_key[(9, kind, 1, "per text")].labels_per_text == by_key[(9, kind, 1, "list")].labels_per_text
    table = heads_table(rows)
    assert "| 9 | calibrated | 4 | list |" in table and "| 9 | random | 1 | per text |" in table
    assert "labels returned per text" in table
    with pytest.raises(ValueError, match="calibration_texts"):
        measure_heads(tiny_encoder, texts, task_counts=[1, 9], repeats=1)
    with pytest.raises(ValueError, match="heads must be"):
        measure_heads(tiny_encoder, texts, task_counts=[1, 9], repeats=1, heads=["trained"])


def test_the_script_times_per_text_calls_unless_told_not_to(tiny_encoder, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_heads_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    data = tmp_path / "data"
    for name in ("tweet_emotion", "tweet_hate", "tweet_offensive"):
        (data / name).mkdir(parents=True)
        for split, seed in (("test", 0), ("validation", 1)):
            rows = [{"text": text, "label": 0} for text in synthetic_texts(6, seed=seed)]
            (data / name / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (data / "go_emotions").mkdir()
    (data / "go_emotions" / "train.jsonl").write_text('{"text": "a", "labels": ["x"]}\n')
    common = ["--encoder", tiny_encoder, "--data-dir", str(data), "--tasks", "1,4", "--batch-sizes", "4,1"]
    common += ["--num-texts", "8", "--batch1-texts", "2", "--repeats", "1"]
    for flag, calls in (([], ["list"] * 6 + ["per text"] * 3), (["--no-per-text-calls"], ["list"] * 6)):
        output = tmp_path / f"rows{len(flag)}.json"
        script.main([*common, *flag, "--output", str(output)])
        rows = json.loads(output.read_text())
        assert [row["calls"] for row in rows] == calls
        assert [row["batch_size"] for row in rows] == [4, 4, 4, 1, 1, 1, 1, 1, 1][: len(calls)]
        assert ("| per text |" in capsys.readouterr().out) is ("per text" in calls)
        assert output.with_suffix(".png").stat().st_size > 0  # the plot beside the JSON


def test_the_script_refuses_bad_heads_and_an_unwritable_output_before_any_model(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("bench_heads_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "measure_heads", lambda *args, **kwargs: pytest.fail("a model was built"))
    monkeypatch.setattr(script, "load_texts", lambda *args, **kwargs: pytest.fail("the texts were read"))
    common = ["--encoder", str(tmp_path), "--data-dir", str(tmp_path)]
    for flags, message in (
        (["--heads", "bogus"], "argument --heads: 'bogus': choose from random, calibrated"),
        (["--tasks", "1,0"], "argument --tasks: '0' in '1,0': must be an integer >= 1"),
    ):
        with pytest.raises(SystemExit) as stopped:
            script.main([*common, *flags])
        error = capsys.readouterr().err
        assert stopped.value.code == 2 and error.startswith("usage: ") and message in error
    (tmp_path / "rows.json").mkdir()
    with pytest.raises(SystemExit, match=r"^error: --output .*rows.json' is a folder: give a file path"):
        script.main([*common, "--output", str(tmp_path / "rows.json")])
