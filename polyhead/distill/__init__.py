"""Distillation: merge the classifiers you already run into one multitask model.

Point polyhead at teachers (standard `*ForSequenceClassification` checkpoints of any architecture, and/or polyhead
multitask models) and unlabeled texts; each teacher labels the texts once (cached on disk), and a new polyhead model
with one head per teacher task learns their soft targets, answering like them at the cost of one encoder pass.

```python
>>> from polyhead.distill import parse_distill_args, run
>>> results = run(*parse_distill_args(["--teacher", "sentiment=models/sst2", "--teacher", "models/topics",
...                                    "--texts", "traffic.jsonl", "--output_dir", "outputs/student"]))
```

Modules: `teachers` (parsing and checking teachers, running them), `cache` (their outputs on disk), `corpus` (the
texts), `trainer` (soft targets and the loss on `MultitaskTrainer`), `job` (the whole run and its reports),
`report` (the end-of-run table), `arguments` (`DistillArguments`, parsing).
"""

from polyhead.distill.arguments import DistillArguments, parse_distill_args
from polyhead.distill.job import plan_distillation, run
from polyhead.distill.report import format_distillation_table
from polyhead.distill.teachers import TeacherSpec, parse_teacher, resolve_teachers
from polyhead.distill.trainer import DistillationTrainer, distillation_loss


__all__ = [
    "DistillArguments",
    "DistillationTrainer",
    "TeacherSpec",
    "distillation_loss",
    "format_distillation_table",
    "parse_distill_args",
    "parse_teacher",
    "plan_distillation",
    "resolve_teachers",
    "run",
]
