"""Forecast skill over varied physics: the main job against every classical forecast, per seed and zone.

For each seed, a varied-physics synthetic scene (``synthetic.write_scene(physics="varied")``: mining
bowls that start, stop, speed up or saturate inside the record, accelerating fault creep, steps,
changing seasonal amplitude, drawn noise levels) is written with ``HORIZON`` future epochs of
noise-free truth. The main job (``workflow.run_workflow``, its defaults, as a new user runs it on
a stack: no covariates) forecasts after the last acquisition; the forecast is scored against the
noise-free future, overall and per zone, beside every classical forecast of ``anchors.FAMILY``
fitted on the same stack, and the raw (ungated) ensemble. The rolling-origin verdict of the main
job (made before the future is seen) is compared with the true one.

Every observation of a stack referenced to its first epoch carries minus that epoch's noise,
``observed = truth + n(t) - n(t0)``: a per-pixel offset in every past and future acquisition, which no
forecast of the acquisitions can (or should) remove, and which the noise-free truth does not hold. So
each region is also scored against the **expected observation**, ``truth - n(t0)`` (``n(t0)``
estimated per pixel as minus the mean of ``observed - truth`` over the record; the mean of ``n(t)``
over 150 epochs is small beside it), and the **reference-noise floor** is reported: the RMSE against
the truth of a forecast exact up to that offset, over the best classical forecast's (docs/skill.md,
session 9). The best classical forecast chosen in hindsight against the truth is a minimum over ten members whose
errors all hold that offset: it also picks the member whose own errors happen to cancel part of it, luck that no
forecast can have where the offset is large (docs/skill.md, session 39). So the main job is also scored against
the truth relative to the member that is best against the expected observation (``ratio_fair``).

``--generator independent`` scores scenes of ``independent_scene.py`` instead, a second generator written
apart from ours (other laws, noise and referencing): does the skill carry over? ``--generator blind`` scores
``blind_scene.py``, a third written in session 44 by a helper that read neither generator nor the docs.

``--points FRACTION`` gives the main job the stack as persistent scatterers imported onto a grid are: NaN but at
about that share of the pixels, clustered (``stack_points.tif``; scored where it forecasts; docs/skill.md,
session 21). ``origin_replay.py`` replays such a run on its points.

Usage::

    .venv/bin/python benchmarks/bench_skill.py --seeds 0 1 2 3 4 --horizon 15 --out build/bench_skill

Writes ``skill.json`` and ``skill.md`` (the tables of docs/skill.md) into ``--out``.
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
from _common import ZONE_NAMES, common_mode, ensure_pkg, fair_member, regated_workflow, rmse  # noqa: E402

ensure_pkg()

from deformcast.algorithms.data import anchors, step_detect  # noqa: E402
from deformcast.algorithms.io import raster
from deformcast.algorithms.maps import backtest, gate_report  # noqa: E402
from deformcast.algorithms.maps.ensemble import predict_ensemble  # noqa: E402
from deformcast.algorithms.data.synthetic import write_scene  # noqa: E402
from deformcast.algorithms.workflow import run_workflow  # noqa: E402


def common_mode_filtered(src: str, dst: str) -> str:
    """Experiment (session 12): the stack less each date's common mode, the median over pixels of the
    residual of each pixel's fit (offset, velocity, acceleration, annual and semi-annual terms) at that date,
    as regional filtering does for GNSS networks. Written to ``dst``; the scores keep the scene's stack."""
    info = raster.open_stack(src)
    y = raster.read_stack(info).astype(np.float64)
    c = common_mode(y.reshape(y.shape[0], -1), info.dates)
    raster.write_stack(dst, (y - c[:, None, None]).astype(np.float32), info.dates, info.grid)
    return dst


