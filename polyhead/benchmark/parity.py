"""Parity benchmark: seed-averaged multitask vs single-task models on real tasks, plain and with each remedy.

`python scripts/bench_parity.py` trains, under each seed, one single-task model per task (once, shared by every
configuration) and one multitask model per configuration (`--configs`: plain `multitask` and the remedies of
`polyhead.training.balancing` / `polyhead.training.pcgrad`), all on the same tokenized data, and compares each
configuration with the single-task models (`polyhead.evaluation.comparison`: per task mean ± std, paired difference,
95% t-interval, verdict). With `--matched-baselines`, a configuration that overrides settings a single-task model
can share (`SINGLE_TASK_SETTINGS`: the learning rates, warm-up, epochs, weight decay, label smoothing, bf16) is also
compared with single-task models trained with those overrides (its matched baselines, trained once per set of
overrides under `baselines-<overrides>-seed-N`), so a remedy's gain is not just a setting the single-task models
could use too. A configuration of `DISTILLED` trains its multitask model by distillation from the seed's single-task
models instead (`polyhead.distill`). Finished runs are reused (delete `--work-dir` to start afresh), so an
interrupted benchmark continues where it stopped and configurations can be added later. The report (JSON, a
Markdown table per configuration, a plot of the per-task differences with their intervals) is rewritten after every
configuration.

Offline smoke run on the tiny random encoder and synthetic tasks: `--tiny`.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from polyhead.benchmark import DEFAULT_DATA_DIR
from polyhead.benchmark.choose import cpu_description
from polyhead.benchmark.cli import check_outputs, int_at_least, one_line_errors
from polyhead.evaluation.comparison import compare_runs, comparison_rows, format_seed_comparison_table
from polyhead.run_folder import BASELINES_DIR
from polyhead.training.arguments import DataArguments, ModelArguments, MultitaskTrainingArguments
from polyhead.training.parity import finished_results
from polyhead.training.trainer import load_tokenizer, prepare_tasks, train_and_evaluate, train_baselines


# Five kinds: multiclass (tweet_emotion, trec), binary (sst2), multi-label (go_emotions), a sentence pair (sick_nli).
TASKS = {
    "tweet_emotion": ("tweet_emotion", "", 600),
    "sst2": ("sst2", "", 800),
    "trec": ("trec", "", 300),
    "go_emotions": ("go_emotions", ":label=labels", 1000),
    "sick_nli": ("sick_nli", ":text_pair=text_pair", 500),
}
# configuration: (training, data, model) argument overrides of the multitask run
CONFIGS = {
    "multitask": ({}, {}, {}),
    "uncertainty": ({"loss_balancing": "uncertainty"}, {}, {}),
    "head_lr": ({"head_learning_rate": 1e-3}, {}, {}),
    "head_lr_3e-3": ({"head_learning_rate": 3e-3}, {}, {}),
    "head_lr_1e-2": ({"head_learning_rate": 1e-2}, {}, {}),
    # the plain transformers fine-tuning recipe's linear warm-up (10% of the steps) on top of the best head rate
    "head_lr_3e-3_warmup": ({"head_learning_rate": 3e-3, "warmup_steps": 0.1}, {}, {}),
    "head_lr_3e-3_weights": ({"head_learning_rate": 3e-3}, {}, {}),  # and LOSS_WEIGHTS
    # the losing tasks fit their train rows closer than their single-task models and their test rows less well: is the
    # run's length the cause? (shorter and longer than the benchmark's 3 epochs)
    "head_lr_3e-3_2_epochs": ({"head_learning_rate": 3e-3, "num_train_epochs": 2.0}, {}, {}),
    "head_lr_3e-3_4_epochs": ({"head_learning_rate": 3e-3, "num_train_epochs": 4.0}, {}, {}),
    # or too little regularisation: the BERT recipe's weight decay (the Trainer's default is none)
    "head_lr_3e-3_weight_decay": ({"head_learning_rate": 3e-3, "weight_decay": 0.01}, {}, {}),
    # or over-confident fits: label smoothing 0.1 (Szegedy et al. 2016; born-again's soft targets helped these tasks)
    "head_lr_3e-3_label_smoothing": ({"head_learning_rate": 3e-3, "label_smoothing_factor": 0.1}, {}, {}),
    # the shared encoder takes every task's steps (5x a single-task model's): half its rate, heads as head_lr
    "head_lr_slow_encoder": ({"head_learning_rate": 1e-3, "learning_rate": 5e-5}, {}, {}),
    # every task in every step: gradient_accumulation_steps = number of tasks, one batch of each (round robin)
    "pcgrad": ({"pcgrad": True, "gradient_accumulation_steps": len(TASKS)}, {"sampling": "round_robin"}, {}),
    "temperature": ({}, {"sampling": "temperature"}, {}),
    "round_robin": ({}, {"sampling": "round_robin"}, {}),
    "head_lr_3e-3_temperature": ({"head_learning_rate": 3e-3}, {"sampling": "temperature"}, {}),
    "task_embeddings": ({}, {}, {"task_embeddings": True}),
    "born_again": ({}, {}, {}),  # a distillation run: see DISTILLED
    "born_again_head_lr_3e-3": ({"head_learning_rate": 3e-3}, {}, {}),
    # not a remedy: plain multitask under bf16 autocast, paired by seed with `multitask` (docs/cpu-acceleration.md)
    "bf16": ({"bf16": True, "use_cpu": True}, {}, {}),
}
# configuration: the fixed `loss_weight` (task spec) of named tasks, the others keep theirs (1): the two tasks furthest
# below their matched single-task models with heads at 3e-3 (docs/parity.md) weigh twice
LOSS_WEIGHTS = {"head_lr_3e-3_weights": {"tweet_emotion": 2.0, "sick_nli": 2.0}}
# configurations trained by distillation (`polyhead.distill`) instead: the seed's single-task models (those trained
# with the configuration's SINGLE_TASK_SETTINGS) teach one multitask model on the same train texts, annealed to the
# gold labels (born-again multitask networks, Clark et al. 2019)
BORN_AGAIN = {"gold_weight": 1.0, "gold_weight_schedule": "linear"}
DISTILLED = {"born_again": BORN_AGAIN, "born_again_head_lr_3e-3": BORN_AGAIN}
# every other configuration is also compared, paired by seed, with plain multitask: what the remedy itself changes
AGAINST = {config: "multitask" for config in CONFIGS if config != "multitask"}
AGAINST.update({"head_lr_3e-3": "head_lr", "head_lr_slow_encoder": "head_lr"})  # what each changes beyond head_lr
AGAINST["head_lr_1e-2"] = "head_lr_3e-3"  # whether the head-rate trend goes on
AGAINST["head_lr_3e-3_warmup"] = "head_lr_3e-3"  # what warm-up adds to the best head rate
AGAINST["head_lr_3e-3_weights"] = "head_lr_3e-3"  # what the loss weights add to the best head rate
AGAINST["head_lr_3e-3_2_epochs"] = "head_lr_3e-3"  # what a shorter run changes at the best head rate
AGAINST["head_lr_3e-3_4_epochs"] = "head_lr_3e-3"  # and a longer one
AGAINST["head_lr_3e-3_weight_decay"] = "head_lr_3e-3"  # what weight decay adds to the best head rate
AGAINST["head_lr_3e-3_label_smoothing"] = "head_lr_3e-3"  # what label smoothing adds to the best head rate
AGAINST["head_lr_3e-3_temperature"] = "head_lr_3e-3"  # what temperature sampling adds to the best head rate
AGAINST["born_again_head_lr_3e-3"] = "head_lr_3e-3"  # what distillation adds to the best head rate
# Training settings a single-task model can share with a configuration (the multitask remedies, pcgrad, loss balancing
# and sampling, cannot): `--matched-baselines` trains that configuration's own baselines with them.
SINGLE_TASK_SETTINGS = (
    "learning_rate",
    "head_learning_rate",
    "warmup_steps",
    "num_train_epochs",
    "weight_decay",
    "label_smoothing_factor",
    "bf16",
    "use_cpu",
)
MATCHED_LABEL = (
    "against single-task models trained with the same rates, warm-up, epochs, weight decay, label smoothing and "
    "precision"
)
# configuration: what it is, in words; `describe` adds the flags, built from its overrides above
PURPOSES = {
    "multitask": "plain multitask (proportional sampling, loss weights 1)",
    "uncertainty": "uncertainty loss weighting",
    "head_lr": "heads at their own learning rate, the encoder at the base rate",
    "head_lr_3e-3": "heads at their own learning rate, the encoder at the base rate",
    "head_lr_1e-2": "heads at their own learning rate, the encoder at the base rate",
    "head_lr_3e-3_warmup": "heads at their own learning rate and a linear warm-up over the first steps",
    "head_lr_3e-3_weights": "heads at their own learning rate, the tasks furthest below their single-task models "
    "weighted up",
    "head_lr_3e-3_2_epochs": "heads at their own learning rate, a shorter run than the benchmark's",
    "head_lr_3e-3_4_epochs": "heads at their own learning rate, a longer run than the benchmark's",
    "head_lr_3e-3_weight_decay": "heads at their own learning rate, with weight decay",
    "head_lr_3e-3_label_smoothing": "heads at their own learning rate, with label smoothing",
    "head_lr_slow_encoder": "heads at their own learning rate, the encoder slower than the base rate",
    "pcgrad": "PCGrad, every task's batch in every optimizer step",
    "temperature": "temperature sampling",
    "round_robin": "round-robin sampling, one batch of each task in turn",
    "head_lr_3e-3_temperature": "heads at their own learning rate and temperature sampling",
    "task_embeddings": "a learned embedding per task",
    "born_again": "born-again: the single-task models of the same seed teach the multitask model (soft targets on "
    "every task's train texts, annealed to the gold labels)",
    "born_again_head_lr_3e-3": "born-again with heads at their own learning rate: the single-task models trained with "
    "that rate teach",
    "bf16": "plain multitask trained under bfloat16 autocast",
}


def flag_value(value) -> str:
    """A value as a command line takes it: `true`, `2`, `0.1`, `3e-3` (the shorter of plain and scientific)."""
    if isinstance(value, bool):
        return str(value).lower()
    if not isinstance(value, float):
        return str(value)
    mantissa, exponent = f"{value:.12e}".split("e")
    scientific = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    plain = f"{value:.12f}".rstrip("0").rstrip(".")
    return scientific if len(scientific) < len(plain) else plain


def describe(config: str) -> str:
    """`PURPOSES[config]` with the flags that reproduce it (`--head_learning_rate 3e-3`), from `CONFIGS`,
    `LOSS_WEIGHTS` (as task-spec options) and `DISTILLED` (`scripts/distill.py`'s flags)."""
    overrides = {key: value for group in CONFIGS[config] for key, value in group.items()}
    overrides.update(DISTILLED.get(config, {}))
    parts = [f"`{' '.join(f'--{key} {flag_value(value)}' for key, value in overrides.items())}`"] if overrides else []
    weights: dict[float, list[str]] = {}
    for task, weight in LOSS_WEIGHTS.get(config, {}).items():
        weights.setdefault(weight, []).append(task)
    parts += [f"task spec `loss_weight={flag_value(weight)}`: {', '.join(tasks)}" for weight, tasks in weights.items()]
    return f"{PURPOSES[config]} ({'; '.join(parts)})" if parts else PURPOSES[config]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="multitask", help=f"Comma-separated, from {', '.join(CONFIGS)}.")
    parser.add_argument("--seeds", type=int_at_least(1), default=3, help="Seeds per configuration (0, 1, ...).")
    parser.add_argument("--train-scale", type=float, default=1.0, help="Multiplies every task's train cap.")
    parser.add_argument("--eval-samples", type=int_at_least(1), default=400, help="Test rows scored per task.")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int_at_least(1), default=16)
    parser.add_argument("--max-length", type=int_at_least(1), default=64)
    parser.add_argument("--num-threads", type=int_at_least(1), default=None)
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--work-dir", default="outputs/parity", help="Runs (reused when finished).")
    parser.add_argument("--output", default="outputs/parity/report.json", help="JSON report (.md and .png beside).")
    parser.add_argument(
        "--skip-baselines",
        action="store_true",
        help="Only train the configurations' multitask runs, no report: a second worker beside a run that trains "
        "the baselines (rerun without it afterwards to write the report from the finished runs).",
    )
    parser.add_argument(
        "--baselines-only", action="store_true", help="Only train the single-task baselines (a worker), no report."
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="Write the report from the finished runs in --work-dir without loading data or training: each "
        "configuration over the seeds whose baselines and run are all finished.",
    )
    parser.add_argument(
        "--matched-baselines",
        action="store_true",
        help="Also compare each configuration that overrides a setting single-task models can share "
        f"({', '.join(SINGLE_TASK_SETTINGS)}) with single-task models trained with those overrides (the fair "
        "comparison: a gain is not just a rate the single-task models could use too). They train once per set of "
        "overrides under --work-dir/baselines-<overrides>-seed-N, are reused like the plain baselines (which the "
        "existing comparison keeps using), and follow --baselines-only, --skip-baselines and --report-only.",
    )
    parser.add_argument("--tiny", action="store_true", help="Tiny random encoder, synthetic tasks (smoke test).")
    return parser.parse_args(argv)


