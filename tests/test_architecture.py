"""The shape of the code: no import cycle in the core, no qgis/Qt in the core, no oversized module,
and every Processing algorithm module imports.

The import graph is read from the source (``ast``), imports inside functions included, so a cycle
hidden behind a lazy import still counts: it is a cycle a reader has to untangle.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "algorithms"
MAX_LINES = 600

#: modules over MAX_LINES that the lead's split into stage packages (issue 16) still has to cut.
#: This list must only shrink: a listed module that is no longer over the limit fails (XPASS, strict)
#: until it is removed here, and a module that is not listed fails outright.
KNOWN_LONG = {
}

#: top-level names a core module must never import (the core runs without QGIS: qgis_process, tests, scripts)
FORBIDDEN = {"qgis", "PyQt5", "PyQt6", "PySide2", "PySide6", "sip", "processing"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def core_modules() -> Dict[str, Path]:
    """``algorithms.x.y`` -> file, for every .py under algorithms/."""
    return {_module_name(p): p for p in sorted(CORE.rglob("*.py")) if "__pycache__" not in p.parts}


def _resolve(mod: str, is_pkg: bool, level: int, target: str) -> str:
    """Absolute dotted name of a relative import ``from <level dots><target>`` in ``mod``."""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(mod: str, path: Path, known: Dict[str, Path]):
    """(core modules imported by ``mod``, top-level names of all absolute imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    found: Set[str] = set()
    tops: Set[str] = set()

    def add(name: str):
        # "algorithms.io.crs" or a name inside a module/package: the longest known prefix
        parts = name.split(".")
        for k in range(len(parts), 0, -1):
            cand = ".".join(parts[:k])
            if cand in known:
                if cand != mod:
                    found.add(cand)
                return

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                tops.add(a.name.split(".")[0])
                name = a.name
                for prefix in ("deformcast.",):
                    if name.startswith(prefix):
                        name = name[len(prefix):]
                add(name)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                tops.add((node.module or "").split(".")[0])
                base = node.module or ""
                if base.startswith("deformcast."):
                    base = base[len("deformcast."):]
            else:
                base = _resolve(mod, is_pkg, node.level, node.module or "")
            for a in node.names:
                sub = f"{base}.{a.name}" if base else a.name
                if sub in known:  # "from . import styles" / "from .io import crs": the submodule
                    add(sub)
                else:
                    add(base)
    return found, tops


def import_graph():
    known = core_modules()
    graph, tops = {}, {}
    for mod, path in known.items():
        graph[mod], tops[mod] = imports_of(mod, path, known)
    return graph, tops


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan), each as one cycle path."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    comps: List[List[str]] = []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
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
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            strong(v)
    out = []
    for comp in comps:  # one concrete cycle through the component, for the message
        members = set(comp)
        start = min(comp)
        path, seen = [start], {start}
        while True:
            nxt = sorted(w for w in graph[path[-1]] if w in members)
            back = [w for w in nxt if w == start]
            if back and len(path) > 1:
                break
            step = next((w for w in nxt if w not in seen), None)
            if step is None:
                break
            path.append(step)
            seen.add(step)
        out.append(path + [start])
    return out


# ----------------------------------------------------------------------------------------------------
def test_cycle_finder_finds_a_planted_cycle():
    """The checker itself: a cycle through three modules and a self-contained chain."""
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    found = cycles(g)
    assert len(found) == 1 and set(found[0]) == {"a", "b", "c"} and found[0][0] == found[0][-1]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_import_resolution_sees_lazy_and_relative_imports():
    graph, _ = import_graph()
    # a lazy (function-level) relative import and a sub-package's parent-relative import are edges
    assert "algorithms.learn.runtime" in graph["algorithms.models.modelio"]
    assert "algorithms.io.raster" in graph["algorithms.io.importer"]
    assert "algorithms.io.egms" in graph["algorithms.io.sampling"]
    assert "algorithms.io.styles" in graph["algorithms.data.synthetic.folder"]  # "from .. import styles"


def test_no_import_cycle_in_the_core():
    graph, _ = import_graph()
    found = cycles(graph)
    assert not found, "import cycles in algorithms/ (break each, e.g. move the shared part into a small module):\n" + \
        "\n".join("  " + " -> ".join(c) for c in found)


def test_no_missing_core_module():
    """An import of a core module that does not exist (e.g. one that was split or renamed) fails
    here, even when it sits inside a function that no other test calls."""
    known = core_modules()
    missing = []
    for mod, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                base = _resolve(mod, is_pkg, node.level, node.module or "")
                if base in known:
                    continue
                if all(f"{base}.{a.name}" not in known for a in node.names):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {base} (no such module)")
    assert not missing, "\n".join(missing)


def test_core_never_imports_qgis_or_qt():
    _, tops = import_graph()
    bad = {m: sorted(t & FORBIDDEN) for m, t in tops.items() if t & FORBIDDEN}
    assert not bad, f"algorithms/ must stay QGIS-free; these import qgis/Qt: {bad}"


def _all_sources():
    return sorted(str(p.relative_to(ROOT)) for p in CORE.rglob("*.py") if "__pycache__" not in p.parts)


def _size_params():
    out = []
    for rel in _all_sources():
        marks = ()
        if rel in KNOWN_LONG:
            marks = (pytest.mark.xfail(strict=True, reason=f"known long module, to be split: {KNOWN_LONG[rel]}"),)
        out.append(pytest.param(rel, marks=marks, id=rel))
    return out


@pytest.mark.parametrize("rel", _size_params())
def test_module_size(rel):
    n = len((ROOT / rel).read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{rel} has {n} lines (limit {MAX_LINES}): split it by concept."


def test_known_long_list_is_current():
    """Every KNOWN_LONG entry names an existing module (a deleted or moved one must leave the list)."""
    stale = [k for k in KNOWN_LONG if not (ROOT / k).is_file()]
    assert not stale, f"remove from KNOWN_LONG (no such file): {stale}"


def _alg_modules():
    return sorted(p.stem for p in (ROOT / "processing_provider").glob("alg_*.py"))


@pytest.mark.parametrize("name", _alg_modules())
def test_every_algorithm_module_imports(name):
    """A broken ``alg_*.py`` must fail the suite: the provider skips modules that fail to import
    (so QGIS still starts), which would otherwise hide it."""
    mod = importlib.import_module(f"deformcast.processing_provider.{name}")
    from deformcast.processing_provider.base import DeformCastAlgorithm

    algs = [c for _, c in inspect.getmembers(mod, inspect.isclass)
            if issubclass(c, DeformCastAlgorithm) and c.ALG_ID and c.__module__ == mod.__name__]
    assert algs, f"processing_provider/{name}.py defines no DeformCastAlgorithm with an ALG_ID"


def test_provider_loads_every_algorithm_module():
    from deformcast.processing_provider import provider

    mods = {c.__module__.rsplit(".", 1)[-1] for c in provider.algorithm_classes()}
    assert mods == set(_alg_modules()), f"modules the provider did not load: {sorted(set(_alg_modules()) - mods)}"


def test_every_core_module_imports():
    """Every core module imports without QGIS loaded by it (heavy deps are allowed to be present)."""
    failed = []
    for info in pkgutil.walk_packages([str(CORE)], prefix="deformcast.algorithms."):
        try:
            importlib.import_module(info.name)
        except Exception as e:  # noqa: BLE001 - collect them all for one message
            failed.append(f"{info.name}: {e!r}")
    assert not failed, "\n".join(failed)
