"""``predict`` + ``uncertainty`` with 10 members on a 1000 x 1000 x 150 stack (1 M pixels), and on a
4x larger area: wall time and peak memory (issue 6 target: < 5 min and < 2 GB on 2 CPU cores, the
same peak memory on the larger area).

Members (``--members-kind``), trained for one epoch each on a small synthetic scene (their skill
does not matter here, only the cost of running them), all ResNet+Transformer with the residual
target (the main job's, :mod:`workflow`), no spatial encoding (so they apply to any grid):

* ``mixed`` (default): horizon 30 (``--horizon``) and the shapes a tuned top-10 of the main job's
  compact search space has (``workflow.COMPACT_SPACE``): windows 8-24, d_model 16/32, 1-2 encoder
  layers, 1-3 residual blocks (the fixed list ``MIXED`` below), so members differ in their data
  config (window, normalisation) and share only the trajectory anchor;
* ``uniform``: ten default-size models (window 24, d_model 32, 2 layers, 2 residual blocks) on one
  data config, horizon ``--horizon`` (default 30): the most expensive networks;
* ``legacy``: the benchmark's earlier setting, ``uniform`` with horizon 6 (the issue's first
  measurements: 299.5 s, 718 MB on the idle machine before the ensemble speed-ups), kept in the
  folder ``models`` as before.

``--encodings`` (default ``none``) sets the members' encodings, e.g. ``trajectory`` (with spatial
validation, as the main job uses it where the series is long enough): its 20 per-pixel fit channels
make the inputs dearer.

The big stack is a cheap random walk plus a bowl, written once as a tiled GeoTIFF. Each size runs
``predict`` (with calibration) and then ``uncertainty`` in a fresh process that reports wall time,
the time per phase of ``predict`` and VmHWM (peak resident memory). Timings on a shared machine
are upper bounds.

Measured (2 CPU cores shared with other work, so upper bounds; default members): 1000 x 1000,
10 members: 188.6 s in all (predict 187.3 s, of which the networks 133 s and the GeoTIFF writes
37 s; uncertainty 1.3 s), peak 907 MB; the code before the issue-6 speed-ups took 218 s for
predict in the same quiet hour. Memory with area (2 members): 731 MB at 1000 x 1000, 733 MB at
2000 x 2000.

Usage::

    .venv/bin/python benchmarks/bench_predict.py [--size 1000] [--dir /tmp/dcbench_predict] [--skip-large]
        [--members 10] [--members-kind mixed|uniform|legacy] [--horizon 30] [--encodings none]
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
N_MEMBERS, WINDOW, HORIZON, T = 10, 24, 30, 150
LEGACY_HORIZON = 6
#: (window, d_model, layers, res_blocks) of the ``mixed`` members, inside workflow.COMPACT_SPACE
MIXED = [(24, 32, 2, 2), (16, 32, 1, 3), (20, 16, 2, 1), (12, 32, 2, 2), (24, 16, 1, 2),
         (8, 32, 2, 3), (16, 16, 2, 2), (20, 32, 1, 1), (12, 16, 1, 3), (24, 32, 2, 1)]


def model_dir(folder: str, kind: str, horizon: int, encodings: str = "none") -> str:
    if kind == "legacy":
        return os.path.join(folder, "models")
    enc = "" if encodings in ("", "none") else "_" + encodings.replace(",", "-")
    return os.path.join(folder, f"models_{kind}_h{horizon}{enc}")


def make_models(folder: str, kind: str = "mixed", horizon: int = HORIZON, n_members: int = N_MEMBERS,
                encodings: str = "none") -> str:
    from deformcast.algorithms import dataset, modelio
    from deformcast.algorithms.synthetic import make_scene
    from deformcast.algorithms.training import train_model

    if kind == "legacy":
        horizon, encodings = LEGACY_HORIZON, "none"
    enc = [e for e in encodings.split(",") if e.strip()] or ["none"]
    extra = {"validation": "space"} if "trajectory" in enc else {}
    root = model_dir(folder, kind, horizon, encodings)
    if os.path.exists(os.path.join(root, "manifest.json")):
        return root
    sc = make_scene(seed=0, width=60, height=50, n_epochs=T)
    preps = {}
    names = []
    for k in range(n_members):
        window, hp = WINDOW, {}
        if kind == "mixed":
            window, d_model, layers, res_blocks = MIXED[k % len(MIXED)]
            hp = {"d_model": d_model, "layers": layers, "res_blocks": res_blocks}
        if window not in preps:
            preps[window] = dataset.prepare(sc.observed, sc.dates, sc.grid, window, horizon, encodings=enc,
                                            target="residual", max_samples=3000, **extra)
        prep = preps[window]
        r = train_model(prep.train.X, prep.train.Y, prep.val.X, prep.val.Y, "resnet_transformer", hp, device="cpu",
                        seed=k, max_epochs=1)
        meta = {"architecture": r.architecture, "hparams": r.hparams, "n_features": prep.n_features, "window": window,
                "horizon": horizon, "feature_names": prep.feature_names, "encodings": enc,
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


def child(folder: str, size: int, members: int, models: str) -> None:
    from osgeo import gdal

    gdal.SetCacheMax(64 * 1024 * 1024)
    from deformcast.algorithms.ensemble import predict_ensemble
    from deformcast.algorithms.uncertainty import run_uncertainty

    stack = os.path.join(folder, f"stack_{size}.tif")
    out = os.path.join(folder, f"out_{size}_{os.path.basename(models)}")
    t0 = time.perf_counter()
    res = predict_ensemble(stack, models, os.path.join(out, "median.tif"),
                           os.path.join(out, "quantiles.tif"), os.path.join(out, "members.tif"), device="cpu",
                           members=members)
    t1 = time.perf_counter()
    outs = {k: os.path.join(out, k.lower() + ".tif") for k in
            ["OUTPUT_SUSCEPTIBILITY", "OUTPUT_SPREAD", "OUTPUT_AMBIGUITY", "OUTPUT_CONFIDENCE", "OUTPUT_EXCEEDANCE"]}
    run_uncertainty(os.path.join(out, "members.tif"), stack, outs, thresholds="10,20")
    t2 = time.perf_counter()
    print(json.dumps({"size": size, "members": members, "models": os.path.basename(models),
                      "horizon": len(res["forecast_dates"]), "pixels": size * size,
                      "valid_pixels": res["valid_pixels"], "predict_s": t1 - t0, "uncertainty_s": t2 - t1,
                      "total_s": t2 - t0, "pixel_forecasts_per_s": res["valid_pixels"] * members / (t1 - t0),
                      "predict_phases_s": res.get("timings_s"), "peak_rss_mb": vm_mb(),
                      "calibration_sigma_mm": res["calibration"].get("sigma_mm")}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--dir", default="/tmp/dcbench_predict")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--members", type=int, default=N_MEMBERS,
                    help="members used (fewer make the 4x-area memory check quicker; memory is per block)")
    ap.add_argument("--members-kind", choices=("mixed", "uniform", "legacy"), default="mixed",
                    help="mixed: the main job's shapes (default); uniform: ten default-size models; legacy: the "
                         "earlier benchmark (uniform, horizon 6)")
    ap.add_argument("--horizon", type=int, default=HORIZON, help="forecast epochs (ignored for legacy: 6)")
    ap.add_argument("--encodings", default="none", help="members' encodings, e.g. trajectory (not for legacy)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    ensure_pkg()
    if a.child:
        child(a.child[0], int(a.child[1]), int(a.child[2]), a.child[3])
        return
    os.makedirs(a.dir, exist_ok=True)
    models = make_models(a.dir, a.members_kind, a.horizon, encodings=a.encodings)
    sizes = [a.size] if a.skip_large else [a.size, 2 * a.size]
    for s in sizes:
        t = time.perf_counter()
        make_stack(os.path.join(a.dir, f"stack_{s}.tif"), s)
        print(f"# stack {s}x{s}x{T} written in {time.perf_counter() - t:.0f} s", flush=True)
        r = subprocess.run([sys.executable, __file__, "--child", a.dir, str(s), str(a.members), models],
                           capture_output=True, text=True)
        print(r.stdout.strip() or r.stderr[-3000:], flush=True)


if __name__ == "__main__":
    main()
