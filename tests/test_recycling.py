"""The recycling benchmark: raw vs exported multitask encoder fine-tuned on held-out tasks (tiny encoder, synthetic
tasks; no accuracy assertions, only the report's structure and arithmetic)."""

import dataclasses
import json
import re

import pytest
from helpers import script_main
from transformers import AutoModel

import polyhead.benchmark.recycling as recycling
from polyhead.benchmark.recycling import (
    RAW,
    RECYCLED,
    TINY,
    RecyclingSettings,
    estimate_cost,
    recycling_table,
    run_recycling,
    save_report,
    summarize,
    task_spec,
    write_tiny_data,
)


def _runs(scores):
    # scores: {(task, start): [accuracy per seed]}
    return [
        {"task": task, "start": start, "seed": seed, "accuracy": value}
        for (task, start), values in scores.items()
        for seed, value in enumerate(values)
    ]


def test_summary_is_paired_per_seed_and_averages_tasks_per_seed():
    runs = _runs(
        {("a", RAW): [0.5, 0.7], ("a", RECYCLED): [0.6, 0.7], ("b", RAW): [0.9, 0.9], ("b", RECYCLED): [0.8, 1.0]}
    )
    summary = summarize(runs, ["a", "b"], [0, 1, 2])
    assert summary["seeds"] == [0, 1]  # seed 2 has no run: left out
    assert summary["tasks"]["a"][RAW]["mean"] == pytest.approx(0.6)
    assert summary["tasks"]["a"][RAW]["std"] == pytest.approx(0.1414, abs=1e-4)  # sample std (n - 1)
    assert summary["tasks"]["a"]["difference"]["values"] == pytest.approx([0.1, 0.0])
    assert summary["average"][RAW]["values"] == pytest.approx([0.7, 0.8])
    assert summary["average"][RECYCLED]["values"] == pytest.approx([0.7, 0.85])
    assert summary["average"]["difference"]["mean"] == pytest.approx(0.025)
    table = recycling_table({"summary": summary, "settings": {"encoder": "enc"}})
    assert "| a | 60.00 ± 14.14 | 65.00 ± 7.07 | +5.00 ± 7.07 |" in table
    assert "| **average** | 75.00 ± 7.07 | 77.50 ± 10.61 | +2.50 ± 3.54 |" in table


def test_an_incomplete_seed_is_not_averaged():
    runs = _runs({("a", RAW): [0.5], ("a", RECYCLED): [0.6], ("b", RAW): [0.9]})
    assert summarize(runs, ["a", "b"], [0]) == {"seeds": [], "tasks": {}}


