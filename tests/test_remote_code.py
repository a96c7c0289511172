"""The saved folder loads with trust_remote_code in a fresh process that cannot import this source tree."""

import json
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import BLOCKER, TEXTS, run_fresh
from transformers import pipeline
from transformers.dynamic_module_utils import get_relative_imports

from polyhead.saving import (
    ENTRY_FILES,
    REMOTE_CODE_FILES,
    REMOTE_CODE_SOURCES,
    atomic_folder,
    check_model_folder,
    is_polyhead_model_folder,
    missing_remote_code,
    save_model_folder,
)


LOAD_AND_RUN = BLOCKER + textwrap.dedent(
    """
    import json, torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer, pipeline
    folder, texts = sys.argv[1], json.loads(sys.argv[2])
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    classifier = pipeline("multitask-classification", model=folder, trust_remote_code=True)
    print(json.dumps({
        "config_class": type(config).__module__ + "." + type(config).__name__,
        "model_class": type(model).__module__ + "." + type(model).__name__,
        "tasks": config.task_names,
        "logits": {task: value.tolist() for task, value in logits.items()},
        "pipeline": classifier(texts, top_k=None, threshold=0.0, batch_size=2),
    }))
    """
)

REFUSE = BLOCKER + textwrap.dedent(
    """
    from transformers import AutoModel
    try:
        AutoModel.from_pretrained(sys.argv[1])
    except ValueError as error:
        print("REFUSED:", error)
    """
)


@pytest.fixture
def saved(model, tokenizer, tmp_path):
    return save_model_folder(model, tokenizer, tmp_path / "model")