def task_arguments(args: argparse.Namespace) -> list:
    if args.tiny:
        return tiny_tasks()
    tasks = []
    for name, (folder, options, cap) in TASKS.items():
        path = Path(args.data_dir) / folder
        if not path.is_dir():
            sys.exit(f"error: {path} is missing (the shared data folder, --data-dir).")
        rows = max(1, int(cap * args.train_scale))
        tasks.append(
            f"{name}={path}{options},max_train_samples={rows}"
            if options
            else f"{name}={path}:max_train_samples={rows}"
        )
    return tasks


def tiny_tasks() -> list:
    """Two synthetic tasks whose label word is in the text (learnable by the tiny random encoder)."""
    import random

    import datasets

    from polyhead.presets import WORDS
    from polyhead.tasks import TaskSpec

    def split(n, labels, seed):
        rng = random.Random(seed)
        rows = [rng.choice(labels) for _ in range(n)]
        texts = [" ".join([label, *rng.sample(WORDS, 4)]) for label in rows]
        return datasets.Dataset.from_dict({"text": texts, "label": rows})

    specs = []
    for i, (name, labels) in enumerate({"sentiment": ["good", "bad"], "topic": ["sport", "tech", "money"]}.items()):
        data = datasets.DatasetDict(train=split(32, labels, 3 * i), test=split(16, labels, 3 * i + 1))
        specs.append(TaskSpec(name, dataset=data, validation_size=0))
    return specs


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in configs if name not in CONFIGS]
    if unknown:
        sys.exit(f"error: unknown configuration(s) {unknown}; choose from {list(CONFIGS)}.")
    with one_line_errors():  # bad paths, data or settings: one line, exit status 1
        check_outputs(args.output, beside=(".md", ".png"), folders={"--work-dir": args.work_dir})  # before any work
        return run_parity(args, configs, argv)


