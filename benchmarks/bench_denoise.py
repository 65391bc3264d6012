"""Denoising the history before the classical forecasts: measured on the skill gate's ``local`` forecast.

Session 12 found that on the second generator (``independent_scene.py``) the forecasts inherit each
date's noise, much of it common to the scene (the reference area's). Two ways to take noise out of the
history across pixels, instead of across time as smoothed persistence does, are measured here on the
``local`` classical forecast (``anchors.local_forecast``, the forecast the skill gate blends the networks
with), from the last acquisition, no networks:

* ``base``: the local forecast as shipped;
* ``common_mode``: each date's common mode (the median over pixels of the residual of each pixel's
  all-history trajectory fit) taken out of the history, the local forecast run on what is left, and a
  forecast of the common mode added back (the mean of its last ``k`` values, ``k`` chosen by its own
  errors over the last 60 origins): the common mode also holds what persists (offsets, a drifting
  reference), which the session-12 experiment lost;
* ``eof_<k>``: the family and the local track record's extra candidates (``anchors.LOCAL_EXTRA``) computed
  on each pixel's series projected on the scene's first ``k`` temporal EOFs (the leading singular vectors of
  the epochs x pixels matrix), added as candidates of the local track record. The patterns at each origin
  are fitted on the history up to that origin only, so the track record from earlier origins is honest.
  Pixels with a gap get no EOF candidate;
* ``eof_family_only_<k>``: the same with the family only projected (not the extra candidates).

The EOF candidates were wired through the whole chain in commit 6ce4285 (the gate, ``predict``, Dask) and
measured on eight main-job runs: they lost on all four of ours and gained on three of four of the second
generator, by 0-2 %; not taken (docs/skill.md, "Session 13").

Every score is the RMSE over the ``--horizon`` epochs after the record, over the best member of the
classical family (chosen in hindsight, on the raw history), against the truth, the expected observation
(the truth plus the reference epoch's noise, as ``bench_skill.py``) and the later acquisitions.

Usage::

    .venv/bin/python benchmarks/bench_denoise.py --generator independent --seeds 0 1 2 --out build/bench_denoise_ind
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
from _common import common_mode, ensure_pkg, rmse  # noqa: E402

ensure_pkg()

from deformcast.algorithms.data import anchors  # noqa: E402
from deformcast.algorithms.data.synthetic import write_scene  # noqa: E402
from deformcast.algorithms.io import raster  # noqa: E402

ZONES = {1: "mining", 2: "fault", 3: "uplift", 4: "step area"}


def level_forecast(c, h, ks=(1, 2, 3, 5, 8, 13, 21, 34, 55)):
    """The mean of the last ``k`` values of the series ``c``, ``k`` the one with the lowest mean squared
    error over the next ``h`` values from each of the last 60 origins: (h,), k."""
    T, best = len(c), None
    for k in ks:
        err = [np.mean((c[o + 1:o + 1 + h] - c[o - k + 1:o + 1].mean()) ** 2) for o in range(max(k, T - 60 - h), T - h)]
        if err and (best is None or np.mean(err) < best[0]):
            best = (float(np.mean(err)), k)
    return np.full(h, c[-best[1]:].mean()), best[1]


def eof_basis(flat: np.ndarray, rank: int, first: int = 19) -> dict:
    """``{o: U_o}``: the first ``rank`` temporal EOFs of the scene's complete series up to each origin ``o``
    (the leading eigenvectors of one corner of the Gram matrix of the epochs: no later epoch enters)."""
    s = flat[:, np.isfinite(flat).all(axis=0)]
    gram = s @ s.T
    out = {}
    for o in range(first, s.shape[0]):
        vecs = np.linalg.eigh(gram[:o + 1, :o + 1])[1]
        out[o] = vecs[:, ::-1][:, :min(rank, o + 1)]
    return out


class EofFamily:
    """``members`` from origin ``o`` on each series projected on the basis at ``o``. The classical forecasts are
    linear in the series on a complete record, so they are the forecasts of the ``k`` patterns combined with
    each pixel's coefficients (equal to fitting every projected series, to rounding). NaN at a pixel with a gap."""

    def __init__(self, flat, dates, lead, basis, members):
        self.flat, self.d, self.lead, self.basis, self.members = flat, dates, int(lead), basis, members
        self.memo = {}

    def __call__(self, o, target_dates=None):
        o = int(o)
        key = (o, None if target_dates is None else len(target_dates))
        if key not in self.memo:
            u = self.basis[o]
            td = self.d[o + 1:o + self.lead + 1] if target_dates is None else target_dates
            fu = anchors.family_forecasts(u, self.d[:o + 1], td, None, self.members)
            y = self.flat[:o + 1]
            ok = np.isfinite(y).all(axis=0)
            M, h, k = fu.shape
            out = (fu.reshape(M * h, k) @ (u.T @ np.where(ok, y, 0.0))).reshape(M, h, y.shape[1])
            out[:, :, ~ok] = np.nan
            self.memo[key] = out
        return self.memo[key]


