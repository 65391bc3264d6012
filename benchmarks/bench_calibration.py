"""Calibration of the ensemble spread: coverage, width, spread-error agreement, exceedance skill.

Reuses finished main-job runs (no tuning): the demo scene (synthetic seed 42, ``demo_output/``:
``./deformcast demo demo_output``) and varied-physics seeds of ``benchmarks/bench_skill.py``
(``build/bench_skill/seed_*/`` and ``build/bench_skill_confirm/seed_*/``, each with ``scene/`` and
``job/models``). For each scene and each method of :mod:`calibration` (dressing, conformal) the
model folder forecasts after the last acquisition (``predict`` with the skill gate, as the main job
delivers it), and the members are scored against what came later:

* coverage of the later observations (``future_observed.tif``) by the members' P10-P90 band, per
  lead step, and the band's mean width per step;
* Spearman rank correlation over pixels, at the last scored epoch, between the band width and
  |median - truth| (the forecast's own error; ``|median - observation|`` beside it);
* ratio of the mean band width in the zone (``zones.tif``: mining, fault, uplift, step area) with
  the largest mean |error| to the background's (zone 0);
* Brier skill score of the exceedance probabilities (that the deformation from the last acquisition reaches
  ``t`` mm in magnitude at the last scored epoch, from the members as ``uncertainty`` maps it: kernel-dressed,
  :mod:`exceedance`) against the observed exceedance, relative to the area-wide base rate, per threshold; with
  ``--origins`` also that of the share of members that reach it (``bss_share``: the map before session 33).

Usage::

    DEFORMCAST_THREADS=1 .venv/bin/python benchmarks/bench_calibration.py --seeds 0 1 2 --out build/bench_calibration

Writes ``calibration.json`` and ``calibration.md`` into ``--out``. ``--origins 16 --origin-spacing 1``
pools the coverage over 16 forecast origins (16 target dates per step; the forecasts share one
calibration) and reports the coverage of each target date; ``--seasonal`` calibrates with the
acquisition noise by season (``predict``'s ``SEASONAL_NOISE``). With ``--origins`` it also checks the
calibration conditionally on the spread (session 31): at each origin and lead step the pixels are split into
quintiles of their P10-P90 width, and per quintile the coverage of the observations (80 % in every quintile
where the band is right wherever the models disagree) and the RMSE of the median against the truth (rising from
quintile to quintile where the width flags error), pooled over origins and steps (``by_width`` in the JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()

from deformcast.algorithms.maps import calibration
from deformcast.algorithms.io import raster  # noqa: E402
from deformcast.algorithms.maps.backtest import brier  # noqa: E402
from deformcast.algorithms.maps.ensemble import predict_ensemble  # noqa: E402
from deformcast.algorithms.maps.exceedance import exceedance_probability  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZONES = {1: "mining", 2: "fault", 3: "uplift", 4: "step area"}
SEASONAL = [False]          # --seasonal: the calibration's acquisition noise by season


def scenes(seeds, demo: bool, runs=None, demo_folder=None):
    out = []
    if demo:
        d = demo_folder or os.path.join(ROOT, "demo_output")
        out.append(("demo (seed 42)", os.path.join(d, "scene"), os.path.join(d, "models")))
    bases = [os.path.join(ROOT, "build", b) for b in ("bench_skill", "bench_skill_confirm")] if not runs else list(runs)
    for s in seeds:
        for base in bases:
            f = os.path.join(base, f"seed_{s}")
            if os.path.isdir(os.path.join(f, "job", "models")):
                out.append((f"varied seed {s}", os.path.join(f, "scene"), os.path.join(f, "job", "models")))
                break
    return out


def by_dates(path, dates):
    a, _, names = raster.read_raster(path)
    idx = {str(raster.parse_date(n)): k for k, n in enumerate(names)}
    return np.stack([a[idx[d]] if d in idx else np.full(a.shape[1:], np.nan, np.float32) for d in dates])


def observed(scene_dir, dates):
    """Observations at ``dates``: from the stack where it holds them, else from the later observations."""
    a = by_dates(os.path.join(scene_dir, "stack.tif"), dates)
    b = by_dates(os.path.join(scene_dir, "future_observed.tif"), dates)
    return np.where(np.isfinite(a), a, b)


def reference_offset(scene_dir):
    """Each pixel's reference-epoch noise in every acquisition, ``-n(t0)``: the mean over the record of observed -
    truth (as ``bench_skill.py``); the truth plus it is the expected observation."""
    a, _, names = raster.read_raster(os.path.join(scene_dir, "stack.tif"))
    truth = by_dates(os.path.join(scene_dir, "truth.tif"), [str(raster.parse_date(n)) for n in names])
    with np.errstate(all="ignore"):
        return np.nanmean(a - truth, axis=0)


def forecast_from(scene_dir, models, out, method, end_date=None):
    """(members (M, H, rows, cols), forecast dates, observations, truth, the value at the origin, summary)."""
    stack = os.path.join(scene_dir, "stack.tif")
    tag = method if end_date is None else f"{method}_{end_date}"
    res = predict_ensemble(stack, models, os.path.join(out, f"{tag}_median.tif"), None,
                           os.path.join(out, f"{tag}_members.tif"), calibration=method, end_date=end_date,
                           seasonal_noise=SEASONAL[0])
    fd = res["forecast_dates"]
    M, H = len(res["members"]), len(fd)
    info = raster.open_stack(stack)
    mem = raster.read_raster(os.path.join(out, f"{tag}_members.tif"))[0].reshape((M, H) + info.grid.shape)
    e = info.n_epochs - 1 if end_date is None else int(np.flatnonzero(
        np.asarray(info.dates, dtype="datetime64[D]") <= np.datetime64(str(end_date), "D"))[-1])
    start = raster.read_stack(info, bands=[e])[0]
    return mem, fd, observed(scene_dir, fd), by_dates(os.path.join(scene_dir, "truth.tif"), fd), start, res


#: quantile bins of the band width for the conditional calibration (spread-skill) check
N_BINS = 5


def spread_bins(acc, p10, p90, med, obs, truth, ok):
    """Add to ``acc`` (4, N_BINS) one forecast's pixels binned, at each lead step, by the quintile of their P10-P90
    width among that step's pixels: observations inside the band, observations scored, squared error of the median
    against the truth, truth values scored. Where the band is calibrated conditionally on its width, every bin holds
    about 80 %; where the width flags error, the truth RMSE rises from bin to bin."""
    width = p90 - p10
    for h in range(width.shape[0]):
        m = ok[h] & np.isfinite(width[h])
        if m.sum() < 5 * N_BINS:
            continue
        edges = np.quantile(width[h][m], np.linspace(0, 1, N_BINS + 1)[1:-1])
        b = np.searchsorted(edges, width[h], side="right")
        inside = (obs[h] >= p10[h]) & (obs[h] <= p90[h])
        se = (med[h] - truth[h]) ** 2
        mt = m & np.isfinite(se)
        for j in range(N_BINS):
            sel = m & (b == j)
            acc[0, j] += inside[sel].sum()
            acc[1, j] += sel.sum()
            acc[2, j] += se[mt & (b == j)].sum()
            acc[3, j] += (mt & (b == j)).sum()


def score_origins(scene_dir, models, out, method, thresholds, n_origins, spacing, last_forecast=None):
    """Coverage per lead step and Brier skill pooled over ``n_origins`` forecast origins: the last
    acquisition and the ``n_origins - 1`` before it, ``spacing`` epochs apart (inside the models' test
    period, which neither the networks nor the calibration saw). One origin is one draw of each
    acquisition's atmosphere, common to every pixel; pooling origins measures the calibration itself.
    ``last_forecast``: :func:`forecast_from`'s result from the last acquisition, when already made."""
    info = raster.open_stack(os.path.join(scene_dir, "stack.tif"))
    d = np.asarray(info.dates, dtype="datetime64[D]")
    e = info.n_epochs - 1
    hit, n, per_origin, bs = None, None, [], {f"{t:g}": ([], []) for t in thresholds}
    share = {f"{t:g}": [] for t in thresholds}      # the share of members, the exceedance map before session 33
    by_date = {}                 # target date -> [inside, scored]: each date's atmosphere is one draw
    bins = np.zeros((4, N_BINS))  # per width quintile: inside, scored, squared error vs truth, scored vs truth
    for k in range(n_origins):
        if k == 0 and last_forecast is not None:
            mem, fd, obs, truth, start, _ = last_forecast
        else:
            mem, fd, obs, truth, start, _ = forecast_from(scene_dir, models, out, method,
                                                          None if k == 0 else str(d[e - k * spacing]))
        p10, p90 = np.percentile(mem, [10, 90], axis=0)
        ok = np.isfinite(np.median(mem, axis=0)) & np.isfinite(obs)
        spread_bins(bins, p10, p90, np.median(mem, axis=0), obs, truth, ok)
        h_in = ((obs >= p10) & (obs <= p90) & ok).sum(axis=(1, 2)).astype(float)
        h_n = ok.sum(axis=(1, 2)).astype(float)
        for h in np.flatnonzero(h_n > 0):
            dd = by_date.setdefault(str(fd[h]), [0.0, 0.0])
            dd[0] += h_in[h]
            dd[1] += h_n[h]
        hit = h_in if hit is None else hit + h_in
        n = h_n if n is None else n + h_n
        per_origin.append({"origin": str(d[e - k * spacing]), "coverage": (h_in / np.maximum(h_n, 1)).tolist()})
        last = int(np.flatnonzero(h_n > 0)[-1])
        okl = ok[last]
        d_last = mem[:, last][:, okl] - start[okl][None]
        for t, p in zip(thresholds, exceedance_probability(d_last, thresholds, "magnitude")):
            bs[f"{t:g}"][0].append(p)
            bs[f"{t:g}"][1].append((np.abs(obs[last] - start) >= t)[okl].astype(float))
            share[f"{t:g}"].append((np.abs(d_last) >= t).mean(axis=0))
    scored = n > 0
    brier_pooled = {t: brier(np.concatenate(p), np.concatenate(o)) for t, (p, o) in bs.items()}
    date_cov = {k: v[0] / v[1] for k, v in sorted(by_date.items())}
    return {"n_origins": n_origins, "spacing": spacing, "coverage": (hit[scored] / n[scored]).tolist(),
            "coverage_by_date": date_cov,
            "by_width": {"coverage": (bins[0] / np.maximum(bins[1], 1)).tolist(),
                         "rmse_truth_mm": np.sqrt(bins[2] / np.maximum(bins[3], 1)).tolist(),
                         "n": bins[1].tolist()},
            "per_origin": per_origin,
            "brier": {t: {"bss": b["bss"], "base_rate": b["base_rate"],
                          "bss_share": brier(np.concatenate(share[t]), np.concatenate(bs[t][1]))["bss"]}
                      for t, b in brier_pooled.items()}}