def run_parity(args: argparse.Namespace, configs: list[str], argv: list[str] | None = None) -> dict:
    """The benchmark of [`main`] on its parsed, checked arguments: trains what is not finished, writes the report."""
    if args.report_only:
        return report_from_finished_runs(args, configs, argv)
    model_args = ModelArguments(
        encoder_name_or_path="tiny-random-bert" if args.tiny else args.encoder, max_length=args.max_length
    )
    # go_emotions (28 labels) predicts nothing at the default 0.5: every run tunes its thresholds on validation rows
    data_args = DataArguments(
        tasks=task_arguments(args), max_eval_samples=args.eval_samples, tune_thresholds=not args.tiny
    )
    work = Path(args.work_dir)
    base = base_arguments(args)
    if args.num_threads:
        import torch

        torch.set_num_threads(args.num_threads)
    tokenizer = load_tokenizer(model_args)
    prepared = prepare_tasks(model_args, data_args, tokenizer, seed=0)
    seeds = list(range(args.seeds))
    matched = matched_baselines(args, configs, base)
    matched_sets = {baselines_key(overrides): overrides for overrides in matched.values()}
    baseline_runs = 0 if args.skip_baselines else len(prepared.data) * (1 + len(matched_sets))
    trainings = len(seeds) * (baseline_runs + (0 if args.baselines_only else len(configs)))
    extra = (
        f", {len(seeds) * len(prepared.data) * len(matched_sets)} of them matched baselines {list(matched_sets)}"
        if matched_sets and not args.skip_baselines
        else ""
    )
    print(
        f"Parity benchmark: {len(prepared.data)} tasks {list(prepared.data)}, {len(seeds)} seeds, configurations "
        f"{configs}: {trainings} trainings{extra} (finished ones in {work} are reused); train rows "
        f"{ {name: len(enc['train']) for name, enc in prepared.encoded.items()} }.",
        flush=True,
    )
    started = time.time()
    report = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": machine(),
        "command": "python scripts/bench_parity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {k: v for k, v in vars(args).items() if k not in ("output", "work_dir")},
        "train_rows": {name: len(enc["train"]) for name, enc in prepared.encoded.items()},
        "test_rows": {name: len(enc.get("test", enc.get("eval", []))) for name, enc in prepared.encoded.items()},
        "configs": {},
    }
    output = Path(args.output)
    previous = json.loads(output.read_text()) if output.is_file() else {}
    report["configs"].update(previous.get("configs", {}))
    baselines, finished = {}, finished_references(work, configs, seeds)

    def baselines_of(seed: int, overrides: dict | None = None) -> dict:
        """The single-task models of `seed` (with `overrides`: matched), trained once, read back when finished."""
        key = (baselines_key(overrides), seed)
        if key not in baselines:
            seed_args = seed_arguments(base, work, seed, overrides)
            baselines[key] = train_baselines(prepared, tokenizer, model_args, data_args, seed_args)
            name = f"baselines {key[0]}".rstrip()
            print(f"[{time.time() - started:.0f}s] {name} seed {seed} done", flush=True)
        return baselines[key]

    if args.baselines_only:
        configs = []
        for seed in seeds:
            for overrides in [None, *matched_sets.values()]:
                baselines_of(seed, overrides)
    for config in configs:
        training_overrides, data_overrides, model_overrides = CONFIGS[config]
        runs, matched_runs = [], []
        for seed in seeds:
            if not args.skip_baselines:
                baselines_of(seed)
            folder = work / config / f"seed-{seed}"
            run_args = dataclasses.replace(
                base,
                seed=seed,
                output_dir=str(folder),
                model_dir=str(folder / "model"),
                single_task_baselines=False,
                resume_from_checkpoint=None,
                **training_overrides,
            )
            multitask = finished_results(folder / "model", run_args)
            if multitask is None and config in DISTILLED:
                overrides = single_task_overrides(config, base)
                baselines_of(seed, overrides)  # the teachers, trained first if they are not yet
                teachers = baselines_folder(work, seed, overrides)
                multitask = born_again(config, teachers, prepared, model_args, data_args, run_args)
            if multitask is None:
                config_data = dataclasses.replace(data_args, **data_overrides)
                config_model = dataclasses.replace(model_args, **model_overrides)
                config_prepared = with_loss_weights(prepared, LOSS_WEIGHTS.get(config, {}))
                multitask = train_and_evaluate(config_prepared, tokenizer, config_model, config_data, run_args)
            print(f"[{time.time() - started:.0f}s] {config} seed {seed} done", flush=True)
            finished.setdefault(config, {})[seed] = multitask
            if not args.skip_baselines:
                runs.append((multitask, baselines_of(seed)))
                if config in matched:
                    matched_runs.append((multitask, baselines_of(seed, matched[config])))
        if args.skip_baselines:
            continue
        add_config(report, config, runs, seeds, matched.get(config), matched_runs, seeds)
        write_report(report, output)
    if configs and not args.skip_baselines:
        add_paired_comparisons(report, configs, finished)
        write_report(report, output)
    return report


