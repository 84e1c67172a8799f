"""What a module of the package imports, read from its source: fingerprints and the cycle check.

Introduced with the stage graph (chapter 2). A stage's fingerprint (`graph.fingerprint`) and a
report-card row's cache key (`evaluation.report_card.cache`) hash the source of the module that
does the work *and of every ``posttrain_utils`` module it imports, transitively*, so an edit
anywhere in what runs leaves no stale cache behind, while an edit elsewhere retrains nothing.
Imports are read with `ast`, wherever they stand (module top or inside a function), relative or
absolute; nothing is imported to find them.

``tests/test_sources.py`` uses `import_graph` and `find_cycle` to keep the package free of import
cycles. Run ``python -m posttrain_utils.runtime.sources posttrain_utils.ppo.stages`` to print a
module's closure.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from .paths import PACKAGE_DIR

PACKAGE = "posttrain_utils"


def module_file(name: str, root: Path | None = None) -> Path | None:
    """The source file of module `name` (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``) under
    `root` (the folder that holds the package; default: the installed one), or None."""
    root = Path(root) if root is not None else PACKAGE_DIR.parent
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _absolute(name: str, is_package: bool, level: int, module: str | None) -> str:
    parts = name.split(".") if is_package else name.split(".")[:-1]
    if level > 1:
        parts = parts[:len(parts) - (level - 1)]
    return ".".join(parts + ([module] if module else []))


def imports_of(name: str, root: Path | None = None) -> set[str]:
    """The package's modules that module `name` imports anywhere in its source.

    ``from .x import y`` counts ``x.y`` when that is a module, else ``x`` (``y`` is a name in it).
    """
    path = module_file(name, root)
    if path is None:
        raise ModuleNotFoundError(f"no module {name!r} under {root or PACKAGE_DIR.parent}")
    stat = path.stat()
    return set(_imports_of(name, str(path), stat.st_mtime_ns, stat.st_size,
                           str(root) if root is not None else None))


@lru_cache(maxsize=4096)
def _imports_of(name: str, path: str, mtime_ns: int, size: int, root: str | None) -> frozenset:
    """`imports_of`, parsed once per version of the file (its path, time and size are the key)."""
    path, root = Path(path), Path(root) if root is not None else None
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            src = (_absolute(name, path.name == "__init__.py", node.level, node.module)
                   if node.level else node.module or "")
            if src.split(".")[0] != PACKAGE:
                continue
            subs = {f"{src}.{a.name}" for a in node.names}
            modules = {s for s in subs if module_file(s, root) is not None}
            found |= modules
            if len(modules) < len(subs):
                found.add(src)
    return frozenset(m for m in found if m != name and module_file(m, root) is not None)


def closure(name: str, root: Path | None = None, skip: Iterable[str] = ()) -> list[str]:
    """Module `name` and every package module it imports, transitively, sorted; the modules in
    `skip` are neither included nor followed."""
    seen, todo, skip = set(), [name], set(skip)
    while todo:
        current = todo.pop()
        if current not in seen and current not in skip:
            seen.add(current)
            todo.extend(imports_of(current, root) - seen - skip)
    return sorted(seen)


def digest(names: Iterable[str], root: Path | None = None, skip: Iterable[str] = ()) -> str:
    """A sha256 over the source of the closures of `names` (each file once, in name order)."""
    modules = sorted({m for name in names for m in closure(name, root, skip)})
    h = hashlib.sha256()
    for module in modules:
        h.update(module.encode() + b"\0" + module_file(module, root).read_bytes())
    return h.hexdigest()


def import_graph(root: Path | None = None) -> dict[str, set[str]]:
    """Every module of the package -> the package modules it imports."""
    root = Path(root) if root is not None else PACKAGE_DIR.parent
    graph = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = imports_of(name, root)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as ``[a, b, ..., a]``, or None when there is none.

    A package's ``__init__`` that imports its own submodules is no cycle (Python imports the
    parent first), so an edge from a module to a package that contains it is left out.
    """
    def parent_of(module: str, package: str) -> bool:
        return module.startswith(package + ".")

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if parent_of(node, nxt):
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(f"{arg}:", *closure(arg), sep="\n  ")
