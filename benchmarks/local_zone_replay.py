"""The local classical forecast zone by zone (session 46, docs/skill.md): from several origins of written scenes, its
RMSE against the truth in each zone beside every candidate's (the family and ``anchors.LOCAL_EXTRA``), and the family
member best in that zone at that origin (chosen in hindsight). Classical forecasts only; a diagnosis of where the
local forecast, which carries the delivered skill where the networks lose, falls behind a fixed classical forecast.

``scenes``: folders holding ``scene/stack.tif``, ``scene/truth.tif`` and ``scene/zones.tif`` (``bench_skill.py``
runs, or ``season_record_replay.py --make``). Prints per scene the geometric mean over origins of the local forecast
over the zone's best member; ``--out`` keeps every figure.

Usage::

    .venv/bin/python benchmarks/season_record_replay.py --make blind:0-13 --root build/srr
    .venv/bin/python benchmarks/local_zone_replay.py --out build/zones.json build/srr/blind/seed_*
"""
import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ZONE_NAMES, ensure_pkg  # noqa: E402

ensure_pkg()
import season_record_replay as srr  # noqa: E402
from deformcast.algorithms.data import anchors as anc  # noqa: E402
from deformcast.algorithms.io import raster  # noqa: E402

H = srr.H


def zones_of(folder: str, steps=(15, 12, 9, 6, 3, 0)) -> dict:
    """zone -> one row per origin: ``k`` (epochs before the last), ``local``, ``best_family`` and ``best_name``,
    ``best_any`` and ``best_any_name`` (the extra candidates too), ``all`` (every candidate's RMSE), mm."""
    y, flat, d, tr, ref, tf, dd, e = srr.scene_arrays(folder)
    zones = raster.read_raster(os.path.join(folder, "scene", "zones.tif"))[0][0].ravel()
    names = [x[0] for x in anc.FAMILY] + [x[0] for x in anc.LOCAL_EXTRA]
    nf = len(anc.FAMILY)
    out = {}
    for k in steps:
        o = e - k
        hd, td = d[:o + 1], dd[o + 1:o + H + 1]
        fam = anc.family_forecasts(flat[:o + 1], hd, td, tf, tuple(anc.FAMILY) + tuple(anc.LOCAL_EXTRA))
        loc = srr.local(y, o, hd, td, tf, fam[:nf])
        truth = tr[o + 1:o + H + 1]
        ok = np.isfinite(fam).all((0, 1)) & np.isfinite(loc).all(0) & np.isfinite(ref)
        for z, n in ZONE_NAMES.items():
            m = ok & (zones == z)
            if m.sum() < 20:
                continue
            r = [float(np.sqrt(np.mean((f[:, m] - truth[:, m]) ** 2))) for f in fam]
            out.setdefault(n, []).append({
                "k": k, "local": float(np.sqrt(np.mean((loc[:, m] - truth[:, m]) ** 2))),
                "best_family": min(r[:nf]), "best_name": names[int(np.argmin(r[:nf]))],
                "best_any": min(r), "best_any_name": names[int(np.argmin(r))], "all": dict(zip(names, r))})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scenes", nargs="+")
    ap.add_argument("--origins", type=int, nargs="+", default=[15, 12, 9, 6, 3, 0])
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    res = {}
    for f in a.scenes:
        res[f] = zones_of(f, a.origins)
        print(f, " | ".join(f"{n} {np.exp(np.mean([np.log(r['local'] / r['best_family']) for r in rows])):.2f}"
                            for n, rows in res[f].items()), flush=True)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
