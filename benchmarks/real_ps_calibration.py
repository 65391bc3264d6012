"""The calibrated band on real Sentinel-1 points from many origins (issue 15, session 43).

``bench_real_ps.py`` scores the members' P10-P90 band from one origin, the last acquisition before the held-out
epochs: one draw of the atmosphere of ten dates that every point shares (session 42: 96 % coverage at step 1 and
52-65 % at steps 7-10 on the ascending track, 89-97 % at every step on the descending one). This runs ``predict``
(the skill gate and the calibration as the main job delivers them) with a finished run's models from each origin of
``--back`` (epochs before that last acquisition, inside the networks' test period) and ``--ahead`` (inside the
held-out period, the later acquisitions joining the history, as for a user who runs ``predict`` again) on the track's
whole stack, and pools over the origins, against the acquisitions of the horizon after each:

* the coverage of the acquisitions by the members' P10-P90 band per lead step (target 75-85 % at every step), the
  band's mean width per step, and the coverage of each target date (one date's atmosphere is one draw);
* the coverage and the RMSE of the median by quintile of the band's width (at each origin and step): a band right
  wherever the models disagree holds 80 % in every quintile, and a width that flags error has a rising RMSE;
* the Spearman rank correlation between the width and |median - acquisition| at the last scored step of each origin;
* the Brier skill of the exceedance probabilities (``uncertainty``'s kernel-dressed map) that the deformation from the
  origin reaches ``t`` mm in magnitude at the last scored step, against the base rate (pooled over the origins).

There is no truth on real points: every figure is against the acquisitions, each with its own noise.

Usage::

    DEFORMCAST_THREADS=1 .venv/bin/python benchmarks/real_ps_calibration.py build/bench_real_ps/asc \\
        --back 12 10 8 6 4 2 0 --ahead 3 6 --out build/real_ps_calibration_asc.json
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()

from bench_calibration import N_BINS, lag1, spread_bins  # noqa: E402
from deformcast.algorithms.io import raster  # noqa: E402
from deformcast.algorithms.maps import calibration  # noqa: E402
from deformcast.algorithms.maps.backtest import brier  # noqa: E402
from deformcast.algorithms.maps.ensemble import predict_ensemble  # noqa: E402
from deformcast.algorithms.maps.exceedance import exceedance_probability  # noqa: E402


#: the exceedance thresholds (mm): a 10-epoch move of 5 mm is rare on the Doñana tracks, 10 mm never happened
THRESHOLDS = (3.0, 5.0, 10.0)


def score_run(run: str, back, ahead, thresholds=THRESHOLDS) -> dict:
    """Pool the band's scores over the origins of one ``bench_real_ps.py`` track folder (see the module doc)."""
    tmp = tempfile.mkdtemp(prefix="real_ps_calibration_")
    try:
        return _score_run(run, back, ahead, thresholds, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _score_run(run: str, back, ahead, thresholds, tmp: str) -> dict:
    stack = os.path.join(run, "stack_all.tif")
    full = raster.open_stack(stack)
    y = raster.read_stack(full).astype(np.float64)
    d = np.asarray(full.dates, dtype="datetime64[D]")
    idx = {str(v): k for k, v in enumerate(d)}        # the stack's epoch of each date
    e0 = raster.open_stack(os.path.join(run, "stack.tif")).n_epochs - 1
    with open(os.path.join(run, "job", "workflow.json"), encoding="utf-8") as fh:
        models = json.load(fh)["paths"]["models"]
    origins = sorted({e0 - int(k) for k in back} | {e0 + int(k) for k in ahead})
    origins = [o for o in origins if 0 < o < full.n_epochs - 1]
    hit = n = wsum = None
    by_date, per_origin, rank_corr = {}, [], []
    bins = np.zeros((4, N_BINS))
    probs = {f"{t:g}": ([], []) for t in thresholds}
    lags = []
    for o in origins:
        t0 = time.time()
        res = predict_ensemble(stack, models, os.path.join(tmp, "median.tif"), None, os.path.join(tmp, "members.tif"),
                               end_date=str(d[o]))
        fd = np.asarray(res["forecast_dates"], dtype="datetime64[D]")
        M, H = len(res["members"]), len(fd)
        mem = raster.read_raster(os.path.join(tmp, "members.tif"))[0].reshape((M, H) + full.grid.shape)
        mem = mem.reshape(M, H, -1).astype(np.float64)
        obs = np.stack([y[idx[str(t)]].reshape(-1) if str(t) in idx else np.full(mem.shape[2], np.nan) for t in fd])
        start = y[o].reshape(-1)
        med = np.median(mem, axis=0)
        p10, p90 = np.percentile(mem, [10, 90], axis=0)
        ok = np.isfinite(med) & np.isfinite(obs) & np.isfinite(start)[None]
        spread_bins(bins, p10, p90, med, obs, obs, ok)
        h_in = ((obs >= p10) & (obs <= p90) & ok).sum(axis=1).astype(float)
        h_n = ok.sum(axis=1).astype(float)
        h_w = np.where(ok, p90 - p10, 0.0).sum(axis=1)
        hit = h_in if hit is None else hit + h_in
        n = h_n if n is None else n + h_n
        wsum = h_w if wsum is None else wsum + h_w
        for h in np.flatnonzero(h_n > 0):
            dd = by_date.setdefault(str(fd[h]), [0.0, 0.0])
            dd[0] += h_in[h]
            dd[1] += h_n[h]
        last = int(np.flatnonzero(h_n > 0)[-1])
        okl = ok[last]
        rank_corr.append(calibration.rank_corr((p90 - p10)[last][okl], np.abs(med[last] - obs[last])[okl]))
        d_last = mem[:, last][:, okl] - start[okl][None]
        for t, p in zip(thresholds, exceedance_probability(d_last, thresholds, "magnitude")):
            probs[f"{t:g}"][0].append(p)
            probs[f"{t:g}"][1].append((np.abs(obs[last] - start) >= t)[okl].astype(float))
        lags.append(lag1(mem[:, :last + 1][:, :, ok[:last + 1].all(axis=0)]))
        per_origin.append({"origin": str(d[o]), "steps": int(last + 1),
                           "coverage": (h_in / np.maximum(h_n, 1)).tolist(), "rank_corr_last": rank_corr[-1],
                           "seconds": round(time.time() - t0, 1)})
        print(f"{run} origin {d[o]} ({time.time() - t0:.0f} s): coverage per step "
              + " ".join(f"{100 * c:.0f}" for c in per_origin[-1]["coverage"][:last + 1])
              + f" %; rank corr. at step {last + 1}: {rank_corr[-1]:.2f}", flush=True)
    scored = n > 0
    out = {"origins": [str(d[o]) for o in origins], "coverage": (hit[scored] / n[scored]).tolist(),
           "n_per_step": n[scored].astype(int).tolist(), "width_mm": (wsum[scored] / n[scored]).tolist(),
           "coverage_by_date": {k: v[0] / v[1] for k, v in sorted(by_date.items())},
           "by_width": {"coverage": (bins[0] / np.maximum(bins[1], 1)).tolist(),
                        "rmse_obs_mm": np.sqrt(bins[2] / np.maximum(bins[3], 1)).tolist()},
           "rank_corr_last": rank_corr, "member_lag1": float(np.nanmean(lags)), "per_origin": per_origin,
           "brier": {}}
    for t, (p, o) in probs.items():
        p = np.concatenate(p)
        b = brier(p, np.concatenate(o))
        out["brier"][t] = {"bss": b["bss"], "base_rate": b["base_rate"], "mean_probability": float(p.mean())}
    return out


def summary(run: str, r: dict) -> str:
    cov = np.asarray(r["coverage"]) * 100
    outside = int(((cov < 75) | (cov > 85)).sum())
    dates = np.asarray(list(r["coverage_by_date"].values())) * 100
    return "\n".join([
        f"{run}: {len(r['origins'])} origins {r['origins'][0]} .. {r['origins'][-1]}",
        "  coverage per step (%): " + " ".join(f"{c:.0f}" for c in cov) + f"   ({outside} of {cov.size} outside 75-85;"
        f" mean {cov.mean():.0f}; values per step " + " ".join(str(v) for v in r["n_per_step"]) + ")",
        "  width per step (mm): " + " ".join(f"{w:.1f}" for w in r["width_mm"]),
        f"  coverage per target date: {dates.min():.0f}-{dates.max():.0f} % over {dates.size} dates",
        "  by width quintile, narrowest first: coverage " + " / ".join(f"{100 * c:.0f}" for c in r["by_width"]["coverage"])
        + " %; RMSE against the acquisitions " + " / ".join(f"{v:.2f}" for v in r["by_width"]["rmse_obs_mm"]) + " mm",
        "  rank corr. at the last step by origin: " + " ".join(f"{v:.2f}" for v in r["rank_corr_last"])
        + f" (median {np.median(r['rank_corr_last']):.2f}); member lag-1 {r['member_lag1']:.2f}",
        "  Brier skill: " + ", ".join(f"{t} mm {b['bss']:.3f} (base rate {100 * b['base_rate']:.1f} %, mean probability "
                                      f"{100 * b['mean_probability']:.1f} %)"
                                      for t, b in r["brier"].items())])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="track folders of bench_real_ps.py runs (stack_all.tif, stack.tif, job/)")
    ap.add_argument("--back", type=int, nargs="*", default=[12, 10, 8, 6, 4, 2, 0])
    ap.add_argument("--ahead", type=int, nargs="*", default=[3, 6])
    ap.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    ap.add_argument("--out", default=None, help="a JSON file for every figure")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    res = {}
    for run in args.runs:
        res[run] = score_run(run, args.back, args.ahead, args.thresholds)
        print(summary(run, res[run]), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