def born_again(
    config: str,
    baselines: Path,
    prepared,
    model_args: ModelArguments,
    data_args: DataArguments,
    run_args: MultitaskTrainingArguments,
) -> dict:
    """Distills the single-task models under `baselines` into one multitask model (`DISTILLED[config]`), on the train
    rows the baselines trained on (the data seed 0 of every run here); the student follows its teachers' decision
    thresholds (no threshold tuning). Returns its results."""
    from polyhead.distill import DistillArguments, plan_distillation, run

    teachers = [f"{task}={baselines / BASELINES_DIR / task / 'model'}" for task in prepared.data]
    distill_args = DistillArguments(teacher=teachers, speed_texts=64, speed_rounds=1, **DISTILLED[config])
    gold_args = dataclasses.replace(data_args, tune_thresholds=False)
    plan = plan_distillation(model_args, gold_args, distill_args, seed=0)
    run(model_args, gold_args, distill_args, run_args, plan=plan)
    return finished_results(run_args.model_dir)


def report_from_finished_runs(args: argparse.Namespace, configs: list[str], argv: list[str] | None) -> dict:
    """The report of `--report-only`: reads every finished run, trains nothing."""
    from polyhead.run_folder import read_baseline_results

    work = Path(args.work_dir)
    report = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": machine(),
        "command": "python scripts/bench_parity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {k: v for k, v in vars(args).items() if k not in ("output", "work_dir", "report_only")},
        "configs": {},
    }
    matched = matched_baselines(args, configs, base_arguments(args))

    def baselines(seed: int, overrides: dict | None = None) -> dict | None:
        return read_baseline_results(baselines_folder(work, seed, overrides) / "model")

    def complete(baseline: dict | None, multitask: dict) -> bool:
        return bool(baseline) and set(baseline.get("tasks", {})) >= set(multitask.get("tasks", {}))

    finished = finished_references(work, configs, range(args.seeds))
    for config in configs:
        runs, seeds, matched_runs, matched_seeds = [], [], [], []
        for seed in range(args.seeds):
            multitask = finished_results(work / config / f"seed-{seed}" / "model")
            if multitask is None:
                continue
            finished.setdefault(config, {})[seed] = multitask
            if complete(plain := baselines(seed), multitask):
                runs.append((multitask, plain))
                seeds.append(seed)
            if config in matched and complete(own := baselines(seed, matched[config]), multitask):
                matched_runs.append((multitask, own))
                matched_seeds.append(seed)
        if not runs:
            print(f"{config}: no finished seed yet", flush=True)
            continue
        first = runs[0][0]
        report.setdefault("train_rows", first.get("num_train_examples") or {})
        report["test_rows"] = first.get("num_examples", {})
        add_config(report, config, runs, seeds, matched.get(config), matched_runs, matched_seeds)
    add_paired_comparisons(report, configs, finished)
    if report["configs"]:
        write_report(report, Path(args.output))
    return report


