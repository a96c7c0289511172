"""Distillation: the classifiers you run + unlabeled texts -> one multitask model (one head per teacher task).

    python scripts/distill.py --teacher sentiment=org/sst2-model --teacher org/topic-model \
        --texts traffic.jsonl --encoder_name_or_path all-MiniLM-L6-v2 --output_dir outputs/student

Teachers: `[task=]hub-id-or-folder` (any *ForSequenceClassification checkpoint) or `[task=]polyhead-model[:t1,t2]`.
Arguments: `polyhead.distill.arguments` (DistillArguments) beside the training ones (`polyhead.training.arguments`: the
student's encoder, `--tasks` for labelled data, TrainingArguments); a JSON/YAML config file may come first. Bad
teachers, texts or arguments are refused before any teacher runs, with a one-line error and exit status 1. Ends with
the agreement / teacher-vs-student / speed table; everything is in `<model_dir>/results.json`.
"""

import sys

from polyhead.distill import format_distillation_table, parse_distill_args, plan_distillation, run
from polyhead.distill.job import check_evaluation
from polyhead.distill.trainer import check_joint_batches
from polyhead.run_folder import RESULTS_FILE
from polyhead.saving import UnsavableModelError
from polyhead.training.arguments import disable_progress_bars
from polyhead.training.trainer import ResumeError, check_output_locations


def main(argv: list[str] | None = None) -> dict:
    try:
        model_args, data_args, distill_args, training_args = parse_distill_args(argv)
        check_output_locations(training_args)
        if distill_args.joint_batches:
            check_joint_batches(training_args)
        if training_args.disable_tqdm:
            disable_progress_bars()
        # every check, before any teacher runs
        plan = plan_distillation(model_args, data_args, distill_args, training_args.sampling_seed)
        check_evaluation(plan, training_args)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    try:
        results = run(model_args, data_args, distill_args, training_args, plan=plan)
    except (UnsavableModelError, ResumeError) as error:  # diverged, or a checkpoint that cannot resume: the fix
        sys.exit(f"error: {error}")
    print(f"\nDistillation ({training_args.model_dir}/{RESULTS_FILE}):")
    print(format_distillation_table(results))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
