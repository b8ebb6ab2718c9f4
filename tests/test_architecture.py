"""The package's shape: no import cycle (counting imports under TYPE_CHECKING), stages that
know nothing of the engine or the state machine, one module that writes item records to the
journal, and a state machine with no I/O of its own."""

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
    assert {"batchtoon.provider.api", "batchtoon.pipeline.tickets", "batchtoon.errors"} <= (
        imports_of("batchtoon.pipeline.outcomes")
    )
    assert "batchtoon.provider.api" in imports_of("batchtoon.sandbox.server")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_itself_back(module: str) -> None:
    assert module not in reachable(module)


STAGES = [
    "batchtoon.pipeline.intake",
    "batchtoon.pipeline.submitter",
    "batchtoon.pipeline.poller",
    "batchtoon.pipeline.downloader",
]


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_neither_the_engine_nor_the_machine(stage: str) -> None:
    assert not {
        "batchtoon.pipeline.engine",
        "batchtoon.pipeline.driver",
        "batchtoon.pipeline.machine",
        "batchtoon.batch",
    } & reachable(stage)


def test_outcomes_import_only_tickets_and_what_they_carry() -> None:
    assert imports_of("batchtoon.pipeline.outcomes") == {
        "batchtoon.provider.api",
        "batchtoon.errors",
        "batchtoon.images.preflight",
        "batchtoon.locations.sources",
        "batchtoon.pipeline.tickets",
    }


def journal_writers(name: str) -> set[str]:
    """The calls in module `name` that write to a journal: `<...journal>.write(...)` or
    `<...journal>.append(...)`, as source text."""
    calls = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func.value)
            if node.func.attr in ("write", "append") and target.endswith("journal"):
                calls.add(ast.unparse(node.func))
    return calls


def test_the_scan_for_journal_writes_finds_them() -> None:
    assert journal_writers("batchtoon.pipeline.driver") == {"self.journal.append"}


def test_exactly_one_module_writes_item_records_to_the_journal() -> None:
    writers = {name for name in MODULES if journal_writers(name)}
    assert writers == {"batchtoon.pipeline.driver"}


def test_the_state_machine_has_no_io_of_its_own() -> None:
    """No journal, clock, threads, sockets or files: only what it is given and what it returns."""
    tree = ast.parse(MODULES["batchtoon.pipeline.machine"].read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}  # fmt: skip
    modules |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    forbidden = {"anyio", "asyncio", "threading", "time", "os", "socket", "pathlib", "aiohttp"}
    assert not {module.partition(".")[0] for module in modules} & forbidden
    assert not {"batchtoon.records.journal", "batchtoon.pipeline.clock"} & imports_of(
        "batchtoon.pipeline.machine"
    )
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not {"open", "print"} & names


def test_the_engine_never_imports_the_sandbox() -> None:
    assert not any(
        m.startswith("batchtoon.sandbox") for m in reachable("batchtoon.pipeline.engine")
    )
