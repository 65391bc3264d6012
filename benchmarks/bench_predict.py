"""``predict`` + ``uncertainty`` with 10 members on a 1000 x 1000 x 150 stack (1 M pixels), and on a
4x larger area: wall time and peak memory (issue 6 target: < 5 min and < 2 GB on 2 CPU cores, the
same peak memory on the larger area).

The members are ten default-size ResNet+Transformer models (window 24, horizon 6, no spatial
encoding, so they apply to any grid) trained for one epoch each on a small synthetic scene: their
skill does not matter here, only the cost of running them. The big stack is a cheap random walk plus
a bowl, written once as a tiled GeoTIFF. Each size runs ``predict`` (with calibration) and then
``uncertainty`` in a fresh process that reports wall time and VmHWM (peak resident memory).

Usage::

    .venv/bin/python benchmarks/bench_predict.py [--size 1000] [--dir /tmp/dcbench_predict] [--skip-large]
        [--members 10]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ensure_pkg, vm_mb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_MEMBERS, WINDOW, HORIZON, T = 10, 24, 6, 150


def make_models(folder: str) -> str:
    from deformcast.algorithms import dataset, modelio
    from deformcast.algorithms.synthetic import make_scene
    from deformcast.algorithms.training import train_model

    root = os.path.join(folder, "models")
    if os.path.exists(os.path.join(root, "manifest.json")):
        return root
    sc = make_scene(seed=0, width=60, height=50, n_epochs=T)
    prep = dataset.prepare(sc.observed, sc.dates, sc.grid, WINDOW, HORIZON, target="residual", max_samples=3000)
    names = []
    for k in range(N_MEMBERS):
        r = train_model(prep.train.X, prep.train.Y, prep.val.X, prep.val.Y, "resnet_transformer", {}, device="cpu",
                        seed=k, max_epochs=1)
        meta = {"architecture": r.architecture, "hparams": r.hparams, "n_features": prep.n_features, "window": WINDOW,
                "horizon": HORIZON, "feature_names": prep.feature_names, "encodings": ["none"],
                "normalisation": prep.norm, "data_config": prep.config, "grid": modelio.grid_to_dict(sc.grid),
                "validation": {"val_loss": r.best_val_loss}, "seed": k}
        modelio.save_model(os.path.join(root, f"m{k:02d}"), r.model, meta)
        names.append(f"m{k:02d}")
    modelio.write_manifest(root, names)
    return root


def make_stack(path: str, size: int) -> str:
    import numpy as np
    from osgeo import gdal

    from deformcast.algorithms.raster import iso, make_grid

    if os.path.exists(path):
        return path
    gdal.UseExceptions()
    grid = make_grid(400000.0, 5800000.0, 20.0, size, size)
    dates = np.datetime64("2018-01-03") + np.arange(T) * 12
    ds = gdal.GetDriverByName("GTiff").Create(path + ".part.tif", size, size, T, gdal.GDT_Float32,
                                              ["TILED=YES", "INTERLEAVE=BAND", "BIGTIFF=YES"])
    ds.SetGeoTransform(grid.geotransform)
    ds.SetProjection(grid.crs_wkt)
    rng = np.random.default_rng(0)
    t = np.arange(T, dtype=np.float32)[:, None, None]
    for r0 in range(0, size, 128):
        r1 = min(size, r0 + 128)
        yy = np.arange(r0, r1)[:, None]
        xx = np.arange(size)[None]
        rate = -0.5 * np.exp(-((yy - 0.4 * size) ** 2 + (xx - 0.5 * size) ** 2) / (0.03 * size * size))
        block = (rate[None] * t + np.cumsum(rng.normal(0, 0.3, (T, r1 - r0, size)), axis=0)).astype(np.float32)
        for b in range(T):
            ds.GetRasterBand(b + 1).WriteArray(block[b], 0, r0)
    for b in range(T):
        ds.GetRasterBand(b + 1).SetDescription(iso(dates[b]))
        ds.GetRasterBand(b + 1).SetNoDataValue(float("nan"))
    ds = None
    os.replace(path + ".part.tif", path)
    return path


def child(folder: str, size: int, members: int = N_MEMBERS) -> None:
    from osgeo import gdal

    gdal.SetCacheMax(64 * 1024 * 1024)
    from deformcast.algorithms.ensemble import predict_ensemble
    from deformcast.algorithms.uncertainty import run_uncertainty

    stack = os.path.join(folder, f"stack_{size}.tif")
    out = os.path.join(folder, f"out_{size}")
    t0 = time.perf_counter()
    res = predict_ensemble(stack, os.path.join(folder, "models"), os.path.join(out, "median.tif"),
                           os.path.join(out, "quantiles.tif"), os.path.join(out, "members.tif"), device="cpu",
                           members=members)
    t1 = time.perf_counter()
    outs = {k: os.path.join(out, k.lower() + ".tif") for k in
            ["OUTPUT_SUSCEPTIBILITY", "OUTPUT_SPREAD", "OUTPUT_AMBIGUITY", "OUTPUT_CONFIDENCE", "OUTPUT_EXCEEDANCE"]}
    run_uncertainty(os.path.join(out, "members.tif"), stack, outs, thresholds="10,20")
    t2 = time.perf_counter()
    print(json.dumps({"size": size, "members": members, "pixels": size * size, "valid_pixels": res["valid_pixels"],
                      "predict_s": t1 - t0, "uncertainty_s": t2 - t1, "total_s": t2 - t0,
                      "pixel_forecasts_per_s": res["valid_pixels"] * members / (t1 - t0),
                      "peak_rss_mb": vm_mb(), "calibration_sigma_mm": res["calibration"].get("sigma_mm")}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--dir", default="/tmp/dcbench_predict")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--members", type=int, default=N_MEMBERS,
                    help="members used (fewer make the 4x-area memory check quicker; memory is per block)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    ensure_pkg()
    if a.child:
        child(a.child[0], int(a.child[1]), int(a.child[2]))
        return
    os.makedirs(a.dir, exist_ok=True)
    make_models(a.dir)
    sizes = [a.size] if a.skip_large else [a.size, 2 * a.size]
    for s in sizes:
        t = time.perf_counter()
        make_stack(os.path.join(a.dir, f"stack_{s}.tif"), s)
        print(f"# stack {s}x{s}x{T} written in {time.perf_counter() - t:.0f} s", flush=True)
        r = subprocess.run([sys.executable, __file__, "--child", a.dir, str(s), str(a.members)],
                           capture_output=True, text=True)
        print(r.stdout.strip() or r.stderr[-3000:], flush=True)


if __name__ == "__main__":
    main()
