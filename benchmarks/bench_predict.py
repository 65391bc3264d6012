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
* ``lstm``: horizon ``--horizon``, LSTMs of the shapes of the main job's default since session 24
  (``workflow.COMPACT_SPACES["lstm"]``: windows 8-24, hidden 16-64, 1-2 layers; the fixed list ``LSTM_MIXED``);
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
predict in the same quiet hour. Session 20 (freshly trained ``mixed`` members of horizon 30, a slow
day, docs/benchmarks.md): 516.6 s and 1.60 GB with session 19's code, 397.9 s and 1.45 GB with
session 20's (networks 303 s, calibrated members 53 s, writes 15 s). Memory with area (2 members): 731 MB at 1000 x 1000, 733 MB at
2000 x 2000.

File layouts (issue 17, ``--layouts all`` or a comma list, at ``--size`` only): the same stack as
DeformCast writes it (``own``: tiled 256, DEFLATE, band-interleaved), as GDAL usually writes a multiband
GeoTIFF (``tiled_pixel``: 256 x 256 tiles, DEFLATE, ``INTERLEAVE=PIXEL``), striped band-interleaved
(``striped_band``), a VRT of one GeoTIFF per date (``vrt``) and an EGMS-style CSV of points (a third of
the cells) imported by ``import_timeseries`` (``egms``). Each runs predict + uncertainty in a fresh
process; a conversion that ``open_stack`` makes (``algorithms.io.layout``) is counted in predict (the cache
folder is ``<dir>/layout_cache``; delete it to measure the conversion again). ``--raw`` measures only the
reads: one row band by band (the code before issue 17, for ``tiled_pixel``) and with all bands at once,
the whole stack in ``ensemble``'s row blocks as it is and, where made, the conversion and the converted
copy. Figures: ``docs/README_data.md`` ("File layouts and speed").

Usage::

    .venv/bin/python benchmarks/bench_predict.py [--size 1000] [--dir /tmp/dcbench_predict] [--skip-large]
        [--members 10] [--members-kind mixed|uniform|legacy|lstm] [--horizon 30] [--encodings none]
    .venv/bin/python benchmarks/bench_predict.py --size 500 --layouts all [--raw]
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
#: (window, hidden, layers) of the ``lstm`` members, inside workflow.COMPACT_SPACES["lstm"] (the main job's
#: default since session 24), the larger shapes first as a tuned top-10 tends to have them
LSTM_MIXED = [(24, 64, 2), (16, 64, 1), (20, 32, 2), (12, 64, 2), (24, 32, 1),
              (8, 64, 2), (16, 32, 2), (20, 64, 1), (12, 16, 1), (24, 64, 1)]


def model_dir(folder: str, kind: str, horizon: int, encodings: str = "none") -> str:
    if kind == "legacy":
        return os.path.join(folder, "models")
    enc = "" if encodings in ("", "none") else "_" + encodings.replace(",", "-")
    return os.path.join(folder, f"models_{kind}_h{horizon}{enc}")