def test_folder_holds_code_config_and_safetensors(saved):
    names = {p.name for p in saved.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", *REMOTE_CODE_FILES} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl"))]
    config = json.loads((saved / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_multitask.MultitaskConfig",
        "AutoModel": "modeling_multitask.MultitaskModel",
    }
    assert config["custom_pipelines"]["multitask-classification"] == {
        "impl": "multitask_classification.MultitaskClassificationPipeline",
        "pt": ["AutoModel"],
        "type": "text",
    }
    for name in REMOTE_CODE_FILES:  # Hub remote code: flat siblings, single-dot relative imports only
        assert "from .." not in (saved / name).read_text()


def test_saved_tokenizer_names_its_inputs(saved, tokenizer):
    # transformers 5.0 loads a tokenizer saved by later releases as a generic backend that, without these names,
    # returns no token_type_ids: a sentence pair's second text would be read as the first segment.
    config = json.loads((saved / "tokenizer_config.json").read_text())
    assert config["model_input_names"] == list(tokenizer.model_input_names)
    assert "token_type_ids" in config["model_input_names"]  # the tiny BERT tokenizer's pairs need them


@pytest.mark.slow
def test_fresh_process_loads_with_trust_remote_code_and_matches(saved, model, tokenizer, tmp_path):
    out = json.loads(run_fresh(LOAD_AND_RUN, str(saved), json.dumps(TEXTS), cwd=tmp_path).splitlines()[-1])
    assert out["config_class"].startswith("transformers_modules.") and out["config_class"].endswith("MultitaskConfig")
    assert out["model_class"].startswith("transformers_modules.") and out["model_class"].endswith("MultitaskModel")
    assert out["tasks"] == ["sentiment", "topic", "emotions"]
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
    for task, value in logits.items():
        torch.testing.assert_close(torch.tensor(out["logits"][task]), value, rtol=0, atol=1e-6)
    local = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    expected = local(TEXTS, top_k=None, threshold=0.0)
    for theirs, ours in zip(out["pipeline"], expected):
        for task in ours:
            assert [i["label"] for i in theirs[task]] == [i["label"] for i in ours[task]]
            assert [i["score"] for i in theirs[task]] == pytest.approx([i["score"] for i in ours[task]], abs=1e-6)


@pytest.mark.slow
def test_without_trust_remote_code_the_load_refuses(saved, tmp_path):
    out = run_fresh(REFUSE, str(saved), cwd=tmp_path)
    assert "REFUSED:" in out and "trust_remote_code=True" in out


def test_atomic_folder_leaves_nothing_on_failure(tmp_path, model, tokenizer):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_folder(target) as tmp:
            model.save_pretrained(tmp)
            raise RuntimeError("disk full")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    save_model_folder(model, tokenizer, target)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_model_folder(model, tokenizer, target)
    before = (target / "model.safetensors").read_bytes()

    def fail(folder):
        raise OSError("upload of results failed")

    with pytest.raises(OSError, match="results failed"):
        save_model_folder(model, tokenizer, target, overwrite=True, extra=fail)
    assert (target / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.slow
def test_resized_token_embeddings_load_with_remote_code(model, tokenizer, tmp_path):
    tokenizer.add_tokens(["polyheadword"])
    model.resize_token_embeddings(len(tokenizer))
    folder = save_model_folder(model, tokenizer, tmp_path / "resized")
    texts = ["i love polyheadword", "polyheadword is bad"]
    out = json.loads(run_fresh(LOAD_AND_RUN, str(folder), json.dumps(texts), cwd=tmp_path).splitlines()[-1])
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    for task, value in logits.items():
        torch.testing.assert_close(torch.tensor(out["logits"][task]), value, rtol=0, atol=1e-6)


ROOT = Path(__file__).resolve().parent.parent
# The Hub files as the source tree holds them: the config and model files at the top, the pipeline files in pipelines/.
TREE_HUB_FILES = sorted([*ROOT.glob("configuration_multitask*.py"), *ROOT.glob("modeling_multitask*.py")])
TREE_HUB_FILES += sorted((ROOT / "pipelines").glob("*.py"))


def relative_imports(path: Path) -> set[str]:
    """The flat sibling files `path` imports, as transformers finds them (its own regex, TYPE_CHECKING imports too)."""
    return {f"{name}.py" for name in get_relative_imports(path)}


def test_every_hub_file_in_the_tree_is_copied_into_model_folders():
    assert sorted(path.resolve() for path in REMOTE_CODE_SOURCES) == sorted(path.resolve() for path in TREE_HUB_FILES)


def test_hub_files_import_each_other_one_way_and_only_each_other():
    # transformers 4.51.3's get_relative_import_files loops forever on a relative-import cycle: loading would hang.
    graph = {path.name: relative_imports(path) for path in REMOTE_CODE_SOURCES}
    assert {name for targets in graph.values() for name in targets} <= set(graph)
    done, open_ = set(), []

    def visit(name):
        assert name not in open_, f"relative-import cycle: {' -> '.join([*open_, name])}"
        if name not in done:
            open_.append(name)
            for target in sorted(graph[name]):
                visit(target)
            open_.pop()
            done.add(name)

    for name in sorted(graph):
        visit(name)


def test_each_entry_file_names_every_hub_file_it_needs_and_together_they_reach_all(saved):
    # transformers 4.51.3 copies only the direct relative imports of a local folder's entry file into its module
    # cache, then reads them all recursively: a file reached only through another would be missing there.
    assert missing_remote_code(saved) == []
    reached = set()
    for entry in ENTRY_FILES:
        closure, pending = set(), list(relative_imports(saved / entry))
        while pending:
            name = pending.pop()
            if name not in closure:
                closure.add(name)
                pending += relative_imports(saved / name)
        assert closure == relative_imports(saved / entry), f"{entry} must import {sorted(closure)} itself"
        reached |= {entry, *closure}
    assert reached == set(REMOTE_CODE_FILES)


def test_a_folder_lacking_a_sibling_its_code_imports_is_incomplete(saved):
    (saved / "multitask_inputs.py").unlink()
    assert missing_remote_code(saved) == ["multitask_inputs.py"]
    assert not is_polyhead_model_folder(saved)
    with pytest.raises(FileNotFoundError, match="multitask_inputs.py"):
        check_model_folder(saved)


def test_a_folder_saved_with_the_earlier_four_hub_files_stays_complete(saved):
    # Before the Hub files were split, a folder held four; each loads with its own code, so it is still complete.
    for name in set(REMOTE_CODE_FILES) - set(ENTRY_FILES) - {"multitask_ranking.py"}:
        (saved / name).unlink()
    (saved / "configuration_multitask.py").write_text("class MultitaskConfig: ...\n")
    (saved / "modeling_multitask.py").write_text(
        "from typing import TYPE_CHECKING\nfrom .configuration_multitask import MultitaskConfig\nif TYPE_CHECKING:\n"
        "    from .multitask_classification import Pipeline\n    from .multitask_ranking import rank\n"
    )
    (saved / "multitask_classification.py").write_text("from .multitask_ranking import rank\n")
    assert missing_remote_code(saved) == []
    assert is_polyhead_model_folder(saved)
    check_model_folder(saved)