def test_the_table_and_the_plot_always_belong_to_the_json_beside_them(tmp_path):
    settings = {"encoder": "enc", "seeds": [0, 1], "target_tasks": ["a", "b"]}
    runs = _runs(
        {("a", RAW): [0.5, 0.7], ("a", RECYCLED): [0.6, 0.7], ("b", RAW): [0.9, 0.9], ("b", RECYCLED): [0.8, 1.0]}
    )
    output = tmp_path / "r.json"
    done = {"settings": settings, "runs": runs, "summary": summarize(runs, ["a", "b"], [0, 1])}
    assert save_report(done, output) == [output, output.with_suffix(".md"), output.with_suffix(".png")]
    assert "| a |" in output.with_suffix(".md").read_text() and output.with_suffix(".png").is_file()
    # a rerun interrupted after its first fine-tuning run: no seed complete, the earlier table and plot must go
    rerun = {"settings": settings, "runs": runs[:1], "summary": summarize(runs[:1], ["a", "b"], [0, 1])}
    assert save_report(rerun, output) == [output, output.with_suffix(".md")]
    assert json.loads(output.read_text())["runs"] == runs[:1]
    note = output.with_suffix(".md").read_text()
    assert note.startswith("No complete seed yet: 1 of 8 fine-tuning runs scored (their scores are in r.json)")
    assert "| a |" not in note and not output.with_suffix(".png").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--target-tasks", "bogus"], r"^error: No .*bogus/train.jsonl: give --data-dir"),
        (["--output", "{tmp}"], r"^error: --output '.*' is a folder: give a file path"),
        (["--work-dir", "{tmp}/data/src_topic/train.jsonl"], r"^error: --work-dir '.*': .* is a file, not a folder"),
        (["--seeds", "x"], "argument --seeds: 'x': not an integer >= 0"),
        (["--seeds", "0,0"], "argument --seeds: 0 repeated in '0,0': give each once"),
        (["--target-tasks", ""], "argument --target-tasks: give comma-separated names with no empty item"),
    ],
)
def test_the_script_refuses_bad_arguments_before_any_training(flags, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(recycling, "train", lambda config: pytest.fail("a model trained"))
    data = write_tiny_data(tmp_path / "data")
    argv = ["--encoder", "unused", "--data-dir", str(data), "--source-tasks", "src_topic"]
    argv += ["--target-tasks", "tgt_topic", "--work-dir", str(tmp_path / "w"), "--output", str(tmp_path / "r.json")]
    with pytest.raises(SystemExit) as stopped:
        script_main("bench_recycling")([*argv, *[flag.format(tmp=tmp_path) for flag in flags]])
    if message.startswith("^error: "):  # one line, exit status 1
        assert re.match(message, stopped.value.code)
    else:  # argparse: the usage, the option and the problem, exit status 2
        error = capsys.readouterr().err
        assert stopped.value.code == 2 and error.startswith("usage: ") and message in error
    assert not (tmp_path / "w").exists() and not (tmp_path / "r.json").exists()


def test_task_spec_reads_the_row_layout(tmp_path):
    for name, row in (
        ("multi", {"text": "a", "labels": ["x"]}),
        ("pair", {"text": "a", "text_pair": "b", "label": "x"}),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.jsonl").write_text(json.dumps(row) + "\n")
    assert task_spec("multi", tmp_path)["label_column"] == "labels"
    spec = task_spec("pair", tmp_path, max_train_samples=5)
    assert spec["text_pair_column"] == "text_pair" and spec["max_train_samples"] == 5
    assert list(spec["data_files"]) == ["train"]
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        task_spec("absent", tmp_path)


def test_bad_task_lists_fail_before_any_training(tmp_path):
    data = write_tiny_data(tmp_path / "data")
    settings = RecyclingSettings(**{**TINY, "target_tasks": ("src_topic",)})
    with pytest.raises(ValueError, match="held out.*src_topic"):
        run_recycling(settings, data, tmp_path / "work", tmp_path / "out.json", log=lambda line: None)
    settings = RecyclingSettings(**{**TINY, "target_tasks": ("nope",)})
    with pytest.raises(FileNotFoundError, match="nope"):
        run_recycling(settings, data, tmp_path / "work", tmp_path / "out.json", log=lambda line: None)
    assert not (tmp_path / "work").exists()


def test_one_seed_end_to_end_on_the_tiny_encoder(tmp_path):
    data = write_tiny_data(tmp_path / "data")
    settings = RecyclingSettings(**{**TINY, "seeds": (3,), "target_tasks": ("tgt_topic",)})
    lines = []
    report = run_recycling(settings, data, tmp_path / "work", tmp_path / "out.json", log=lines.append)
    assert lines[0].startswith("Cost: ") and estimate_cost(settings, data)["training_runs"] == 3
    assert report["complete"] and report["multitask"]["tasks"].keys() == {"src_sentiment", "src_topic"}
    assert [(r["start"], r["seed"], r["test_examples"]) for r in report["runs"]] == [(RAW, 3, 32), (RECYCLED, 3, 32)]
    assert json.loads((tmp_path / "out.json").read_text())["summary"] == report["summary"]
    assert (tmp_path / "out.md").read_text().startswith("| held-out task |")
    assert (tmp_path / "out.png").read_bytes().startswith(b"\x89PNG")
    # the multitask run capped its tasks, and the fine-tuned models are gone once scored
    results = json.loads((tmp_path / "work" / "multitask" / "model" / "results.json").read_text())
    assert results["train_cap"]["max_train_samples_per_task"] == 64
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["encoder", "multitask"]
    AutoModel.from_pretrained(tmp_path / "work" / "encoder")
    # fine-tuning again from the same multitask model: not retrained; other multitask settings are refused
    weights = tmp_path / "work" / "multitask" / "model" / "model.safetensors"
    written = weights.stat().st_mtime_ns
    again = dataclasses.replace(settings, seeds=(4,))
    report = run_recycling(
        again, data, tmp_path / "work", tmp_path / "again.json", log=lines.append, reuse_multitask=True
    )
    assert (
        weights.stat().st_mtime_ns == written and report["summary"]["seeds"] == [4] and report["multitask"]["reused"]
    )
    with pytest.raises(ValueError, match=r"other settings \(num_train_epochs\)"):
        changed = dataclasses.replace(settings, source_epochs=2.0)
        run_recycling(changed, data, tmp_path / "work", tmp_path / "x.json", log=lines.append, reuse_multitask=True)
    with pytest.raises(ValueError, match="No trained multitask model"):
        run_recycling(settings, data, tmp_path / "empty", tmp_path / "x.json", log=lines.append, reuse_multitask=True)


@pytest.mark.slow
def test_script_tiny_run(tmp_path, capsys):
    report = script_main("bench_recycling")(
        ["--tiny", "--work-dir", str(tmp_path / "w"), "--output", str(tmp_path / "r.json")]
    )
    assert len(report["runs"]) == 2 * 2 * 2  # 2 seeds x 2 held-out tasks x 2 starts
    assert set(report["summary"]["tasks"]) == {"tgt_sentiment", "tgt_topic"}
    assert "| **average** |" in capsys.readouterr().out