def base_arguments(args: argparse.Namespace) -> MultitaskTrainingArguments:
    """The training arguments of every run (the single-task baselines'; a configuration's run overrides some)."""
    return MultitaskTrainingArguments(
        output_dir=str(Path(args.work_dir) / "baselines-seed-0"),
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_steps=50,
        num_threads=args.num_threads,
        single_task_baselines=True,
        resume_from_checkpoint="true",  # finished baselines are reused
    )


def with_loss_weights(prepared, weights: dict[str, float]):
    """`prepared` with the tasks named in `weights` given that fixed `loss_weight` (a copy; the tokenized data is
    shared, nothing is re-read)."""
    if not weights:
        return prepared
    data = {
        name: dataclasses.replace(task, spec=dataclasses.replace(task.spec, loss_weight=weights[name]))
        if name in weights
        else task
        for name, task in prepared.data.items()
    }
    return dataclasses.replace(prepared, data=data)


def single_task_overrides(config: str, base: MultitaskTrainingArguments) -> dict:
    """The overrides of `config` that a single-task model can share (`SINGLE_TASK_SETTINGS`) and that differ from
    `base`, sorted by name; empty when the plain baselines already train with them."""
    training_overrides = CONFIGS[config][0]
    return {
        key: value
        for key, value in sorted(training_overrides.items())
        if key in SINGLE_TASK_SETTINGS and getattr(base, key) != value
    }


