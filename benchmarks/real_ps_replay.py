"""Many-origin replay of finished ``bench_real_ps.py`` runs on real Sentinel-1 points (session 42).

``bench_real_ps.py`` scores one forecast origin, the last acquisition before the held-out epochs: one draw of the
atmosphere of ten dates that every pixel shares. This replays, with the run's own members, from each origin of
``--back`` (epochs before that last acquisition; default 10, 8, 6, 4, 2, 0, all inside the networks' test period, so
their training never saw the scored epochs) and of ``--ahead`` (epochs after it, inside the held-out period: the
later acquisitions then join the history, as they would for a user who runs ``predict`` again):

* ``raw``: the ensemble median;
* ``blend``: the local blend (``anchors.local_forecast`` with the ensemble), the delivered forecast before the class
  gate (which kept the ensemble on both real tracks), its track record from the members' own earlier forecasts;
* ``local``: the local classical forecast alone;
* every member of the classical family and the means of the last 5-8 epochs.

Each is scored against the acquisitions over the horizon after its origin (the epochs the stack holds there), on
the pixels where every forecast and every acquisition exist; the ratio to the best classical forecast at that
origin (chosen in hindsight, the means of the last 5-8 epochs included), then the geometric mean over the origins.

Usage::

    .venv/bin/python benchmarks/real_ps_replay.py build/bench_real_ps/asc build/bench_real_ps/desc
"""
import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg, member_medians  # noqa: E402

ensure_pkg()

from deformcast.algorithms.data import anchors as anc, date_weights  # noqa: E402
from deformcast.algorithms.io import raster  # noqa: E402
from deformcast.algorithms.models import modelio  # noqa: E402

#: the means of the last k epochs scored beside the family (smoothed persistence, issue 12's "Real data")
MEANS = (5, 6, 7, 8)


