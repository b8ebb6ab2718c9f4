"""The package's shape: no import cycle (counting imports under TYPE_CHECKING), and stages
that know nothing of the engine."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "batchtoon"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """Every batchtoon module `name` imports, anywhere in it (TYPE_CHECKING blocks included)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            submodules = {f"{base}.{alias.name}" for alias in node.names} & MODULES.keys()
            found.update(submodules)
            if len(submodules) < len(node.names):  # names defined in `base` itself
                found.add(base)
    return {module for module in found if module in MODULES and module != name}


def reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for module in imports_of(todo.pop()):
            if module not in seen:
                seen.add(module)
                todo.append(module)
    return seen


def test_the_import_graph_finds_what_it_should() -> None:
    # the checker itself: relative imports, of modules and of names, at every depth
    assert {"batchtoon.provider.api", "batchtoon.records.ledger", "batchtoon.errors"} <= imports_of(
        "batchtoon.pipeline.outcomes"
    )
    assert "batchtoon.provider.api" in imports_of("batchtoon.sandbox.server")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_itself_back(module: str) -> None:
    assert module not in reachable(module)


@pytest.mark.parametrize(
    "stage",
    ["batchtoon.pipeline.submitter", "batchtoon.pipeline.poller", "batchtoon.pipeline.downloader"],
)
def test_a_stage_imports_neither_the_engine_nor_the_router(stage: str) -> None:
    assert not {
        "batchtoon.pipeline.engine",
        "batchtoon.pipeline.router",
        "batchtoon.batch",
    } & reachable(stage)


def test_outcomes_import_only_the_ledger_the_api_and_the_errors() -> None:
    assert imports_of("batchtoon.pipeline.outcomes") == {
        "batchtoon.provider.api",
        "batchtoon.errors",
        "batchtoon.records.ledger",
    }


def test_the_engine_never_imports_the_sandbox() -> None:
    assert not any(
        m.startswith("batchtoon.sandbox") for m in reachable("batchtoon.pipeline.engine")
    )
