"""Time and peak memory of ``predict``'s calibration alone (:func:`calibration.calibrate`, the validation forecasts
of :mod:`validation_forecasts` and the fit), in this process and on two local processes, the way ``predict`` runs it
on a large raster (session 26, docs/benchmarks.md).

The calibration cache is cleared before every run. The local processes start first (their start-up is reported).
The first run on them includes loading the members in each process, which ``predict`` does while the processes
start (``distributed.preload_members``); the second run finds the members loaded. Each run prints the spread of
the last lead step, which must be the same in every run.

Usage (the 1000 x 1000 x 150 stack and members of ``bench_predict.py``)::

    .venv/bin/python benchmarks/bench_calibration_time.py --stack /tmp/dcbench_predict/stack_1000.tif \\
        --models <model folder> [--runs local,pool,pool]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg, vm_mb  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stack", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--runs", default="pool,pool,local", help="comma list of local / pool, in order")
    a = ap.parse_args(argv)
    ensure_pkg()
    from osgeo import gdal

    gdal.SetCacheMax(64 << 20)
    from deformcast.algorithms.io import raster
    from deformcast.algorithms.learn.runtime import numeric_session
    from deformcast.algorithms.maps import calibration as calib, distributed
    from deformcast.algorithms.maps.member_forecasts import load_members
    from deformcast.algorithms.models import modelio

    info = raster.open_stack(a.stack, None)
    e = info.n_epochs - 1
    loaded = load_members(a.models, None, device="cpu", info=info, end=e)
    configs = [m.meta.get("data_config") or {} for m in loaded]
    gate = modelio.read_manifest(a.models).get("gate")
    H = int(loaded[0].meta["horizon"])
    runs = [r.strip() for r in a.runs.split(",") if r.strip()]
    pool, job = None, {"stack": distributed.stack_job(info), "model_folder": os.path.abspath(a.models),
                       "members": None, "device": "cpu", "e": e, "batch_size": 2048}
    if "pool" in runs:
        t = time.perf_counter()
        pool = distributed.ready_local(distributed.start_local(2))
        print(json.dumps({"pool_ready_s": round(time.perf_counter() - t, 1)}), flush=True)

    @numeric_session
    def run(remote):
        calib._CACHE.clear()
        return calib.calibrate(info, loaded, configs, {}, e, H, "cpu", 2048, gate=gate, remote=remote)

    try:
        for r in runs:
            t = time.perf_counter()
            _, det = run((pool, job) if r == "pool" and pool is not None else None)
            print(json.dumps({"run": r, "seconds": round(time.perf_counter() - t, 1),
                              "peak_rss_mb_this_process": round(vm_mb()),
                              "sigma_last_mm": det.get("sigma_mm", [None])[-1]}), flush=True)
    finally:
        if pool is not None:
            pool.close()


if __name__ == "__main__":
    main()
