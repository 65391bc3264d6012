"""The classical forecasts of finished ``bench_skill.py`` runs replayed over origins, alone and combined (session 28,
docs/skill.md): every member of the family and of the local track record's extra candidates (fitted with the run's
date weights, as ``predict`` fits them), the ``local`` forecast, and fixed combinations of ``local`` with the
trajectory ensembles, each scored over the 15 epochs after each of ``--origins`` against the truth and the expected
observation, as a ratio to the best ordinary family member there (chosen in hindsight). The networks play no part,
so no run's members are needed: 22 scenes in about a minute.

Usage::

    .venv/bin/python benchmarks/combination_replay.py --out build/comb.json build/bench_skill/seed_*
"""
import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import origin_replay as orp  # noqa: E402  (ensure_pkg on import)
from _common import fair_member  # noqa: E402

from deformcast.algorithms.data import anchors as anc  # noqa: E402

H = 15


def classical_at(sc: dict, o: int):
    """From origin index ``o`` of a scene (``origin_replay.scene``): the ordinary family (the reference of the
    ratios), the family and the local track record's extra candidates with the run's date weights, and the ``local``
    forecast, each over the next :data:`H` epochs."""
    y, flat, d, dd, tf, wtf = (sc[k] for k in ("y", "flat", "dates", "dd", "tf", "wtf"))
    hd, td = d[:o + 1], dd[o + 1:o + H + 1]
    fam = anc.family_forecasts(flat[:o + 1], hd, td, tf)
    famw = anc.family_forecasts(flat[:o + 1], hd, td, wtf, tuple(anc.FAMILY) + tuple(anc.LOCAL_EXTRA))
    local = anc.local_forecast(y[:o + 1], hd, td, H, wtf, family=famw[:len(anc.FAMILY)],
                               past_family=anc.FamilyCache(y[:o + 1], hd, H, wtf)).reshape(H, -1)
    return fam, famw, local


def run(folder: str, steps) -> dict:
    sc = orp.scene(folder, H)
    y, tr, ref = sc["y"], sc["tr"], sc["ref"]
    e = y.shape[0] - 1
    res = {"truth": {}, "expected": {}}
    for k in steps:
        o = e - k
        fam, famw, local = classical_at(sc, o)
        fc = dict(zip(anc.LOCAL_NAMES, famw))
        fc["local"] = local
        fc["(local + trajectory_ensemble) / 2"] = 0.5 * (local + fc["trajectory_ensemble"])
        fc["(local + trajectory_windows) / 2"] = 0.5 * (local + fc["trajectory_windows"])
        fc["(local + both) / 3"] = (local + fc["trajectory_ensemble"] + fc["trajectory_windows"]) / 3
        fc["median of the candidates"] = np.median(famw, axis=0)
        add_ratios(res, fc, fam, tr, ref, o)
    return res


def print_summary(got: dict, tn: str, title: str) -> None:
    """Per forecast, the mean over origins of each scene's ratios (``got[scene][tn][name]``), then the median /
    geometric mean / worst over the scenes."""
    print("\n" + title)
    for n in next(iter(got.values()))[tn]:
        v = np.array([np.mean(r[tn][n]) for r in got.values()])
        print(f"  {n:36s} {np.median(v):.3f} / {np.exp(np.mean(np.log(v))):.3f} / {v.max():.3f}")


def add_ratios(res: dict, fc: dict, fam, tr, ref, o: int, obs=None) -> None:
    """Append to ``res[measure][name]`` each forecast of ``fc``'s RMSE over the :data:`H` epochs after origin ``o``, as
    a ratio to the best ordinary family member ``fam`` there, against the truth ``tr`` and the expected observation
    (``tr + ref``), on the pixels where every forecast exists; and under ``fair`` against the truth as a ratio to the
    member that is best against the expected observation (session 39, docs/skill.md: the minimum against the truth
    also picks the member whose errors happen to cancel part of the reference epoch's noise ``ref``, luck no forecast
    can have; on the second generator, whose first dates are noisy, that luck is most of the local forecast's loss).
    ``obs`` (epochs, pixels; the stack, then its future acquisitions): also under ``observed``, against what the stack
    records after ``o``, as a ratio to the best family member there (session 41)."""
    ok = np.isfinite(fam).all((0, 1)) & np.isfinite(ref)
    for f in fc.values():
        ok &= np.isfinite(f).all(0)
    seen = None if obs is None else obs[o + 1:o + H + 1]      # what the stack records after o
    if seen is not None:
        ok &= np.isfinite(seen).all(0)

    def rmse(f, t):
        return float(np.sqrt(np.mean((f[:, ok] - t[:, ok]) ** 2)))

    truth, expected = tr[o + 1:o + H + 1], tr[o + 1:o + H + 1] + ref
    fair = fair_member(fam, truth, expected, rmse)[1]
    for tn, t, best in (("truth", truth, min(rmse(f, truth) for f in fam)),
                        ("expected", expected, min(rmse(f, expected) for f in fam)), ("fair", truth, fair)) + (
            () if seen is None else (("observed", seen, min(rmse(f, seen) for f in fam)),)):
        for n, f in fc.items():
            res.setdefault(tn, {}).setdefault(n, []).append(rmse(f, t) / best)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="seed folders of bench_skill.py runs (scene/ and job/ inside)")
    ap.add_argument("--origins", type=int, nargs="+", default=[15, 12, 9, 6, 3, 0])
    ap.add_argument("--out", default=None, help="a JSON file for every ratio")
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    got = {}
    for folder in a.runs:
        got[folder] = run(folder, a.origins)
        print(folder, "truth:", " | ".join(f"{n} {np.mean(v):.3f}" for n, v in got[folder]["truth"].items()),
              flush=True)
    for tn in ("truth", "expected", "fair"):
        print_summary(got, tn, f"mean over origins, then median / geometric mean / worst over the runs ({tn}):")
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            json.dump(got, fh, indent=1)


if __name__ == "__main__":
    main()
