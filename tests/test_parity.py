"""The seed-averaged multitask vs single-task comparison: t quantiles, intervals, verdicts, the seeded runs on the tiny
encoder (one command, shared data, resume without retraining), and the tables of the run's end and the model card."""

import json
import math
from pathlib import Path

import pytest
from helpers import tiny_task_specs, training_args

from polyhead.evaluation import comparison
from polyhead.evaluation.comparison import compare_runs, format_seed_comparison_table, paired_difference, t_quantile
from polyhead.publishing.model_card import render_model_card
from polyhead.run_folder import read_baseline_results
from polyhead.training import parity
from polyhead.training.arguments import DataArguments, ModelArguments, MultitaskTrainingArguments
from polyhead.training.trainer import run


def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")  # scipy comes with scikit-learn; the table must not need it
    for df in [*range(1, 31), 35, 45, 50, 80, 100, 200, 1000]:
        assert t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-3), df
    with pytest.raises(ValueError, match="at least 2 runs"):
        t_quantile(0)


def test_paired_difference_by_hand():
    # differences 0.02, 0.04, 0.03: mean 0.03, sd 0.01, half-width 4.303 * 0.01 / sqrt(3)
    row = paired_difference([0.82, 0.84, 0.83], [0.80, 0.80, 0.80])
    half = 4.303 * 0.01 / math.sqrt(3)
    assert row["mean"] == pytest.approx(0.03) and row["std"] == pytest.approx(0.01)
    assert (row["low"], row["high"]) == (pytest.approx(0.03 - half), pytest.approx(0.03 + half))
    assert row["verdict"] == "better"
    assert paired_difference([0.70, 0.72, 0.71], [0.80, 0.81, 0.80])["verdict"] == "worse"
    assert paired_difference([0.80, 0.70, 0.90], [0.80, 0.80, 0.80])["verdict"] == "within noise"
    single = paired_difference([0.9], [0.8])  # one seed: no interval, no verdict beyond noise
    assert single["low"] is None and single["verdict"] == "within noise"
    with pytest.raises(ValueError, match="Paired runs"):
        paired_difference([0.9, 0.8], [0.8])


def _results(scores, primary="f1_macro"):
    return {
        "tasks": {task: {primary: value, "accuracy": value} for task, value in scores.items()},
        "primary_metrics": {task: primary for task in scores},
        "split": "test",
    }


def test_compare_runs_per_task_and_average():
    runs = [
        (_results({"a": 0.80, "b": 0.60}), _results({"a": 0.78, "b": 0.70})),
        (_results({"a": 0.82, "b": 0.62}), _results({"a": 0.79, "b": 0.71})),
        (_results({"a": 0.81, "b": 0.61}), _results({"a": 0.80, "b": 0.69})),
    ]
    result = compare_runs(runs, [0, 1, 2])
    assert result["seeds"] == [0, 1, 2] and result["split"] == "test"
    assert result["tasks"]["a"]["multitask"]["mean"] == pytest.approx(0.81)
    assert result["tasks"]["a"]["single_task"]["values"] == [0.78, 0.79, 0.80]
    assert result["tasks"]["b"]["difference"]["verdict"] == "worse"
    assert result["average"]["multitask"]["values"] == pytest.approx([0.70, 0.72, 0.71])
    assert result["average"]["single_task"]["values"] == pytest.approx([0.74, 0.75, 0.745])
    table = format_seed_comparison_table(result)
    assert "b  " in table and "worse" in table and "average" in table and "3 seeds [0, 1, 2]" in table
    assert "81.0 ± 1.0" in table  # points: mean ± std over seeds
    assert comparison.VERDICTS == ("better", "within noise", "worse")


def test_seeds_need_baselines(tmp_path):
    with pytest.raises(ValueError, match="single_task_baselines"):
        MultitaskTrainingArguments(output_dir=str(tmp_path), seeds=3)
    with pytest.raises(ValueError, match="seeds must be"):
        MultitaskTrainingArguments(output_dir=str(tmp_path), seeds=0, single_task_baselines=True)


