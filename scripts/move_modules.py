#!/usr/bin/env python3
"""Move modules of the ``deformcast`` package and rewrite every import that names them.

A developer tool (docs/DEVELOPING.md): the layout of ``algorithms/`` was reorganised into stage
packages with it, and a later move should use it too rather than hand edits. It

1. moves each file or package folder (``git mv``),
2. rewrites every ``from ... import`` / ``import`` of the repository's Python files (relative ones
   from the file's *new* place, absolute ``deformcast.`` ones as absolute), splitting
   ``from . import a, b`` when ``a`` and ``b`` now live in different packages,
3. rewrites dotted names in strings (``"deformcast.algorithms.x"`` in patches and ``-m`` calls).

Usage::

    python scripts/move_modules.py --dry-run algorithms.raster=algorithms.io.raster ...
    python scripts/move_modules.py algorithms.raster=algorithms.io.raster ...

Names are relative to the package root (the repository root is the ``deformcast`` package).
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
PKG = "deformcast"
SKIP_DIRS = {".git", ".venv", "build", "__pycache__", ".pytest_cache", "node_modules"}


def module_of(path: Path) -> Tuple[str, str]:
    """``(module, package)`` dotted names of a file of the repository."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [PKG] + list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def py_files() -> List[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for f in filenames:
            if f.endswith(".py"):
                out.append(Path(dirpath) / f)
    return sorted(out)