def score(scene_dir, method, thresholds, forecast):
    """The scores from the last acquisition (``forecast``: :func:`forecast_from`'s result)."""
    mem, fd, _, truth, start, res = forecast
    med = np.median(mem, axis=0)
    obs = by_dates(os.path.join(scene_dir, "future_observed.tif"), fd)
    steps = [h for h in range(len(fd)) if np.isfinite(obs[h]).any()]
    last = steps[-1]
    p10, p90 = np.percentile(mem, [10, 90], axis=0)
    width = p90 - p10
    valid = np.isfinite(med).all(axis=0)
    cov = [float(np.mean(((obs[h] >= p10[h]) & (obs[h] <= p90[h]))[valid & np.isfinite(obs[h])])) for h in steps]
    wid = [float(np.mean(width[h][valid])) for h in steps]
    e_truth = np.abs(med[last] - truth[last])
    e_obs = np.abs(med[last] - obs[last])
    rc_truth = calibration.rank_corr(width[last][valid], e_truth[valid])
    rc_obs = calibration.rank_corr(width[last][valid], e_obs[valid])
    # against the expected observation (the truth plus the reference epoch's noise, which every acquisition holds and
    # no spread can rank: most of a background pixel's error against the truth, docs/skill.md sessions 9 and 39)
    e_exp = np.abs(med[last] - (truth[last] + reference_offset(scene_dir)))
    ve = valid & np.isfinite(e_exp)
    rc_exp = calibration.rank_corr(width[last][ve], e_exp[ve])
    zones = raster.read_raster(os.path.join(scene_dir, "zones.tif"))[0][0]
    bg = valid & (zones == 0)
    zrows = {}
    for z, name in ZONES.items():
        m = valid & (zones == z)
        if m.sum() >= 20:
            zrows[name] = {"error_ratio": float(np.nanmean(e_truth[m]) / np.nanmean(e_truth[bg])),
                           "error_ratio_expected": float(np.nanmean(e_exp[m & ve]) / np.nanmean(e_exp[bg & ve])),
                           "spread_ratio": float(np.mean(width[last][m]) / np.mean(width[last][bg])), "n": int(m.sum())}
    worst = max(zrows, key=lambda k: zrows[k]["error_ratio"]) if zrows else None
    worst_e = max(zrows, key=lambda k: zrows[k]["error_ratio_expected"]) if zrows else None
    d_obs = np.abs(obs[last] - start)
    d_mem = mem[:, last] - start[None]
    ok = valid & np.isfinite(d_obs)
    bss = {}
    for t in thresholds:
        b = brier(exceedance_probability(d_mem[:, ok], [t], "magnitude")[0], (d_obs >= t)[ok].astype(float))
        bss[f"{t:g}"] = {"bss": b["bss"], "base_rate": b["base_rate"]}
    cal = res["calibration"]
    return {"method": method, "steps": [h + 1 for h in steps], "coverage": cov, "width_mm": wid,
            "rank_corr_truth": rc_truth, "rank_corr_obs": rc_obs, "rank_corr_expected": rc_exp, "zones": zrows,
            "worst_zone": worst, "zone_ratio": zrows[worst]["spread_ratio"] if worst else float("nan"),
            "worst_zone_expected": worst_e,
            "zone_ratio_expected": zrows[worst_e]["spread_ratio"] if worst_e else float("nan"), "brier": bss,
            "member_lag1": lag1(mem[:, :, valid]), "evidence": cal.get("evidence"),
            "rho": cal.get("rho"), "validation_cv": cal.get("cross_validated", {}).get(method)}


