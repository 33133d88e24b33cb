"""The package's imports point one way: down the layers below, never up, and no module imports itself back.

Every import counts, also those inside functions (a lazy import is still a dependency). A module sits
in a folder named for its job; only the package's face (__init__, __main__) stands at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import edgebench

ROOT = Path(edgebench.__file__).parent

# Lowest first. A package may import packages of lower layers only (and its own modules).
LAYERS = [
    ["agent"],  # the on-device program: stdlib + numpy + a runtime, imports nothing of edgebench
    ["core"],  # errors, atomic files, quiet stderr, the settings table
    ["transport", "results", "model"],  # reaching a device; the run record and its layout; a model and its data
    ["quantize", "accuracy"],  # variants of a model; host-side accuracy and the fidelity reference
    ["zoo"],  # named models (their build scripts evaluate what they built)
    ["backends", "compare"],  # measuring on a device; pure judgements over run records
    ["devices", "history"],  # the inventory and device chores; the index over runs and baselines
    ["run"],  # one run: plan, lease, measure
    ["farm"],  # many devices at once
    ["labs"],  # farms across lab hosts
    ["report"],  # renderers: read results, never the run code
    ["cli", "emulated"],  # the command (the only layer that prints); emulated test boards
]
LAYER = {package: number for number, packages in enumerate(LAYERS) for package in packages}
FACE = {"__init__", "__main__"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The edgebench modules `path` imports, anywhere in it."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from edgebench.x import y` imports edgebench.x, or edgebench.x.y when y is a module
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("edgebench."):
                targets.add(name)
    return targets


def _package(module: str) -> str:
    return module.split(".")[1]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_every_module_sits_in_a_folder_named_for_its_job():
    loose = [path.name for path in ROOT.glob("*.py") if path.stem not in FACE]
    assert loose == []
    folders = {path.name for path in ROOT.iterdir() if path.is_dir() and (path / "__init__.py").is_file()}
    assert folders == set(LAYER), "a new folder needs its place in LAYERS"


def test_no_import_runs_up_the_layers_or_sideways():
    wrong = []
    for module, targets in _graph().items():
        if module.count(".") == 0 or module.split(".")[1] in FACE:
            continue
        for target in targets:
            here, there = _package(module), _package(target)
            if here != there and LAYER[there] >= LAYER[here]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_the_agent_imports_nothing_of_edgebench():
    assert _graph()["edgebench.agent.agent"] == set()


def test_no_module_imports_itself_back():
    graph = _graph()
    cycles = []

    def visit(module: str, path: list[str], on_path: set[str], done: set[str]) -> None:
        on_path.add(module)
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if target in on_path:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in done:
                visit(target, path, on_path, done)
        path.pop()
        on_path.discard(module)
        done.add(module)

    done: set[str] = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [], set(), done)
    assert cycles == []


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from edgebench.report.table import DataTable\n")
    assert _imports(module, _modules()) == {"edgebench.report.table"}
