"""Step detection (``step_detect``) on varied-physics scenes: steps dated and false dates per threshold.

For each seed a varied-physics scene of ``bench_skill.py`` is written (no training: seconds a scene),
the windowed step test runs once over the stack (``step_detect.step_scan``), and the dates are picked
with each |t| threshold of ``--thresholds`` (``STEP_T``; the shipped value first; the neighbourhood test
``STEP_Z`` stays as shipped). A scene's step is
dated when a date lies within one epoch of the epoch the scene put it at; every other date is false
(some "false" dates sit at a bowl's onset: a kink that is not quite symmetric). The scene's step
amplitude and the |t| the test reaches in its step zone (median, 90th percentile) are listed beside,
with the background's 99th percentile: where the step zone's |t| stays below the threshold the step is
missed, however many pixels show it.

Usage::

    .venv/bin/python benchmarks/bench_steps.py --seeds 0-44 --thresholds 6 5 4.5 4 --out build/bench_steps
    .venv/bin/python benchmarks/bench_steps.py --seeds 72-199 --thresholds 6 --box-z 3:5 5:5 7:4.5 --out build/bench_steps_s10

A date within one epoch of a fault's creep event (``creep_event`` law) is counted apart: neither a step
dated nor a false date. ``--box-z`` compares neighbourhood tests (``STEP_BOX``, ``STEP_Z``) at the shipped
``STEP_T``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()

from deformcast.algorithms.data import step_detect  # noqa: E402
from deformcast.algorithms.data.synthetic import write_scene  # noqa: E402
from deformcast.algorithms.io import raster  # noqa: E402


def seeds_of(specs) -> list:
    out = []
    for s in specs:
        a, _, b = str(s).partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


def scan_seed(seed: int, folder: str, args) -> dict:
    files = write_scene(folder, seed=seed, physics="varied", width=args.width, height=args.height,
                        n_epochs=args.epochs, n_future=args.future)
    info = raster.open_stack(files["stack"])
    stack = raster.read_stack(info).astype(np.float64)
    d = np.asarray(info.dates, dtype="datetime64[D]")
    with open(files["scene_json"], encoding="utf-8") as fh:
        step = json.load(fh)["params"]["physics"].get("step", {})
    zones = raster.read_raster(files["zones"])[0][0]
    years = (d - d[0]).astype(np.float64) / 365.25
    k_true = int(np.searchsorted(years, step["step_years"])) if step.get("present") else None
    fault = json.load(open(files["scene_json"], encoding="utf-8"))["params"]["physics"]["fault"]
    k_creep = (int(np.searchsorted(years, fault["creep_event_years"])) if fault.get("law") == "creep_event"
               else None)
    scan = step_detect.step_scan(stack, d)
    row = {"seed": seed, "step_epoch": k_true, "amplitude_mm": step.get("amplitude_mm"), "kind": step.get("kind"),
           "creep_epoch": k_creep, "creep_mm": fault.get("creep_event_mm") or None}
    t = np.abs(scan["t"])
    row["t_background_p99"] = float(np.nanpercentile(t[:, zones == 0], 99))
    if k_true is not None and k_true in set(scan["k"].tolist()):
        tz = t[int(np.flatnonzero(scan["k"] == k_true)[0])][zones == 4]
        row["t_step_zone_p50_p90"] = [float(np.nanpercentile(tz, 50)), float(np.nanpercentile(tz, 90))]
    shipped = (step_detect.STEP_T, step_detect.STEP_BOX, step_detect.STEP_Z)
    try:
        for key, (thr, box, z) in configs(args).items():
            step_detect.STEP_T, step_detect.STEP_BOX, step_detect.STEP_Z = float(thr), int(box), float(z)
            found = step_detect.pick_dates(step_detect.coherent_counts(scan), scan["k"], d)
            row[key] = [{"epoch": f["epoch"], "pixels": f["pixels"],
                         "true": k_true is not None and abs(f["epoch"] - k_true) <= 1,
                         "creep": k_creep is not None and abs(f["epoch"] - k_creep) <= 1} for f in found]
    finally:
        step_detect.STEP_T, step_detect.STEP_BOX, step_detect.STEP_Z = shipped
    return row


def configs(args) -> dict:
    """``{label: (STEP_T, STEP_BOX, STEP_Z)}``: each |t| threshold with the shipped neighbourhood test,
    then each ``--box-z`` pair with the shipped |t| threshold."""
    out = {f"{thr:g}": (thr, step_detect.STEP_BOX, step_detect.STEP_Z) for thr in args.thresholds}
    for bz in args.box_z:
        box, _, z = bz.partition(":")
        out[f"box {int(box)}, z {float(z):g}"] = (step_detect.STEP_T, int(box), float(z))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", nargs="+", default=["0-44"], help="seeds or ranges, e.g. 0-44 50")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[step_detect.STEP_T, 5.0, 4.5, 4.0])
    ap.add_argument("--box-z", nargs="*", default=[], metavar="BOX:Z",
                    help="neighbourhood tests to compare (STEP_BOX:STEP_Z, e.g. 3:5 5:5), at the shipped |t|")
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--height", type=int, default=80)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--future", type=int, default=15, help="epochs after the stack (bench_skill.py --horizon: the same scenes)")
    ap.add_argument("--out", default=os.path.join("build", "bench_steps"))
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dc_steps_") as tmp:
        for seed in seeds_of(args.seeds):
            r = scan_seed(seed, os.path.join(tmp, f"seed_{seed}"), args)
            rows.append(r)
            print(f"seed {seed}: step {r['amplitude_mm'] if r['step_epoch'] is not None else '-'} at epoch "
                  f"{r['step_epoch']}; " + "; ".join(f"{key}: " + (", ".join(
                      f"{f['epoch']} ({f['pixels']} px{'' if f['true'] else ', creep' if f['creep'] else ', false'})"
                      for f in r[key]) or "-") for key in configs(args)), flush=True)
    with open(os.path.join(args.out, "steps.json"), "w", encoding="utf-8") as fh:
        json.dump(rows, fh, indent=1)
    n_true = sum(r["step_epoch"] is not None for r in rows)
    n_creep = sum(r["creep_epoch"] is not None for r in rows)
    lines = [f"{len(rows)} varied-physics scenes ({args.width} x {args.height} x {args.epochs}), {n_true} with a step, "
             f"{n_creep} with a fault creep event.", "",
             "| test | steps dated | creep events dated | false dates | scenes with a false date |",
             "|---|---:|---:|---:|---:|"]
    shipped = (step_detect.STEP_T, step_detect.STEP_BOX, step_detect.STEP_Z)
    for key, cfg in configs(args).items():
        dated = sum(any(f["true"] for f in r[key]) for r in rows)
        creep = sum(any(f["creep"] for f in r[key]) for r in rows)
        false = sum(sum(not (f["true"] or f["creep"]) for f in r[key]) for r in rows)
        scenes = sum(any(not (f["true"] or f["creep"]) for f in r[key]) for r in rows)
        label = f"|t| >= {key}" if key[0].isdigit() else key
        lines.append(f"| {label}{' (shipped)' if tuple(cfg) == shipped else ''} | {dated} of {n_true} | "
                     f"{creep} of {n_creep} | {false} | {scenes} |")
    lines += ["", "| seed | step (mm) | kind | epoch | step zone \\|t\\| p50 / p90 | background \\|t\\| p99 | dated at the shipped threshold |",
              "|---:|---:|---|---:|---|---:|---|"]
    for r in rows:
        if r["step_epoch"] is None:
            continue
        tz = r.get("t_step_zone_p50_p90")
        lines.append(f"| {r['seed']} | {r['amplitude_mm']:.1f} | {r['kind']} | {r['step_epoch']} | "
                     f"{'-' if tz is None else f'{tz[0]:.1f} / {tz[1]:.1f}'} | {r['t_background_p99']:.1f} | "
                     f"{'yes' if any(f['true'] for f in r[f'{args.thresholds[0]:g}']) else 'no'} |")
    md = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "steps.md"), "w", encoding="utf-8") as fh:
        fh.write(md)
    print(md)


if __name__ == "__main__":
    main()
