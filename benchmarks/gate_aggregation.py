"""The skill gate refitted on finished runs with each way of putting its rolling origins together.

``skill_gate.run_gate`` spends its time in ``skill_gate.collect`` (every member and classical candidate forecast
from every rolling origin); ``fit_gate`` on that data takes a second. This script collects once per run (cached as
``gate_data.npz`` in the run's folder: plain arrays, no pickles) and fits the gate with every
``origin_stats.ORIGIN_AGGREGATION``: ``pooled`` (sessions 1-24, the RMSE of all origins' values together) and
``geometric`` (since session 25, the geometric mean of per-origin RMSE ratios). It prints, per run and rule, the
rolling verdict and its ratio, the best classical candidate, the gate's action and class weights. Where the action
differs, ``bench_skill.py --regate`` / ``bench_real.py --regate`` give the delivered figures with the shipped rule.

The data are ``skill_gate.gate_data``'s, as ``run_gate`` collects them (a gate it would hold is held here too). The
cache is not checked against the run's models: delete ``gate_data.npz`` after retraining a run.

Usage::

    .venv/bin/python benchmarks/gate_aggregation.py build/bench_skill/seed_3 build/bench_real ...

A run folder holds ``job/workflow.json`` (``bench_skill.py``'s ``seed_N`` folders, ``bench_real.py``'s ``--out``) or is
the main job's output folder itself (``workflow.json``, e.g. ``./deformcast demo OUT``).
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()

from deformcast.algorithms.maps import origin_stats, skill_gate as sg  # noqa: E402

KEYS = ("members", "local", "family", "obs", "last")
RULES = ("pooled", "geometric")


def gate_data(stack: str, models: str, cache: str):
    """``skill_gate.gate_data`` for the run (data, why), from ``cache`` when it is there (written on the first call)."""
    if os.path.isfile(cache):
        with np.load(cache) as z:
            n = int(z["n"])
            d = {k: [z[f"{k}_{i}"] for i in range(n)] for k in KEYS}
            d["origins"] = z["origins"].tolist()
            why = str(z["why"]) if "why" in z.files and str(z["why"]) else None
        return d, why
    _, d, why = sg.gate_data(stack, models, device="cpu")
    arrays = {f"{k}_{i}": d[k][i] for k in KEYS for i in range(len(d["origins"]))}
    np.savez(cache, n=len(d["origins"]), origins=np.array(d["origins"]), why=np.array(why or ""), **arrays)
    return d, why


def stack_of(run: str, workflow: dict) -> str:
    for p in (workflow.get("paths", {}).get("stack"), os.path.join(run, "scene", "stack.tif"),
              os.path.join(run, "gnss_stack.tif")):
        if p and os.path.isfile(p):
            return p
    raise SystemExit(f"{run}: no stack found (job/workflow.json paths.stack, scene/stack.tif or gnss_stack.tif)")


def main(runs) -> None:
    shipped = origin_stats.ORIGIN_AGGREGATION
    try:
        for run in runs:
            job = run if os.path.isfile(os.path.join(run, "workflow.json")) else os.path.join(run, "job")
            with open(os.path.join(job, "workflow.json"), encoding="utf-8") as fh:
                wf = json.load(fh)
            t0 = time.time()
            d, why = gate_data(stack_of(run, wf), wf["paths"]["models"], os.path.join(run, "gate_data.npz"))
            for rule in RULES:
                origin_stats.ORIGIN_AGGREGATION = rule
                g = sg.fit_gate(d)
                if why:
                    g = sg.hold(g, why)
                w = [round(float(np.mean(x)), 2) for x in g["weights"]]
                print(f"{run}  {rule:9s}  verdict {g['verdict']} {g['ratio']:.3f} vs {g['reference']}  "
                      f"{g['action']}  class weights {w}  ({time.time() - t0:.0f} s)", flush=True)
    finally:
        origin_stats.ORIGIN_AGGREGATION = shipped


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(sys.argv[1:])
