"""The README stays a newcomer's five minutes: short, its links to the docs resolve, and the commands it tells a
newcomer to paste name files that exist."""

import re
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
# The two commands a newcomer pastes: the main job and the tests (.ci/run runs the second).
MAIN_JOB = "bash scripts/run_demo.sh"
TESTS = 'bash scripts/setup_env.sh && .venv/bin/python -m pytest -q -m "not full"'


def docs_links(text: str) -> list[tuple[str, str]]:
    """(path, anchor) of every relative Markdown link into docs/."""
    return [(m[1], m[2] or "") for m in re.finditer(r"\]\((docs/[^)#\s]*)(?:#([^)\s]+))?\)", text)]


def heading_anchors(markdown: str) -> set[str]:
    """The ids Python-Markdown's toc extension gives the headings (its default slugify)."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
        anchors.add(re.sub(r"[-\s]+", "-", slug))
    return anchors


def test_readme_is_at_most_250_lines():
    assert len(README.splitlines()) <= 250


def test_every_docs_page_linked_from_the_readme_exists():
    links = docs_links(README)
    assert {"docs/training.md", "docs/publishing.md", "docs/serving.md"} <= {path for path, _ in links}
    for path, anchor in links:
        target = ROOT / path
        assert target.is_file(), f"README links to {path}, which does not exist"
        if anchor:
            assert anchor in heading_anchors(target.read_text(encoding="utf-8")), f"{path}#{anchor}: no such heading"


@pytest.mark.parametrize("command", [MAIN_JOB, TESTS])
def test_the_newcomer_commands_are_in_the_readme_and_name_existing_scripts(command):
    assert re.search(rf"^{re.escape(command)}$", README, flags=re.MULTILINE), f"README lost {command!r}"
    for script in re.findall(r"scripts/[\w./-]+", command):
        assert (ROOT / script).is_file(), script
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert '.venv/bin/python -m pytest -q -m "not full"' in ci  # CI runs the tests command
    assert "scripts/demo.py" in (ROOT / "scripts" / "run_demo.sh").read_text(encoding="utf-8")
    assert (ROOT / "scripts" / "demo.py").is_file()


def test_every_script_the_readme_names_exists():
    scripts = set(re.findall(r"\bscripts/[\w-]+\.(?:py|sh)", README))
    assert len(scripts) >= 6
    assert [script for script in sorted(scripts) if not (ROOT / script).is_file()] == []


def test_heading_anchors_follow_the_docs_slugs():
    assert heading_anchors("## Supported transformers releases\n### One-task `export`\n") == {
        "supported-transformers-releases",
        "one-task-export",
    }


def test_the_headline_table_is_the_same_in_the_readme_and_the_docs_home():
    def first_table(path):
        lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("|"))
        return lines[start : next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))]

    readme, home = first_table("README.md"), first_table("docs/index.md")
    assert len(readme) >= 3 and readme == home  # one measured run, quoted twice: update both or neither
