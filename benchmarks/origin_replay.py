"""Many-origin replay of finished ``bench_skill.py`` runs: the delivered forecast judged over origins, not one.

One forecast origin is one draw: on the second generator the networks' ratio to the best classical forecast
swings from 0.87 to 1.52 between neighbouring origins of one scene (docs/skill.md, "Session 14"). From each
of ``--origins`` (epochs before the last acquisition; default 15, 12, 9, 6, 3, 0, all after the networks'
training data), this replays, with the run's own members:

* ``raw``: the ensemble median;
* ``blend``: the local blend (``anchors.local_forecast`` with the ensemble, the delivered forecast without the
  class gate, which keeps the ensemble on most scenes), its track record from the cached earlier forecasts;
* ``local``: the local classical forecast alone;
* ``weighted_best``: the best member of the classical family fitted with each date's weight (the fits of models
  trained with date weights, ``date_weights.py``), chosen in hindsight at each origin.

For models trained with date weights, the local forecast and the blend use the weighted family, as ``predict``
does; the reference stays the best member of the ordinary family.

Each is scored over the ``--horizon`` epochs after its origin against the truth, the expected observation
(the truth plus the reference epoch's noise, as ``bench_skill.py``) and the observed values (the stack, then
``future_observed.tif``), as a ratio to the best classical family member at that origin (chosen in
hindsight), and under ``fair`` against the truth as a ratio to the member best against the expected observation
(session 39: the hindsight minimum against the truth also picks luck with the reference epoch's noise); the mean
over origins is printed per run. The members' forecasts from 35 earlier origins are computed once per run and
cached in ``--cache``.

Usage::

    .venv/bin/python benchmarks/origin_replay.py build/bench_skill/seed_3 build/other_run/seed_3
"""
import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg, fair_member, run_medians, stack_of  # noqa: E402

ensure_pkg()

from deformcast.algorithms.data import anchors as anc, date_weights, step_detect  # noqa: E402
from deformcast.algorithms.data.baselines import TimeFunction  # noqa: E402
from deformcast.algorithms.io import raster  # noqa: E402

PAST = tuple(range(35, 0, -1))


def dump(folder: str, tag: str, cache: str) -> str:
    """The ensemble medians of a finished run from the final origin and from each of ``PAST`` before it (once)."""
    path = os.path.join(cache, tag + ".npz")
    if os.path.isfile(path):
        return path
    origins, meds, _, _ = run_medians(folder, PAST)
    os.makedirs(cache, exist_ok=True)
    np.savez_compressed(path, origins=np.array(origins), meds=meds)
    return path

def scene(folder: str, H: int) -> dict:
    """A finished run's stack ``y`` (T, R, W) float64 and ``flat`` (T, R W), ``dates`` and those extended by ``H``
    epochs (``dd``), the truth ``tr`` (T + H, R W), the reference epoch's noise ``ref`` (R W,), the time function of
    the steps found in the stack ``tf`` and that of the run's models' fits ``wtf`` (with each date's weight where
    they were trained so, date_weights.py)."""
    info = raster.open_stack(stack_of(folder))       # a --points run: the points the main job read
    y = raster.read_stack(info).astype(np.float64)
    T, R, W = y.shape
    flat = y.reshape(T, -1)
    d = np.asarray(info.dates, dtype="datetime64[D]")
    tr = raster.read_raster(os.path.join(folder, "scene", "truth.tif"))[0].reshape(-1, R * W).astype(np.float64)
    found = step_detect.detect_steps(y, d)
    tf = TimeFunction(step_dates=tuple(np.datetime64(f["date"], "D") for f in found)) if found else None
    cfg = _model_config(folder)
    bsteps = date_weights.bound(cfg, info)["steps"] if cfg.get("date_weights") else None
    wtf = date_weights.time_function(tf, getattr(bsteps, "date_weights", None)) if bsteps is not None else tf
    return {"y": y, "flat": flat, "dates": d, "tr": tr, "ref": np.nanmean(flat - tr[:T], axis=0), "tf": tf, "wtf": wtf,
            "dd": np.concatenate([d, [d[-1] + (d[-1] - d[-2]) * (k + 1) for k in range(H)]])}


