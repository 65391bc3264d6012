"""The shipped warm-start prior (``algorithms/learn/tuning/prior.json``) judged on stacks that played no part in it.

For each stack, ``tune_job`` runs twice with the main job's tuning settings (the default architecture's compact
search space, 20 trials, top 10, study patience, one trial process per core, the same seed): without and with
``warm_start``. One JSON line per run: wall time, trials (complete), best and top-10 mean validation RMSE.

Usage::

    .venv/bin/python benchmarks/bench_warm_start.py --out build/warm_start STACK.tif [STACK.tif ...]

(session 25: the stacks of fresh ``bench_skill.py`` scenes, ``seed_N/scene/stack.tif``; docs/README_tuning.md).
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()

from deformcast.algorithms import workflow  # noqa: E402
from deformcast.algorithms.learn import tuning  # noqa: E402
from deformcast.algorithms.models import DEFAULT_ARCHITECTURE  # noqa: E402


def run(stack: str, out: str, warm: bool, horizon: int, seed: int) -> dict:
    t0 = time.time()
    tuning.tune_job(stack, out, DEFAULT_ARCHITECTURE, horizon, n_trials=20, top_k=10, seed=seed, max_epochs=20,
                    max_samples=5000, search_space=workflow.COMPACT_SPACES[DEFAULT_ARCHITECTURE], gate=False,
                    warm_start=warm, local_workers=0)
    wall = time.time() - t0
    with open(glob.glob(os.path.join(out, "studies", "*", "trials.csv"))[0], encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    done = sorted(float(r["val_rmse_mm"]) for r in rows if r["state"] == "COMPLETE")
    return {"stack": stack, "warm_start": warm, "wall_s": round(wall, 1), "trials": len(rows), "complete": len(done),
            "best_mm": done[0] if done else None, "top10_mean_mm": sum(done[:10]) / len(done[:10]) if done else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stacks", nargs="+")
    ap.add_argument("--out", default="build/bench_warm_start")
    ap.add_argument("--horizon", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for i, stack in enumerate(args.stacks):
        for warm in (False, True):
            res = run(stack, os.path.join(args.out, f"{i}_{'warm' if warm else 'cold'}"), warm, args.horizon, args.seed)
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
