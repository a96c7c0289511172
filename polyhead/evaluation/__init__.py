"""Evaluation: metrics (local `evaluate` modules), scoring a model on every task's split (`scoring`), results
files and reports, confusion-matrix plots (`plots`) and multi-label threshold tuning (`thresholds`)."""
