"""Evaluation: metrics (local `evaluate` modules), scoring a model on every task's split (`scoring`), results
files and reports, confusion-matrix plots (`plots`), multi-label threshold tuning (`thresholds`) and agreement
with a teacher by the teacher's confidence (`agreement`)."""
