"""Forecast skill on real geodetic series: the main job against every classical forecast.

Real data stand-in (issue 12): the daily GNSS positions of eight long European IGS stations (BOR1,
GRAZ, MATE, METS, ONSA, VILL, WTZR, ZIMM; NGL ``.tenv`` files, IGS20 frame, 1994-2025) shipped as
example data with the ``hector-ts`` package on PyPI. Each station's east, north and up components
are averaged into 12-day bins (at least 4 daily values), cut into non-overlapping segments of
``epochs + horizon`` bins (the segments are placed on the dates of the latest one, shifted by whole
multiples of 152 bins = 4.99 years, so the seasonal phase moves by under 4 days) and referenced
to their first bin, in mm. Each segment of each component is one "pixel" of a small stack. The last
``horizon`` bins of every segment are held out: the main job sees the rest, as a user's stack, and
its forecast is scored against those held-out observations beside every classical forecast of
``anchors.FAMILY`` (persistence and smoothed persistence included) fitted on the same history.

Usage::

    .venv/bin/python benchmarks/bench_real.py --horizon 10 --out build/bench_real

``--sampling day`` takes one daily position per 12-day bin (the first day with data in the bin, at
least one) instead of the bin mean: a snapshot, as one SAR acquisition is, with the full daily noise.
``--relative`` subtracts from each series the mean of the same component of every station over the
same segment (InSAR measures relative to a reference point; over Europe the common plate motion of
about 25 mm/yr then cancels). Together they give a noise-dominated stand-in closer to real
persistent-scatterer series (small relative motion, the noise of one acquisition), where smoothed
persistence is a strong classical forecast (issue 12).

The wheel is fetched once with ``pip download hector-ts==3.2.0`` (about 18 MB) into ``--cache``.
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

from deformcast.algorithms.data import anchors
from deformcast.algorithms.io import raster
from deformcast.algorithms.maps.ensemble import predict_ensemble  # noqa: E402
from deformcast.algorithms.workflow import run_workflow  # noqa: E402

STEP = 12
SHIFT = 152  # bins between segment starts: 4.99 years


def fetch(cache: str) -> list:
    os.makedirs(cache, exist_ok=True)
    tenv = sorted(glob.glob(os.path.join(cache, "*.tenv")))
    if tenv:
        return tenv
    wheels = glob.glob(os.path.join(cache, "hector_ts-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "hector-ts==3.2.0", "-d", cache],
                       check=True)
        wheels = glob.glob(os.path.join(cache, "hector_ts-*.whl"))
    with zipfile.ZipFile(wheels[0]) as z:
        for n in z.namelist():
            if n.startswith("hector/examples/ex6/") and n.endswith(".tenv"):
                with open(os.path.join(cache, os.path.basename(n)), "wb") as fh:
                    fh.write(z.read(n))
    return sorted(glob.glob(os.path.join(cache, "*.tenv")))


def read_tenv(path: str):
    """(dates datetime64[D], enu (n, 3) mm) of an NGL .tenv file."""
    mjd, enu = [], []
    with open(path, encoding="ascii", errors="replace") as fh:
        for line in fh:
            p = line.split()
            if len(p) < 10:
                continue
            mjd.append(int(float(p[3])))
            enu.append([float(p[7]), float(p[8]), float(p[9])])
    d = np.datetime64("1858-11-17") + np.asarray(mjd).astype("timedelta64[D]")
    return d, np.asarray(enu) * 1000.0


def bins(dates, values, start, n_bins, sampling="mean"):
    """12-day means on the grid start + k*12 days (NaN where fewer than 4 daily values); with
    ``sampling="day"`` the first daily value of each bin instead (NaN where the bin has none)."""
    k = ((dates - start).astype(int)) // STEP
    out = np.full((n_bins, values.shape[1]), np.nan)
    for b in range(n_bins):
        m = np.flatnonzero(k == b)
        if sampling == "day" and m.size:
            out[b] = values[m[0]]
        elif m.size >= 4:
            out[b] = values[m].mean(axis=0)
    return out


def build_stack(files, epochs: int, horizon: int, sampling: str = "mean", relative: bool = False):
    seg = epochs + horizon
    series = {os.path.basename(f)[:4]: read_tenv(f) for f in files}
    last = min(d[-1] for d, _ in series.values())
    start_last = last - np.timedelta64((seg + 1) * STEP, "D")
    cols, labels = [], []
    k = 0
    while True:
        start = start_last - np.timedelta64(k * SHIFT * STEP, "D")
        if all(d[0] > start for d, _ in series.values()):
            break
        seg_b = {}
        for name, (d, v) in series.items():
            if d[0] > start:
                continue
            b = bins(d, v, start, seg, sampling)
            if np.isfinite(b[0]).all():
                seg_b[name] = b - b[0]          # each station referenced to its first bin
        if relative and seg_b:
            with np.errstate(all="ignore"):
                common = np.nanmean(np.stack(list(seg_b.values())), axis=0)   # (seg, 3)
        for name, b in seg_b.items():
            if relative:
                b = b - common
            for c, comp in enumerate("ENU"):
                y = b[:, c]
                if np.isfinite(y[:epochs]).sum() < 0.8 * epochs or not np.isfinite(y[epochs:]).all() \
                        or not np.isfinite(y[0]):
                    continue
                cols.append(y - y[0])
                labels.append(f"{name}-{comp}-{str(start)[:4]}")
        k += 1
    Y = np.stack(cols, axis=1)                                  # (seg, n)
    dates = start_last + np.arange(seg) * np.timedelta64(STEP, "D")
    return Y, dates, labels


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--horizon", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=134)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-trials", type=int, default=None)
    ap.add_argument("--cache", default="build/real_data")
    ap.add_argument("--out", default="build/bench_real")
    ap.add_argument("--regate", action="store_true",
                    help="re-score the finished run in --out with the current skill gate (no new training)")
    ap.add_argument("--sampling", choices=("mean", "day"), default="mean",
                    help="12-day bin means (default) or one daily snapshot per bin")
    ap.add_argument("--relative", action="store_true", help="each series relative to the mean of all stations")
    ap.add_argument("--architecture", default=None, help="experiment: the main job's architecture (default: its own)")
    args = ap.parse_args(argv)
    files = fetch(args.cache)
    Y, dates, labels = build_stack(files, args.epochs, args.horizon, args.sampling, args.relative)
    n = Y.shape[1]
    W = 12
    Hh = -(-n // W)
    grid = raster.make_grid(500000.0, 5700000.0, 100.0, W, Hh)
    cube = np.full((Y.shape[0], Hh * W), np.nan, np.float32)
    cube[:, :n] = Y
    cube = cube.reshape(Y.shape[0], Hh, W)
    os.makedirs(args.out, exist_ok=True)
    stack_p = os.path.join(args.out, "gnss_stack.tif")
    raster.write_stack(stack_p, cube[:args.epochs], dates[:args.epochs], grid)
    t0 = time.time()
    kw = {} if args.n_trials is None else {"n_trials": args.n_trials}
    if args.architecture:
        kw["architectures"] = (args.architecture,)
    job = os.path.join(args.out, "job")
    if args.regate and os.path.isfile(os.path.join(job, "workflow.json")):
        s = regated_workflow(stack_p, job)     # the finished run re-scored with the current skill gate
        wall = float(s["timings_s"]["total"])
    else:
        s = run_workflow(job, stack_path=stack_p, horizon=args.horizon, seed=args.seed, **kw)
        wall = time.time() - t0
    med = raster.read_raster(s["paths"]["forecast_median"])[0].reshape(args.horizon, -1)[:, :n]
    raw_p = os.path.join(args.out, "raw_median.tif")
    predict_ensemble(stack_p, s["paths"]["models"], raw_p, calibrate=False, gate=False)
    raw = raster.read_raster(raw_p)[0].reshape(args.horizon, -1)[:, :n]
    fut = Y[args.epochs:]
    fam = anchors.family_forecasts(Y[:args.epochs], dates[:args.epochs], dates[args.epochs:])
    ok = np.isfinite(med).all(0) & np.isfinite(fam).all(axis=(0, 1))
    comp = np.array([lab.split("-")[1] for lab in labels])

    def rmse(f, m):
        return float(np.sqrt(np.mean((f[:, m] - fut[:, m]) ** 2)))

    rows = {}
    for region, m in (("all", ok), ("horizontal (E, N)", ok & (comp != "U")), ("vertical (U)", ok & (comp == "U"))):
        r = {"main job": rmse(med, m), "ensemble (no gate)": rmse(raw, m), "n": int(m.sum())}
        for c, name in enumerate(anchors.FAMILY_NAMES):
            r[name] = rmse(fam[c], m)
        b = min(anchors.FAMILY_NAMES, key=lambda k: r[k])
        r["best classical"], r["ratio"] = b, r["main job"] / r[b]
        rows[region] = r
    res = {"series": n, "epochs": args.epochs, "horizon": args.horizon, "wall_s": wall, "rows": rows,
           "gate": {k: s["gate"][k] for k in ("reference", "verdict", "action", "ratio", "mean_weight")}}
    with open(os.path.join(args.out, "real_regated.json" if args.regate else "real.json"), "w", encoding="utf-8") as fh:
        json.dump(res, fh, indent=1)
    print(f"{n} series (8 IGS stations x E/N/U x segments), {args.epochs} epochs at 12 days, horizon {args.horizon}; "
          f"RMSE (mm) against the held-out observations")
    print("| region | series | main job | ensemble, no gate | best classical | its RMSE | ratio | persistence | "
          "mean_last_5 | trajectory |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for region, r in rows.items():
        b = r["best classical"]
        print(f"| {region} | {r['n']} | {r['main job']:.2f} | {r['ensemble (no gate)']:.2f} | {b} | {r[b]:.2f} | "
              f"{r['ratio']:.3f} | {r['persistence']:.2f} | {r['mean_last_5']:.2f} | {r['trajectory']:.2f} |")
    print(f"gate: {res['gate']}; main job {wall:.0f} s")


if __name__ == "__main__":
    main()
