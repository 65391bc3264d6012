"""How much of a loss against the truth is the hindsight choice's luck with the reference epoch's noise (session 39)?

Every observation of a stack referenced to its first epoch holds minus that epoch's noise, a per-pixel offset that
the noise-free truth does not hold (docs/skill.md, session 9). Scored against the truth, every classical forecast
carries it: a member's squared error is the offset's, plus its own, plus twice their product over the pixels. The
best classical forecast "chosen in hindsight" is the minimum over ten members, and so it also picks the member whose
own errors happen to cancel part of the offset. No forecast can aim at that: the offset is in every acquisition the
forecast is built from and compared with later. Where the offset is large beside the members' own errors (the second
generator's first dates are noisy), a combination of members, whose errors average the members', loses to that
minimum by luck alone.

The test: each scene's local forecast and family, from each origin, scored against

* ``truth``: the noise-free truth (the issue's measure);
* ``expected``: the expected observation, the truth plus the offset (``ref``, minus the mean of observed - truth);
* ``foreign``, ``foreign 2``: the expected observation less the offset of the next (or the one after) scene of the
  same generator: an offset of the same size that nothing in this scene knows. A forecast's ratio to the hindsight
  minimum against it is luck and forecast quality together, without any reason for a member to cancel it;

each as the ratio to the family member best against that target (the mean over origins, then the geometric mean and
median over scenes), and ``fair``: against the truth, relative to the member best against the expected observation
(the hindsight choice without the offset's luck; ``combination_replay.add_ratios`` and ``bench_skill.py`` report it
since session 39). Classical forecasts only (the local forecast as ``anchors`` holds it).

Usage (the scenes of ``season_record_replay.py --make ours:200-223 ind:100-123 --root build/srr``)::

    .venv/bin/python benchmarks/offset_luck.py --out build/offset_luck_ind.json build/srr/ind/seed_*
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import season_record_replay as srr  # noqa: E402  (ensure_pkg on import)
from deformcast.algorithms.data import anchors as anc  # noqa: E402

TARGETS = ("truth", "expected", "foreign", "foreign 2")


def scene_scores(folder: str, foreign, steps) -> list:
    """Per origin: the RMSE of every family member and of the local forecast against each of :data:`TARGETS`."""
    y, flat, d, tr, ref, tf, dd, e = srr.scene_arrays(folder)
    rows = []
    for k in steps:
        o = e - k
        hd, td = d[:o + 1], dd[o + 1:o + srr.H + 1]
        fam = anc.family_forecasts(flat[:o + 1], hd, td, tf)
        loc = srr.local(y, o, hd, td, tf, fam)
        ok = (np.isfinite(fam).all((0, 1)) & np.isfinite(ref) & np.isfinite(loc).all(0)
              & np.isfinite(foreign[0]) & np.isfinite(foreign[1]))
        expected = tr[o + 1:o + srr.H + 1] + ref
        row = {}
        for name, t in zip(TARGETS, (expected - ref, expected, expected - foreign[0], expected - foreign[1])):
            def rmse(f):
                return float(np.sqrt(np.mean((f[:, ok] - t[:, ok]) ** 2)))
            row[name] = {"members": [rmse(f) for f in fam], "local": rmse(loc)}
        rows.append(row)
    return rows


def reference(x: dict, name: str) -> float:
    """The RMSE a forecast's is divided by at one origin ``x``: the best member against the target ``name``, or for
    ``fair`` the truth's RMSE of the member best against the expected observation."""
    if name == "fair":
        return x["truth"]["members"][int(np.argmin(x["expected"]["members"]))]
    return min(x[name]["members"])


def summary(res: dict) -> dict:
    """Per target: the local forecast's ratio (geometric mean, median and scenes above 1 over the scenes of the mean
    over origins), the best fixed member's and the members' mean RMSE."""
    out = {}
    for name in TARGETS + ("fair",):
        scored = "truth" if name == "fair" else name
        loc = np.array([np.mean([x[scored]["local"] / reference(x, name) for x in rows]) for rows in res.values()])
        fixed = np.array([np.mean([np.array(x[scored]["members"]) / reference(x, name) for x in rows], axis=0)
                          for rows in res.values()])                  # (scenes, members)
        fixed = np.exp(np.mean(np.log(fixed), axis=0))
        out[name] = {"local_gm": float(np.exp(np.mean(np.log(loc)))), "local_median": float(np.median(loc)),
                     "above_1": int(np.sum(loc > 1)), "scenes": int(loc.size),
                     "best_fixed_member": anc.FAMILY_NAMES[int(np.argmin(fixed))], "best_fixed_gm": float(fixed.min()),
                     "mean_member_rmse": float(np.mean([x[scored]["members"] for rows in res.values() for x in rows]))}
    return out


def members_table(res: dict) -> dict:
    """Each family member's and the local forecast's ratio to the hindsight best (geometric mean over scenes of the
    mean over origins) and at how many origins the member was that best, against the truth and the expected
    observation."""
    out = {}
    for i, n in enumerate(anc.FAMILY_NAMES + ("local",)):
        out[n] = {}
        for t in ("truth", "expected"):
            r = [[(x[t]["members"][i] if n != "local" else x[t]["local"]) / min(x[t]["members"]) for x in rows]
                 for rows in res.values()]
            out[n][t] = {"gm": float(np.exp(np.mean(np.log(np.mean(r, axis=1))))),
                         "best_at": int(sum(np.isclose(v, 1.0).sum() for v in r)) if n != "local" else 0}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scenes", nargs="+", help="folders holding scene/stack.tif and scene/truth.tif (one generator, "
                                              "at least three scenes of the same size)")
    ap.add_argument("--origins", type=int, nargs="+", default=[15, 12, 9, 6, 3, 0])
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    scenes = sorted(a.scenes)
    refs = [srr.scene_arrays(f)[4] for f in scenes]
    res = {}
    for i, f in enumerate(scenes):
        res[f] = scene_scores(f, (refs[(i + 1) % len(scenes)], refs[(i + 2) % len(scenes)]), a.origins)
        print(f, " | ".join(f"{n} {np.mean([x[n]['local'] / min(x[n]['members']) for x in res[f]]):.3f}"
                            for n in TARGETS), flush=True)
    s = summary(res)
    print("\ntarget | local forecast / hindsight best: geometric mean, median, scenes above 1 | best fixed member "
          "(geometric mean) | mean member RMSE (mm)")
    for n, v in s.items():
        print(f"{n:9s} | {v['local_gm']:.3f}, {v['local_median']:.3f}, {v['above_1']} of {v['scenes']} | "
              f"{v['best_fixed_member']} {v['best_fixed_gm']:.3f} | {v['mean_member_rmse']:.2f}")
    print("\nmember | ratio to the hindsight best, geometric mean over scenes of the mean over origins (origins where it "
          "was the best) | truth | expected")
    members = members_table(res)
    for n, v in members.items():
        print(f"{n:22s} | " + " | ".join(f"{v[t]['gm']:.3f} ({v[t]['best_at']})" for t in ("truth", "expected")))
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            json.dump({"scenes": res, "summary": s, "members": members}, fh, indent=1)


if __name__ == "__main__":
    main()
