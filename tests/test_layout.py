"""The library's layout: each module imports only from its own layer or the layers below, no import cycle, the Hub
files reached through one module, and the stand-alone serving files never imported by the library."""

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "polyhead"

# Lowest first. A module may import from its own layer and the layers above it in this list, never from below.
LAYERS = [
    ("polyhead", "polyhead.remote_code", "polyhead.presets", "polyhead.run_folder"),
    ("polyhead.encoders", "polyhead.tasks", "polyhead.decisions", "polyhead.testing_utils"),
    ("polyhead.data", "polyhead.serving"),
    ("polyhead.saving",),
    ("polyhead.evaluation",),
    ("polyhead.publishing",),
    ("polyhead.training", "polyhead.exporters"),
    ("polyhead.distill",),
    ("polyhead.demo", "polyhead.space"),
    ("polyhead.benchmark",),
]
# Copied into model folders or Spaces and run without polyhead: the library never imports them (the serving package's
# `__init__` names the ONNX runtime model for the library, as the documented way in).
STAND_ALONE = ("polyhead.serving.handler", "polyhead.space.app")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py") if "metrics/multi" not in path.as_posix()}


def imports(path: Path, known: set[str]) -> set[str]:
    """Every polyhead module `path` imports, at the top or inside a function (`from pkg import sub` is `pkg.sub`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in known}
    return {name for name in found if name.split(".")[0] in ("polyhead", "polyhead_remote")}


def layer(name: str) -> int:
    matches = [(len(prefix), i) for i, group in enumerate(LAYERS) for prefix in group if _within(name, prefix)]
    assert matches, f"{name} is in no layer: add it to LAYERS"
    return max(matches)[1]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_no_module_imports_from_a_layer_above_it():
    known = set(modules())
    upward = []
    for name, path in modules().items():
        for target in imports(path, known) - {name}:
            if target.startswith("polyhead_remote"):
                continue
            if layer(target) > layer(name):
                upward.append(f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})")
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycle():
    known = set(modules())
    graph = {name: imports(path, known) & known - {name} for name, path in modules().items()}
    # A package's `__init__` importing its own submodules is not a cycle through them.
    graph = {name: {t for t in targets if not _within(t, name)} for name, targets in graph.items()}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_hub_files_are_imported_through_one_module_and_stand_alone_files_never():
    known = set(modules())
    through_alias = sorted(
        name
        for name, path in modules().items()
        if name != "polyhead.remote_code" and any(t.startswith("polyhead_remote") for t in imports(path, known))
    )
    assert through_alias == [], "import the Hub files from polyhead.remote_code"
    stand_alone = sorted(name for name, path in modules().items() if imports(path, known) & set(STAND_ALONE))
    assert stand_alone == []


def test_importing_metrics_does_not_import_matplotlib():
    import subprocess
    import sys

    code = "import sys, polyhead.evaluation.metrics; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
