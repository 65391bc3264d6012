"""docs/interface.md is the contract: its parameter tables must match the algorithms of the real
QGIS provider (ids, parameter names, types, defaults, optional/advanced)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _builder():
    spec = importlib.util.spec_from_file_location("build_interface_doc", ROOT / "scripts" / "build_interface_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_interface_doc_matches_the_algorithms(deformcast_provider):
    b = _builder()
    gen = b.generated_section(deformcast_provider)
    # every algorithm of the provider and every one of its parameters is in the generated text
    ids = sorted(a.name() for a in deformcast_provider.algorithms())
    assert {"import_timeseries", "train", "tune", "predict", "workflow", "zoning"} <= set(ids)
    for a in deformcast_provider.algorithms():
        assert f"### `deformcast:{a.name()}`" in gen
    text = (ROOT / "docs" / "interface.md").read_text(encoding="utf-8")
    diff = b.problems(text, gen)
    assert not diff, ("docs/interface.md is out of sync with the algorithms. Regenerate it with\n"
                      f"    {b.REGENERATE}\nand commit the result. Differences (file -> algorithms):\n"
                      + "\n".join(diff))


def test_interface_doc_check_catches_changes(deformcast_provider):
    """The comparison itself: a changed default, a dropped parameter and a missing marker are found."""
    b = _builder()
    gen = b.generated_section(deformcast_provider)
    doc = "# head\n\n" + b.BEGIN + "\n" + gen + b.END + "\n"
    assert b.problems(doc, gen) == []
    assert b.render(doc, gen) == doc
    row = next(line for line in gen.splitlines() if line.startswith("| `HORIZON` |"))
    changed_default = doc.replace(row, row.replace("| 6 |", "| 7 |").replace("| 30 |", "| 31 |"), 1)
    assert changed_default != doc and b.problems(changed_default, gen)
    assert b.problems(doc.replace(row + "\n", "", 1), gen)
    assert b.problems(doc.replace(b.END, ""), gen)


def test_readme_and_code_point_to_the_project_contract():
    """The contract lives in the project: no source or doc of ours points to ../shared/ for it."""
    stale = []
    for p in list((ROOT / "algorithms").rglob("*.py")) + list((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        if "../shared/INTERFACE.md" in p.read_text(encoding="utf-8"):
            stale.append(str(p.relative_to(ROOT)))
    assert not stale, f"point these to docs/interface.md instead of ../shared/INTERFACE.md: {stale}"