def lag1(mem):
    """Mean lag-1 autocorrelation along the lead of the members' deviations from the median."""
    d = mem - np.median(mem, axis=0, keepdims=True)                  # (M, H, n)
    a, b = d[:, :-1], d[:, 1:]
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(all="ignore"):
        r = (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return float(np.nanmean(r))


def markdown(results, thresholds) -> str:
    out = [f"{platform.node()} ({os.cpu_count()} CPUs), {time.strftime('%Y-%m-%d')}. Coverage: share of later "
           "observations inside the members' P10-P90 band (target 75-85 % at every step); width: mean P90-P10 (mm); "
           "rank corr.: Spearman over pixels between band width and |median - truth| (|median - observation| in "
           "brackets) at the last scored epoch; zone ratio: mean band width in the zone with the largest mean "
           "error / background's; BSS: Brier skill of the exceedance probabilities at the last scored epoch.", ""]
    out.append("| scene | method | coverage per step (min-max, %) | steps outside 75-85 % | width step 1 -> last (mm) "
               "| width monotone | rank corr. | zone (error ratio) | zone ratio | "
               + " | ".join(f"BSS {t:g} mm" for t in thresholds) + " | member lag-1 |")
    out.append("|---|---|---|---:|---|---|---:|---|---:|" + "---:|" * len(thresholds) + "---:|")
    for r in results:
        c = np.asarray(r["coverage"]) * 100
        w = np.asarray(r["width_mm"])
        mono = bool(np.all(np.diff(w) >= -1e-6))
        z = r["worst_zone"]
        zr = f"{z} ({r['zones'][z]['error_ratio']:.1f}x)" if z else "-"
        out.append(f"| {r['scene']} | {r['method']} | {c.min():.0f}-{c.max():.0f} | {int(((c < 75) | (c > 85)).sum())} "
                   f"of {c.size} | {w[0]:.1f} -> {w[-1]:.1f} | {'yes' if mono else 'no'} | {r['rank_corr_truth']:.2f} "
                   f"({r['rank_corr_obs']:.2f}) | {zr} | {r['zone_ratio']:.2f} | "
                   + " | ".join(f"{r['brier'][f'{t:g}']['bss']:.2f}" for t in thresholds)
                   + f" | {r['member_lag1']:.2f} |")
    withe = [r for r in results if "rank_corr_expected" in r]
    if withe:
        out += ["", "Against the expected observation (the truth plus the reference epoch's noise): rank correlation "
                "between the band width and |median - expected observation| at the last scored epoch, and the zone "
                "ratio for the zone with the largest mean error on that measure.", "",
                "| scene | method | rank corr. (expected obs.) | zone (error ratio, expected obs.) | zone ratio |",
                "|---|---|---:|---|---:|"]
        for r in withe:
            z = r["worst_zone_expected"]
            zr = f"{z} ({r['zones'][z]['error_ratio_expected']:.1f}x)" if z else "-"
            out.append(f"| {r['scene']} | {r['method']} | {r['rank_corr_expected']:.2f} | {zr} | "
                       f"{r['zone_ratio_expected']:.2f} |")
    pooled = [r for r in results if r.get("pooled")]
    if pooled:
        out += ["", f"Pooled over {pooled[0]['pooled']['n_origins']} forecast origins ({pooled[0]['pooled']['spacing']} epochs "
                "apart, the last acquisition and earlier ones inside the models' test period): coverage of the observations "
                "per lead step, Brier skill at each origin's last scored step.", "",
                "| scene | method | base | coverage per step (min-max, %) | steps outside 75-85 % | mean coverage (%) | "
                "coverage per target date (min-max, %) | "
                + " | ".join(f"BSS {t:g} mm (share of members)" for t in thresholds) + " |",
                "|---|---|---|---|---:|---:|---|" + "---:|" * len(thresholds)]
        for r in pooled:
            c = np.asarray(r["pooled"]["coverage"]) * 100
            dc = np.asarray(list(r["pooled"]["coverage_by_date"].values())) * 100
            out.append(f"| {r['scene']} | {r['method']} | {r.get('base', '-')} | {c.min():.0f}-{c.max():.0f} | "
                       f"{int(((c < 75) | (c > 85)).sum())} of {c.size} | {c.mean():.0f} | {dc.min():.0f}-{dc.max():.0f} | "
                       + " | ".join(f"{r['pooled']['brier'][f'{t:g}']['bss']:.3f} ({r['pooled']['brier'][f'{t:g}']['bss_share']:.3f})"
                                    for t in thresholds) + " |")
        bw = [r for r in pooled if "by_width" in r["pooled"]]
        if bw:
            out += ["", "Conditional calibration: the pixels of each lead step in quintiles of their P10-P90 width "
                    "(narrowest first), pooled over the origins and steps; coverage of the observations (%) and RMSE "
                    "of the median against the truth (mm) per quintile.", "",
                    "| scene | method | coverage by width quintile (%) | truth RMSE by width quintile (mm) |",
                    "|---|---|---|---|"]
            for r in bw:
                q = r["pooled"]["by_width"]
                out.append(f"| {r['scene']} | {r['method']} | "
                           + " / ".join(f"{100 * c:.0f}" for c in q["coverage"]) + " | "
                           + " / ".join(f"{v:.2f}" for v in q["rmse_truth_mm"]) + " |")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--no-demo", action="store_true")
    ap.add_argument("--methods", nargs="+", default=list(calibration.METHODS))
    ap.add_argument("--thresholds", type=float, nargs="+", default=[10.0, 20.0])
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench_calibration"))
    ap.add_argument("--runs", nargs="*", default=None,
                    help="bench_skill.py output folders holding seed_N/ (default: build/bench_skill, build/bench_skill_confirm)")
    ap.add_argument("--demo-folder", default=None, help="a main job's output folder on the demo scene (default: demo_output)")
    ap.add_argument("--origins", type=int, default=1,
                    help="also pool coverage and Brier skill over this many forecast origins (the last acquisition "
                         "and earlier ones inside the models' test period)")
    ap.add_argument("--origin-spacing", type=int, default=5, help="epochs between those origins")
    ap.add_argument("--seasonal", action="store_true", help="calibrate with the acquisition noise by season")
    args = ap.parse_args(argv)
    SEASONAL[0] = args.seasonal
    os.makedirs(args.out, exist_ok=True)
    results = []
    for name, sc, models in scenes(args.seeds, not args.no_demo, args.runs, args.demo_folder):
        out = os.path.join(args.out, name.split("(")[0].strip().replace(" ", "_"))
        os.makedirs(out, exist_ok=True)
        for method in args.methods:
            t0 = time.time()
            last = forecast_from(sc, models, out, method)        # the last acquisition's forecast, made once
            wall = time.time() - t0
            r = score(sc, method, args.thresholds, last)
            r["wall_s"] = wall
            r["scene"] = name
            r["method"] = method + (" + seasonal noise" if args.seasonal else "")
            r["base"] = (last[5].get("calibration") or {}).get("base")
            if args.origins > 1:
                r["pooled"] = score_origins(sc, models, out, method, args.thresholds, args.origins, args.origin_spacing,
                                            last_forecast=last)
                c = np.asarray(r["pooled"]["coverage"]) * 100
                print(f"{name} {method}: pooled over {args.origins} origins: coverage per step {c.min():.0f}-{c.max():.0f} % "
                      f"({int(((c < 75) | (c > 85)).sum())} of {c.size} outside 75-85 %), BSS "
                      + ", ".join(f"{v['bss']:.3f} (share of members {v['bss_share']:.3f})"
                                  for v in r["pooled"]["brier"].values()), flush=True)
            results.append(r)
            print(f"{name} {method}: coverage {min(r['coverage']):.2f}-{max(r['coverage']):.2f}, width "
                  f"{r['width_mm'][0]:.1f}->{r['width_mm'][-1]:.1f} mm, rank corr {r['rank_corr_truth']:.2f} "
                  f"(expected observation {r['rank_corr_expected']:.2f}), zone "
                  f"ratio {r['zone_ratio']:.2f}, BSS " + ", ".join(f"{v['bss']:.2f}" for v in r["brier"].values())
                  + f", lag-1 {r['member_lag1']:.2f}, {r['wall_s']:.0f} s", flush=True)
            with open(os.path.join(args.out, "calibration.json"), "w", encoding="utf-8") as fh:
                json.dump(results, fh, indent=1, default=str)
    md = markdown(results, args.thresholds)
    with open(os.path.join(args.out, "calibration.md"), "w", encoding="utf-8") as fh:
        fh.write(md)
    print(md)


if __name__ == "__main__":
    main()