def make_models(folder: str, kind: str = "mixed", horizon: int = HORIZON, n_members: int = N_MEMBERS,
                encodings: str = "none") -> str:
    from deformcast.algorithms.data import dataset
    from deformcast.algorithms.models import modelio
    from deformcast.algorithms.data.synthetic import make_scene
    from deformcast.algorithms.learn.training import train_model

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
        arch = "resnet_transformer"
        if kind == "mixed":
            window, d_model, layers, res_blocks = MIXED[k % len(MIXED)]
            hp = {"d_model": d_model, "layers": layers, "res_blocks": res_blocks}
        elif kind == "lstm":
            window, hidden, layers = LSTM_MIXED[k % len(LSTM_MIXED)]
            hp, arch = {"hidden": hidden, "layers": layers}, "lstm"
        if window not in preps:
            preps[window] = dataset.prepare(sc.observed, sc.dates, sc.grid, window, horizon, encodings=enc,
                                            target="residual", max_samples=3000, **extra)
        prep = preps[window]
        r = train_model(prep.train.X, prep.train.Y, prep.val.X, prep.val.Y, arch, hp, device="cpu",
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

    from deformcast.algorithms.io.raster import iso, make_grid

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


LAYOUTS = ("own", "tiled_pixel", "striped_band", "vrt", "egms")


def make_layout(folder: str, size: int, layout: str) -> str:
    """The benchmark stack (``make_stack``) in one of the users' layouts; ``egms``: an EGMS-style CSV of points
    (about a third of the cells, as a PS/DS product covers an area) imported by ``import_timeseries``."""
    from osgeo import gdal

    gdal.UseExceptions()
    src = make_stack(os.path.join(folder, f"stack_{size}.tif"), size)
    path = os.path.join(folder, f"stack_{size}_{layout}." + ("vrt" if layout == "vrt" else "tif"))
    if os.path.exists(path):
        return path
    if layout == "own":           # what DeformCast writes (raster.RasterWriter): tiled 256, DEFLATE, band-interleaved
        gdal.Translate(path, src, creationOptions=["TILED=YES", "COMPRESS=DEFLATE", "INTERLEAVE=BAND", "BIGTIFF=YES"])
    elif layout == "tiled_pixel":  # GDAL's usual multiband GeoTIFF: 256 x 256 tiles, DEFLATE, pixel-interleaved
        gdal.Translate(path, src, creationOptions=["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE",
                                                   "INTERLEAVE=PIXEL", "BIGTIFF=YES"])
    elif layout == "striped_band":  # striped, band-interleaved, uncompressed
        gdal.Translate(path, src, creationOptions=["TILED=NO", "INTERLEAVE=BAND", "BIGTIFF=YES"])
    elif layout == "vrt":          # one GeoTIFF per date (GDAL defaults) and a VRT stacking them
        d = os.path.join(folder, f"dates_{size}")
        os.makedirs(d, exist_ok=True)
        ds = gdal.Open(src)
        files = []
        for b in range(ds.RasterCount):
            desc = ds.GetRasterBand(b + 1).GetDescription()
            f = os.path.join(d, f"disp_{desc.replace('-', '')}.tif")
            if not os.path.exists(f):
                gdal.Translate(f, ds, bandList=[b + 1])
            files.append(f)
        v = gdal.BuildVRT(path, files, separate=True)
        for b in range(ds.RasterCount):
            v.GetRasterBand(b + 1).SetDescription(ds.GetRasterBand(b + 1).GetDescription())
            v.GetRasterBand(b + 1).SetNoDataValue(float("nan"))
        v = None
    elif layout == "egms":
        path = _make_egms(folder, size, src)
    else:
        raise ValueError(layout)
    return path


def _make_egms(folder: str, size: int, src: str) -> str:
    import numpy as np
    from osgeo import gdal

    from deformcast.algorithms.io.importer import import_timeseries

    out = os.path.join(folder, f"stack_{size}_egms.tif")
    csv_path = os.path.join(folder, f"egms_{size}.csv")
    ds = gdal.Open(src)
    gt, T_ = ds.GetGeoTransform(), ds.RasterCount
    dates = [ds.GetRasterBand(b + 1).GetDescription().replace("-", "") for b in range(T_)]
    rng = np.random.default_rng(1)
    if not os.path.exists(csv_path):
        with open(csv_path + ".part", "w", encoding="ascii") as fh:
            fh.write(",".join(["pid", "easting", "northing", "height", "rmse", "mean_velocity"] + dates) + "\n")
            for r0 in range(0, size, 64):
                blk = ds.ReadAsArray(0, r0, size, min(64, size - r0))
                for r in range(blk.shape[1]):
                    cols = np.nonzero(rng.random(size) < 1 / 3)[0]
                    y = gt[3] + (r0 + r + 0.5) * gt[5]
                    for c in cols:
                        vals = ",".join(f"{v:.2f}" for v in blk[:, r, c])
                        fh.write(f"P{r0 + r}_{c},{gt[0] + (c + 0.5) * gt[1]:.1f},{y:.1f},0,1,0,{vals}\n")
        os.replace(csv_path + ".part", csv_path)
    import_timeseries(csv_path, out, cell_size=abs(gt[1]), target_crs="EPSG:25832")
    return out


def raw_child(folder: str, size: int, layout: str, old_row: bool) -> None:
    """The raw reads of one layout, in a fresh process: one row band by band (the code before issue 17, GDAL
    cache 64 MB as in this benchmark then) and with all bands at once; the whole stack in ``ensemble``'s row
    blocks (with its halo); the one-time conversion when ``open_stack`` makes one."""
    import numpy as np
    from osgeo import gdal

    from deformcast.algorithms.io import layout as lay
    from deformcast.algorithms.io import raster

    gdal.UseExceptions()
    gdal.SetCacheMax(64 * 1024 * 1024)
    path = make_layout(folder, size, layout)
    res = {"layout": layout, "size": size}
    ds = gdal.Open(path)
    res["describe"] = lay.describe(ds).describe()
    row = size // 2 + 3
    if old_row:
        t = time.perf_counter()
        for b in range(ds.RasterCount):
            raster.read_band(ds.GetRasterBand(b + 1), 0, row, size, 1, to_mm=True)
        res["one_row_band_by_band_s"] = time.perf_counter() - t
    ds = None
    t = time.perf_counter()
    info = raster.open_stack(path, convert=False)
    one = raster.read_stack(info, rows=(row, row + 1))
    res["one_row_all_bands_s"] = time.perf_counter() - t
    for conv in (False, True):
        t = time.perf_counter()
        info = raster.open_stack(path, convert=conv)
        t_open = time.perf_counter() - t
        if conv and not info.read_path:
            break
        br = max(1, 64000 // size)
        t = time.perf_counter()
        s = 0.0
        for r0 in range(0, size, br):
            a0, a1 = max(0, r0 - 2), min(size, r0 + br + 2)
            s += float(np.nansum(raster.read_stack(info, rows=(a0, a1))[:, 0]))
        key = "converted" if conv else "as_is"
        res[f"full_pass_{key}_s"] = time.perf_counter() - t
        if conv:
            res["conversion_s"] = t_open
            res["note"] = info.layout_note
        assert np.array_equal(raster.read_stack(info, rows=(row, row + 1)), one, equal_nan=True)
    res["peak_rss_mb"] = vm_mb()
    print(json.dumps(res))


def child(folder: str, size: int, members: int, models: str, layout: str = "") -> None:
    from osgeo import gdal

    gdal.SetCacheMax(64 * 1024 * 1024)   # as before issue 17; raster.read_stack raises it where the layout needs
    from deformcast.algorithms.maps.ensemble import predict_ensemble
    from deformcast.algorithms.maps.uncertainty import run_uncertainty

    stack = make_layout(folder, size, layout) if layout else os.path.join(folder, f"stack_{size}.tif")
    out = os.path.join(folder, f"out_{size}_{os.path.basename(models)}{'_' + layout if layout else ''}")
    from deformcast.algorithms.models import modelio

    # all the folder's members: members=None, as the main job and the toolbox call it, so the folder's skill gate (and
    # its local blend) applies; a subset skips the gate (it was fitted on the whole ensemble). Until session 25 this
    # passed the count always, so every figure measured predict without the gate (docs/benchmarks.md, "Session 25").
    n_all = len(modelio.read_manifest(models).get("members") or [])
    gated = members >= n_all
    t0 = time.perf_counter()
    res = predict_ensemble(stack, models, os.path.join(out, "median.tif"),
                           os.path.join(out, "quantiles.tif"), os.path.join(out, "members.tif"), device="cpu",
                           members=None if gated else members)
    t1 = time.perf_counter()
    outs = {f"{k}_path": os.path.join(out, f"output_{k}.tif") for k in
            ["susceptibility", "spread", "ambiguity", "confidence", "exceedance"]}
    run_uncertainty(os.path.join(out, "members.tif"), stack, thresholds="10,20", **outs)
    t2 = time.perf_counter()
    print(json.dumps({"layout": layout or "bench", "size": size, "members": members, "models": os.path.basename(models),
                      "gate": (res.get("gate") or {}).get("action") if gated else "not applied (a subset of members)",
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
    ap.add_argument("--members-kind", choices=("mixed", "uniform", "legacy", "lstm"), default="mixed",
                    help="mixed: the main job's shapes (default); uniform: ten default-size models; legacy: the "
                         "earlier benchmark (uniform, horizon 6)")
    ap.add_argument("--horizon", type=int, default=HORIZON, help="forecast epochs (ignored for legacy: 6)")
    ap.add_argument("--encodings", default="none", help="members' encodings, e.g. trajectory (not for legacy)")
    ap.add_argument("--layouts", default="",
                    help="comma list of file layouts to run predict + uncertainty on (" + ",".join(LAYOUTS) + ", or all), "
                         "at --size only; empty: the benchmark's own stack at --size and 2 x --size")
    ap.add_argument("--raw", action="store_true", help="only the raw reads of each layout in --layouts (no models)")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--raw-child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    ensure_pkg()
    if a.child:
        child(a.child[0], int(a.child[1]), int(a.child[2]), a.child[3], a.child[4])
        return
    if a.raw_child:
        raw_child(a.raw_child[0], int(a.raw_child[1]), a.raw_child[2], a.raw_child[3] == "1")
        return
    os.makedirs(a.dir, exist_ok=True)
    layouts = list(LAYOUTS) if a.layouts == "all" else [x for x in a.layouts.split(",") if x]
    env = dict(os.environ, DEFORMCAST_CACHE_DIR=os.path.join(a.dir, "layout_cache"))
    for lo in layouts:
        t = time.perf_counter()
        make_layout(a.dir, a.size, lo)
        print(f"# {lo} {a.size}x{a.size}x{T} ready in {time.perf_counter() - t:.0f} s", flush=True)
    if a.raw:
        for lo in layouts:
            r = subprocess.run([sys.executable, __file__, "--raw-child", a.dir, str(a.size), lo,
                                "1" if lo == "tiled_pixel" else "0"], capture_output=True, text=True, env=env)
            print(r.stdout.strip() or r.stderr[-3000:], flush=True)
        return
    models = make_models(a.dir, a.members_kind, a.horizon, encodings=a.encodings)
    if layouts:
        for lo in layouts:
            r = subprocess.run([sys.executable, __file__, "--child", a.dir, str(a.size), str(a.members), models, lo],
                               capture_output=True, text=True, env=env)
            print(r.stdout.strip() or r.stderr[-3000:], flush=True)
        return
    models = make_models(a.dir, a.members_kind, a.horizon, encodings=a.encodings)
    sizes = [a.size] if a.skip_large else [a.size, 2 * a.size]
    for s in sizes:
        t = time.perf_counter()
        make_stack(os.path.join(a.dir, f"stack_{s}.tif"), s)
        print(f"# stack {s}x{s}x{T} written in {time.perf_counter() - t:.0f} s", flush=True)
        r = subprocess.run([sys.executable, __file__, "--child", a.dir, str(s), str(a.members), models, ""],
                           capture_output=True, text=True)
        print(r.stdout.strip() or r.stderr[-3000:], flush=True)


if __name__ == "__main__":
    main()
