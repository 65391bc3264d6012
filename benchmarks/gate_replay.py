"""Replay of the skill gate's local blend on finished ``bench_skill.py`` runs: choices measured in minutes.

``bench_skill.py --regate`` re-runs the whole gate through the pipeline (rolling origins, calibration,
``predict``: about 4 minutes a seed on 2 cores). This script answers "what would the local blend
deliver with another track record" in seconds a seed, from one dump per seed (written once into
``--cache``): the ensemble median from the final origin ``e`` and from ``e - 30 .. e - 5`` (every 5
epochs), the classical family from ``e``, the noise-free future and the zones.

Each variant is ``anchors.local_forecast`` itself, the ensemble blended per pixel with the ``local``
classical forecast by their track records (inverse MSE^2, pooled over 9 x 9 pixels), over other origins:

* ``shipped``: the ensemble's record from ``anchors.local_origins`` (e - 20, e - 15, e - 10, e - 5 for the
  15-epoch horizon), the classical candidates' from ``anchors.candidate_origins`` (every 3 epochs from e - 20 to
  e - 2 since session 34; the four above before), the family and ``anchors.LOCAL_EXTRA`` (the velocity of the
  last half year, session 7); the variants with their own origins below score both records from those;
* ``session6``: the same without ``LOCAL_EXTRA``; ``power4``: inverse MSE^4 instead of MSE^2 (sharper);
  ``inverse_mse``: the ensemble's blend weight by inverse squared MSEs (sessions 4-8) instead of the
  least-squares weight of the combination (session 9);
* session 10's choices one at a time: ``box9``: a 9 x 9 neighbourhood (``anchors.LOCAL_BOX``, now 15);
  ``plain_box9``: the plain 9 x 9 box of sessions 4-9 instead of neighbours weighted by the likeness of
  their velocity (``anchors.LOCAL_GUIDED``); ``no_seasonal_linear``: without the candidate
  ``seasonal_linear_6m``; ``session9``: all of these and the per-pixel step test on 8 epochs a side
  (``step_detect.STEP_HALF_PIXEL``, now 24), i.e. session 9's local blend;
* ``session4``: origins e - 15 - 5 j (j = 0..3), a full lead each (in sample for the networks: see
  docs/skill.md); ``recent3``: e - 15, e - 10, e - 5; ``all6``: e - 30 .. e - 5;
* ``raw``: the ensemble median without any gate.

Steps are found in the stack as the pipeline's ``STEPS=auto`` does (``step_detect.detect_steps``). It
differs from the pipeline in two ways, both small: the ensemble's record is scored on every pixel
(``predict`` scores a lattice: 4 x 4 on a dense stack, 3 x 3 on scattered points, ``skill_gate.record_stride_for``;
the variants ``shipped_rows3`` and ``shipped_grid2`` .. ``shipped_grid6`` replay every third row and the lattices of
stride 2-6; session 30), and the class gate's shift is left
out (its rule keeps the ensemble unless a shift gains 1 %; it shifted 2 of 20 re-gated seeds). Seed 4:
replay 0.773, pipeline 0.772.

Usage::

    .venv/bin/python benchmarks/gate_replay.py --runs build/bench_skill build/bench_skill_confirm
    .venv/bin/python benchmarks/gate_replay.py --runs ... --variants shipped_grid3 shipped_grid4 --points 0.08

(``--variants``: only these; ``--points FRACTION``: each stack as scattered points, ``bench_skill.py --points``' mask,
the networks' medians those of the dense run.)

prints, per seed, the RMSE against the truth over the best classical forecast of the scene chosen in
hindsight, then per variant the median, worst seed, seeds above 1.0 and zones above 1.05, and the same
ratio against the later acquisitions (``future_observed.tif``). Judge a change on both: the truth holds no
reference-epoch noise and every acquisition does, so a change that drops part of that noise gains against
the truth and loses against the acquisitions (session 11's smoothing of the blend did: docs/skill.md).
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg, run_medians  # noqa: E402

ensure_pkg()

from deformcast.algorithms.data import anchors as anc, step_detect  # noqa: E402
from deformcast.algorithms.data.baselines import TimeFunction  # noqa: E402
from deformcast.algorithms.io import raster  # noqa: E402

ZONES = {0: "background", 1: "mining", 2: "fault", 3: "uplift", 4: "step area"}
PAST = (30, 25, 20, 15, 10, 5)
SESSION9_EXTRA = (("linear_6m", "linear", 0.5),)


def dump(folder: str, cache: str, seed: int) -> str:
    """The ensemble medians of a finished run from the final origin and from e - PAST (once)."""
    path = os.path.join(cache, f"seed_{seed}.npz")
    if os.path.isfile(path):
        return path
    origins, meds, info, H = run_medians(folder, PAST)
    T = info.n_epochs
    truth = raster.read_raster(os.path.join(folder, "scene", "truth.tif"))[0][T:T + H]
    zones = raster.read_raster(os.path.join(folder, "scene", "zones.tif"))[0][0]
    os.makedirs(cache, exist_ok=True)
    np.savez_compressed(path, origins=np.array(origins), meds=meds, truth=truth, zones=zones)
    return path


def replay(folder: str, cache: str, seed: int, variants=None, points=None) -> dict:
    z = np.load(dump(folder, cache, seed))
    info = raster.open_stack(os.path.join(folder, "scene", "stack.tif"))
    stack = raster.read_stack(info).astype(np.float64)
    if points:      # the stack as scattered points (bench_skill.py --points' mask), NaN elsewhere
        from bench_skill import points_mask

        stack[:, ~points_mask(stack.shape[1:], points, seed)] = np.nan
    T, R, W = stack.shape
    e, flat = T - 1, stack.reshape(T, -1)
    d = np.asarray(info.dates, dtype="datetime64[D]")
    truth, zones = z["truth"].astype(np.float64), z["zones"]
    H = truth.shape[0]
    td = np.array([d[-1] + (d[-1] - d[-2]) * (k + 1) for k in range(H)])
    meds = {int(o): m.reshape(H, -1).astype(np.float64) for o, m in zip(z["origins"], z["meds"])}
    found = step_detect.detect_steps(stack, d)           # as the pipeline's STEPS=auto
    tf = TimeFunction(step_dates=tuple(np.datetime64(f["date"], "D") for f in found)) if found else None
    famc = anc.FamilyCache(stack, d, H, tf)               # the family (and LOCAL_EXTRA) from earlier origins, once
    fam_now = anc.family_forecasts(flat, d, td, tf)
    now = meds[e]
    out = {"raw": now}
    rows, cols = np.meshgrid(np.arange(R), np.arange(W), indexing="ij")
    lattice = {"rows3": (rows % 3 == 0).ravel(),
               **{f"grid{k}": ((rows % k == 0) & (cols % k == 0)).ravel() for k in (2, 3, 4, 5, 6)}}

    def on(keep):
        return lambda o: None if o not in meds else np.where(keep[None], meds[o], np.nan)

    for name, origins, past, patch in (
            ("shipped", None, meds.get, {}), ("session6", None, meds.get, {"LOCAL_EXTRA": ()}),
            ("box9", None, meds.get, {"LOCAL_BOX": 9}),
            ("plain_box9", None, meds.get, {"LOCAL_GUIDED": False, "LOCAL_BOX": 9}),
            ("no_seasonal_linear", None, meds.get, {"LOCAL_EXTRA": SESSION9_EXTRA}),
            ("session9", None, meds.get, {"LOCAL_GUIDED": False, "LOCAL_BOX": 9, "LOCAL_EXTRA": SESSION9_EXTRA,
                                          "step_detect.STEP_HALF_PIXEL": 8}),
            ("power4", None, meds.get, {"LOCAL_POWER": 4.0}),
            ("no_season", None, meds.get, {"LOCAL_SEASON_ORIGINS": 0}),
            ("inverse_mse", None, meds.get, {"LOCAL_BLEND": "inverse_mse"}),
            ("session4", [e - 15 - 5 * j for j in range(4)], meds.get, {}),
            ("recent3", [e - 15, e - 10, e - 5], meds.get, {}), ("all6", [e - k for k in PAST], meds.get, {}),
            *((f"shipped_{k}", None, on(m), {}) for k, m in lattice.items())):
        if variants and name not in variants:
            continue
        mods = {k: (step_detect, k.split(".", 1)[1]) if k.startswith("step_detect.") else (anc, k) for k in patch}
        saved = {k: getattr(*mods[k]) for k in patch}
        try:
            for k, v in patch.items():
                setattr(*mods[k], v)
            own = any(k.startswith("step_detect.") for k in patch) and tf is not None   # its own family
            b, _ = anc.local_forecast(stack, d, td, H, tf, family=None if own else fam_now,
                                      past_family=None if own else famc, ensemble=(now, past), origins=origins)
        finally:
            for k, v in saved.items():
                setattr(*mods[k], v)
        out[name] = b.reshape(H, -1)
    valid = np.isfinite(now).all(0) & np.isfinite(fam_now).all((0, 1))
    tr = truth.reshape(H, -1)

    def ratios(target, m):
        """Each variant's RMSE against ``target`` on pixels ``m`` over the family's best member there."""
        best = min(float(np.sqrt(np.mean((fam_now[c][:, m] - target[:, m]) ** 2))) for c in range(fam_now.shape[0]))
        return {v: float(np.sqrt(np.mean((f[:, m] - target[:, m]) ** 2))) / best for v, f in out.items()}

    scores = {}
    for zn, m in [("all", valid)] + [(n, valid & (zones.ravel() == k)) for k, n in ZONES.items()]:
        if m.sum() < 20:
            continue
        scores[zn] = ratios(tr, m)
    # the same against the later acquisitions (what a user will compare the forecast with): a change that gains
    # against the truth only by dropping part of the reference epoch's noise loses here (docs/skill.md, session 11)
    fo_path = os.path.join(folder, "scene", "future_observed.tif")
    if os.path.isfile(fo_path):
        fo = raster.read_raster(fo_path)[0][:H].reshape(H, -1).astype(np.float64)
        scores["acquisitions"] = ratios(fo, valid & np.isfinite(fo).all(0))
    return scores


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", default=["build/bench_skill"], help="bench_skill.py output folders")
    ap.add_argument("--cache", default="build/gate_replay")
    ap.add_argument("--variants", nargs="+", default=None, help="replay only these variants (default: all)")
    ap.add_argument("--points", type=float, default=None, metavar="FRACTION",
                    help="the stacks as scattered points, NaN but at about FRACTION of the pixels (bench_skill.py "
                         "--points' clustered mask); the networks' medians stay those of the dense run")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    res = {}
    for run in args.runs:
        for folder in sorted(glob.glob(os.path.join(run, "seed_*")), key=lambda p: int(p.rsplit("_", 1)[1])):
            seed = int(folder.rsplit("_", 1)[1])
            if not os.path.isfile(os.path.join(folder, "job", "workflow.json")):
                continue
            res[seed] = replay(folder, args.cache, seed, args.variants, args.points)
            print(f"seed {seed}: " + " ".join(f"{v} {r:.3f}" for v, r in res[seed]["all"].items()), flush=True)
    variants = list(next(iter(res.values()))["all"])
    print("\n| variant | median | mean | worst seed | seeds above 1.0 | zones above 1.05 | against the later acquisitions: "
          "median / mean |\n|---|---:|---:|---:|---:|---:|---|")
    for v in variants:
        a = np.array([r["all"][v] for r in res.values()])
        zz = np.array([s[v] for r in res.values() for k, s in r.items() if k not in ("all", "acquisitions")])
        ob = np.array([r["acquisitions"][v] for r in res.values() if "acquisitions" in r])
        acq = f"{np.median(ob):.3f} / {ob.mean():.3f}" if ob.size else "-"
        print(f"| {v} | {np.median(a):.3f} | {a.mean():.3f} | {a.max():.3f} | {(a > 1).sum()} of {a.size} | "
              f"{(zz > 1.05).sum()} of {zz.size} | {acq} |")


if __name__ == "__main__":
    main()