def matched_baselines(args: argparse.Namespace, configs: list[str], base: MultitaskTrainingArguments) -> dict:
    """`{configuration: overrides of its matched baselines}` under `--matched-baselines`, for the configurations that
    have such overrides (the others keep the plain comparison only)."""
    if not args.matched_baselines:
        return {}
    return {config: overrides for config in configs if (overrides := single_task_overrides(config, base))}


def baselines_key(overrides: dict | None) -> str:
    """The name of a set of overrides in its baselines' folders (`head_learning_rate=0.003`; plain: empty), so the
    configurations that share the same single-task settings share their baselines."""
    return "-".join(f"{key}={value}" for key, value in sorted((overrides or {}).items()))


def baselines_folder(work: Path, seed: int, overrides: dict | None = None) -> Path:
    """`<work>/baselines-seed-<seed>`, or with overrides `<work>/baselines-<baselines_key>-seed-<seed>`."""
    key = baselines_key(overrides)
    return work / (f"baselines-{key}-seed-{seed}" if key else f"baselines-seed-{seed}")


def seed_arguments(
    base: MultitaskTrainingArguments, work: Path, seed: int, overrides: dict | None = None
) -> MultitaskTrainingArguments:
    """The baselines of seed `seed` (trained with `overrides`: matched) train under
    `baselines_folder(...)/baselines/<task>`."""
    folder = baselines_folder(work, seed, overrides)
    return dataclasses.replace(
        base, seed=seed, output_dir=str(folder), model_dir=str(folder / "model"), **(overrides or {})
    )


