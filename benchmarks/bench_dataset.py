"""Peak memory and time of building training samples from a stack read block-wise from disk.

Writes two synthetic displacement stacks as GeoTIFF (uncompressed, band-interleaved strips):
a large one (default 1000 x 1000 pixels x 150 epochs, 600 MB of float32) and one with a quarter
of its area (500 x 500 x 150, 150 MB), then runs :func:`algorithms.data.dataset.prepare` on each from
disk in a fresh process and reports wall time, the peak of Python/numpy allocations
(tracemalloc) and the process's peak resident memory (VmHWM, includes the interpreter,
numpy and GDAL, whose block cache is capped at 64 MB here). Memory should be about the same for
both sizes: the stack is read in row blocks and at most ``max_samples`` windows are kept.

Usage::

    .venv/bin/python benchmarks/bench_dataset.py [--size 1000] [--epochs 150] [--dir /tmp/dcbench]
        [--keep]

Runs a few minutes on 2 cores (most of it writing and reading the 600 MB file).
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


def write_synthetic(path: str, size: int, epochs: int, seed: int = 0) -> None:
    """A smooth subsidence bowl + seasonal term + noise, 2 % nodata pixels, written row block by row block."""
    import numpy as np
    from osgeo import gdal

    from deformcast.algorithms.io.raster import iso, make_grid

    gdal.UseExceptions()
    grid = make_grid(400000.0, 5800000.0, 20.0, size, size)
    dates = np.datetime64("2017-01-04") + np.arange(epochs) * 12
    t = (dates - dates[0]).astype(np.int64) / 365.25
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(path, size, size, epochs, gdal.GDT_Float32, ["INTERLEAVE=BAND", "BIGTIFF=YES"])
    ds.SetGeoTransform(grid.geotransform)
    ds.SetProjection(grid.crs_wkt)
    for b in range(epochs):
        band = ds.GetRasterBand(b + 1)
        band.SetDescription(iso(dates[b]))
        band.SetNoDataValue(float("nan"))
    rng = np.random.default_rng(seed)
    step = 100
    for r0 in range(0, size, step):
        r1 = min(size, r0 + step)
        yy, xx = np.mgrid[r0:r1, 0:size] / size
        vel = -40.0 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.05) - 2.0
        amp = 3.0 + 2.0 * xx
        block = (vel[None] * t[:, None, None] + amp[None] * np.sin(2 * np.pi * t)[:, None, None]
                 + rng.normal(0, 1.0, (epochs, r1 - r0, size))).astype(np.float32)
        block[:, rng.random((r1 - r0, size)) < 0.02] = np.nan
        for b in range(epochs):
            ds.GetRasterBand(b + 1).WriteArray(block[b], 0, r0)
    ds.FlushCache()
    ds = None


def measure(path: str, max_samples: int, encodings: str, target: str) -> dict:
    """Run prepare() on ``path`` in this process and return the figures."""
    import tracemalloc

    from osgeo import gdal

    gdal.SetCacheMax(64 * 1024 * 1024)
    from deformcast.algorithms.data import dataset
    from deformcast.algorithms.io.raster import open_stack

    rss0 = vm_mb("VmHWM")
    info = open_stack(path)
    tracemalloc.start()
    t0 = time.perf_counter()
    p = dataset.prepare(info, None, None, window=30, horizon=6, encodings=encodings, target=target,
                        max_samples=max_samples)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    rss = vm_mb("VmHWM")
    H, W = info.grid.shape
    return {"pixels": H * W, "shape": [int(info.n_epochs), H, W],
            "file_MB": round(os.path.getsize(path) / 2 ** 20, 1), "seconds": round(dt, 2),
            "tracemalloc_peak_MB": round(peak, 1), "peak_rss_MB": round(rss, 1),
            "peak_rss_before_MB": round(rss0, 1), "n_train": len(p.train), "n_val": len(p.val),
            "n_test": len(p.test), "features": p.n_features,
            "samples_MB": round(sum(getattr(p, s).X.nbytes for s in ("train", "val", "test")) / 2 ** 20, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--max-samples", type=int, default=20000)
    ap.add_argument("--encodings", default="temporal,spatial,neighbourhood")
    ap.add_argument("--target", default="increment")
    ap.add_argument("--dir", default="/tmp/deformcast_bench")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    ensure_pkg()
    if a.measure:
        print(json.dumps(measure(a.measure, a.max_samples, a.encodings, a.target)))
        return
    os.makedirs(a.dir, exist_ok=True)
    results = []
    try:
        for size in (a.size // 2, a.size):
            path = os.path.join(a.dir, f"stack_{size}x{size}x{a.epochs}.tif")
            t0 = time.perf_counter()
            if not os.path.exists(path):
                write_synthetic(path, size, a.epochs)
            tw = time.perf_counter() - t0
            out = subprocess.run([sys.executable, __file__, "--measure", path, "--max-samples",
                                  str(a.max_samples), "--encodings", a.encodings, "--target", a.target],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["write_seconds"] = round(tw, 1)
            results.append(r)
            print(json.dumps(r), flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(a.dir, ignore_errors=True)
    small, large = results
    print(f"\narea x{large['pixels'] / small['pixels']:.0f}: time x{large['seconds'] / small['seconds']:.2f}, "
          f"tracemalloc peak {small['tracemalloc_peak_MB']} -> {large['tracemalloc_peak_MB']} MB, "
          f"peak RSS {small['peak_rss_MB']} -> {large['peak_rss_MB']} MB "
          f"(stack on disk {small['file_MB']} -> {large['file_MB']} MB)")


if __name__ == "__main__":
    main()
