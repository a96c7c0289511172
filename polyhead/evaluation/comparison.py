r"""Statistics of the seed-averaged multitask vs single-task comparison, and its tables.

`polyhead.training.parity` trains the runs; this module compares their `results.json` files: per task, on the primary
metric, mean and sample std over seeds of each side, the paired difference (multitask minus single-task, seed by seed)
with a two-sided 95% Student t-interval `mean +- t(0.975, N - 1) * sd / sqrt(N)` ([`t_quantile`]: a table, so scipy is
not needed), and a verdict: `better` when the interval lies above 0, `worse` when below, else `within noise`.
"""

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any


CONFIDENCE = 0.95
VERDICTS = ("better", "within noise", "worse")

# Two-sided 95% quantiles t(0.975, df) of Student's t distribution (df = seeds - 1), and beyond 30 a few anchors.
_T_975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
    11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086,
    21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042,
    40: 2.021, 60: 2.000, 120: 1.980,
}  # fmt: skip
_Z_975 = 1.960


def t_quantile(df: int) -> float:
    r"""
    `t(0.975, df)`, the two-sided 95% quantile of Student's t with `df` degrees of freedom (table to 30, then
    interpolated in 1/df between 30, 40, 60, 120 and the normal 1.960), accurate to 0.001.

    Example:

    ```python
    >>> t_quantile(2)  # 3 seeds
    4.303
    ```
    """
    if df < 1:
        raise ValueError(f"A t-interval needs at least 2 runs (df >= 1), got df={df}.")
    if df in _T_975:
        return _T_975[df]
    anchors = sorted(_T_975)[29:] + [math.inf]
    for low, high in zip(anchors, anchors[1:]):
        if low < df < high:
            t_low, t_high = _T_975[low], _T_975.get(high, _Z_975)
            # t is close to linear in 1/df between anchors
            fraction = (1 / low - 1 / df) / (1 / low - (0 if high == math.inf else 1 / high))
            return round(t_low + fraction * (t_high - t_low), 3)
    return _Z_975


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """`{"mean", "std", "values"}` (sample std, 0 for one value)."""
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "values": values}


def paired_difference(ours: Sequence[float], theirs: Sequence[float]) -> dict[str, Any]:
    r"""
    The paired difference `ours[i] - theirs[i]` (same seed): `{"mean", "std", "values", "low", "high", "verdict"}`,
    with the 95% t-interval (`low`/`high` are `None` for a single pair, whose verdict is then `within noise`).
    """
    if len(ours) != len(theirs) or not ours:
        raise ValueError(f"Paired runs needed: {len(ours)} multitask vs {len(theirs)} single-task values.")
    differences = summarize([a - b for a, b in zip(ours, theirs)])
    low = high = None
    if len(ours) > 1:
        half = t_quantile(len(ours) - 1) * differences["std"] / math.sqrt(len(ours))
        low, high = differences["mean"] - half, differences["mean"] + half
    return {**differences, "low": low, "high": high, "verdict": verdict(low, high)}


def verdict(low: float | None, high: float | None) -> str:
    """`better` when the interval is above 0, `worse` when below, else `within noise` (also without interval)."""
    if low is not None and low > 0:
        return "better"
    if high is not None and high < 0:
        return "worse"
    return "within noise"


