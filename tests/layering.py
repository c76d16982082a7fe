"""The house's import rules, read from the sources with `ast` (nothing is imported).

Floors, top to bottom; each may import only its own floor and the floors below it:

    timbrel (application: CLI, session, control surface, the façade)
    timbrel.presets
    timbrel.plugin
    timbrel.engine          (the real-time core)

`timbrel.export` (training) stands beside them: it may import engine, plugin and presets,
and only the training commands (`timbrel.cli.training`) import it. Inside the engine, the
audio-thread code (`timbrel.engine.realtime`) never imports the I/O layer (`timbrel.engine.io`).

No two files may import each other, directly or round a longer loop. An import inside a
function is only for deferring a heavy optional dependency: its target must itself import
torch, onnx, onnxscript or playwright (directly or through its own module-level imports).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

PACKAGES = {"timbrel": "timbrel", "timbrel.engine": "engine", "timbrel.plugin": "plugin",
            "timbrel.presets": "presets", "timbrel.export": "export"}
"""Dotted package -> its folder, relative to the repository root (as pyproject.toml maps them)."""

FLOORS = ("engine", "plugin", "presets", "application")
HEAVY = ("torch", "onnx", "onnxscript", "playwright")
TRAINING_COMMANDS = {"timbrel.cli.training"}
ENTRY_POINT = ("timbrel.__main__", "timbrel.cli")
"""The one deferred import that is not a heavy dependency: the entry point configures numba's
cache before the command line (and through it numba) is imported."""


@dataclass(frozen=True)
class Import:
    """One import statement's target in module `source`, at `line`; `deferred` when inside a function."""

    source: str
    target: str
    line: int
    deferred: bool


def modules(root: Path, packages: Mapping[str, str] = PACKAGES) -> dict[str, Path]:
    """Every module of the packages: dotted name -> file."""
    found: dict[str, Path] = {}
    for package, folder in packages.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(name: str, path: Path, known: set[str]) -> Iterator[Import]:
    """The imports of module `name` (file `path`) of modules in `known` or of third-party names;
    blocks under `if TYPE_CHECKING:` are skipped."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST, deferred: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            inner = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(name, alias.name, child.lineno, deferred)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    candidate = f"{base}.{alias.name}"
                    yield Import(name, candidate if candidate in known else base, child.lineno, deferred)
            yield from visit(child, inner)

    yield from visit(tree, False)


def floor(module: str) -> str:
    """"engine", "plugin", "presets", "export" or "application"."""
    for part in ("engine", "plugin", "presets", "export"):
        if module == f"timbrel.{part}" or module.startswith(f"timbrel.{part}."):
            return part
    return "application"


def _own(target: str) -> bool:
    return target == "timbrel" or target.startswith("timbrel.")


def violations(root: Path, packages: Mapping[str, str] = PACKAGES) -> list[str]:
    """One line per broken rule in the tree at `root`; empty when the house is in order."""
    files = modules(root, packages)
    known = set(files)
    graph: dict[str, list[Import]] = {m: list(imports(m, p, known)) for m, p in files.items()}
    problems: list[str] = []

    heavy: dict[str, bool] = {}

    def is_heavy(module: str, seen: frozenset = frozenset()) -> bool:
        if module not in heavy:
            heavy[module] = any(
                i.target.split(".")[0] in HEAVY
                or (i.target in known and i.target not in seen and is_heavy(i.target, seen | {module}))
                for i in graph.get(module, ()) if not i.deferred)
        return heavy[module]

    for module, found in graph.items():
        where = f"{files[module].relative_to(root)}"
        mine = floor(module)
        for imp in found:
            if not _own(imp.target):
                continue
            theirs = floor(imp.target)
            at = f"{where}:{imp.line}: {module} imports {imp.target}"
            if imp.target == "timbrel" and mine != "application":
                problems.append(f"{at} (the façade is the top floor)")
            elif theirs == "export" and mine not in ("export",) and module not in TRAINING_COMMANDS:
                problems.append(f"{at} (only the training commands import timbrel.export)")
            elif mine == "export" and theirs == "application":
                problems.append(f"{at} (training stands beside the floors, below the application)")
            elif mine != "export" and theirs != "export" and FLOORS.index(theirs) > FLOORS.index(mine):
                problems.append(f"{at} ({mine} may not import {theirs}: floors import only downward)")
            elif module.startswith("timbrel.engine.realtime") and imp.target.startswith("timbrel.engine.io"):
                problems.append(f"{at} (audio-thread code does no I/O)")
            if imp.deferred and (module, imp.target) != ENTRY_POINT and imp.target in known \
                    and not is_heavy(imp.target):
                problems.append(f"{at} inside a function (import it at the top; deferring is for torch, "
                                "onnx or playwright)")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph, known)]
    return problems


def cycles(graph: Mapping[str, list[Import]], known: set[str]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each as a loop of names."""
    edges = {m: sorted({i.target for i in found if i.target in known and i.target != m})
             for m, found in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group) + [min(group)])

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return groups
