"""The layer order of the README's Architecture section, read from the source (issue 21).

Every import of the package is read with ``ast`` -- at module level, inside functions, under
``if TYPE_CHECKING:`` (either spelling) and in ``try`` blocks alike, because a deferred import
hides a cycle from the interpreter, not from a reader. Two rules:

- no import runs upward: a module imports its own layer and the layers below it only
  (``"package.module:function"`` strings, the registries' lazy references, count as imports here);
- no cycle between modules, however long (``import`` statements only: a registry naming its
  implementations by string is the plug-in pattern, not a circle).

A failure lists every offending edge with its file and line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = "napari_latentdirs"
SRC = ROOT / "src" / PKG

#: Bottom to top, as the README's Architecture section draws them. Keys are module-name prefixes
#: below the package (the longest match wins). A module may import its own layer and any below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("", "utils", "events", "console", "paper", "engine_process"),  # "" is the package's __init__
    ("dicom",),
    ("data", "phantom"),
    ("models",),
    ("training",),
    ("directions", "probes"),
    ("analysis",),
    ("runs", "jobs"),
    # entry points and front ends: nothing imports them
    ("cli", "commands", "training.__main__", "_napari"),
)

#: (importer, imported) -> why it may run upward. Keep it empty; a stale entry fails the test.
EXEMPT: dict[tuple[str, str], str] = {}

_REF = re.compile(rf"^{PKG}(\.[A-Za-z_]\w*)+:[A-Za-z_]\w*$")


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_modules(src: Path = SRC) -> dict[str, Path]:
    return {module_name(p, src): p for p in sorted(src.rglob("*.py"))}


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` (``a.b.c`` below the package) runs: itself, or the longest existing
    prefix (``from .x import attribute`` names module ``x``)."""
    while name not in modules:
        if "." not in name:
            return "" if "" in modules and not name else None
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str, source: str, modules: dict[str, Path], is_package: bool) -> list[tuple[str, int, str]]:
    """(imported module, line, how) for every import of the package in ``source``; ``how`` is
    ``"import"`` or ``"string"`` (a ``"napari_latentdirs.x:fn"`` reference)."""
    out: list[tuple[str, int, str]] = []

    def add(absolute: str, line: int, how: str) -> None:
        if absolute != PKG and not absolute.startswith(PKG + "."):
            return
        t = _target(absolute[len(PKG) + 1:], modules)
        if t is not None and t != module:
            out.append((t, line, how))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno, "import")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = [PKG, *module.split(".")] if module else [PKG]
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:  # ``from . import x`` imports module x when there is one
                sub = f"{mod}.{alias.name}"
                add(sub if sub[len(PKG) + 1:] in modules else mod, node.lineno, "import")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _REF.match(node.value):
            add(node.value.split(":", 1)[0], node.lineno, "string")
    return out


def import_graph(src: Path = SRC) -> list[tuple[str, str, int, str]]:
    """(importer, imported, line, how) for the whole package, sorted."""
    modules = package_modules(src)
    edges = set()
    for name, path in modules.items():
        for target, line, how in imports_of(name, path.read_text(encoding="utf-8"), modules, path.name == "__init__.py"):
            edges.add((name, target, line, how))
    return sorted(edges)


def layer_of(module: str) -> int | None:
    """The row of ``module`` (its longest matching key), None for a module no row names."""
    best, rank = -1, None
    for i, keys in enumerate(LAYERS):
        for key in keys:
            if (module == key or (key and module.startswith(key + "."))) and len(key) > best:
                best, rank = len(key), i
    return rank


def upward(edges: list[tuple[str, str, int, str]]) -> list[tuple[str, str, int, str]]:
    rank = {m: layer_of(m) for e in edges for m in e[:2]}
    return [e for e in edges if None not in (rank[e[0]], rank[e[1]]) and rank[e[1]] > rank[e[0]]]


def cycles(edges: list[tuple[str, str, int, str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for a, b, _, how in edges:
        if how == "import":
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _where(module: str) -> str:
    return str(package_modules()[module].relative_to(ROOT))


def _name(module: str) -> str:
    return f"{PKG}.{module}" if module else PKG


def test_every_module_has_a_layer():
    missing = [_name(m) for m in package_modules() if layer_of(m) is None]
    assert not missing, f"modules on no row of LAYERS (add them there and to the README's diagram): {missing}"


def test_no_import_runs_upward():
    edges = import_graph()
    bad = [e for e in upward(edges) if (e[0], e[1]) not in EXEMPT]
    lines = [f"{_where(a)}:{line}: {_name(a)} (layer {layer_of(a)}) imports {_name(b)} (layer {layer_of(b)})"
             + (" by a 'module:function' string" if how == "string" else "")
             for a, b, line, how in bad]
    if lines:
        pytest.fail("imports against the README's layer order:\n" + "\n".join(lines), pytrace=False)
    used = {(a, b) for a, b, _, _ in upward(edges)}
    stale = [k for k in EXEMPT if k not in used]
    assert not stale, f"exemptions no longer needed (remove them): {stale}"


def test_no_import_cycle():
    edges = import_graph()
    found = cycles(edges)
    report = []
    for comp in found:
        inside = [f"  {_where(a)}:{line}: {_name(a)} -> {_name(b)}" for a, b, line, how in edges
                  if how == "import" and a in comp and b in comp]
        report.append(" <-> ".join(_name(m) for m in comp) + "\n" + "\n".join(inside))
    if found:
        pytest.fail("modules that import each other (directly or round a circle):\n" + "\n".join(report), pytrace=False)


# -- the checker itself --------------------------------------------------------------------------


TOY = {
    "__init__.py": "",
    "events.py": "",
    "data/__init__.py": "",
    "data/cache.py": "from .prepare import CACHE_VERSION\n",
    "data/prepare.py": (
        "from typing import TYPE_CHECKING\n"
        "import typing\n"
        "if TYPE_CHECKING:\n    from ..analysis.quality import Report\n"
        "if typing.TYPE_CHECKING:\n    import napari_latentdirs.runs.folder\n"
        "def f():\n    from . import cache\n    return cache\n"
    ),
    "analysis/__init__.py": "",
    "analysis/quality.py": "from ..events import Step\nREF = 'napari_latentdirs._napari.writer:write_tiff'\n",
    "runs/__init__.py": "",
    "runs/folder.py": "",
    "_napari/__init__.py": "",
    "_napari/writer.py": "",
}


@pytest.fixture
def toy_package(tmp_path) -> Path:
    src = tmp_path / PKG
    for rel, text in TOY.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    return src


def test_the_walker_reads_deferred_and_type_checking_imports(toy_package):
    edges = import_graph(toy_package)
    pairs = {(a, b, how) for a, b, _, how in edges}
    assert ("data.prepare", "analysis.quality", "import") in pairs  # if TYPE_CHECKING:
    assert ("data.prepare", "runs.folder", "import") in pairs  # if typing.TYPE_CHECKING:
    assert ("data.prepare", "data.cache", "import") in pairs  # inside a function, ``from . import``
    assert ("analysis.quality", "events", "import") in pairs
    assert ("analysis.quality", "_napari.writer", "string") in pairs
    up = {(a, b) for a, b, _, _ in upward(edges)}
    assert up == {("data.prepare", "analysis.quality"), ("data.prepare", "runs.folder"),
                  ("analysis.quality", "_napari.writer")}
    assert cycles(edges) == [["data.cache", "data.prepare"]]
