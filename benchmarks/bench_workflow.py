"""The main job end to end: ``./deformcast demo`` on the built-in scene (issue 17 target: at most 5
minutes on 2 CPU cores), with the headline figures of its backtest, and how the control tiers
cover the scene's known zones.

Besides wall time it reports the CPU time of the run split into user and system seconds (the
children's ``getrusage``, what ``/usr/bin/time -v`` shows) and the peak resident memory: the
machine is often shared, so CPU seconds are the fairer figure, and system time that grows beside
user time means threads waiting on each other.

Usage::

    .venv/bin/python benchmarks/bench_workflow.py [OUTPUT_FOLDER] [NAME=VALUE ...]

NAME=VALUE pairs go to ``deformcast:workflow`` (e.g. ``N_TRIALS=20``).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tier_cover(out: str) -> dict:
    sys.path.insert(0, str(ROOT / "build" / "pkgroot"))
    import numpy as np

    from deformcast.algorithms.io.raster import read_raster

    if not os.path.isfile(os.path.join(out, "scene", "zones.tif")):
        return {}   # INPUT=... a user's stack: no known zones
    tiers = read_raster(os.path.join(out, "tiers.tif"))[0][0]
    zones = read_raster(os.path.join(out, "scene", "zones.tif"))[0][0]
    res = {}
    for z, name in ((0, "quiet"), (1, "mining bowls"), (2, "fault zone"), (3, "rebound uplift")):
        m = (zones == z) & np.isfinite(tiers)
        if m.any():
            res[name] = {f"tier {t}": round(float(np.mean(tiers[m] == t)), 3) for t in (1, 2, 3, 4)}
    return res


def main():
    args = sys.argv[1:]
    out = os.path.abspath(args.pop(0) if args and "=" not in args[0] else "/tmp/dcbench_workflow")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([str(ROOT / "deformcast"), "demo", out] + args, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {"user_s": round(after.ru_utime - before.ru_utime, 1), "system_s": round(after.ru_stime - before.ru_stime, 1),
           "peak_rss_mb": round(after.ru_maxrss / 1024, 1), "cores": os.cpu_count(),
           "load_avg_1min_at_end": round(os.getloadavg()[0], 2)}
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:])
        raise SystemExit(r.returncode)
    s = json.load(open(os.path.join(out, "workflow.json")))
    b = s["backtest"]
    key = b["score_key"]
    rows = {row["model"]: round(row[key], 3) for row in b["rows"] if not row["model"].startswith("member")}
    print(json.dumps({"wall_s": round(wall, 1), "cpu": cpu, "timings_s": {k: round(v, 1) for k, v in s["timings_s"].items()},
                      "score": key, "rmse_mm": rows, "coverage_p10_p90": round(b["coverage_p10_p90"], 3),
                      "brier_skill": {e["threshold_mm"]: round(e["bss"], 3) for e in b["exceedance"]},
                      "tuning": {a: {"default_val_rmse": t["default_val_rmse"], "best_val_rmse": t["best_val_rmse"],
                                     "finished_trials": t.get("n_complete", 0) + t.get("n_pruned", 0),
                                     "stopped_by_patience": t.get("stopped_by_patience")}
                                 for a, t in s["tuning"].items()},
                      "tiers_over_known_zones": tier_cover(out)}, indent=1))


if __name__ == "__main__":
    main()