def add_config(
    report: dict,
    config: str,
    runs: list,
    seeds: list[int],
    overrides: dict | None,
    matched_runs: list,
    matched_seeds: list[int],
) -> None:
    """The entry of `config`: its comparison with the plain single-task models and, with matched baselines, with
    those trained with its single-task overrides (under `"matched"`, over the seeds whose matched runs finished)."""
    comparison = compare_runs(runs, seeds)
    entry = {"description": describe(config), "comparison": comparison}
    print(f"\n{config}: {describe(config)}\n{format_seed_comparison_table(comparison)}\n", flush=True)
    if overrides and matched_runs:
        entry["matched"] = {
            "label": MATCHED_LABEL,
            "overrides": overrides,
            "baselines": baselines_folder(Path(), 0, overrides).name.removesuffix("-seed-0") + "-seed-<seed>",
            "comparison": compare_runs(matched_runs, matched_seeds),
        }
        table = format_seed_comparison_table(entry["matched"]["comparison"])
        print(f"\n{config} {MATCHED_LABEL} ({baselines_key(overrides)})\n{table}\n", flush=True)
    report["configs"][config] = entry


def machine() -> str:
    return f"{cpu_description()}, {os.cpu_count()} cores"


def finished_references(work: Path, configs: list[str], seeds) -> dict[str, dict[int, dict]]:
    """The finished runs of the configurations named by `AGAINST` but not asked for, by seed."""
    finished: dict[str, dict[int, dict]] = {}
    for other in {AGAINST[c] for c in configs if c in AGAINST} - set(configs):
        for seed in seeds:
            if (run := finished_results(work / other / f"seed-{seed}" / "model")) is not None:
                finished.setdefault(other, {})[seed] = run
    return finished


