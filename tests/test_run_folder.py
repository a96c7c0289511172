"""The run-folder contract (`polyhead.run_folder`): names spelled once, files written and read back by one module."""

import ast
import enum
import json
import re
from pathlib import Path

import pytest
from helpers import save_tiny_folder, truncate_file

from polyhead import run_folder
from polyhead.evaluation.scoring import evaluate_saved_model
from polyhead.publishing.model_card import predict_widget
from polyhead.publishing.upload import UPLOAD_PATTERNS, select_upload_files
from polyhead.run_folder import check_weights_file


ROOT = Path(__file__).resolve().parent.parent
# Spelled only in polyhead/run_folder.py: a second spelling is how the four copies of the contract drifted.
CONTRACT_NAMES = ("results.json", "training_args.json", "baselines/", "README.md")
CONTRACT_PREFIXES = ("classification_report_", "confusion_matrix_")  # f-string parts: f"confusion_matrix_{task}.png"
REPORT_NAME = re.compile(r"(classification_report|confusion_matrix)_\S*\.(txt|png|csv)")


def test_names_and_patterns():
    assert run_folder.BASELINE_RESULTS_FILE == "baselines/results.json"
    assert run_folder.classification_report_file("topic") == "classification_report_topic.txt"
    assert run_folder.confusion_matrix_image("topic") == "confusion_matrix_topic.png"
    assert run_folder.confusion_matrix_counts("topic") == "confusion_matrix_topic.csv"
    assert run_folder.evaluation_dir("outputs/model", "test") == Path("outputs/model/eval-test")
    assert set(run_folder.RUN_FILE_PATTERNS) <= set(UPLOAD_PATTERNS)


def test_write_and_read_round_trip(tmp_path):
    assert run_folder.read_results(tmp_path) is None
    assert run_folder.read_training_args(tmp_path) is None
    assert run_folder.read_baseline_results(tmp_path) is None
    results = {"tasks": {"a": {"accuracy": 0.5}}, "split": "test"}
    path = run_folder.write_results(results, tmp_path)
    assert path == tmp_path / "results.json"
    assert path.read_text(encoding="utf-8") == json.dumps(results, indent=2) + "\n"
    assert run_folder.read_results(tmp_path) == results
    run_folder.write_baseline_results(results, tmp_path)
    assert run_folder.read_baseline_results(tmp_path) == results
    assert (tmp_path / "baselines" / "results.json").is_file()

    class Strategy(enum.Enum):
        EPOCH = "epoch"

    run_folder.write_training_args({"training": {"eval_strategy": Strategy.EPOCH, "dir": tmp_path}}, tmp_path)
    assert run_folder.read_training_args(tmp_path)["training"]["dir"] == str(tmp_path)


def test_published_run_files(tmp_path):
    for name in ("results.json", "training_args.json", "baselines/results.json", "README.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}", encoding="utf-8")
    for name in ("confusion_matrix_a.png", "confusion_matrix_a.csv", "classification_report_a.txt", "notes.txt"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    (tmp_path / "baselines" / "a").mkdir()
    (tmp_path / "baselines" / "a" / "results.json").write_text("{}", encoding="utf-8")
    assert run_folder.confusion_matrix_images(tmp_path) == ["confusion_matrix_a.png"]
    assert select_upload_files(tmp_path) == sorted(
        [
            "README.md",
            "baselines/results.json",
            "classification_report_a.txt",
            "confusion_matrix_a.csv",
            "confusion_matrix_a.png",
            "results.json",
            "training_args.json",
        ]
    )


def _code_strings(path: Path) -> list[str]:
    """The string constants of a module's code (f-string parts included), docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_run_folder_names_are_spelled_once():
    sources = sorted((ROOT / "polyhead").rglob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))
    offenders = []
    for path in sources:
        if path.name == "run_folder.py":
            continue
        for text in _code_strings(path):
            if any(name in text for name in CONTRACT_NAMES) or REPORT_NAME.search(text) or text in CONTRACT_PREFIXES:
                offenders.append(f"{path.relative_to(ROOT)}: {text!r}")
    assert not offenders, "Use polyhead.run_folder's names instead of:\n" + "\n".join(offenders)


def test_empty_and_truncated_weights_are_named(tmp_path):
    folder = save_tiny_folder(tmp_path / "model")
    weights = folder / "model.safetensors"
    assert check_weights_file(weights)["heads.topic.weight"] == [4, 32]
    truncate_file(weights)
    with pytest.raises(ValueError, match=f"{weights} is truncated"):
        check_weights_file(weights)
    with pytest.raises(ValueError, match=f"{weights} is truncated"):
        predict_widget(folder, ["good"])
    with pytest.raises(ValueError, match=f"{weights} is truncated"):
        evaluate_saved_model(folder, ["topic=nowhere"])
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match=f"{weights} is empty"):
        check_weights_file(weights)
    weights.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{oops")
    with pytest.raises(ValueError, match="is not a safetensors file"):
        check_weights_file(weights)