class Mover:
    def __init__(self, mapping: Dict[str, str]):
        self.map = {f"{PKG}.{k}": f"{PKG}.{v}" for k, v in mapping.items()}
        self.known = set()   # every module/package of the repository (old names)
        for p in py_files():
            self.known.add(module_of(p)[0])

    def new_name(self, mod: str) -> str:
        for old in sorted(self.map, key=len, reverse=True):
            if mod == old or mod.startswith(old + "."):
                return self.map[old] + mod[len(old):]
        return mod

    def new_path(self, path: Path) -> Path:
        mod, _ = module_of(path)
        new = self.new_name(mod)
        if new == mod:
            return path
        parts = new.split(".")[1:]
        if path.name == "__init__.py":
            return ROOT.joinpath(*parts, "__init__.py")
        return ROOT.joinpath(*parts[:-1], parts[-1] + ".py")

    @staticmethod
    def _relative(target: str, from_pkg: str) -> str:
        t, f = target.split("."), from_pkg.split(".")
        common = 0
        while common < min(len(t), len(f)) and t[common] == f[common]:
            common += 1
        level = len(f) - common + 1
        return "." * level + ".".join(t[common:])

    def _resolve(self, node: ast.ImportFrom, pkg: str) -> str:
        if node.level == 0:
            return node.module or ""
        base = pkg.split(".")
        base = base[:len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def _fmt(self, indent: str, frm: str, names: List[str]) -> str:
        line = f"{indent}from {frm} import {', '.join(names)}"
        if len(line) <= 110:
            return line
        out, cur = [], f"{indent}from {frm} import ("
        for i, n in enumerate(names):
            piece = n + (", " if i < len(names) - 1 else ")")
            if len(cur) + len(piece) > 110:
                out.append(cur.rstrip())
                cur = indent + "    "
            cur += piece
        out.append(cur)
        return "\n".join(out)

    def rewrite_imports(self, path: Path, new_path: Path) -> Optional[str]:
        src = path.read_text(encoding="utf-8")
        try:
            tree = ast.parse(src)
        except SyntaxError:
            return None
        _, old_pkg = module_of(path)
        _, new_pkg = module_of(new_path)
        lines = src.split("\n")
        edits = []   # (first line index, last line index, new text)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                absolute = self._resolve(node, old_pkg)
                if not absolute.startswith(PKG):
                    continue
                groups: Dict[str, List[str]] = {}
                order: List[str] = []
                for a in node.names:
                    text = a.name + (f" as {a.asname}" if a.asname else "")
                    sub = f"{absolute}.{a.name}"
                    if sub in self.known:           # a module imported from its package
                        new_sub = self.new_name(sub)
                        parent, _, leaf = new_sub.rpartition(".")
                        if leaf != a.name:
                            text = leaf + f" as {a.asname or a.name}"
                        key = parent
                    else:
                        key = self.new_name(absolute)
                    if key not in groups:
                        groups[key] = []
                        order.append(key)
                    groups[key].append(text)
                same_place = new_pkg == old_pkg
                if same_place and order == [absolute] and self.new_name(absolute) == absolute:
                    continue
                indent = lines[node.lineno - 1][:node.col_offset]
                stmts = []
                for key in order:
                    frm = key if node.level == 0 else self._relative(key, new_pkg)
                    stmts.append(self._fmt(indent, frm, groups[key]))
                new_text = ("\n").join(stmts)
                first, last = node.lineno - 1, node.end_lineno - 1
                old_text = "\n".join(lines[first:last + 1])
                tail = old_text[len(lines[first][:node.col_offset]):]
                # keep a trailing comment of a one-line import
                m = re.search(r"\)?\s*(#.*)$", lines[last]) if node.end_col_offset < len(lines[last]) else None
                if m and "#" in lines[last][node.end_col_offset:]:
                    new_text += "  " + lines[last][node.end_col_offset:].strip()
                if new_text.strip() != old_text.strip() or tail is None:
                    # a multi-statement line (``a; from x import y``) is left to the developer
                    if ";" in lines[first][:node.col_offset]:
                        print(f"  ! {path}: line {first + 1} needs a hand edit", file=sys.stderr)
                        continue
                    edits.append((first, last, new_text))
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith(PKG + ".") and self.new_name(a.name) != a.name:
                        first, last = node.lineno - 1, node.end_lineno - 1
                        text = "\n".join(lines[first:last + 1]).replace(a.name, self.new_name(a.name))
                        edits.append((first, last, text))
        if not edits:
            return src
        for first, last, text in sorted(edits, key=lambda e: e[0], reverse=True):
            lines[first:last + 1] = text.split("\n")
        return "\n".join(lines)

    def rewrite_strings(self, text: str) -> str:
        for old in sorted(self.map, key=len, reverse=True):
            new = self.map[old]
            text = re.sub(r"(?<![\w.])" + re.escape(old) + r"(?![\w])", new, text)
        return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("moves", nargs="+", help="old=new dotted names below the package root")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    mapping = dict(m.split("=", 1) for m in args.moves)
    mv = Mover(mapping)
    files = py_files()
    new_src = {}
    for p in files:
        np_ = mv.new_path(p)
        src = mv.rewrite_imports(p, np_)
        if src is None:
            print(f"  ! {p}: not valid Python, skipped", file=sys.stderr)
            continue
        src = mv.rewrite_strings(src)
        new_src[p] = (np_, src)
    changed = [p for p, (np_, s) in new_src.items() if np_ != p or s != p.read_text(encoding="utf-8")]
    for p in changed:
        print(f"{p.relative_to(ROOT)}" + (f" -> {new_src[p][0].relative_to(ROOT)}" if new_src[p][0] != p else ""))
    if args.dry_run:
        return 0
    for old, new in mapping.items():   # move files/folders with git
        src = ROOT.joinpath(*old.split("."))
        dst = ROOT.joinpath(*new.split("."))
        src_path = src if src.is_dir() else src.with_suffix(".py")
        dst_path = dst if src.is_dir() else dst.with_suffix(".py")
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        init = dst_path.parent / "__init__.py"
        if not init.exists() and dst_path.parent != ROOT:
            init.write_text(f'"""{dst_path.parent.name} stage of the DeformCast core (docs/DEVELOPING.md)."""\n',
                            encoding="utf-8")
            subprocess.run(["git", "add", str(init)], cwd=ROOT, check=True)
        subprocess.run(["git", "mv", str(src_path), str(dst_path)], cwd=ROOT, check=True)
    for p, (np_, src) in new_src.items():
        np_.write_text(src, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
