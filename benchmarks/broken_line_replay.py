"""A broken-line forecast replayed over origins (session 31, docs/skill.md; measured, not taken).

A continuous broken line (offset, a velocity before and one after a break) plus an annual term, fitted by
ordinary least squares over the last 3 years of each pixel with the break at one of 15 dates 3-24 months before
the origin or none; the break chosen per pixel by BIC, or (``--bma``) the fits averaged with weights
``exp(-BIC / 2)``. The forecast extrapolates the velocity after the break: the regime since the last change, the
issue's "break in velocity" as a classical forecast. Scored like ``combination_replay.py``: over the 15 epochs
after each origin (15, 12, ..., 0 epochs before the last acquisition), against the truth, the expected
observation and the truth in the mining zones, as a ratio to the best ordinary family member there (chosen in
hindsight), beside the shipped ``local`` forecast and their half-and-half mean. ``--candidate`` adds ``local`` with
the broken line as one more candidate of its track record (the family from the origin and from each earlier
origin extended by it).

The broken line here is fitted by ordinary least squares. The version built into the family for the measurements
of docs/skill.md, "Session 31" (date weights, one QR per design; not taken) was measured with ``gate_replay.py``
and ``origin_replay.py`` and removed again.

Usage::

    .venv/bin/python benchmarks/broken_line_replay.py [--bma] [--candidate] build/broken.json <bench_skill seed folders>
"""
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import origin_replay as orp  # noqa: E402  (ensure_pkg on import)
from combination_replay import H, classical_at  # noqa: E402

from deformcast.algorithms.data import anchors as anc  # noqa: E402
from deformcast.algorithms.data.baselines import years_between  # noqa: E402

BMA = [False]
CANDIDATE = [False]

BREAKS = -np.arange(0.25, 2.01, 0.125)


def broken(y, d, td, years=3.0):
    """y (T, n) complete pixels -> forecast (H, n) and chosen break (n,) (0 = none)."""
    end = d.size - 1
    t = years_between(d, d[end])
    s = np.searchsorted(t, -years)
    t, yy = t[s:], y[s:]
    tp = years_between(td, d[end])
    n = yy.shape[0]
    w = 2 * np.pi

    def seas(x):
        return [np.sin(w * x), np.cos(w * x)]

    designs = [(np.stack([np.ones_like(t), t] + seas(t), 1), np.stack([np.ones_like(tp), tp] + seas(tp), 1), 4)]
    for tau in BREAKS:
        if (t > tau).sum() < 6 or (t <= tau).sum() < 6:
            continue
        A = np.stack([np.ones_like(t), np.minimum(t - tau, 0), np.maximum(t - tau, 0)] + seas(t), 1)
        P = np.stack([np.ones_like(tp), np.zeros_like(tp), tp - tau] + seas(tp), 1)
        designs.append((A, P, 6))
    bics, fcs = [], []
    for k, (A, P, p) in enumerate(designs):
        beta, *_ = np.linalg.lstsq(A, yy, rcond=None)
        rss = ((yy - A @ beta) ** 2).sum(0)
        bics.append(n * np.log(np.maximum(rss, 1e-12) / n) + p * np.log(n))
        fcs.append(P @ beta)
    bics = np.array(bics)
    if BMA[0]:
        w = np.exp(-0.5 * (bics - bics.min(0)))
        w /= w.sum(0)
        return np.einsum("kn,khn->hn", w, np.array(fcs)), (w[0] < 0.5).astype(int)
    kk = bics.argmin(0)
    return np.array(fcs)[kk, :, np.arange(yy.shape[1])].T, kk


def _broken_of(flat, d, o, td):
    """The broken line from origin ``o`` at the target dates ``td`` (H, n); NaN where the series has a gap."""
    full = np.isfinite(flat[:o + 1]).all(0)
    out = np.full((len(td), flat.shape[1]), np.nan)
    out[:, full] = broken(flat[:o + 1][:, full], d[:o + 1], td)[0]
    return out


