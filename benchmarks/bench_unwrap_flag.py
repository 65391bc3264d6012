"""How often ``step_detect`` names a step found in the stack a possible phase-unwrapping error (``cycles`` > 0), on
scenes whose steps are known: our varied-physics generator (a coseismic step of 5-30 mm with a smooth footprint, or an
unwrapping error of a sharp patch, +-27.73 mm, both in about half of the seeds) and the third generator
(``blind_scene.py``: persistent unwrapping errors of +-27.73 mm, and a collapse, load or heave of a patch). A found date
is matched to a true step within one epoch; the table counts, per kind of true step, those dated and those flagged, and
the dates matching no step (flagged or not). No training: a second or two a scene.

Usage::

    .venv/bin/python benchmarks/bench_unwrap_flag.py --ours 0-59 --blind 0-59 --out build/bench_unwrap_flag
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()

from bench_steps import seeds_of  # noqa: E402
from deformcast.algorithms.data import step_detect  # noqa: E402
from deformcast.algorithms.data.synthetic import write_scene  # noqa: E402
from deformcast.algorithms.io import raster  # noqa: E402


def ours(seed: int, folder: str) -> tuple:
    files = write_scene(folder, seed=seed, physics="varied", width=100, height=80, n_epochs=150, n_future=15)
    info = raster.open_stack(files["stack"])
    d = np.asarray(info.dates, dtype="datetime64[D]")
    with open(files["scene_json"], encoding="utf-8") as fh:
        step = json.load(fh)["params"]["physics"].get("step", {})
    true = []
    if step.get("present"):
        years = (d - d[0]).astype(np.float64) / 365.25
        true.append({"epoch": int(np.searchsorted(years, step["step_years"])), "kind": step["kind"],
                     "mm": float(step["amplitude_mm"])})
    return raster.read_stack(info).astype(np.float64), d, true


def blind(seed: int, folder: str) -> tuple:
    import blind_scene

    s = blind_scene.make(seed)
    p = s["params"]
    true = [{"epoch": u["epoch"], "kind": "unwrapping", "mm": u["jump_mm"]} for u in p["unwrapping_errors"]
            if u["mode"] == "persistent" and u["epoch"] < p["n_epochs"]]
    if p.get("step") and p["step"]["epoch"] < p["n_epochs"]:
        true.append({"epoch": p["step"]["epoch"], "kind": p["step"]["kind"],
                     "mm": p["step"]["jump_mm"] * p["geometry"]["los_enu"][2]})
    return s["observed"].astype(np.float64), np.asarray(s["dates"], dtype="datetime64[D]"), true


def score(gen: str, seed: int, stack, d, true) -> list:
    found = step_detect.detect_steps(stack, d)
    rows, used = [], set()
    for t in true:
        hit = [f for f in found if abs(f["epoch"] - t["epoch"]) <= 1]
        for f in hit:
            used.add(f["epoch"])
        rows.append({"generator": gen, "seed": seed, "kind": t["kind"], "true_mm": round(t["mm"], 2),
                     "dated": bool(hit), "step_mm": hit[0].get("step_mm") if hit else None,
                     "flagged": bool(hit and hit[0].get("cycles"))})
    for f in found:
        if f["epoch"] not in used:
            rows.append({"generator": gen, "seed": seed, "kind": "no true step", "true_mm": None, "dated": True,
                         "step_mm": f.get("step_mm"), "flagged": bool(f.get("cycles"))})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ours", nargs="*", default=["0-59"])
    ap.add_argument("--blind", nargs="*", default=["0-59"])
    ap.add_argument("--out", default="build/bench_unwrap_flag")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in seeds_of(args.ours):
            rows += score("ours", s, *ours(s, os.path.join(tmp, f"o{s}")))
    for s in seeds_of(args.blind):
        rows += score("blind", s, *blind(s, tmp))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "unwrap_flag.json"), "w", encoding="utf-8") as fh:
        json.dump(rows, fh, indent=1)
    n, dated, flagged = Counter(), Counter(), Counter()
    for r in rows:
        k = (r["generator"], r["kind"])
        n[k] += 1
        dated[k] += r["dated"]
        flagged[k] += r["flagged"]
    lines = ["| generator | true step | steps (found dates) | dated | flagged as whole cycles |",
             "|---|---|---:|---:|---:|"]
    for k in sorted(n):
        lines.append(f"| {k[0]} | {k[1]} | {n[k]} | {dated[k]} | {flagged[k]} |")
    text = "\n".join(lines)
    with open(os.path.join(args.out, "unwrap_flag.md"), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    print(text)
    for r in rows:
        if r["flagged"] != (r["kind"] == "unwrapping") and r["dated"]:
            print("  mismatch:", r)


if __name__ == "__main__":
    main()
