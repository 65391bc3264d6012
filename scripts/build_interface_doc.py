#!/usr/bin/env python3
"""Write the generated part of docs/interface.md: every algorithm's parameters, read from the real
QGIS Processing provider (ids, parameter names, types, defaults, optional/advanced).

    .venv/bin/python scripts/build_interface_doc.py            # rewrite the generated section
    .venv/bin/python scripts/build_interface_doc.py --check    # exit 1 when docs/interface.md is stale

Only the text between the BEGIN/END markers is replaced; the contract above it is written by hand.
tests/test_interface_doc.py fails when the file and the algorithms disagree.
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from typing import List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _qgis import ROOT, start_processing  # noqa: E402
DOC = os.path.join(ROOT, "docs", "interface.md")
BEGIN = "<!-- BEGIN GENERATED: scripts/build_interface_doc.py (do not edit by hand) -->"
END = "<!-- END GENERATED -->"
REGENERATE = ".venv/bin/python scripts/build_interface_doc.py"


def _cell(v) -> str:
    s = " ".join(str(v).split())
    return s.replace("|", "\\|")


def _default(d) -> str:
    v = d.defaultValue()
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    if d.type() == "enum" and isinstance(v, int) and not isinstance(v, bool):
        opts = d.options()
        return opts[v] if 0 <= v < len(opts) else str(v)
    s = str(v)
    if s.startswith("<"):  # a QGIS object without a plain value (e.g. an output definition)
        return ""
    return s


def _type(d) -> str:
    t = d.type()
    if t == "enum":
        return "enum: " + ", ".join(d.options()) + (" (several)" if d.allowMultiple() else "")
    if t == "number":
        from qgis.core import QgsProcessingParameterNumber

        kind = "integer" if d.dataType() == QgsProcessingParameterNumber.Integer else "number"
        lo, hi = d.minimum(), d.maximum()
        rng = []
        if lo > -1e300:
            rng.append(f">= {lo:g}")
        if hi < 1e300:
            rng.append(f"<= {hi:g}")
        return kind + (f" ({', '.join(rng)})" if rng else "")
    return t


def generated_section(provider) -> str:
    """The Markdown of every algorithm's parameters (between the markers, markers excluded)."""
    from qgis.core import QgsProcessingParameterDefinition as Def

    lines: List[str] = [
        "## Parameters of every algorithm (generated)",
        "",
        f"Generated from the Processing provider by `{REGENERATE}`; `tests/test_interface_doc.py` fails",
        "when this table and the algorithms disagree. *optional*: may be left empty; *advanced*: folded under",
        "Advanced parameters in the dialog. Outputs are the destination parameters (type `*Destination`,",
        "`folderDestination`, `fileDestination`).",
        "",
    ]
    for alg in sorted(provider.algorithms(), key=lambda a: a.name()):
        lines += [f"### `{provider.id()}:{alg.name()}` — {_cell(alg.displayName())}", "",
                  "| parameter | type | default | optional | advanced | description |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for d in alg.parameterDefinitions():
            flags = d.flags()
            if flags & Def.FlagHidden:
                continue
            lines.append("| `{}` | {} | {} | {} | {} | {} |".format(
                d.name(), _cell(_type(d)), _cell(_default(d)) or " ",
                "yes" if flags & Def.FlagOptional else "", "yes" if flags & Def.FlagAdvanced else "",
                _cell(d.description())))
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def split_doc(text: str):
    """(head, generated, tail) of docs/interface.md; ValueError when a marker is missing."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"docs/interface.md lacks the markers {BEGIN!r} / {END!r}")
    head, rest = text.split(BEGIN, 1)
    gen, tail = rest.split(END, 1)
    return head, gen.strip("\n") + "\n", tail


def problems(doc_text: str, generated: str) -> List[str]:
    """What differs between the file's generated section and ``generated`` (empty: in sync)."""
    try:
        _, have, _ = split_doc(doc_text)
    except ValueError as e:
        return [str(e)]
    if have == generated:
        return []
    diff = list(difflib.unified_diff(have.splitlines(), generated.splitlines(), "docs/interface.md",
                                     "the algorithms", lineterm="", n=0))
    return diff[:60] + ([f"... {len(diff) - 60} more lines"] if len(diff) > 60 else [])


def render(doc_text: str, generated: str) -> str:
    head, _, tail = split_doc(doc_text)
    return head + BEGIN + "\n" + generated + END + tail


def load_provider():
    """A QgsApplication with Processing and the DeformCast provider (kept referenced), on a throwaway
    profile."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QGIS_CUSTOM_CONFIG_PATH", tempfile.mkdtemp(prefix="dc-interface-profile"))
    return start_processing()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when docs/interface.md is stale")
    args = ap.parse_args()
    app, provider = load_provider()
    gen = generated_section(provider)
    with open(DOC, encoding="utf-8") as fh:
        text = fh.read()
    if args.check:
        p = problems(text, gen)
        print("\n".join(p) if p else "docs/interface.md is in sync with the algorithms.")
        return 1 if p else 0
    new = render(text, gen)
    if new != text:
        with open(DOC + ".part", "w", encoding="utf-8") as fh:
            fh.write(new)
        os.replace(DOC + ".part", DOC)
        print(f"updated {DOC}")
    else:
        print(f"{DOC} was already in sync")
    del provider, app
    return 0


if __name__ == "__main__":
    sys.exit(main())