def local_with_broken(sc, o, br):
    """``local`` with the broken line as one more candidate of its track record (``--candidate``): the family at the
    origin and from each earlier origin extended by the broken line from there."""
    y, flat, d, dd, wtf = (sc[k] for k in ("y", "flat", "dates", "dd", "wtf"))
    hd, td = d[:o + 1], dd[o + 1:o + H + 1]
    fam = anc.family_forecasts(flat[:o + 1], hd, td, wtf)

    def past(p):        # scored on the epochs up to the origin only (as local_forecast's own fits)
        tp = hd[p + 1:p + H + 1]
        f = anc.family_forecasts(flat[:p + 1], d[:p + 1], tp, wtf)
        return np.concatenate([f, _broken_of(flat, d, p, tp)[None]])

    return anc.local_forecast(y[:o + 1], hd, td, H, wtf, family=np.concatenate([fam, br[None]]),
                              past_family=past).reshape(H, -1)


def run(folder, steps):
    sc = orp.scene(folder, H)
    y, flat, d, tr, ref, dd = (sc[k] for k in ("y", "flat", "dates", "tr", "ref", "dd"))
    zones = None
    zp = os.path.join(folder, "scene", "zones.tif")
    if os.path.exists(zp):
        from deformcast.algorithms.io import raster
        zones = raster.read_raster(zp)[0][0].ravel()
    e = y.shape[0] - 1
    res = {"truth": {}, "expected": {}, "mining_truth": {}, "broke_share": []}
    for k in steps:
        o = e - k
        hd, td = d[:o + 1], dd[o + 1:o + H + 1]
        fam, _, local = classical_at(sc, o)
        full = np.isfinite(flat[:o + 1]).all(0)
        br = np.full((H, flat.shape[1]), np.nan)
        bk = np.zeros(flat.shape[1], int)
        br[:, full], bk[full] = broken(flat[:o + 1][:, full], hd, td)
        res["broke_share"].append(float((bk[full] > 0).mean()))
        fc = {"local": local, "broken": br, "(local + broken) / 2": 0.5 * (local + br),
              "trajectory_2y": fam[anc.FAMILY_NAMES.index("trajectory_2y")]}
        if CANDIDATE[0]:
            fc["local, broken line a candidate"] = local_with_broken(sc, o, br)
        ok = np.isfinite(fam).all((0, 1)) & np.isfinite(ref)
        for f in fc.values():
            ok &= np.isfinite(f).all(0)
        for tn, t, m in (("truth", tr[o + 1:o + H + 1], ok), ("expected", tr[o + 1:o + H + 1] + ref, ok),
                         ("mining_truth", tr[o + 1:o + H + 1], ok & (zones == 1) if zones is not None else ok & False)):
            if m.sum() < 10:
                continue
            best = min(np.sqrt(np.mean((f[:, m] - t[:, m]) ** 2)) for f in fam)
            for n, f in fc.items():
                res[tn].setdefault(n, []).append(float(np.sqrt(np.mean((f[:, m] - t[:, m]) ** 2)) / best))
    return res


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    args = sys.argv[1:]
    while args and args[0] in ("--bma", "--candidate"):
        (BMA if args[0] == "--bma" else CANDIDATE)[0] = True
        args = args[1:]
    out, runs = args[0], args[1:]
    got = {}
    for f in runs:
        got[f] = run(f, [15, 12, 9, 6, 3, 0])
        print(os.path.basename(f), "truth:", " | ".join(f"{n} {np.mean(v):.3f}" for n, v in got[f]["truth"].items()),
              f"| breaks {np.mean(got[f]['broke_share']):.2f}", flush=True)
    json.dump(got, open(out, "w"), indent=1)
    for gen, sel in (("ours", lambda f: "ind" not in f), ("second", lambda f: "ind" in f)):
        for tn in ("truth", "expected", "mining_truth"):
            print(f"\n{gen} {tn}: median / geo mean / worst over scenes")
            fs = [f for f in got if sel(f) and got[f][tn]]
            for n in next(iter(got.values()))["truth"]:
                v = np.array([np.mean(got[f][tn][n]) for f in fs])
                print(f"  {n:24s} {np.median(v):.3f} / {np.exp(np.mean(np.log(v))):.3f} / {v.max():.3f}  (n={len(fs)})")
