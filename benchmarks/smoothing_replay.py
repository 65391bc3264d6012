"""Longer smoothed persistence among the local forecast's candidates (session 46, docs/skill.md), against the shipped
local forecast, classical forecasts only: on the real Sentinel-1 tracks of ``bench_real_ps.py`` from several origins
(``--real``), and on written scenes of the three generators like ``season_record_replay.py``.

Why: issue 12's real data, and the Doñana tracks since session 41, are won by smoothed persistence: on the ascending
track the mean of the last 8 epochs scored 1.66 mm against 1.80 for the mean of the last 5 (the family's only plain
mean) and 1.82 for the local forecast, from the last acquisition. The local forecast offers the mean of the last 5
everywhere and the seasonal mean of the last two months (``seasonal_mean_2m``) where the two-year velocity is not
significant (:data:`anchors.LEVEL_CANDIDATES`); nothing that smooths over a third of a year.

Variants (``anchors.LOCAL_EXTRA`` and ``anchors.LEVEL_CANDIDATES`` put in from outside):

* ``shipped``;
* ``+ mean_last_10, flat``: the mean of the last 10 epochs, offered only where the two-year velocity is not
  significant (as ``seasonal_mean_2m``);
* ``+ mean_last_10``: offered everywhere (the record alone decides);
* ``+ seasonal_mean_4m, flat``: the seasonal mean of the last third of a year, offered where flat;
* ``+ mean_last_8, 10, flat``: both means where flat.

``--real``: the tracks' folders (``stack_all.tif`` from ``import_timeseries``, as ``bench_real_ps.py`` writes it);
origins ``--back`` epochs before the held-out ``--horizon`` and ``--ahead`` after; the ratio to the best classical
forecast at each origin (the family and the means of the last 5-8, chosen in hindsight), against the acquisitions,
then the geometric mean over the origins.

Usage::

    .venv/bin/python benchmarks/smoothing_replay.py --real build/real_ps/asc build/real_ps/desc
    .venv/bin/python benchmarks/smoothing_replay.py --out build/smooth.json build/srr/*/seed_*
"""
import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()
from deformcast.algorithms.data import anchors as anc  # noqa: E402
from deformcast.algorithms.io import raster  # noqa: E402
from real_ps_replay import MEANS, mean_last  # noqa: E402
from season_record_replay import local, replay, replay_main  # noqa: E402

BASE, LEVEL = anc.LOCAL_EXTRA, anc.LEVEL_CANDIDATES
M10, M8 = ("mean_last_10", "mean_last", 10), ("mean_last_8", "mean_last", 8)
S4 = ("seasonal_mean_4m", "seasonal_mean", 1.0 / 3.0)
VARIANTS = {"shipped": (BASE, LEVEL), "+ mean_last_10, flat": (BASE + (M10,), LEVEL + (M10[0],)),
            "+ mean_last_10": (BASE + (M10,), LEVEL), "+ seasonal_mean_4m, flat": (BASE + (S4,), LEVEL + (S4[0],)),
            "+ mean_last_8, 10, flat": (BASE + (M8, M10), LEVEL + (M8[0], M10[0]))}


def variant_forecasts(only, compute) -> dict:
    out = {}
    for name, (extra, level) in VARIANTS.items():
        if only and name not in only:
            continue
        anc.LOCAL_EXTRA, anc.LEVEL_CANDIDATES = extra, level
        try:
            out[name] = compute()
        finally:
            anc.LOCAL_EXTRA, anc.LEVEL_CANDIDATES = BASE, LEVEL
    return out


def run(folder: str, steps, only=None) -> dict:
    def forecasts(y, o, hd, td, tf, fam):
        return variant_forecasts(only, lambda: local(y, o, hd, td, tf, fam))

    return replay(folder, steps, forecasts)