def add_paired_comparisons(report: dict, configs: list[str], finished: dict[str, dict[int, dict]]) -> None:
    """Each reported configuration against the one `AGAINST` names, over the seeds both finished."""
    for config in configs:
        other = AGAINST.get(config)
        seeds = sorted(set(finished.get(config, {})) & set(finished.get(other, {})))
        if config not in report["configs"] or not seeds:
            continue
        comparison = compare_runs([(finished[config][seed], finished[other][seed]) for seed in seeds], seeds)
        report["configs"][config]["against"] = {"config": other, "comparison": comparison}
        print(f"\n{config} against {other}\n{format_seed_comparison_table(comparison)}\n", flush=True)


def markdown(report: dict) -> str:
    """One Markdown table per configuration (points: metric x 100)."""
    parts = []
    for config, entry in report["configs"].items():
        rows = comparison_rows(entry["comparison"])
        lines = [
            f"### {config}: {entry['description']}",
            "",
            "| Task | Metric | Multitask | Single-task | Difference | 95% interval | Verdict |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        if "against" in entry:
            other = entry["against"]["config"]
            lines += ["", f"{config} against {other}, paired by seed:", ""]
            lines += [f"| Task | Metric | {config} | {other} | Difference | 95% interval | Verdict |"]
            lines += ["|---|---|---:|---:|---:|---:|---|"]
            lines += ["| " + " | ".join(row) + " |" for row in comparison_rows(entry["against"]["comparison"])]
        if "matched" in entry:
            own = entry["matched"]
            lines += ["", f"{config} {own['label']} (`{baselines_key(own['overrides'])}`):", ""]
            lines += [f"| Task | Metric | {config} | Matched single-task | Difference | 95% interval | Verdict |"]
            lines += ["|---|---|---:|---:|---:|---:|---|"]
            lines += ["| " + " | ".join(row) + " |" for row in comparison_rows(own["comparison"])]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def plot(report: dict, path: Path) -> None:
    """Per-task differences (multitask - single-task, points) with 95% intervals: one panel per task and the average,
    one row per configuration; a filled dot against the plain single-task models, a hollow square against the
    configuration's matched ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(report["configs"].items())
    tasks = [*configs[0][1]["comparison"]["tasks"], "average"]
    kinds = [("comparison", "o", "tab:blue", "against the plain single-task models")]
    kinds.append(("matched", "s", "tab:orange", "against single-task models with the same settings"))
    fig, axes = plt.subplots(
        1, len(tasks), sharey=True, figsize=(2.9 * len(tasks) + 1.5, 1.6 + 0.32 * len(configs)), squeeze=False
    )
    for ax, task in zip(axes[0], tasks):
        for k, (key, marker, color, label) in enumerate(kinds):
            for i, (_, entry) in enumerate(configs):
                comparison = entry["comparison"] if key == "comparison" else entry.get("matched", {}).get("comparison")
                if comparison is None:
                    continue
                row = comparison["average"] if task == "average" else comparison["tasks"].get(task)
                if row is None:
                    continue
                d = row["difference"]
                low, high = (d["low"], d["high"]) if d["low"] is not None else (d["mean"], d["mean"])
                ax.errorbar(
                    d["mean"] * 100,
                    i + (k - 0.5) * 0.3,
                    xerr=[[(d["mean"] - low) * 100], [(high - d["mean"]) * 100]],
                    fmt=marker,
                    color=color,
                    mfc="none" if key == "matched" else color,
                    markersize=5,
                    capsize=2,
                    label=label,  # one legend entry per kind: duplicates are dropped below
                )
        ax.axvline(0, color="black", linewidth=0.8)
        ax.axvline(-1, color="grey", linewidth=0.8, linestyle=":")  # the target: no task more than 1 point below
        ax.set_title(task, fontsize=10)
        ax.grid(axis="y", color="0.92")
    axes[0][0].set_yticks(range(len(configs)), [config for config, _ in configs], fontsize=8)
    axes[0][0].invert_yaxis()
    handles, labels = axes[0][0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=len(unique), fontsize=9, frameon=False)
    fig.supxlabel("multitask - single-task, points of the primary metric (95% t-interval over seeds)", y=0.06)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(report: dict, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    output.with_suffix(".md").write_text(markdown(report), encoding="utf-8")
    plot(report, output.with_suffix(".png"))