def compare_runs(runs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], seeds: Sequence[int]) -> dict[str, Any]:
    r"""
    The seed-averaged comparison of `(multitask results, baseline results)` pairs (one per seed, `results.json`
    schema) on each task's primary metric::

        {"seeds": [0, 1, 2], "confidence": 0.95, "split": "test",
         "tasks": {task: {"metric": "f1_macro",
                          "multitask": {"mean", "std", "values"}, "single_task": {"mean", "std", "values"},
                          "difference": {"mean", "std", "values", "low", "high", "verdict"}}},
         "average": {same keys but "metric": "primary"}}  # the per-seed mean over tasks

    Only tasks scored on both sides in every seed are compared.
    """
    first = runs[0][0]
    primary = first.get("primary_metrics", {})
    tasks = [task for task in first.get("tasks", {}) if all(_has(run, task) for run in runs)]
    comparison: dict[str, Any] = {
        "seeds": list(seeds),
        "confidence": CONFIDENCE,
        "split": first.get("split"),
        "tasks": {},
    }
    per_seed_ours, per_seed_theirs = [[] for _ in runs], [[] for _ in runs]
    for task in tasks:
        metric = primary.get(task) or ("f1_micro" if "f1_micro" in first["tasks"][task] else "f1_macro")
        ours = [multitask["tasks"][task][metric] for multitask, _ in runs]
        theirs = [baseline["tasks"][task][metric] for _, baseline in runs]
        for i, (a, b) in enumerate(zip(ours, theirs)):
            per_seed_ours[i].append(a)
            per_seed_theirs[i].append(b)
        comparison["tasks"][task] = _row(metric, ours, theirs)
    if tasks:
        ours = [statistics.fmean(values) for values in per_seed_ours]
        theirs = [statistics.fmean(values) for values in per_seed_theirs]
        comparison["average"] = _row("primary", ours, theirs)
    return comparison


def _has(run: tuple[Mapping[str, Any], Mapping[str, Any]], task: str) -> bool:
    return all(task in (results or {}).get("tasks", {}) for results in run)


def _row(metric: str, ours: Sequence[float], theirs: Sequence[float]) -> dict[str, Any]:
    return {
        "metric": metric,
        "multitask": summarize(ours),
        "single_task": summarize(theirs),
        "difference": paired_difference(ours, theirs),
    }


def comparison_rows(comparison: Mapping[str, Any]) -> list[tuple[str, str, str, str, str, str, str]]:
    r"""
    `(task, metric, multitask, single-task, difference, 95% interval, verdict)` strings, one per task and a last
    `average` row, in points (metric x 100): `"mean ± std"` for each side. The plain-text and Markdown tables
    (end-of-run table, model card, benchmark page) are built from these rows.
    """
    rows = []
    entries = list(comparison.get("tasks", {}).items())
    if comparison.get("average"):
        entries.append(("average", comparison["average"]))
    for task, row in entries:
        difference = row["difference"]
        interval = (
            "-" if difference["low"] is None else f"[{difference['low'] * 100:+.1f}, {difference['high'] * 100:+.1f}]"
        )
        rows.append(
            (
                task,
                row["metric"],
                _points(row["multitask"]),
                _points(row["single_task"]),
                f"{difference['mean'] * 100:+.1f}",
                interval,
                difference["verdict"],
            )
        )
    return rows


def _points(summary: Mapping[str, Any]) -> str:
    return f"{summary['mean'] * 100:.1f} ± {summary['std'] * 100:.1f}"


COLUMNS = ("task", "metric", "multitask", "single-task", "difference", "95% interval", "verdict")


def format_seed_comparison_table(comparison: Mapping[str, Any]) -> str:
    r"""
    The plain-text table of [`comparison_rows`] (printed at the end of `scripts/train.py --seeds N`).

    Example:

    ```python
    >>> print(format_seed_comparison_table(results["multitask"]["comparison"]))
    ```
    """
    rows = [COLUMNS, *comparison_rows(comparison)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            cell.ljust(w) if i in (0, 1, 6) else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "-" * max(len(line) for line in lines))
    seeds = comparison.get("seeds", [])
    note = (
        f"{len(seeds)} seeds {seeds}, {comparison.get('split')} split, points (metric x 100): mean ± std over seeds; "
        f"difference = multitask - single-task, paired by seed, with its {int(CONFIDENCE * 100)}% t-interval."
    )
    return "\n".join([*lines, note])


__all__ = [
    "COLUMNS",
    "CONFIDENCE",
    "VERDICTS",
    "compare_runs",
    "comparison_rows",
    "format_seed_comparison_table",
    "paired_difference",
    "summarize",
    "t_quantile",
    "verdict",
]