def test_seeded_comparison_runs_shares_data_and_resumes(tmp_path, monkeypatch, capsys):
    from polyhead.training import trainer as training

    calls, prepares = [], []
    real_train, real_prepare = training.train_and_evaluate, training.prepare_tasks

    def train_and_evaluate(prepared, *args, **kwargs):
        calls.append((args[-1].seed, tuple(prepared.data)))
        return real_train(prepared, *args, **kwargs)

    def prepare_tasks(*args, **kwargs):
        prepares.append(1)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(training, "train_and_evaluate", train_and_evaluate)
    monkeypatch.setattr(training, "prepare_tasks", prepare_tasks)
    specs = tiny_task_specs(16)[:2]
    args = training_args(tmp_path, single_task_baselines=True, seeds=2, seed=3, max_steps=2)
    results = run(ModelArguments(), DataArguments(tasks=specs), args)
    assert "2 seeds x (1 multitask + 2 single-task models) = 6 trainings." in capsys.readouterr().out
    assert prepares == [1]  # the data is loaded and tokenized once for all 6 trainings
    assert sorted(calls) == sorted(
        [(s, names) for s in (3, 4) for names in (("sentiment", "topic"), ("sentiment",), ("topic",))]
    )
    saved = json.loads((tmp_path / "run" / "model" / "results.json").read_text())
    assert saved["comparison"] == results["comparison"] == results["multitask"]["comparison"]
    assert saved["comparison"]["seeds"] == [3, 4]
    row = saved["comparison"]["tasks"]["sentiment"]
    assert len(row["multitask"]["values"]) == len(row["difference"]["values"]) == 2
    assert row["difference"]["verdict"] in comparison.VERDICTS
    # each seed's multitask value is that seed's own run
    other = json.loads((tmp_path / "run" / "seeds" / "seed-4" / "model" / "results.json").read_text())
    assert row["multitask"]["values"][1] == other["tasks"]["sentiment"][row["metric"]]
    assert (tmp_path / "run" / "seeds" / "seed-4" / "baselines" / "topic" / "model" / "config.json").is_file()

    # Resumed: nothing finished is retrained, the comparison is the same.
    calls.clear()
    resumed = run(
        ModelArguments(),
        DataArguments(tasks=specs),
        training_args(
            tmp_path, single_task_baselines=True, seeds=2, seed=3, max_steps=2, resume_from_checkpoint="true"
        ),
    )
    assert "6 trainings, 6 already finished (reused)" in capsys.readouterr().out
    assert calls == []
    assert resumed["comparison"] == results["comparison"]

    # Resumed with other settings or tasks: refused before anything trains (the old runs were reused as if trained so)
    for model_args, tasks in ((ModelArguments(task_embeddings=True), specs), (ModelArguments(), tiny_task_specs(16))):
        with pytest.raises(
            ValueError, match=r"Cannot reuse the finished run in .*: it was trained with other settings"
        ):
            run(model_args, DataArguments(tasks=tasks), training_args(
                tmp_path, single_task_baselines=True, seeds=2, seed=3, max_steps=2, resume_from_checkpoint="true"
            ))  # fmt: skip
        assert calls == []

    # A lost run (its model folder deleted) is the only one trained again.
    import shutil

    shutil.rmtree(tmp_path / "run" / "seeds" / "seed-4" / "baselines" / "topic" / "model")
    run(
        ModelArguments(),
        DataArguments(tasks=specs),
        training_args(
            tmp_path, single_task_baselines=True, seeds=2, seed=3, max_steps=2, resume_from_checkpoint="true"
        ),
    )
    assert calls == [(4, ("topic",))]

    # Other settings (a larger budget): nothing is reused.
    calls.clear()
    args = training_args(
        tmp_path, single_task_baselines=True, seeds=2, seed=3, max_steps=3, resume_from_checkpoint="true"
    )
    run(ModelArguments(), DataArguments(tasks=specs), args)
    assert len(calls) == 6


