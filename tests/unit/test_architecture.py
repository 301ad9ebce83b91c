"""The package layers run one way — datasets → methods → benchmark → reports, with the command-line modules on
top — and no module imports itself back through a circle. Checked on the source (every import statement,
also inside functions and ``TYPE_CHECKING`` blocks), so a new upward import fails here, not at a user's site."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.tiny_config import REPO

LAYERS = ("datasets", "methods", "benchmark", "reports")
CLI = len(LAYERS)  # rank of command-line modules: they may import every layer


def _modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): path
        for package in LAYERS
        for path in (REPO / package).rglob("*.py")
    }


MODULES = _modules()


def _rank(module: str, path: Path) -> int:
    text = path.read_text()
    if path.name == "__main__.py" or 'if __name__ == "__main__":' in text:
        return CLI
    return LAYERS.index(module.split(".")[0])


def _imports(module: str, path: Path) -> set[str]:
    """Project modules imported by ``module`` (``from pkg import sub`` resolves to ``pkg.sub`` when that is a
    module, relative imports resolved against the package)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_the_walker_sees_known_imports() -> None:
    assert "benchmark.metrics" in GRAPH["benchmark.thresholds"]
    assert "datasets.slices" in GRAPH["methods.base"]
    assert len(MODULES) > 40


def test_no_layer_imports_a_layer_above_it() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _rank(target, MODULES[target]) > _rank(module, MODULES[module])
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_has_modules(layer: str) -> None:
    assert any(m.split(".")[0] == layer for m in MODULES)


@pytest.mark.parametrize("layer", ["benchmark", "reports"])
def test_generic_layers_name_no_registered_method(layer: str) -> None:
    """Generic code reaches methods only through the interface and the registry: no registered name appears
    in its code, strings, comments or file names (method-specific studies live in the method's package)."""
    import re

    from methods import registered_methods

    pattern = re.compile(r"\b(" + "|".join(map(re.escape, registered_methods())) + r")\b")
    hits = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted((REPO / layer).rglob("*.py"))
        for number, line in enumerate([path.name, *path.read_text().splitlines()])
        if pattern.search(line)
    ]
    assert hits == []