def points_mask(shape, fraction: float, seed: int) -> np.ndarray:
    """The pixels :func:`points_only` keeps, (rows, cols) bool."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(10_000 + seed)
    f = gaussian_filter(rng.standard_normal(tuple(shape)), 6.0)
    urban = f > np.quantile(f, 0.7)
    u = rng.random(tuple(shape))
    return np.where(urban, u < min(1.0, fraction / 0.3 * 0.9), u < fraction * 0.1 / 0.7)


def points_only(src: str, dst: str, fraction: float, seed: int) -> str:
    """Experiment (session 21): the stack as persistent scatterers imported onto a grid are, NaN but at about
    ``fraction`` of the pixels: most of them in a few built-up patches (a smooth random field's top 30 %,
    where every pixel is kept with probability ``fraction / 0.3 x 0.9``), a few scattered elsewhere. Every
    kept pixel keeps its whole series; written to ``dst``, scored where the forecast exists."""
    info = raster.open_stack(src)
    y = raster.read_stack(info)
    y = np.where(points_mask(y.shape[1:], fraction, seed)[None], y, np.nan).astype(np.float32)
    raster.write_stack(dst, y, info.dates, info.grid)
    return dst


def run_seed(seed: int, args) -> dict:
    folder = os.path.join(args.out, f"seed_{seed}")
    if (args.regate or args.rescore) and os.path.isfile(os.path.join(folder, "scene", "scene.json")):
        sc = os.path.join(folder, "scene")
        files = {k: os.path.join(sc, f) for k, f in (("stack", "stack.tif"), ("truth", "truth.tif"),
                                                     ("zones", "zones.tif"), ("scene_json", "scene.json"))}
    elif args.generator in ("independent", "blind"):   # generators written apart from ours (issue 12)
        if args.generator == "independent":
            import independent_scene as gen
        else:
            import blind_scene as gen
        files = gen.write(os.path.join(folder, "scene"), seed, width=args.width, height=args.height,
                          n_epochs=args.epochs, n_future=args.horizon, step_days=args.step_days)
    else:
        files = write_scene(os.path.join(folder, "scene"), seed=seed, physics=args.physics, width=args.width,
                            height=args.height, n_epochs=args.epochs, n_future=args.horizon,
                            step_days=args.step_days, gap_fraction=args.gap_fraction)
    with open(files["scene_json"], encoding="utf-8") as fh:
        scene = json.load(fh)
    run_stack = files["stack"]   # what the main job reads; the scores always use the scene's own stack
    if args.common_mode:
        run_stack = common_mode_filtered(files["stack"], os.path.join(folder, "stack_common_mode.tif"))
    if args.points:
        run_stack = os.path.join(folder, "stack_points.tif")
        if not os.path.isfile(run_stack):
            points_only(files["stack"], run_stack, args.points, seed)
    t0 = time.time()
    kw = {} if args.n_trials is None else {"n_trials": args.n_trials}
    if args.validation:
        kw["validation"] = args.validation
    for name in ("max_samples", "max_epochs"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    if args.architecture:
        kw["architectures"] = (args.architecture,)
    if args.baseline:
        kw["baseline"] = args.baseline
    if args.search_space:
        kw["search_space"] = json.loads(args.search_space)
    job = os.path.join(folder, "job")
    if args.rescore:
        with open(os.path.join(job, "workflow.json"), encoding="utf-8") as fh:
            s = json.load(fh)
        wall = float(s["timings_s"]["total"])
    elif args.regate and os.path.isfile(os.path.join(job, "workflow.json")):
        s = regated_workflow(run_stack, job)    # a finished run re-scored with the current skill gate
        # the held-out test period with this gate (the delivered forecast's row follows the gate)
        back = backtest.run_backtest(run_stack, s["paths"]["models"], os.path.join(job, "backtest"))
        s["backtest"] = {k: back[k] for k in ("rows", "forecast_start")}
        wall = float(s["timings_s"]["total"])
    else:
        s = run_workflow(job, stack_path=run_stack, horizon=args.horizon, seed=seed, **kw)
        wall = time.time() - t0
    info = raster.open_stack(files["stack"])
    T = info.n_epochs
    truth_all = raster.read_raster(files["truth"])[0]
    truth = truth_all[T:T + args.horizon]
    med = raster.read_raster(s["paths"]["forecast_median"])[0]
    raw_p = os.path.join(folder, "raw_median.tif")
    if not (args.rescore and os.path.isfile(raw_p)):
        predict_ensemble(run_stack, s["paths"]["models"], raw_p, calibrate=False, gate=False)
    raw = raster.read_raster(raw_p)[0]
    stack = raster.read_stack(info)
    fam = anchors.family_forecasts(stack.reshape(T, -1), info.dates, [np.datetime64(d) for d in s["forecast"]["forecast_dates"]])
    fam = fam.reshape((fam.shape[0], args.horizon) + info.grid.shape)
    # the classical family with the steps detected in the stack (what STEPS=auto gives the fits): a
    # stronger classical reference, reported beside the plain one
    found = [x["date"] for x in step_detect.detect_steps(stack, info.dates)]
    fam_s = fam if not found else anchors.family_forecasts(
        stack.reshape(T, -1), info.dates, [np.datetime64(d) for d in s["forecast"]["forecast_dates"]],
        found).reshape(fam.shape)
    zones = raster.read_raster(files["zones"])[0][0]
    valid = np.isfinite(med).all(axis=0) & np.isfinite(fam).all(axis=(0, 1)) & np.isfinite(raw).all(axis=0)
    regions = {"all": valid}
    for z, n in ZONE_NAMES.items():
        m = valid & (zones == z)
        if m.sum() >= 20:
            regions[n] = m
    # the reference epoch's noise in every acquisition: -n(t0) ~ mean over the record of observed - truth
    with np.errstate(all="ignore"):
        ref = np.nanmean(stack - truth_all[:T], axis=0)
    expected = truth + ref[None]
    rows = {}
    for rname, m in regions.items():
        r = {"main job": rmse(med, truth, m), "ensemble (no gate)": rmse(raw, truth, m)}
        for c, n in enumerate(anchors.FAMILY_NAMES):
            r[n] = rmse(fam[c], truth, m)
        best = min(anchors.FAMILY_NAMES, key=lambda n: r[n])
        r["best classical"] = best
        r["ratio"] = r["main job"] / r[best]
        r["ratio_raw"] = r["ensemble (no gate)"] / r[best]
        r["n_pixels"] = int(m.sum())
        r["best classical, detected steps"] = min(rmse(fam_s[c], truth, m) for c in range(fam_s.shape[0]))
        r["ratio_vs_steps"] = r["main job"] / r["best classical, detected steps"]
        mm = m & np.isfinite(ref)
        best_e = min(rmse(fam[c], expected, mm) for c in range(fam.shape[0]))
        r["floor"] = rmse(expected, truth, mm) / r[best]
        r["ratio_expected"] = rmse(med, expected, mm) / best_e
        r["ratio_raw_expected"] = rmse(raw, expected, mm) / best_e
        # the hindsight choice without the offset's luck (session 39)
        fair, best_f = fair_member(fam, truth, expected, lambda f, t: rmse(f, t, mm))
        r["best classical, chosen on the expected"] = anchors.FAMILY_NAMES[fair]
        r["ratio_fair"] = rmse(med, truth, mm) / best_f
        r["ratio_raw_fair"] = rmse(raw, truth, mm) / best_f
        rows[rname] = r
    best_all = rows["all"]["best classical"]
    g = s["gate"]
    if "held_out" not in g and "backtest" in s:   # a re-gated run: its verdict with its backtest's test period
        g = gate_report.with_held_out(g, s["backtest"])
    g.setdefault("held_out", {"verdict": None})   # a run older than the held-out verdict, rescored
    return {"seed": seed, "physics": scene.get("params", {}).get("physics"), "wall_s": wall, "regions": rows,
            "steps_detected": found, "gate": {k: g[k] for k in ("reference", "verdict", "verdict_rolling", "action", "ratio", "mean_weight")}
            | {"held_out": g["held_out"]["verdict"], "held_out_delivered": g["held_out"].get("verdict_delivered")},
            "true_verdict_raw": "win" if rows["all"]["ensemble (no gate)"] < rows["all"][best_all] else "lose",
            "true_verdict_delivered": "win" if rows["all"]["main job"] < rows["all"][best_all] else "lose",
            "true_verdict_fair": "win" if rows["all"]["ratio_fair"] < 1.0 else "lose",
            "timings_s": s["timings_s"]}


def markdown(results, args) -> str:
    title = {"independent": "Independent generator", "blind": "Blind generator"}.get(args.generator, "Varied physics")
    out = [f"{title} ({args.physics}), {args.width} x {args.height} pixels, {args.epochs} epochs at {args.step_days} days, "
           f"horizon {args.horizon}; RMSE (mm) of the forecast after the last acquisition against the noise-free "
           f"future; {platform.node()} ({os.cpu_count()} CPUs), {time.strftime('%Y-%m-%d')}.", ""]
    out.append("| seed | region | pixels | main job | ensemble, no gate | best classical | its RMSE | ratio | "
               "trajectory (all) | trajectory_windows | mean_last_5 |")
    out.append("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        for rn, v in r["regions"].items():
            b = v["best classical"]
            out.append(f"| {r['seed']} | {rn} | {v['n_pixels']} | {v['main job']:.2f} | {v['ensemble (no gate)']:.2f} | "
                       f"{b} | {v[b]:.2f} | {v['ratio']:.3f} | {v['trajectory']:.2f} | {v['trajectory_windows']:.2f} | "
                       f"{v['mean_last_5']:.2f} |")
    out.append("")
    out.append("| seed | rolling verdict (raw ensemble) | held-out test period | verdict (both) | true verdict (raw) | "
               "delivered forecast, held-out | true verdict (delivered) | gate action | reference | main job wall (s) |")
    out.append("|---|---|---|---|---|---|---|---|---|---:|")
    for r in results:
        g = r["gate"]
        out.append(f"| {r['seed']} | {g.get('verdict_rolling', g['verdict'])} | {g.get('held_out', '-')} | {g['verdict']} | "
                   f"{r['true_verdict_raw']} | {g.get('held_out_delivered') or '-'} | {r['true_verdict_delivered']} | "
                   f"{g['action']} (w {g['mean_weight']:.2f}) | {g['reference']} | {r['wall_s']:.0f} |")
    out.append("")
    out.append("Against the classical family with the steps detected in the stack (`step_detect`), all pixels: "
               + ", ".join(f"seed {r['seed']} {r['regions']['all']['ratio_vs_steps']:.3f}"
                           + (f" (steps {', '.join(r['steps_detected'])})" if r.get("steps_detected") else "")
                           for r in results if "ratio_vs_steps" in r["regions"]["all"]) + ".")
    out.append("")
    out.append("Against the expected observation (the truth plus the reference epoch's noise) and the reference-noise "
               "floor (ratios to the best classical forecast of each region, chosen in hindsight):")
    out.append("")
    out.append("| seed | ratio (truth) | floor (truth) | ratio (expected observation) | raw ensemble (expected) | "
               "worst zone (expected) | ratio (truth, to the member best on the expected observation) |")
    out.append("|---|---:|---:|---:|---:|---|---:|")
    for r in results:
        a = r["regions"]["all"]
        if "ratio_expected" not in a:
            continue
        wz = max(((k, v["ratio_expected"]) for k, v in r["regions"].items() if k != "all"), key=lambda kv: kv[1],
                 default=("-", float("nan")))
        out.append(f"| {r['seed']} | {a['ratio']:.3f} | {a['floor']:.3f} | {a['ratio_expected']:.3f} | "
                   f"{a['ratio_raw_expected']:.3f} | {wz[0]} {wz[1]:.3f} | "
                   + (f"{a['ratio_fair']:.3f} ({a['best classical, chosen on the expected']}) |" if "ratio_fair" in a
                      else "- |"))
    ratios = [r["regions"]["all"]["ratio"] for r in results]
    zr = [v["ratio"] for r in results for k, v in r["regions"].items() if k != "all"]
    out.append("")
    fair = [r["regions"]["all"]["ratio_fair"] for r in results if "ratio_fair" in r["regions"]["all"]]
    out.append(f"Median ratio over seeds (all pixels): {np.median(ratios):.3f}; worst seed {max(ratios):.3f}; "
               + (f"to the member best on the expected observation {np.median(fair):.3f}, worst {max(fair):.3f}; "
                  if fair else "")
               + f"worst zone {max(zr):.3f}; verdicts agreeing: "
               f"{sum(r['gate']['verdict'] == r['true_verdict_raw'] for r in results)} of {len(results)} (the networks); "
               f"{sum(r['gate'].get('held_out_delivered') == r['true_verdict_delivered'] for r in results)} of "
               f"{len(results)} (the delivered forecast in the held-out test period)"
               + (f"; {sum(r['gate'].get('held_out_delivered') == r['true_verdict_fair'] for r in results if 'true_verdict_fair' in r)}"
                  f" of {sum('true_verdict_fair' in r for r in results)} against the member best on the expected "
                  "observation" if any("true_verdict_fair" in r for r in results) else "") + ".")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--physics", default="varied")
    ap.add_argument("--generator", default="deformcast", choices=("deformcast", "independent", "blind"),
                    help="independent: benchmarks/independent_scene.py, a generator written apart from ours; "
                         "blind: benchmarks/blind_scene.py, a third written without reading either (session 44)")
    ap.add_argument("--horizon", type=int, default=15)
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--height", type=int, default=80)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--step-days", type=int, default=12, help="days between acquisitions")
    ap.add_argument("--gap-fraction", type=float, default=0.0, help="share of single pixel-epochs missing")
    ap.add_argument("--n-trials", type=int, default=None, help="default: the main job's")
    ap.add_argument("--validation", default=None, choices=("time", "space"), help="default: the main job's")
    ap.add_argument("--max-samples", type=int, default=None, help="experiment: training windows per trial "
                    "(default: the main job's)")
    ap.add_argument("--architecture", default=None, help="experiment: the main job's architecture (default: its own)")
    ap.add_argument("--baseline", default=None, help="experiment: the anchor the networks correct (default: its own)")
    ap.add_argument("--search-space", default=None, help="experiment: JSON overrides of the search space "
                    "(default: the main job's)")
    ap.add_argument("--max-epochs", type=int, default=None, help="experiment: epochs per trial (default: the main job's)")
    ap.add_argument("--common-mode", action="store_true",
                    help="experiment: the main job reads the stack less each date's common mode (scores unchanged)")
    ap.add_argument("--points", type=float, default=None, metavar="FRACTION",
                    help="experiment: the main job reads the stack as imported scattered points, NaN but at about "
                         "FRACTION of the pixels (clustered; scored where the forecast exists)")
    ap.add_argument("--out", default="build/bench_skill")
    ap.add_argument("--regate", action="store_true",
                    help="re-score finished runs in --out with the current skill gate (no new training)")
    ap.add_argument("--rescore", action="store_true",
                    help="score finished runs in --out as they stand (their delivered forecast; no gate, no training)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results = []
    for seed in args.seeds:
        r = run_seed(seed, args)
        results.append(r)
        a = r["regions"]["all"]
        print(f"seed {seed}: main job {a['main job']:.3f} mm, raw {a['ensemble (no gate)']:.3f}, best classical "
              f"{a['best classical']} {a[a['best classical']]:.3f} (ratio {a['ratio']:.3f}); gate {r['gate']['action']}; "
              f"{r['wall_s']:.0f} s", flush=True)
        name = "skill_rescored" if args.rescore else "skill_regated" if args.regate else "skill"
        with open(os.path.join(args.out, name + ".json"), "w",
                  encoding="utf-8") as fh:
            json.dump(results, fh, indent=1, default=str)
    md = markdown(results, args)
    with open(os.path.join(args.out, name + ".md"), "w", encoding="utf-8") as fh:
        fh.write(md)
    print(md)


if __name__ == "__main__":
    main()
