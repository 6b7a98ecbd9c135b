"""The import contract (README, "Departures from DESIGN.md": layers): read from the source, so CI checks it.

Layers, bottom up: the ground floor (assistant.types, assistant.config, assistant.models) → retrievers (the
store and search) → ingestion and memory (they write to and search the store) → the assistant's application
modules → ui (the chat backend composes a process) → eval and the command line (entry points). A module may
import its own package and the layers below it; no first-party cycle; nobody imports another package's
private (underscore) names.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("assistant", "ingestion", "retrievers", "memory", "ui", "eval")
GROUND = ("assistant.types", "assistant.config", "assistant.models")
ENTRY_POINTS = ("assistant.cli",)  # the `tessera` command wires every layer, eval's subcommands included
# What each layer may import besides its own package and the ground floor.
MAY_IMPORT = {
    "ground": set(),
    "retrievers": set(),
    "ingestion": {"retrievers"},
    "memory": {"retrievers"},
    "assistant": {"retrievers", "ingestion", "memory"},
    "ui": {"assistant", "retrievers", "ingestion", "memory"},
    "eval": {"assistant", "retrievers", "ingestion", "memory", "ui"},
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, str]]:
    """``(module, name)`` of every first-party import, function-level ones included (name "" for a module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.split(".")[0] in PACKAGES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] in PACKAGES:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.append((full, "") if full in known else (node.module, alias.name))
    return found


def layer(module: str) -> str:
    return "ground" if module.startswith(GROUND) else module.split(".")[0]


def test_every_import_follows_the_layers() -> None:
    known = modules()
    wrong = []
    for name, path in known.items():
        if name in ENTRY_POINTS:
            continue
        allowed = {layer(name), "ground"} | MAY_IMPORT[layer(name)]
        wrong += [f"{name} -> {target}" for target, _ in imports(path, known) if layer(target) not in allowed]
    assert wrong == []


def test_no_first_party_import_cycle() -> None:
    known = modules()
    graph = {name: {t for t, _ in imports(path, known) if t in known} for name, path in known.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_no_module_reaches_into_another_packages_private_names() -> None:
    known = modules()
    reached = [
        f"{name} imports {target}.{what}"
        for name, path in known.items()
        for target, what in imports(path, known)
        if what.startswith("_") and target.split(".")[0] != name.split(".")[0]
    ]
    assert reached == []
