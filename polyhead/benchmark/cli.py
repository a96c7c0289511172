"""What every benchmark script (`scripts/benchmark.py`, `scripts/bench_*.py`) does with its command line, in one place:

- argparse types for comma-separated lists ([`int_list`], [`name_list`], [`pair_list`]) and bounded integers
  ([`int_at_least`]): a bad value is refused by argparse (usage, the option and the problem, exit status 2) before
  anything loads;
- [`check_outputs`]: the report file (and the files written beside it) and the work folders are checked right after
  parsing (`polyhead.benchmark.zero_shot.check_report_file`), so a path that cannot be written fails in a second,
  not after the measurements;
- [`one_line_errors`]: around a script's run, a `ValueError` or `OSError` (bad arguments, data, model or paths; the
  message says what to fix) becomes `error: <message>` on one line and exit status 1, as
  `scripts/eval_zero_shot.py` does.
"""

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from polyhead.benchmark.zero_shot import check_report_file
from polyhead.run_folder import check_output_folder


def comma_list(item: Callable[[str], Any], what: str, allow_empty: bool = False) -> Callable[[str], list]:
    """An argparse type: `value` split at commas, each item converted by `item` (which raises `ValueError` or
    `argparse.ArgumentTypeError` naming the problem); empty items, repeated items and (unless `allow_empty`) an empty
    list are refused. `what` names the items in the messages."""

    def parse(value: str) -> list:
        if allow_empty and not value.strip():
            return []
        items = [part.strip() for part in value.split(",")]
        if not all(items):
            raise argparse.ArgumentTypeError(f"give comma-separated {what} with no empty item, got {value!r}")
        converted = []
        for part in items:
            try:
                converted.append(item(part))
            except ValueError as error:
                where = f"{part!r} in {value!r}" if len(items) > 1 else repr(part)
                raise argparse.ArgumentTypeError(f"{where}: {error}") from None
        repeated = sorted({str(x) for x in converted if converted.count(x) > 1})
        if repeated:
            raise argparse.ArgumentTypeError(f"{', '.join(repeated)} repeated in {value!r}: give each once")
        return converted

    parse.__name__ = f"comma-separated {what}"
    return parse


def _bounded_int(minimum: int, maximum: int | None) -> Callable[[str], int]:
    def convert(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"not an integer{_range(minimum, maximum)}") from None
        if number < minimum or (maximum is not None and number > maximum):
            raise ValueError(f"must be an integer{_range(minimum, maximum)}")
        return number

    return convert


def _range(minimum: int, maximum: int | None) -> str:
    return f" from {minimum} to {maximum}" if maximum is not None else f" >= {minimum}"


def int_list(minimum: int = 1, maximum: int | None = None) -> Callable[[str], list[int]]:
    """An argparse type for comma-separated integers in `[minimum, maximum]`: `"3,6"` -> `[3, 6]`."""
    return comma_list(_bounded_int(minimum, maximum), f"integers{_range(minimum, maximum)}")


def name_list(choices: Sequence[str] | None = None, allow_empty: bool = False) -> Callable[[str], list[str]]:
    """An argparse type for comma-separated names, each one of `choices` when given: `"a,b"` -> `["a", "b"]`."""

    def convert(name: str) -> str:
        if choices is not None and name not in choices:
            raise ValueError(f"choose from {', '.join(choices)}")
        return name

    return comma_list(convert, "names", allow_empty)


def pair_list(key: str, value: str) -> Callable[[str], dict[str, str]]:
    """An argparse type for comma-separated `key=value` pairs (`key` and `value` name the sides in the messages):
    `"sst2=data/sst2,trec=data/trec"` -> `{"sst2": "data/sst2", "trec": "data/trec"}`; `""` -> `{}`."""

    def convert(pair: str) -> tuple[str, str]:
        left, sign, right = (part.strip() for part in pair.partition("="))
        if not sign or not left or not right:
            raise ValueError(f"write {key}={value}")
        return left, right

    parse = comma_list(convert, f"{key}={value} pairs", allow_empty=True)

    def pairs(text: str) -> dict[str, str]:
        parsed = parse(text)
        keys = [left for left, _ in parsed]
        repeated = sorted({left for left in keys if keys.count(left) > 1})
        if repeated:
            raise argparse.ArgumentTypeError(f"{key} {', '.join(repeated)} given twice in {text!r}")
        return dict(parsed)

    pairs.__name__ = parse.__name__
    return pairs


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type for one integer >= `minimum`."""
    convert = _bounded_int(minimum, None)

    def parse(value: str) -> int:
        try:
            return convert(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{value!r}: {error}") from None

    parse.__name__ = f"integer >= {minimum}"
    return parse


def check_outputs(
    report: str | os.PathLike | None = None,
    option: str = "--output",
    beside: Sequence[str] = (),
    folders: dict[str, str | os.PathLike | None] | None = None,
) -> None:
    """Raises a `ValueError` naming the option unless the report file `report` can be written (`check_report_file`),
    nor the files beside it with the suffixes `beside` (e.g. `.md`, `.png`), and unless every folder of `folders`
    (option -> path; `None` skipped) can be one (no file at or above it). Called right after parsing."""
    if report is not None:
        check_report_file(report, option)
        for suffix in beside:
            check_report_file(Path(report).with_suffix(suffix), f"{option} (its {suffix} file)")
    for name, folder in (folders or {}).items():
        if folder is not None:
            check_output_folder(folder, name)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turns a `ValueError` or `OSError` raised inside into `error: <message>` (one line) and exit status 1."""
    try:
        yield
    except (ValueError, OSError) as error:  # bad arguments, data, model or paths: the message says what to fix
        sys.exit("error: " + " ".join(str(error).split()))


__all__ = [
    "check_outputs",
    "comma_list",
    "int_at_least",
    "int_list",
    "name_list",
    "one_line_errors",
    "pair_list",
]
