"""Time and peak memory of ``uncertainty`` on 10 members x 6 horizon epochs, at two raster sizes.

Input generation is cheap: the members raster (60 bands, member-major, ``member<k> <date>``
descriptions, like ``predict`` writes) is an uncompressed sparse GeoTIFF in which only the bands
``uncertainty`` reads (each member's final horizon epoch) are written; the other bands exist but
hold no data blocks (``SPARSE_OK``). The stack has 5 epochs: ``uncertainty`` reads only the
reference epoch, so the stack's length does not change its cost. Values: a subsidence bowl plus
per-member scaling and noise, 1 % nodata pixels.

Each size runs in a fresh process which reports wall time of ``run_uncertainty`` (every output:
susceptibility, spread, ambiguity, confidence, 3 exceedance bands, median deformation, report),
the peak of Python/numpy allocations during the run (tracemalloc) and the process's peak
resident memory (``VmHWM`` of the fresh process — not ``ru_maxrss``, which Linux carries over
from the parent across exec; it includes the interpreter, numpy and GDAL, whose block cache is
capped at 64 MB here, as QGIS users may set it with GDAL_CACHEMAX).

Usage::

    .venv/bin/python benchmarks/bench_maps.py [--size 1000] [--dir /tmp/dcbench_maps] [--keep]

Runs the given size and the 4x larger area (2 x size per side).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ensure_pkg, vm_mb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_MEMBERS, HORIZON = 10, 6


def write_inputs(folder: str, size: int, seed: int = 0):
    import numpy as np
    from osgeo import gdal

    from deformcast.algorithms.io.raster import iso, make_grid

    gdal.UseExceptions()
    os.makedirs(folder, exist_ok=True)
    grid = make_grid(400000.0, 5800000.0, 20.0, size, size)
    sdates = np.datetime64("2022-01-04") + np.arange(5) * 12
    fdates = sdates[-1] + (np.arange(HORIZON) + 1) * 12
    drv = gdal.GetDriverByName("GTiff")
    opts = ["TILED=YES", "SPARSE_OK=TRUE", "INTERLEAVE=BAND", "BIGTIFF=IF_SAFER"]
    sp, mp = os.path.join(folder, "stack.tif"), os.path.join(folder, "members.tif")
    sds = drv.Create(sp, size, size, 5, gdal.GDT_Float32, opts)
    mds = drv.Create(mp, size, size, N_MEMBERS * HORIZON, gdal.GDT_Float32, opts)
    for ds in (sds, mds):
        ds.SetGeoTransform(grid.geotransform)
        ds.SetProjection(grid.crs_wkt)
    for i, d in enumerate(sdates):
        sds.GetRasterBand(i + 1).SetDescription(iso(d))
        sds.GetRasterBand(i + 1).SetNoDataValue(float("nan"))
    for m in range(N_MEMBERS):
        for j, d in enumerate(fdates):
            b = mds.GetRasterBand(m * HORIZON + j + 1)
            b.SetDescription(f"member{m} {iso(d)}")
            b.SetNoDataValue(float("nan"))
    rng = np.random.default_rng(seed)
    step = 256
    xs = np.arange(size)
    for r0 in range(0, size, step):
        r1 = min(size, r0 + step)
        yy = np.arange(r0, r1)[:, None]
        bowl = (-40.0 * np.exp(-((yy - 0.3 * size) ** 2 + (xs[None] - 0.4 * size) ** 2) / (0.02 * size * size))
                - 15.0 * np.exp(-((yy - 0.7 * size) ** 2 + (xs[None] - 0.7 * size) ** 2) / (0.01 * size * size)))
        last = (bowl * 5).astype(np.float32)
        last[rng.random(last.shape) < 0.01] = np.nan
        sds.GetRasterBand(5).WriteArray(last, 0, r0)
        for m in range(N_MEMBERS):
            d = bowl * (1 + 0.05 * (m - 4.5)) + rng.normal(0, 1.5, size=bowl.shape)
            mds.GetRasterBand(m * HORIZON + HORIZON).WriteArray((last + d).astype(np.float32), 0, r0)
    sds = mds = None
    return mp, sp


def child(folder: str) -> None:
    import tracemalloc

    from osgeo import gdal

    gdal.SetCacheMax(64 * 1024 * 1024)
    from deformcast.algorithms.maps.uncertainty import run_uncertainty

    mp, sp = os.path.join(folder, "members.tif"), os.path.join(folder, "stack.tif")
    out = os.path.join(folder, "out")
    outs = {f"{k}_path": os.path.join(out, f"output_{k}.tif") for k in
            ["susceptibility", "spread", "ambiguity", "confidence", "exceedance", "deformation"]}
    outs["report_path"] = os.path.join(out, "report.html")
    rss0 = vm_mb()
    tracemalloc.start()
    t0 = time.perf_counter()
    res = run_uncertainty(mp, sp, thresholds="10,20", extreme_quantiles="95", n_classes=5, **outs)
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = vm_mb()
    print(json.dumps({"wall_s": wall, "tracemalloc_peak_mb": peak / 2**20, "rss_before_mb": rss0,
                      "peak_rss_mb": rss, "n_valid": res.n_valid,
                      "limits_mm": [round(float(x), 3) for x in res.limits]}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--dir", default="/tmp/dcbench_maps")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    ensure_pkg()
    if a.child:
        child(a.child)
        return
    results = {}
    try:
        for size in (a.size, 2 * a.size):
            folder = os.path.join(a.dir, str(size))
            t0 = time.perf_counter()
            write_inputs(folder, size)
            gen = time.perf_counter() - t0
            p = subprocess.run([sys.executable, __file__, "--child", folder], capture_output=True, text=True)
            if p.returncode != 0:
                print(p.stdout, p.stderr)
                raise SystemExit(1)
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r["input_generation_s"] = gen
            results[f"{size}x{size}"] = r
            print(f"{size} x {size} px, {N_MEMBERS} members x H={HORIZON}: uncertainty {r['wall_s']:.1f} s, "
                  f"tracemalloc peak {r['tracemalloc_peak_mb']:.0f} MB, peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"(after imports {r['rss_before_mb']:.0f} MB); inputs written in {gen:.1f} s", flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(a.dir, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