def mean_last(flat: np.ndarray, k: int, m: int) -> np.ndarray:
    """The mean of the last ``k`` epochs of ``flat`` (epochs, pixels) held over ``m`` epochs, (m, pixels); NaN where a
    pixel has none (the empty cells of gridded points, without a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.repeat(np.nanmean(flat[-k:], axis=0)[None], m, axis=0)


def medians(run: str, origins, full_info, end: int) -> dict:
    """The ensemble median of the run's members from each origin (epoch index of the full stack), the members' date
    weights estimated on the epochs up to ``end`` as ``predict`` on a stack ending there does: {o: (H, R W)}."""
    meds, H = member_medians(os.path.join(run, "job"), full_info, origins, end)
    return {int(o): m.reshape(H, -1).astype(np.float64) for o, m in zip(origins, meds)}


def replay(run: str, back, ahead) -> dict:
    full = raster.open_stack(os.path.join(run, "stack_all.tif"))
    hist_info = raster.open_stack(os.path.join(run, "stack.tif"))
    y = raster.read_stack(full).astype(np.float64)
    T_all, R, W = y.shape
    flat = y.reshape(T_all, -1)
    d = np.asarray(full.dates, dtype="datetime64[D]")
    e0 = hist_info.n_epochs - 1                      # the last acquisition the main job read
    with open(os.path.join(run, "job", "workflow.json"), encoding="utf-8") as fh:
        models = json.load(fh)["paths"]["models"]
    cfg = modelio.read_meta(modelio.member_paths(models)[0]).get("data_config") or {}
    H = int(cfg.get("horizon", 10))
    test_start = int(cfg.get("test_start", e0 + 1))
    origins = sorted({e0 - int(k) for k in back} | {e0 + int(k) for k in ahead})
    origins = [o for o in origins if o >= test_start - 1 and o < T_all - 1]
    out = {"origins": [str(d[o]) for o in origins], "test_start": str(d[test_start]), "ratios": {}, "rmse": {}}
    # the stack a user forecasts from ends at the main job's last acquisition, or grew to the origin: one forecast of
    # the members per such end, from every origin that end serves and the earlier origins of their track records
    ends = {o: max(e0, o) for o in origins}
    by_end = {}
    for end in sorted(set(ends.values())):
        need = sorted({p for o in origins if ends[o] == end for p in [o] + anc.local_origins(o, H)})
        by_end[end] = medians(run, need, full, end)
    for o in origins:
        end = ends[o]
        wtf = date_weights.bound(cfg, full, end)["steps"] if cfg.get("date_weights") else None
        meds = by_end[end]
        m = min(H, T_all - 1 - o)
        hist = y[:o + 1]
        td = d[o + 1:o + m + 1]
        fam = anc.family_forecasts(flat[:o + 1], d[:o + 1], td)
        famw = fam if wtf is None else anc.family_forecasts(flat[:o + 1], d[:o + 1], td, wtf)
        famc = anc.FamilyCache(hist, d[:o + 1], H, wtf)

        def past(p, _m=meds):
            return _m.get(int(p))
        b, _ = anc.local_forecast(hist, d[:o + 1], td, H, wtf, family=famw, past_family=famc,
                                  ensemble=(meds[o][:m], past))
        loc = anc.local_forecast(hist, d[:o + 1], td, H, wtf, family=famw, past_family=famc)
        fc = {"raw": meds[o][:m], "blend": b.reshape(m, -1), "local": loc.reshape(m, -1)}
        cl = {n: fam[c] for c, n in enumerate(anc.FAMILY_NAMES)}
        for k in MEANS:
            cl[f"mean of the last {k}"] = mean_last(flat[:o + 1], k, m)
        obs = flat[o + 1:o + m + 1]
        ok = np.isfinite(obs).all(0)
        for f in list(fc.values()) + list(cl.values()):
            ok &= np.isfinite(f).all(0)

        def rmse(f):
            return float(np.sqrt(np.mean((f[:, ok] - obs[:, ok]) ** 2)))
        scores = {n: rmse(f) for n, f in cl.items()}
        best = min(scores, key=scores.get)
        for n, v in scores.items():
            out.setdefault("classical_rmse", {}).setdefault(n, []).append(v)
        for n, v in [(n, rmse(f)) for n, f in fc.items()] + [("best classical", scores[best])]:
            out["ratios"].setdefault(n, []).append(v / scores[best])
            out["rmse"].setdefault(n, []).append(v)
        out.setdefault("best", []).append(best)
        out.setdefault("pixels", []).append(int(ok.sum()))
        out.setdefault("scored_epochs", []).append(int(m))
    return out


def print_replay(run: str, r: dict) -> None:
    """The replay's table: per forecast the geometric mean over the origins and each origin's ratio and RMSE; then
    the classical forecast best over all origins (chosen in hindsight), kept in ``r``, and the ratios to it."""
    print(f"{run}: {len(r['origins'])} origins {r['origins'][0]} .. {r['origins'][-1]} (networks' test period from "
          f"{r['test_start']}); ratio to the best classical forecast at each origin, geometric mean over origins")
    for n, v in r["ratios"].items():
        print(f"  {n:16s} {gmean(v):.3f}   by origin: " + " ".join(f"{x:.3f}" for x in v)
              + "   RMSE (mm): " + " ".join(f"{x:.2f}" for x in r["rmse"][n]))
    print("  best classical by origin:", ", ".join(r["best"]))
    fixed = {n: gmean(np.divide(v, r["rmse"]["best classical"])) for n, v in r["classical_rmse"].items()}
    top = min(fixed, key=fixed.get)
    r["best fixed classical"] = top
    r["against best fixed"] = {n: gmean(np.divide(r["rmse"][n], r["classical_rmse"][top]))
                               for n in ("raw", "blend", "local")}
    print(f"  the classical forecast best over all origins: {top} ({fixed[top]:.3f} of the best at each origin); "
          "against it: " + ", ".join(f"{n} {v:.3f}" for n, v in r["against best fixed"].items()), flush=True)


def gmean(v) -> float:
    return float(np.exp(np.mean(np.log(np.asarray(v, dtype=np.float64)))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="track folders of bench_real_ps.py runs (stack_all.tif, stack.tif, job/)")
    ap.add_argument("--back", type=int, nargs="*", default=[10, 8, 6, 4, 2, 0])
    ap.add_argument("--ahead", type=int, nargs="*", default=[])
    ap.add_argument("--out", default=None, help="a JSON file for every ratio")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    res = {}
    for run in args.runs:
        res[run] = replay(run, args.back, args.ahead)
        print_replay(run, res[run])
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
