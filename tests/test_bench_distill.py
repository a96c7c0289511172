"""The distillation benchmark: plain teachers trained (or reused), distilled into one student, and the report's
arithmetic and targets (tiny encoder, synthetic tasks; no accuracy assertions)."""

import dataclasses
import json

import pytest
from helpers import script_main
from transformers import AutoModel

import polyhead.benchmark.distillation as bench
from polyhead.benchmark.distillation import (
    STAMP,
    TINY,
    DistillBenchSettings,
    distill_arguments,
    distill_table,
    parse_teachers,
    run_distill_bench,
    summarize,
    train_teacher,
    write_tiny_data,
)
from polyhead.distill import parse_distill_args


def _distillation(agreements, accuracies, speedup, teachers=2):
    """A `results["distillation"]`: agreements {task: (all, confident)}, accuracies {task: (teacher, student)}."""
    return {
        "agreement": {
            task: {"value": value, "n": 100, "confident": {"min_margin": 0.5, "n": 80, "agreement": confident}}
            for task, (value, confident) in agreements.items()
        },
        "test": {
            task: {"teacher": {"accuracy": teacher}, "student": {"accuracy": student}, "agreement": 0.97}
            for task, (teacher, student) in accuracies.items()
        },
        "speed": {
            "texts": 256,
            "batch_size": 32,
            "torch_threads": 2,
            "student_texts_per_second": 100.0 * speedup,
            "teachers_texts_per_second": 100.0,
            "num_teachers": teachers,
            "speedup": speedup,
        },
    }


def test_summary_and_table_check_each_target():
    distillation = _distillation(
        {"a": (0.95, 0.99), "b": (0.949, 0.97)}, {"a": (0.90, 0.889), "b": (0.80, 0.791)}, speedup=1.79
    )
    summary = summarize(distillation)
    a, b = summary["tasks"]["a"], summary["tasks"]["b"]
    assert a["difference"] == pytest.approx(-1.1) and not a["accuracy_met"] and a["agreement_met"]
    assert b["difference"] == pytest.approx(-0.9) and b["accuracy_met"] and not b["agreement_met"]
    assert summary["speedup_target"] == pytest.approx(1.8) and not summary["speed_met"]
    report = {
        "summary": summary,
        "distillation": distillation,
        "teachers": {"a": {"task": "sst2"}, "b": {"task": "x"}},
    }
    table = distill_table(report)
    assert "| `a` (sst2) | 90.0 | 88.9 | -1.1 | 95.0% (100) | 99.0% (80) | 97.0% |" in table
    assert "agreement >= 95%: not met (1 of 2 tasks); speed >= 1.8x: not met." in table
    assert "test accuracy within 1.0 point of each teacher: not met" in table
    met = summarize(_distillation({"a": (0.96, 0.99)}, {"a": (0.9, 0.9)}, speedup=0.9, teachers=1))
    assert met["tasks"]["a"]["accuracy_met"] and met["tasks"]["a"]["agreement_met"] and met["speed_met"]