def run(folder: str, cache: str, steps) -> dict:
    """Ratios per measure and forecast, one per origin."""
    tag = os.path.abspath(folder).strip("/").replace("/", "_")
    z = np.load(dump(folder, tag, cache))
    H = z["meds"].shape[1]
    sc = scene(folder, H)
    y, flat, d, tr, ref, dd, tf, wtf = (sc[k] for k in ("y", "flat", "dates", "tr", "ref", "dd", "tf", "wtf"))
    T = y.shape[0]; e = T - 1
    fo = raster.read_raster(os.path.join(folder, "scene", "future_observed.tif"))[0][:H].reshape(H, -1)
    obs = np.concatenate([flat, fo])
    meds = {int(o): m.reshape(H, -1).astype(np.float64) for o, m in zip(z["origins"], z["meds"])}
    out = {tn: {"raw": [], "blend": [], "local": [], "weighted_best": []}
           for tn in ("truth", "expected", "observed", "fair")}
    for k in steps:
        o = e - k
        hist = y[:o + 1]; hd = d[:o + 1]; td = dd[o + 1:o + H + 1]
        fam = anc.family_forecasts(flat[:o + 1], hd, td, tf)      # the classical reference: ordinary fits
        famw = fam if wtf is tf else anc.family_forecasts(flat[:o + 1], hd, td, wtf)
        famc = anc.FamilyCache(hist, hd, H, wtf)   # the family (and LOCAL_EXTRA) from earlier origins, once
        b, _ = anc.local_forecast(hist, hd, td, H, wtf, family=famw, past_family=famc, ensemble=(meds[o], meds.get))
        cl = anc.local_forecast(hist, hd, td, H, wtf, family=famw, past_family=famc)
        fc = {"raw": meds[o], "blend": b.reshape(H, -1), "local": cl.reshape(H, -1)}
        tg = {"truth": tr[o + 1:o + H + 1], "expected": tr[o + 1:o + H + 1] + ref, "observed": obs[o + 1:o + H + 1]}
        ok = np.isfinite(fam).all((0, 1)) & np.isfinite(meds[o]).all(0) & np.isfinite(ref) & np.isfinite(tg["observed"]).all(0)
        for f in fc.values():
            ok &= np.isfinite(f).all(0)
        ok &= np.isfinite(famw).all((0, 1))

        def rmse(f, t):
            return float(np.sqrt(np.mean((f[:, ok] - t[:, ok]) ** 2)))

        # fair: against the truth, relative to the member best against the expected observation (session 39)
        fair = fair_member(fam, tg["truth"], tg["expected"], rmse)[1]
        for tn, t in list(tg.items()) + [("fair", tg["truth"])]:
            best = fair if tn == "fair" else min(rmse(f, t) for f in fam)
            for n, f in fc.items():
                out[tn][n].append(rmse(f, t) / best)
            out[tn]["weighted_best"].append(min(rmse(f, t) for f in famw) / best)
    return out


def _model_config(folder: str) -> dict:
    """The data config of the first member of a finished run."""
    from deformcast.algorithms.models import modelio

    with open(os.path.join(folder, "job", "workflow.json"), encoding="utf-8") as fh:
        models = json.load(fh)["paths"]["models"]
    return modelio.read_meta(modelio.member_paths(models)[0]).get("data_config") or {}

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="seed folders of bench_skill.py runs (scene/ and job/ inside)")
    ap.add_argument("--origins", type=int, nargs="+", default=[15, 12, 9, 6, 3, 0],
                    help="epochs before the last acquisition (at most 15 when the horizon is 15)")
    ap.add_argument("--cache", default="build/origin_replay")
    ap.add_argument("--out", default=None, help="a JSON file for every ratio")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    res = {}
    for folder in args.runs:
        r = run(folder, args.cache, args.origins)
        res[folder] = r
        print(folder, " | ".join(f"{tn}: " + " ".join(f"{n} {np.mean(v):.3f}" for n, v in r[tn].items()) for tn in r),
              flush=True)
        print("    blend by origin (truth):", " ".join(f"{v:.2f}" for v in r["truth"]["blend"]), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