def test_model_dir_may_not_be_in_the_seeds_folder(tmp_path):
    args = training_args(
        tmp_path, single_task_baselines=True, seeds=2, model_dir=str(tmp_path / "run" / "seeds" / "x")
    )
    with pytest.raises(ValueError, match="other seeds"):
        parity.check_seed_locations(args)


def test_model_card_shows_the_seeded_comparison():
    runs = [
        (_results({"a": 0.80}), _results({"a": 0.70})),
        (_results({"a": 0.82}), _results({"a": 0.71})),
    ]
    results = {**_results({"a": 0.80}), "average": {"primary": 0.8}, "comparison": compare_runs(runs, [0, 1])}
    config = {"tasks": {"a": {"labels": ["x", "y"], "problem_type": "single_label_classification"}}}
    card = render_model_card(config, results, repo_id="org/m", baseline_results=_results({"a": 0.7}))
    section = card[card.index("## Multitask vs single-task models") :]
    assert "under 2 seeds" in section and "| `a` |" in section and "**average**" in section
    assert "81.0 ± 1.4" in section and "| better |" in section
    assert card.count("## Multitask vs single-task models") == 1  # the single-run table gives way


def _script(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parity_benchmark_refuses_bad_seeds_and_paths_before_loading_data(tmp_path, monkeypatch, capsys):
    import polyhead.benchmark.parity as bench_parity

    monkeypatch.setattr(bench_parity, "load_tokenizer", lambda *args: pytest.fail("the data was loaded"))
    bench = _script("bench_parity")
    common = ["--tiny", "--work-dir", str(tmp_path / "w"), "--output", str(tmp_path / "w" / "report.json")]
    with pytest.raises(SystemExit) as stopped:
        bench.main([*common, "--seeds", "0"])
    error = capsys.readouterr().err
    assert (
        stopped.value.code == 2
        and error.startswith("usage: ")
        and "argument --seeds: '0': must be an integer >= 1" in error
    )
    (tmp_path / "afile").write_text("")
    for flags, message in (
        (["--output", str(tmp_path)], r"--output '.*' is a folder: give a file path"),
        (["--work-dir", str(tmp_path / "afile")], r"--work-dir '.*afile': .*afile is a file, not a folder"),
    ):
        with pytest.raises(SystemExit, match=f"^error: {message}"):
            bench.main([*common, *flags])
    assert not (tmp_path / "w").exists()


def test_train_script_prints_the_seeded_table(tmp_path, capsys):
    rows = [{"text": f"{label} {word}", "label": label} for label in ("good", "bad") for word in ("a", "b", "c", "d")]
    folder = tmp_path / "data"
    folder.mkdir()
    for split in ("train", "test"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    argv = [
        *("--tasks", f"one={folder}", f"two={folder}", "--output_dir", str(tmp_path / "out")),
        *("--single_task_baselines", "true", "--seeds", "2", "--max_steps", "1", "--report_to", "none"),
        *("--validation_size", "0", "--disable_tqdm", "true"),
    ]
    _script("train").main(argv)
    out = capsys.readouterr().out
    table = out[out.index("Multitask vs single-task models over seeds") :]
    assert "95% interval" in table and "\none " in table and "\naverage " in table and "2 seeds [42, 43]" in table


def test_parity_descriptions_carry_flags_that_reproduce_each_configuration():
    """Each configuration's description (in the report and the printed table) is built from its overrides: parsing
    its flags with the training and distillation parsers gives those overrides back."""
    import re
    import shlex

    from polyhead.benchmark import parity as bench_parity
    from polyhead.distill.arguments import parse_distill_args
    from polyhead.training.arguments import build_parser

    assert bench_parity.flag_value(3e-3) == "3e-3" and bench_parity.flag_value(0.1) == "0.1"
    assert bench_parity.flag_value(5e-5) == "5e-5" and bench_parity.flag_value(2.0) == "2"
    assert bench_parity.flag_value(2.5e-3) == "0.0025" and bench_parity.flag_value(True) == "true"
    for config, groups in bench_parity.CONFIGS.items():
        description = bench_parity.describe(config)
        assert description.startswith(bench_parity.PURPOSES[config]), config
        flags = re.findall(r"`(--[^`]*)`", description)
        argv = shlex.split(flags[0]) if flags else []
        distilled = bench_parity.DISTILLED.get(config, {})
        if distilled:
            parsed = parse_distill_args([*argv, "--output_dir", "out", "--teacher", "t=x"])
        else:
            parsed = build_parser().parse_args_into_dataclasses([*argv, "--output_dir", "out"])
        values = {key: value for arguments in parsed for key, value in vars(arguments).items()}
        expected = {key: value for group in groups for key, value in group.items()} | distilled
        assert {key: values[key] for key in expected} == expected, config
        for task, weight in bench_parity.LOSS_WEIGHTS.get(config, {}).items():
            assert f"loss_weight={bench_parity.flag_value(weight)}`: " in description and task in description
    assert "`" not in bench_parity.describe("multitask")  # nothing overridden: no flags


@pytest.mark.slow
def test_parity_benchmark_smoke_and_reuse(tmp_path, capsys):
    bench = _script("bench_parity")
    configs = "multitask,pcgrad,task_embeddings"
    argv = ["--tiny", "--configs", configs, "--seeds", "2", "--work-dir", str(tmp_path / "w")]
    argv += ["--output", str(tmp_path / "report.json")]
    report = bench.main(argv)
    assert set(report["configs"]) == {"multitask", "pcgrad", "task_embeddings"}
    # a configuration's model overrides reach its model only
    saved = {
        c: json.loads((tmp_path / "w" / c / "seed-1" / "model" / "config.json").read_text())
        for c in configs.split(",")
    }
    assert saved["task_embeddings"].get("task_embeddings") and not saved["multitask"].get("task_embeddings")
    assert report["configs"]["pcgrad"]["comparison"]["seeds"] == [0, 1]
    assert (tmp_path / "report.png").is_file() and "| average | primary |" in (tmp_path / "report.md").read_text()
    capsys.readouterr()
    again = bench.main(argv)  # every run finished: read back, nothing trained
    assert again["configs"] == json.loads(json.dumps(report["configs"]))
    assert "train_runtime" not in capsys.readouterr().out
    # the report alone, from the finished runs (no data loaded): the same comparisons
    only = bench.main([*argv[:-1], str(tmp_path / "only.json"), "--report-only"])
    assert only["configs"] == again["configs"]
    # every remedy is also compared with plain multitask, whichever order the configurations come in
    assert "against" not in report["configs"]["multitask"]
    late = bench.main([*argv[:-1], str(tmp_path / "late.json"), "--report-only", "--configs", "pcgrad,multitask"])
    assert late["configs"]["pcgrad"]["against"] == json.loads(json.dumps(report["configs"]["pcgrad"]["against"]))
    assert late["configs"]["pcgrad"]["against"]["comparison"]["seeds"] == [0, 1]


def test_parity_benchmark_born_again_distills_the_seeds_single_task_models(tmp_path, capsys):
    """`born_again`: the seed's single-task models teach the multitask model on their own train and test rows, so
    each teacher's test score in the student's results is its baseline's own score."""
    bench = _script("bench_parity")
    work = tmp_path / "w"
    argv = ["--tiny", "--configs", "born_again", "--seeds", "1", "--work-dir", str(work)]
    report = bench.main([*argv, "--output", str(tmp_path / "report.json")])
    assert report["configs"]["born_again"]["comparison"]["seeds"] == [0]
    results = json.loads((work / "born_again" / "seed-0" / "model" / "results.json").read_text())
    summary = results["distillation"]
    baselines = read_baseline_results(work / "baselines-seed-0" / "model")
    for task, entry in summary["test"].items():
        assert entry["teacher"] == pytest.approx(baselines["tasks"][task])
    assert [t["source"] for t in summary["teachers"]] == [
        str(work / "baselines-seed-0" / "baselines" / task / "model") for task in ("sentiment", "topic")
    ]
    assert (summary["gold_weight"], summary["gold_weight_schedule"]) == (1.0, "linear")
    assert summary["num_texts"]["train"] == {"sentiment": 64, "topic": 64}  # both tasks' 32 train texts, every head
    only = bench.main([*argv, "--output", str(tmp_path / "only.json"), "--report-only"])
    assert only["configs"]["born_again"] == json.loads(json.dumps(report["configs"]["born_again"]))
    # with heads at 3e-3, the single-task models trained with heads at 3e-3 teach (trained first, even without
    # --matched-baselines), and the student trains its heads at that rate too
    config = "born_again_head_lr_3e-3"
    bench.main([*argv[:2], config, *argv[3:], "--output", str(tmp_path / "hl.json")])
    folder = work / config / "seed-0" / "model"
    summary = json.loads((folder / "results.json").read_text())["distillation"]
    teachers = work / "baselines-head_learning_rate=0.003-seed-0"
    assert [t["source"] for t in summary["teachers"]] == [
        str(teachers / "baselines" / task / "model") for task in ("sentiment", "topic")
    ]
    for task, entry in summary["test"].items():
        assert entry["teacher"] == pytest.approx(read_baseline_results(teachers / "model")["tasks"][task])
    saved = json.loads((folder / "training_args.json").read_text())["training"]
    assert saved["head_learning_rate"] == 3e-3


@pytest.mark.slow
def test_parity_benchmark_compares_bf16_with_the_float32_runs(tmp_path, capsys):
    bench = _script("bench_parity")
    common = ["--tiny", "--seeds", "2", "--work-dir", str(tmp_path / "w"), "--output", str(tmp_path / "report.json")]
    bench.main(["--configs", "multitask", *common])
    report = bench.main(["--configs", "bf16", *common])  # a later invocation: the float32 runs are read back
    against = report["configs"]["bf16"]["against"]
    assert against["config"] == "multitask" and against["comparison"]["seeds"] == [0, 1]
    ours = against["comparison"]["tasks"]["sentiment"]
    assert (
        ours["multitask"]["values"]
        == report["configs"]["bf16"]["comparison"]["tasks"]["sentiment"]["multitask"]["values"]
    )
    assert (
        ours["single_task"]["values"]
        == report["configs"]["multitask"]["comparison"]["tasks"]["sentiment"]["multitask"]["values"]
    )
    assert "bf16 against multitask, paired by seed" in (tmp_path / "report.md").read_text()
    for config, bf16 in (("bf16", True), ("multitask", False)):
        saved = json.loads((tmp_path / "w" / config / "seed-0" / "model" / "training_args.json").read_text())
        assert saved["training"]["bf16"] is bf16
    only = bench.main(["--configs", "bf16", "--report-only", *common])
    assert only["configs"]["bf16"]["against"] == json.loads(json.dumps(against))


def test_matched_baselines_take_the_single_task_overrides():
    from types import SimpleNamespace

    from polyhead.benchmark import parity as bench

    base = SimpleNamespace(
        learning_rate=1e-4,
        head_learning_rate=None,
        warmup_steps=0,
        num_train_epochs=3.0,
        weight_decay=0.0,
        label_smoothing_factor=0.0,
        bf16=False,
        use_cpu=False,
    )
    assert bench.single_task_overrides("head_lr_3e-3", base) == {"head_learning_rate": 3e-3}
    # the number of epochs and weight decay are settings single-task models share too
    assert bench.single_task_overrides("head_lr_3e-3_2_epochs", base) == {
        "head_learning_rate": 3e-3,
        "num_train_epochs": 2.0,
    }
    assert bench.single_task_overrides("head_lr_3e-3_weight_decay", base) == {
        "head_learning_rate": 3e-3,
        "weight_decay": 0.01,
    }
    assert bench.single_task_overrides("head_lr_3e-3_label_smoothing", base) == {
        "head_learning_rate": 3e-3,
        "label_smoothing_factor": 0.1,
    }
    two_epochs = SimpleNamespace(**{**vars(base), "num_train_epochs": 2.0})  # a benchmark run with --epochs 2
    assert bench.single_task_overrides("head_lr_3e-3_2_epochs", two_epochs) == {"head_learning_rate": 3e-3}
    # warm-up is a setting single-task models share: the warm-up configuration gets baselines of its own
    assert bench.single_task_overrides("head_lr_3e-3_warmup", base) == {
        "head_learning_rate": 3e-3,
        "warmup_steps": 0.1,
    }
    assert bench.baselines_key(bench.single_task_overrides("head_lr_3e-3_warmup", base)) == (
        "head_learning_rate=0.003-warmup_steps=0.1"
    )
    assert bench.single_task_overrides("head_lr_slow_encoder", base) == {
        "head_learning_rate": 1e-3,
        "learning_rate": 5e-5,
    }
    assert bench.single_task_overrides("bf16", base) == {"bf16": True, "use_cpu": True}
    for config in ("multitask", "pcgrad", "uncertainty", "temperature", "task_embeddings"):
        assert bench.single_task_overrides(config, base) == {}, config  # multitask-only remedies: plain baselines
    # an override equal to the plain baselines' own setting needs no baselines of its own
    slow = SimpleNamespace(learning_rate=5e-5, head_learning_rate=None, bf16=False, use_cpu=False)
    assert bench.single_task_overrides("head_lr_slow_encoder", slow) == {"head_learning_rate": 1e-3}
    # the folder is named by the override values, so configurations with the same settings share it
    assert bench.baselines_folder(Path("w"), 2, {"head_learning_rate": 3e-3}) == Path(
        "w/baselines-head_learning_rate=0.003-seed-2"
    )
    assert (
        bench.baselines_folder(Path("w"), 2, {}) == bench.baselines_folder(Path("w"), 2) == Path("w/baselines-seed-2")
    )


def test_parity_benchmark_matched_baselines(tmp_path, monkeypatch, capsys):
    from polyhead.benchmark import parity as bench_module
    from polyhead.training import trainer as training

    bench = _script("bench_parity")
    trained = []
    real_train = training.train_and_evaluate

    def train_and_evaluate(prepared, *args, **kwargs):
        trained.append((tuple(prepared.data), args[-1].output_dir))
        return real_train(prepared, *args, **kwargs)

    monkeypatch.setattr(training, "train_and_evaluate", train_and_evaluate)
    monkeypatch.setattr(bench_module, "train_and_evaluate", train_and_evaluate)
    work = tmp_path / "w"
    common = ["--tiny", "--seeds", "1", "--work-dir", str(work), "--output", str(tmp_path / "report.json")]
    configs = ["--configs", "multitask,head_lr_3e-3"]

    # workers: the baselines (plain and matched) on one side, the multitask runs on the other
    assert bench.main([*configs, "--baselines-only", "--matched-baselines", *common])["configs"] == {}
    out = capsys.readouterr().out
    assert "4 trainings, 2 of them matched baselines ['head_learning_rate=0.003']" in out
    assert len(trained) == 4
    plain, matched = work / "baselines-seed-0", work / "baselines-head_learning_rate=0.003-seed-0"
    for task in ("sentiment", "topic"):
        ours = json.loads((matched / "baselines" / task / "model" / "training_args.json").read_text())["training"]
        theirs = json.loads((plain / "baselines" / task / "model" / "training_args.json").read_text())["training"]
        assert ours["head_learning_rate"] == 3e-3 and theirs["head_learning_rate"] is None
        assert ours["learning_rate"] == theirs["learning_rate"] == 1e-4 and ours["seed"] == theirs["seed"] == 0
    trained.clear()
    bench.main([*configs, "--skip-baselines", "--matched-baselines", *common])
    assert "2 trainings (" in capsys.readouterr().out and len(trained) == 2

    # the full run reuses every finished run and compares head_lr_3e-3 with both kinds of baselines
    trained.clear()
    report = bench.main([*configs, "--matched-baselines", *common])
    assert trained == []
    assert "6 trainings, 2 of them matched baselines" in capsys.readouterr().out
    entry = report["configs"]["head_lr_3e-3"]
    assert entry["matched"]["overrides"] == {"head_learning_rate": 3e-3}
    assert entry["matched"]["label"] == bench_module.MATCHED_LABEL
    assert entry["matched"]["comparison"]["seeds"] == [0]
    read = json.loads((matched / "model" / "baselines" / "results.json").read_text())
    row = entry["matched"]["comparison"]["tasks"]["topic"]
    assert row["single_task"]["values"] == [read["tasks"]["topic"][row["metric"]]]
    read_plain = json.loads((plain / "model" / "baselines" / "results.json").read_text())
    row = entry["comparison"]["tasks"]["topic"]  # the existing comparison still uses the plain baselines
    assert row["single_task"]["values"] == [read_plain["tasks"]["topic"][row["metric"]]]
    assert "matched" not in report["configs"]["multitask"]  # no single-task overrides: unchanged
    assert sorted(p.name for p in work.glob("baselines-*")) == [matched.name, plain.name]
    assert (
        f"head_lr_3e-3 {bench_module.MATCHED_LABEL} (`head_learning_rate=0.003`)"
        in (tmp_path / "report.md").read_text()
    )
    assert (tmp_path / "report.png").is_file()

    # the report alone reads the matched baselines back; without the flag it is the report of before
    only = bench.main([*configs, "--matched-baselines", "--report-only", *common[:-1], str(tmp_path / "only.json")])
    assert only["configs"] == json.loads(json.dumps(report["configs"]))
    old = bench.main([*configs, "--report-only", *common[:-1], str(tmp_path / "old.json")])
    assert "matched" not in old["configs"]["head_lr_3e-3"]
    assert old["configs"]["head_lr_3e-3"]["comparison"] == only["configs"]["head_lr_3e-3"]["comparison"]
    # a seed whose matched baselines are missing has no matched comparison, the plain one stays
    (matched / "model" / "baselines" / "results.json").unlink()
    partial = bench.main([*configs, "--matched-baselines", "--report-only", *common[:-1], str(tmp_path / "p.json")])
    assert "matched" not in partial["configs"]["head_lr_3e-3"] and "comparison" in partial["configs"]["head_lr_3e-3"]
    assert trained == []


def test_parity_benchmark_loss_weights_reach_only_their_configuration(tmp_path, monkeypatch, capsys):
    from polyhead.benchmark import parity as bench_module

    bench = _script("bench_parity")
    weights = {}

    def train_and_evaluate(prepared, tokenizer, model_args, data_args, run_args):
        weights[Path(run_args.output_dir).parent.name] = {n: t.spec.loss_weight for n, t in prepared.data.items()}
        return {"tasks": {}}

    monkeypatch.setattr(bench_module, "train_and_evaluate", train_and_evaluate)
    monkeypatch.setitem(bench_module.LOSS_WEIGHTS, "head_lr_3e-3_weights", {"topic": 3.0})
    common = ["--tiny", "--seeds", "1", "--skip-baselines", "--work-dir", str(tmp_path / "w")]
    bench.main(["--configs", "head_lr_3e-3_weights,head_lr_3e-3", *common, "--output", str(tmp_path / "r.json")])
    # the weighted configuration trains with topic's loss x3; the next one, on the same prepared data, with 1 again
    assert weights == {
        "head_lr_3e-3_weights": {"sentiment": 1.0, "topic": 3.0},
        "head_lr_3e-3": {"sentiment": 1.0, "topic": 1.0},
    }
