"""The ``nextbest`` modules a handler imports, read from the source: what its asset ships, and nothing else.

Static, so it runs at synth without importing anything: every ``import`` and ``from … import`` counts, inside
functions too (a lazy import still runs in Lambda), except under ``if TYPE_CHECKING:`` (never run). Importing
``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` first, so those come along and are read as well.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path


def import_closure(entry: Path, root: Path, package: str = "nextbest") -> dict[str, Path]:
    """The modules of ``package`` (found under ``root``) that ``entry`` imports, directly or through each other:
    module name → file, sorted by name. Modules beside ``entry`` that it imports are followed too (they ship
    with it) but not returned."""
    found: dict[str, Path] = {}
    pending: list[tuple[Path, str]] = [(entry, "")]
    seen = {entry}
    while pending:
        path, module = pending.pop()
        for name in _imported_names(path, module):
            for candidate in _with_parents(name):
                in_package = candidate.split(".")[0] == package
                file = _module_file(candidate, root if in_package else entry.parent)
                if file is None or file in seen:
                    continue
                seen.add(file)
                if in_package:
                    found[candidate] = file
                pending.append((file, candidate))
    return dict(sorted(found.items()))


def _imported_names(path: Path, module: str) -> Iterator[str]:
    """Absolute names a file imports. ``from m import x`` gives ``m`` and ``m.x``: ``x`` may be a submodule
    (``from nextbest.core import clock``); the caller keeps the names that are files."""
    is_package = path.name == "__init__.py"
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node under ``node`` but the bodies of ``if TYPE_CHECKING:`` (their ``else`` does run)."""
    for child in ast.iter_child_nodes(node):
        yield child
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for branch in child.orelse:
                yield branch
                yield from _runtime_nodes(branch)
        else:
            yield from _runtime_nodes(child)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a ``from … import`` names, with a relative one resolved against the importing module."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    if not module or node.level > len(package):
        raise ImportError(f"relative import beyond the top-level package in {module or 'a top-level module'}")
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` → ``a``, ``a.b``, ``a.b.c``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _module_file(name: str, root: Path) -> Path | None:
    """The file of module ``name`` under ``root`` (a module or a package), None if it is not there."""
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None