def test_teachers_are_parsed_and_checked(tmp_path):
    data = write_tiny_data(tmp_path / "data")
    assert parse_teachers(["s=tiny_sentiment", "t=tiny_topic:48"], data) == [
        ("s", "tiny_sentiment", None),
        ("t", "tiny_topic", 48),
    ]
    with pytest.raises(ValueError, match="write name=task or name=task:rows"):
        parse_teachers(["tiny_sentiment"], data)
    with pytest.raises(ValueError, match="write name=task or name=task:rows"):
        parse_teachers(["s=tiny_sentiment:many"], data)
    with pytest.raises(FileNotFoundError, match=r"no \['train', 'test'\] split in .*nowhere; give --data-dir"):
        parse_teachers(["s=nowhere"], data)
    with pytest.raises(ValueError, match="task name"):
        parse_teachers(["my/sentiment=tiny_sentiment"], data)
    with pytest.raises(ValueError, match="Teacher names must differ"):
        parse_teachers(["s=tiny_sentiment", "s=tiny_topic"], data)
    for name, row in (
        ("multi", {"text": "a", "labels": ["x"]}),
        ("pair", {"text": "a", "text_pair": "b", "label": "x"}),
    ):
        for split in ("train", "test"):
            (data / name).mkdir(exist_ok=True)
            (data / name / f"{split}.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
        with pytest.raises(ValueError, match=f"{name} is not a single-label, single-text task"):
            parse_teachers([f"t={name}"], data)


def test_the_student_command_line_parses_and_names_every_teacher_and_split(tmp_path):
    settings = DistillBenchSettings(**{**TINY, "extra_texts": ("traffic.jsonl",)})
    teachers = [("s", "tiny_sentiment", None), ("t", "tiny_topic", 48)]
    argv = distill_arguments(settings, teachers, tmp_path / "data", tmp_path / "work")
    model_args, data_args, distill_args, training_args = parse_distill_args(argv)
    assert distill_args.teacher == [f"s={tmp_path / 'work/teachers/s'}", f"t={tmp_path / 'work/teachers/t'}"]
    assert distill_args.texts[-1] == "traffic.jsonl" and len(distill_args.texts) == 3
    assert [path.split("/")[-2:] for path in distill_args.held_out_texts] == [
        ["tiny_sentiment", "test.jsonl"],
        ["tiny_topic", "test.jsonl"],
    ]
    assert data_args.tasks == [f"s={tmp_path / 'data/tiny_sentiment'}", f"t={tmp_path / 'data/tiny_topic'}"]
    assert model_args.max_length == distill_args.teacher_max_length == settings.max_length
    assert distill_args.distill_temperature == settings.temperature and training_args.bf16 is False
    assert training_args.output_dir == str(tmp_path / "work/student")


def test_a_teacher_is_reused_only_with_the_same_settings_and_never_left_half_written(tmp_path, monkeypatch):
    data = write_tiny_data(tmp_path / "data")
    settings = DistillBenchSettings(**TINY)
    folder = tmp_path / "teachers" / "s"
    assert train_teacher("tiny_sentiment", 32, settings, data, folder)
    stamp = json.loads((folder / STAMP).read_text())
    assert stamp["task"] == "tiny_sentiment" and stamp["rows"] == 32 and stamp["seed"] == settings.seed
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "bad", "1": "good"}  # labels sorted
    assert not train_teacher("tiny_sentiment", 32, settings, data, folder)  # same settings: reused
    assert train_teacher("tiny_sentiment", 40, settings, data, folder)  # other rows: retrained
    train_file = data / "tiny_sentiment" / "train.jsonl"
    train_file.write_text(train_file.read_text() + '{"text": "good day", "label": "good"}\n', encoding="utf-8")
    assert train_teacher("tiny_sentiment", 40, settings, data, folder)  # other data: retrained
    changed = dataclasses.replace(settings, teacher_epochs=2.0)
    from transformers import Trainer

    def broken(self, *args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(Trainer, "train", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        train_teacher("tiny_sentiment", 40, changed, data, folder)
    assert json.loads((folder / STAMP).read_text())["rows"] == 40  # the previous teacher is intact
    assert [path.name for path in folder.parent.iterdir()] == ["s"]  # no half-written folder beside it
    with pytest.raises(ValueError, match="tiny_sentiment has one label in its first 1 train row"):
        train_teacher("tiny_sentiment", 1, changed, data, folder)


def test_bad_extra_texts_stop_the_run_before_any_teacher_trains(tmp_path, monkeypatch):
    data = write_tiny_data(tmp_path / "data")
    monkeypatch.setattr(bench, "train_teacher", lambda *args: pytest.fail("a teacher trained"))
    other = tmp_path / "other.jsonl"
    other.write_text('{"message": "hello"}\n', encoding="utf-8")
    for extra, message in ((tmp_path / "missing.jsonl", "not found"), (other, r"column\(s\) \['text'\] not found")):
        settings = DistillBenchSettings(**{**TINY, "extra_texts": (str(extra),)})
        with pytest.raises(ValueError, match=message):
            run_distill_bench(settings, data, tmp_path / "work", tmp_path / "out.json", log=lambda line: None)


def test_the_script_checks_its_paths_and_lists_before_any_teacher_trains(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "train_teacher", lambda *args: pytest.fail("a teacher trained"))
    (tmp_path / "afile").write_text("")
    (tmp_path / "folder.json").mkdir()
    common = ["--tiny", "--work-dir", str(tmp_path / "work"), "--output", str(tmp_path / "d.json")]
    for flags, message in (
        (["--work-dir", str(tmp_path / "afile")], r"--work-dir '.*afile': .*afile is a file, not a folder"),
        (["--output", str(tmp_path / "folder.json")], r"--output '.*folder.json' is a folder: give a file path"),
        (["--output", str(tmp_path / "afile" / "d.json")], r"--output '.*afile': .*afile is a file, not a folder"),
        (["--extra-texts", str(tmp_path / "missing.jsonl")], r"Text file\(s\) not found: \['.*missing.jsonl'\]"),
    ):
        with pytest.raises(SystemExit, match=f"^error: {message}"):  # one line, exit status 1
            script_main("bench_distill")([*common, *flags])
    with pytest.raises(SystemExit) as stopped:
        script_main("bench_distill")([*common, "--teachers", "a=sst2,,b=trec"])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and "argument --teachers: give comma-separated names with no empty item" in error
    assert not (tmp_path / "work").exists()


def test_tiny_run_end_to_end_with_extra_texts_of_other_columns(tmp_path):
    data = write_tiny_data(tmp_path / "data")
    extra = tmp_path / "traffic.jsonl"
    rows = [json.loads(line) for line in (data / "tiny_topic" / "train.jsonl").read_text().splitlines()]
    extra.write_text(
        "".join(json.dumps({"text": row["text"] + " good", "id": i}) + "\n" for i, row in enumerate(rows))
    )
    output = tmp_path / "report" / "distill.json"
    argv = ["--tiny", "--work-dir", str(tmp_path / "work"), "--output", str(output), "--extra-texts", str(extra)]
    report = script_main("bench_distill")(argv)
    assert {name: entry["trained"] for name, entry in report["teachers"].items()} == {"sentiment": True, "topic": True}
    distillation = report["distillation"]
    held_out = 24 + 24  # the two test splits
    assert all(entry["n"] == held_out for entry in distillation["agreement"].values())
    # the two train splits, the extra texts and the held-out test texts
    assert distillation["num_texts"]["unlabeled"] == 64 + 64 + len(rows) + held_out
    assert distillation["num_texts"]["held_out"] == held_out
    for task, row in report["summary"]["tasks"].items():
        test = distillation["test"][task]
        assert row["difference"] == pytest.approx(100 * (test["student"]["accuracy"] - test["teacher"]["accuracy"]))
    assert json.loads(output.read_text())["summary"] == report["summary"]
    assert output.with_suffix(".png").stat().st_size > 0
    assert "| `topic` (tiny_topic) |" in output.with_suffix(".md").read_text()
    model = AutoModel.from_pretrained(report["student_dir"], trust_remote_code=True)
    assert sorted(model.config.tasks) == ["sentiment", "topic"]
    again = script_main("bench_distill")(argv)  # teachers reused, the student replaced
    assert not any(entry["trained"] for entry in again["teachers"].values())
