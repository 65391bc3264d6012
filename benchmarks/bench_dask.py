"""Throughput of ``predict`` on a Dask cluster (issue 17): pixels per second in this process and with
1 and 2 local worker processes (``distributed.LocalCluster``, one thread each), on the stack and
members of ``bench_predict.py`` (``mixed`` ResNet+Transformer members, horizon 30, T = 150).

The issue's target is >= 1.7x the single-worker throughput with two workers on a 4 M pixel stack; on a
2-core machine shared with other work a smaller stack is measured (``--size``, default 400 x 400 =
160 000 pixels) and two workers get the machine's two cores, so the figure is an upper bound of what
the cluster overhead costs, not a cluster measurement. The calibration is switched off
(``--calibrate`` to include it): it is fitted on the client before the blocks are sent and does not
scale with the workers. Each configuration runs ``--repeat`` times (default 2); the first run of a
cluster includes the workers' one-time start (importing torch, loading the members into their cache),
the best run is the throughput. Every Dask output is checked equal to the in-process one.

Usage::

    .venv/bin/python benchmarks/bench_dask.py [--size 400] [--members 4] [--workers 1,2] [--dir /tmp/dcbench_dask]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ensure_pkg  # noqa: E402


def run(stack, root, out, scheduler, calibrate):
    from deformcast.algorithms.maps import ensemble

    t0 = time.perf_counter()
    res = ensemble.predict_ensemble(stack, root, os.path.join(out, "median.tif"), os.path.join(out, "q.tif"),
                                    os.path.join(out, "members.tif"), device="cpu", calibrate=calibrate,
                                    scheduler=scheduler)
    return time.perf_counter() - t0, res


def same(a, b) -> bool:
    import numpy as np

    from deformcast.algorithms.io import raster

    return all(np.array_equal(raster.read_raster(os.path.join(a, f))[0], raster.read_raster(os.path.join(b, f))[0],
                              equal_nan=True) for f in ("median.tif", "q.tif", "members.tif"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=400)
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--dir", default="/tmp/dcbench_dask")
    a = ap.parse_args()
    ensure_pkg()
    import bench_predict as bp
    import distributed

    os.makedirs(a.dir, exist_ok=True)
    root = bp.make_models(a.dir, "mixed", bp.HORIZON, a.members)
    stack = bp.make_stack(os.path.join(a.dir, f"stack_{a.size}.tif"), a.size)
    px = a.size * a.size
    rows = []

    def measure(label, scheduler):
        times = []
        for r in range(a.repeat):
            out = os.path.join(a.dir, f"out_{label}")
            s, _ = run(stack, root, out, scheduler, a.calibrate)
            print(f"  {label} run {r + 1}: {s:.1f} s ({px / s:,.0f} px/s)", flush=True)
            times.append(s)
        best = min(times)
        rows.append({"engine": label, "first_s": round(times[0], 2), "best_s": round(best, 2),
                     "px_per_s": round(px / best), "equal": label == "in-process" or same(
                         os.path.join(a.dir, "out_in-process"), os.path.join(a.dir, f"out_{label}"))})

    print(f"{px:,} pixels x 150 epochs, {a.members} members, {os.cpu_count()} CPUs", flush=True)
    measure("in-process", None)
    for n in [int(x) for x in a.workers.split(",")]:
        with distributed.LocalCluster(n_workers=n, processes=True, threads_per_worker=1, dashboard_address=None,
                                      silence_logs=40) as cluster:
            measure(f"dask {n} worker(s)", cluster.scheduler_address)
    one = next((r["px_per_s"] for r in rows if r["engine"].startswith("dask 1 ")), None)
    for r in rows:
        r["vs_1_worker"] = round(r["px_per_s"] / one, 2) if one else None
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