def variants(y, d, tgt, H, ranks):
    T = y.shape[0]
    flat = y.reshape(T, -1)
    fam = anchors.family_forecasts(flat, d, tgt)
    out = {"base": anchors.local_forecast(y, d, tgt, H, family=fam)}
    # the common mode of each date, out of the history; its own level forecast added back
    c = common_mode(flat, d)
    c_hat, _ = level_forecast(c, H)
    out["common_mode"] = anchors.local_forecast(y - c[:, None, None], d, tgt, H) + c_hat[:, None, None]
    raw = anchors.FamilyCache(y, d, H)
    for k in ranks:
        basis = eof_basis(flat, k)
        for name, members in ((f"eof_{k}", anchors.FAMILY + anchors.LOCAL_EXTRA),
                              (f"eof_family_only_{k}", anchors.FAMILY)):
            ef = EofFamily(flat, d, H, basis, members)
            out[name] = anchors.local_forecast(y, d, tgt, H, family=np.concatenate([fam, ef(T - 1, tgt)]),
                                               past_family=lambda o, ef=ef: np.concatenate([raw(o), ef(o)]))
    return fam, out


def run_seed(seed, args):
    folder = os.path.join(args.out, f"seed_{seed}")
    kw = dict(width=args.width, height=args.height, n_epochs=args.epochs, n_future=args.horizon, step_days=12)
    if args.generator == "independent":
        import independent_scene
        files = independent_scene.write(folder, seed, **kw)
    else:
        files = write_scene(folder, seed=seed, physics="varied", **kw)
    info = raster.open_stack(files["stack"])
    T, H = info.n_epochs, args.horizon
    y = raster.read_stack(info).astype(np.float64)
    truth_all = raster.read_raster(files["truth"])[0]
    later = raster.read_raster(files["future_observed"])[0][:H]
    zones = raster.read_raster(files["zones"])[0][0]
    with np.errstate(all="ignore"):
        ref = np.nanmean(y - truth_all[:T], axis=0)   # the reference epoch's noise, as bench_skill.py
    targets = {"truth": truth_all[T:T + H], "expected": truth_all[T:T + H] + ref[None], "observed": later}
    d = np.asarray(info.dates, dtype="datetime64[D]")
    step = d[-1] - d[-2]
    tgt = [d[-1] + step * (i + 1) for i in range(H)]
    t0 = time.time()
    fam, out = variants(y, d, tgt, H, args.ranks)
    F = fam.reshape((fam.shape[0], H) + y.shape[1:])
    valid = np.isfinite(F).all(axis=(0, 1)) & np.isfinite(ref)
    for v in out.values():
        valid &= np.isfinite(v).all(axis=0)
    regions = {"all": valid}
    regions.update({n: valid & (zones == z) for z, n in ZONES.items() if (valid & (zones == z)).sum() >= 20})
    scores = {}
    for tn, tv in targets.items():
        for rn, m in regions.items():
            best = min(rmse(F[i], tv, m) for i in range(F.shape[0]))
            scores[f"{tn}/{rn}"] = {k: rmse(v, tv, m) / best for k, v in out.items()}
    return {"seed": seed, "generator": args.generator, "scores": scores, "wall_s": time.time() - t0}


def markdown(results, names):
    lines = []
    for tn in ("truth", "expected", "observed"):
        lines.append(f"\nAgainst the {tn}, all pixels (ratio to the best classical forecast in hindsight):\n")
        lines.append("| seed | " + " | ".join(names) + " |")
        lines.append("|---:|" + "---:|" * len(names))
        for r in results:
            s = r["scores"][f"{tn}/all"]
            lines.append(f"| {r['seed']} | " + " | ".join(f"{s[n]:.3f}" for n in names) + " |")
        med = [np.median([r["scores"][f"{tn}/all"][n] for r in results]) for n in names]
        lines.append("| median | " + " | ".join(f"{m:.3f}" for m in med) + " |")
        worse = [sum(r["scores"][f"{tn}/all"][n] > r["scores"][f"{tn}/all"]["base"] * 1.005 for r in results)
                 for n in names]
        lines.append("| seeds worse than base by > 0.5 % | " + " | ".join(str(w) for w in worse) + " |")
        zw = [max(v[n] for k, v in r["scores"].items() if k.startswith(tn + "/") and not k.endswith("/all"))
              for r in results for n in names]
        zw = np.array(zw).reshape(len(results), len(names))
        lines.append("| worst zone (max over seeds) | " + " | ".join(f"{x:.3f}" for x in zw.max(axis=0)) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--generator", default="deformcast", choices=("deformcast", "independent"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--ranks", type=int, nargs="+", default=[10, 20])
    ap.add_argument("--horizon", type=int, default=15)
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--height", type=int, default=80)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--out", default="build/bench_denoise")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results = []
    for seed in args.seeds:
        r = run_seed(seed, args)
        results.append(r)
        s = r["scores"]
        print(f"{args.generator} seed {seed}: " + " ".join(f"{k} {v:.3f}" for k, v in s["observed/all"].items())
              + f" (observed, all; {r['wall_s']:.0f} s)", flush=True)
        with open(os.path.join(args.out, "denoise.json"), "w", encoding="utf-8") as fh:
            json.dump({"machine": platform.platform(), "results": results}, fh, indent=1)
    names = list(results[0]["scores"]["truth/all"])
    md = markdown(results, names)
    with open(os.path.join(args.out, "denoise.md"), "w", encoding="utf-8") as fh:
        fh.write(md)
    print(md)


if __name__ == "__main__":
    main()
