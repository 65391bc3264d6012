"""Forecast skill on real Sentinel-1 InSAR points: the main job against every classical forecast (issue 12).

Real data (session 41): the Sentinel-1 P-SBAS displacement series of the Doñana area (south-west Spain) shipped as
example data with the ``wasar`` package on PyPI (``wasar/example/Data/shapefiles/Sentinel_Asc`` and ``Sentinel_Desc``:
573 points x 134 dates, 2015-03-09 .. 2020-01-06, and 914 points x 146 dates, 2014-10-27 .. 2020-01-05, in cm;
Sentinel-1 tracks 147 and 154 processed with CNR-IREA's P-SBAS service on ESA's Geohazards Exploitation Platform,
public data according to the package's ``wasar/example/__init__.py``; the package is GPL-3.0). The two tracks have
the sizes of the real point sets of issue 12's "Real data" paragraph.

As a user would: each track's point shapefile is imported with ``import_timeseries`` onto a ``--cell`` m grid (50 m
by default; UNITS cm), the last ``--horizon`` epochs are held out, the main job (``run_workflow``, its defaults)
forecasts them from the rest, and the forecast is scored against the held-out observations at every pixel that holds
them, beside every classical forecast of ``anchors.FAMILY`` (persistence and smoothed persistence included), the
means of the last 5-8 epochs and the raw (ungated) ensemble, fitted on the same history. The report's verdict (made
before the held-out epochs are seen) is printed beside the true one.

The wheel is fetched once with ``pip download wasar==0.0.4 --no-deps`` (about 1 MB) into ``--cache``.

Then (session 42) the run is replayed from ``--origins`` before that last acquisition and from two origins inside the
held-out period (``real_ps_replay.py``): one origin is one draw of the atmosphere that every point shares, and on
the ascending track it made a forecast 0.936 of the best classical one over nine origins look 1.110. The calibrated
band is scored from the same origins (``real_ps_calibration.py``, session 43): coverage per lead step, by width, Brier
skill.

Usage::

    .venv/bin/python benchmarks/bench_real_ps.py --track asc --horizon 10 --out build/bench_real_ps
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg, regated_workflow  # noqa: E402

ensure_pkg()

from deformcast.algorithms.data import anchors  # noqa: E402
from deformcast.algorithms.io import raster  # noqa: E402
from deformcast.algorithms.io.importer import import_timeseries  # noqa: E402
from deformcast.algorithms.maps.ensemble import predict_ensemble  # noqa: E402
from deformcast.algorithms.workflow import run_workflow  # noqa: E402
from real_ps_calibration import score_run, summary as band_summary  # noqa: E402
from real_ps_replay import MEANS, mean_last, print_replay, replay  # noqa: E402

TRACKS = {"asc": "Sentinel_Asc", "desc": "Sentinel_Desc"}


def fetch(cache: str, track: str) -> str:
    """The track's shapefile (``.shp``) unpacked from the wasar wheel into ``cache``."""
    name = TRACKS[track]
    folder = os.path.join(cache, "wasar")
    shp = os.path.join(folder, name + ".shp")
    if os.path.isfile(shp):
        return shp
    os.makedirs(folder, exist_ok=True)
    wheels = glob.glob(os.path.join(cache, "wasar-0.0.4*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "wasar==0.0.4", "--no-deps", "--only-binary",
                        ":all:", "-d", cache], check=True)
        wheels = glob.glob(os.path.join(cache, "wasar-0.0.4*.whl"))
    with zipfile.ZipFile(wheels[0]) as z:
        for member in z.namelist():
            if "/shapefiles/Sentinel_" in member:
                with z.open(member) as src, open(os.path.join(folder, os.path.basename(member)), "wb") as dst:
                    dst.write(src.read())
    return shp


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--track", choices=sorted(TRACKS), default="asc")
    ap.add_argument("--horizon", type=int, default=10)
    ap.add_argument("--cell", type=float, default=50.0, help="grid cell of the import, m")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-trials", type=int, default=None)
    ap.add_argument("--cache", default="build/real_data")
    ap.add_argument("--out", default="build/bench_real_ps")
    ap.add_argument("--origins", type=int, nargs="*", default=[12, 10, 8, 6, 4, 2],
                    help="then replay the run from these origins too (epochs before the last acquisition it read; "
                         "real_ps_replay.py; none: the last acquisition only)")
    ap.add_argument("--regate", action="store_true",
                    help="re-score the finished run in --out with the current skill gate (no new training)")
    args = ap.parse_args(argv)
    out = os.path.join(args.out, args.track)
    os.makedirs(out, exist_ok=True)
    full_p = os.path.join(out, "stack_all.tif")
    if not os.path.isfile(full_p):
        summary = import_timeseries(fetch(args.cache, args.track), full_p, cell_size=args.cell, units="cm")
        print(f"imported: {summary.get('n_points')} points")
    info = raster.open_stack(full_p)
    y = raster.read_stack(info).astype(np.float64)
    T, H = info.n_epochs, int(args.horizon)
    stack_p = os.path.join(out, "stack.tif")
    if not os.path.isfile(stack_p):
        raster.write_stack(stack_p, y[:T - H].astype(np.float32), info.dates[:T - H], info.grid)
    hist, fut = y[:T - H], y[T - H:]
    dates = np.asarray(info.dates, dtype="datetime64[D]")
    job = os.path.join(out, "job")
    t0 = time.time()
    if args.regate and os.path.isfile(os.path.join(job, "workflow.json")):
        s = regated_workflow(stack_p, job)     # the finished run re-scored with the current skill gate
        wall = float(s["timings_s"]["total"])
    else:
        kw = {} if args.n_trials is None else {"n_trials": args.n_trials}
        s = run_workflow(job, stack_path=stack_p, horizon=H, seed=args.seed, **kw)
        wall = time.time() - t0
    n_pix = hist.shape[1] * hist.shape[2]
    med = raster.read_raster(s["paths"]["forecast_median"])[0].reshape(H, n_pix)
    raw_p = os.path.join(out, "raw_median.tif")
    predict_ensemble(stack_p, s["paths"]["models"], raw_p, calibrate=False, gate=False)
    raw = raster.read_raster(raw_p)[0].reshape(H, n_pix)
    flat, fut = hist.reshape(T - H, n_pix), fut.reshape(H, n_pix)
    fam = anchors.family_forecasts(flat, dates[:T - H], dates[T - H:])
    local = anchors.local_forecast(hist, dates[:T - H], dates[T - H:], H).reshape(H, n_pix)
    ok = (np.isfinite(med).all(0) & np.isfinite(fam).all(axis=(0, 1)) & np.isfinite(fut).all(0)
          & np.isfinite(raw).all(0))

    def rmse(f):
        return float(np.sqrt(np.mean((f[:, ok] - fut[:, ok]) ** 2)))

    r = {"main job": rmse(med), "ensemble (no gate)": rmse(raw), "local": rmse(local), "pixels": int(ok.sum())}
    for c, name in enumerate(anchors.FAMILY_NAMES):
        r[name] = rmse(fam[c])
    for k in MEANS:
        r[f"mean of the last {k}"] = rmse(mean_last(flat, k, H))
    classical = list(anchors.FAMILY_NAMES) + [f"mean of the last {k}" for k in MEANS]
    best = min(classical, key=lambda k: r[k])
    gate = s.get("gate") or {}
    res = {"track": args.track, "points": s.get("n_points"), "pixels": r["pixels"], "epochs": T - H, "horizon": H,
           "cell_m": args.cell, "wall_s": wall, "rmse_mm": r, "best classical": best, "ratio": r["main job"] / r[best],
           "gate": {k: gate.get(k) for k in ("reference", "verdict", "action", "ratio", "mean_weight")},
           "true verdict": "win" if r["main job"] < r[best] else "lose"}
    print(f"track {args.track}: {r['pixels']} pixels of {args.cell:g} m, {T - H} epochs, the last {H} held out; "
          "RMSE (mm) against the held-out observations")
    print("| forecast | RMSE (mm) | ratio to the best classical |")
    print("|---|---:|---:|")
    for k in ["main job", "ensemble (no gate)", "local"] + sorted(classical, key=lambda k: r[k]):
        print(f"| {k} | {r[k]:.2f} | {r[k] / r[best]:.3f} |")
    print(f"gate: {res['gate']}; true verdict {res['true verdict']}; main job {wall:.0f} s")
    if args.origins:        # one origin is one draw of the atmosphere every point shares (session 42)
        res["replay"] = replay(out, list(args.origins) + [0], [H // 3, 2 * H // 3])
        print_replay(out, res["replay"])
        # the calibrated band from the same origins, predict as the main job delivers it (session 43)
        res["calibration"] = score_run(out, list(args.origins) + [0], [H // 3, 2 * H // 3])
        print(band_summary(out, res["calibration"]), flush=True)
    with open(os.path.join(out, "real_ps_regated.json" if args.regate else "real_ps.json"), "w", encoding="utf-8") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