def _variants_at(y, e, hd, td, m, fam, only) -> dict:
    return variant_forecasts(only, lambda: anc.local_forecast(y[:e + 1], hd, td, m, family=fam).reshape(m, -1))


def real(folder: str, horizon: int, back, ahead, only=None, forecasts=_variants_at) -> dict:
    """Ratios per variant to the best classical forecast at each origin, against the acquisitions of a real track.
    ``forecasts(y, e, hd, td, m, fam, only)``: the variants' forecasts (m, pixels) from origin ``e`` (default: this
    module's)."""
    info = raster.open_stack(os.path.join(folder, "stack_all.tif"))
    y = raster.read_stack(info).astype(np.float64)
    T = y.shape[0]
    flat = y.reshape(T, -1)
    d = np.asarray(info.dates, dtype="datetime64[D]")
    H = int(horizon)
    ratios, rm = {}, {}
    for e in [T - H - 1 - k for k in back] + [T - H - 1 + k for k in ahead]:
        m = min(H, T - 1 - e)
        hd, td = d[:e + 1], d[e + 1:e + 1 + m]
        fam = anc.family_forecasts(flat[:e + 1], hd, td)
        classical = [fam[c] for c in range(fam.shape[0])] + [mean_last(flat[:e + 1], k, m) for k in MEANS]
        fc = forecasts(y, e, hd, td, m, fam, only)
        obs = flat[e + 1:e + 1 + m]
        ok = np.isfinite(obs).all(0) & np.isfinite(fam).all((0, 1))
        for f in fc.values():
            ok &= np.isfinite(f).all(0)

        def rmse(f):
            return float(np.sqrt(np.mean((f[:, ok] - obs[:, ok]) ** 2)))

        best = min(rmse(f) for f in classical)
        for n, f in fc.items():
            ratios.setdefault(n, []).append(rmse(f) / best)
            rm.setdefault(n, []).append(rmse(f))
    return {"ratios": ratios, "rmse": rm}


def main(argv=None):
    if "--real" not in (argv or sys.argv[1:]):
        replay_main(run, __doc__.split("\n")[0], argv)
        return
    real_main(argv, __doc__.split("\n")[0])


def variants_main(variants, description: str, argv=None) -> None:
    """The command line of a replay whose ``variants(y, o, hd, td, tf, fam, only, lead)`` gives each variant's local
    forecast (lead, pixels) from origin ``o``: written scenes as ``season_record_replay.replay_main``, ``--real`` tracks
    as :func:`real_main` (``quiet_power_replay.py``, ``trim_replay.py``, ``record_blocks_replay.py``)."""
    if "--real" in (argv or sys.argv[1:]):
        real_main(argv, description, lambda y, e, hd, td, m, fam, only: variants(y, e, hd, td, None, fam, only, m))
        return

    def run_scene(folder: str, steps, only=None) -> dict:
        return replay(folder, steps, lambda y, o, hd, td, tf, fam: variants(y, o, hd, td, tf, fam, only))

    replay_main(run_scene, description, argv)


def real_main(argv, description: str, forecasts=_variants_at) -> None:
    """The command line of ``--real``: one line per track and variant (``quiet_power_replay.py`` shares it)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--real", nargs="+", required=True)
    ap.add_argument("--horizon", type=int, default=10)
    ap.add_argument("--back", type=int, nargs="*", default=[10, 8, 6, 4, 2, 0])
    ap.add_argument("--ahead", type=int, nargs="*", default=[3, 6])
    ap.add_argument("--variants", nargs="+", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    got = {}
    for folder in a.real:
        got[folder] = r = real(folder, a.horizon, a.back, a.ahead, a.variants, forecasts)
        for n, v in r["ratios"].items():
            print(f"{folder} | {n:28s} | geometric mean {np.exp(np.mean(np.log(v))):.3f} | "
                  + " ".join(f"{x:.3f}" for x in v), flush=True)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            json.dump(got, fh, indent=1)


if __name__ == "__main__":
    main()
