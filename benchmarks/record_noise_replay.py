"""The local forecast's weights with the acquisitions' noise taken out of the candidates' record (session 39).

Each candidate's pooled record is its mean squared error against the observations of the record's targets. That
error holds the targets' own noise (each date's atmosphere and the pixel noise), the same for every candidate, so on
a noisy stack the inverse squared records are nearly flat and candidates that forecast badly keep weight (the second
generator's 50 and 53, docs/skill.md "Session 39": the level and decay candidates held a quarter to a third of the weight). The
variants subtract ``k`` times the noise variance of the record's targets from every candidate's pooled record before
the weights are formed (at least a tenth of the record is kept):

* ``shipped``: as ``anchors`` holds it;
* ``noise k=0.5``, ``noise k=1``: the noise variance is the mean over the record's target dates (the last
  ``lead + lead // 3`` epochs before the origin) of each date's noise squared, measured on the history up to the
  origin (``date_weights.date_spread``: the robust spread over the pixels of the trajectory-fit residual, less each
  date's median; the noise shared by every pixel of a date, such as the reference area's, is not in it, so this
  underestimates the targets' noise);
* ``chosen k``: ``k`` = 0 or 1, whichever made the scene's local forecasts from 15 and 20 epochs before the
  origin (their whole leads inside the history) closer to what was then observed (summed over the pixels), ``k`` = 1
  only where its sum is below ``1 - DEFORMCAST_NOISE_MARGIN`` (default 0) times the other's: a sharpness each scene
  chooses from its own past. The sums go into the ``--out`` JSON (``choices``); ``--margins`` reads any margin off it.

Classical forecasts only, replayed like ``season_record_replay.py`` (the same scenes, origins and ratios).

Usage::

    .venv/bin/python benchmarks/record_noise_replay.py --variants shipped "noise k=0.5" "noise k=1" \
        --out build/record_noise.json build/srr/*/seed_*
    .venv/bin/python benchmarks/record_noise_replay.py --reliability build/srr/ours/seed_200 build/srr/ind/seed_100
    .venv/bin/python benchmarks/record_noise_replay.py --variants shipped "noise k=1" "chosen k" --out build/rn.json \
        build/srr/ours/seed_*
    .venv/bin/python benchmarks/record_noise_replay.py --margins build/rn.json

Session 40 shipped ``chosen k`` with a 1 % margin (``record_noise.noise_choice``). The replay measures its variants
against the record of sessions 4-39: it switches the shipped choice off (``record_noise.RECORD_NOISE``), and ``chosen
k`` is the shipped choice (``record_noise.noise_sse``). End to end, ``origin_replay.py`` with
``DEFORMCAST_RECORD_NOISE=0`` and without it compares the two (session 39's ``--end-to-end`` patch of the local
forecast, which this replaced, gave the same figures).
"""
import json
import os
import sys
from contextlib import contextmanager

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()

from deformcast.algorithms.data import anchors as anc, record_noise as rn  # noqa: E402
from season_record_replay import local, replay, replay_main, scene_arrays  # noqa: E402

rn.RECORD_NOISE = False        # the variants below take the noise out themselves, from session 39's record

VARIANTS = {"shipped": 0.0, "noise k=0.5": 0.5, "noise k=1": 1.0}
#: the variant whose ``k`` (0 or 1) each origin chooses from the scene's own past (:func:`choose_k`)
CHOSEN = "chosen k"
#: the ``k`` chosen at each origin of each scene, and the sums of squared errors it was chosen by
CHOICES: dict = {}
#: ``k`` = 1 only where the scene's past forecasts with it were this much better (``DEFORMCAST_NOISE_MARGIN``)
MARGIN = float(os.environ.get("DEFORMCAST_NOISE_MARGIN", "0"))


#: the mean squared noise of the record's target dates from the history (epochs, n) up to the origin
target_noise = rn.target_noise


def noise_combine(shipped, k: float, s2: float):
    """``anchors._combine`` with ``k`` times the noise variance ``s2`` taken out of the pooled records."""
    def combine(pooled, family, offer=None, power=None):
        return shipped(np.maximum(pooled - k * s2, 0.1 * pooled), family, offer, power)
    return combine


@contextmanager
def noise_removed(k: float, s2: float):
    """Within the block, every local forecast takes ``k`` times ``s2`` out of its pooled records (``k`` = 0: as
    shipped); ``anchors._combine`` is restored afterwards."""
    shipped = anc._combine
    if k > 0:
        anc._combine = noise_combine(shipped, k, s2)
    try:
        yield
    finally:
        anc._combine = shipped


def choose_k(y, o: int, hd, tf, margin: float = 0.0):
    """``k`` = 1 where the local forecasts from 15 and 20 epochs before ``o`` with the noise taken out came closer to
    what was then observed over the scene (sum of squared errors) by more than ``margin``, else 0, and the sums
    ``[k = 0, k = 1]`` (``record_noise.noise_sse``, what the shipped choice reads)."""
    sse = rn.noise_sse(y[:o + 1], hd[:o + 1], 15, anc.local_forecast, tf)
    return (1.0 if sse[1] < (1.0 - margin) * sse[0] else 0.0), sse.tolist()


def run(folder: str, steps, only=None) -> dict:
    def forecasts(y, o, hd, td, tf, fam):
        cache = anc.FamilyCache(y[:o + 1], hd, 15, tf)
        s2 = target_noise(y[:o + 1].reshape(o + 1, -1), hd, 15)
        out = {}
        for name, k in VARIANTS.items():
            if not only or name in only:
                with noise_removed(k, s2):
                    out[name] = local(y, o, hd, td, tf, fam, cache)
        if not only or CHOSEN in only:
            k, sse = choose_k(y, o, hd, tf, margin=MARGIN)
            CHOICES.setdefault(folder, []).append({"k": k, "sse": sse})
            with noise_removed(k, s2):
                out[CHOSEN] = local(y, o, hd, td, tf, fam, cache)
        return out

    return replay(folder, steps, forecasts)


def reliability(folder: str, steps: int = 6) -> float:
    """The median over pixels of the between-candidate variance of the pooled record over its sampling variance, from
    ``steps`` epochs before the end of a scene: how far the record tells the candidates apart (session 39: ours
    3.8-5.7, the second generator 1.8-5.3 on eight scenes each; no switch between the generators)."""
    got = {}
    shrink = anc.shrink_to_class

    def spy(pooled, s2, z, prior):
        with np.errstate(all="ignore"):
            got["rel"] = float(np.nanmedian(np.nanvar(pooled, axis=0) / np.nanmean(s2, axis=0)))
        return shrink(pooled, s2, z, prior)

    y, flat, d, tr, ref, tf, dd, e = scene_arrays(folder)
    o = e - int(steps)
    anc.shrink_to_class = spy
    try:
        local(y, o, d[:o + 1], dd[o + 1:o + 16], tf, anc.family_forecasts(flat[:o + 1], d[:o + 1], dd[o + 1:o + 16], tf))
    finally:
        anc.shrink_to_class = shrink
    return got.get("rel", float("nan"))


def margins(path: str, cuts=(0.0, 0.005, 0.01, 0.015, 0.02, 0.03)) -> None:
    """From a replay's JSON with ``shipped``, ``noise k=1`` and the chosen ``k``'s sums: for each margin, the origins
    that take ``k`` = 1 and the geometric mean of the ratios (scenes better / worse than shipped by more than 0.002,
    the largest loss), per measure. With two values of ``k`` each origin's forecast is one of the two replayed."""
    with open(path, encoding="utf-8") as fh:
        every = json.load(fh)
    for g, d in (("ours", {f: v for f, v in every.items() if "/ind" not in f}),
                 ("second generator", {f: v for f, v in every.items() if "/ind" in f})):
        if d:
            _margins(f"{path}, {g} ({len(d)} scenes)", d, cuts)


def _margins(label: str, d: dict, cuts) -> None:
    for m in cuts:
        line, n1 = [], 0
        for meas in ("truth", "expected", "fair"):
            base, new = [], []
            for v in d.values():
                pick = [c["sse"][1] < (1.0 - m) * c["sse"][0] for c in v["choices"]]
                new.append(np.mean([v[meas]["noise k=1"][i] if p else v[meas]["shipped"][i] for i, p in enumerate(pick)]))
                base.append(np.mean(v[meas]["shipped"]))
                n1 += sum(pick) if meas == "truth" else 0
            new, base = np.array(new), np.array(base)
            dl = new - base
            line.append(f"{meas} {np.exp(np.mean(np.log(new))):.3f} ({(dl < -0.002).sum()} / {(dl > 0.002).sum()}, "
                        f"{dl.max():+.3f})")
        print(f"{label} margin {m:.3f}: k = 1 at {n1} origins | " + " | ".join(line), flush=True)


BY_LEAD = ("trajectory_windows", "trajectory_ensemble", "seasonal_mean_2m", "seasonal_decay_tau4m",
           "seasonal_decay_tau7m", "persistence")


def by_lead(folder: str, steps: int, zones=((0, "background"), (1, "mining")), leads=(1, 3, 5, 8, 11, 15)) -> None:
    """Per zone, from ``steps`` epochs before the end of a scene: each of :data:`BY_LEAD`'s record (RMSE against the
    observations over the record's origins that reach each lead, the pixels of the zone pooled) beside its forecast's
    RMSE against the expected observation at the same leads: where the record can tell the candidates apart."""
    from deformcast.algorithms.io import raster

    y, flat, d, tr, ref, tf, dd, e = scene_arrays(folder)
    z = raster.read_raster(os.path.join(folder, "scene", "zones.tif"))[0].reshape(-1)
    o = e - int(steps)
    idx = [anc.LOCAL_NAMES.index(n) for n in BY_LEAD]
    cache = anc.FamilyCache(y[:o + 1], d[:o + 1], 15, tf)
    full = anc.family_forecasts(flat[:o + 1], d[:o + 1], dd[o + 1:o + 16], tf, tuple(anc.FAMILY) + tuple(anc.LOCAL_EXTRA))
    expected = tr[o + 1:o + 16] + ref
    for zz, name in zones:
        m = (z == zz) & np.isfinite(flat[:o + 1]).all(0) & np.isfinite(expected).all(0)
        se, cnt = np.zeros((len(idx), 15)), np.zeros(15)
        for p in anc.candidate_origins(o, 15):
            fam, n = cache.both(p), min(15, o - p)
            for j, c in enumerate(idx):
                se[j, :n] += np.mean((fam[c, :n][:, m] - flat[p + 1:p + n + 1][:, m]) ** 2, axis=1)
            cnt[:n] += 1
        rec = np.sqrt(se / np.maximum(cnt, 1))
        print(f"{folder}, {name}, origin e - {steps}: record by lead {leads} | forecast against the expected observation")
        for j, c in enumerate(idx):
            fe = np.sqrt(np.mean((full[c][:, m] - expected[:, m]) ** 2, axis=1))
            print(f"  {BY_LEAD[j]:22s} " + " ".join(f"{rec[j, h - 1]:5.2f}" for h in leads) + " | "
                  + " ".join(f"{fe[h - 1]:5.2f}" for h in leads), flush=True)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--by-lead":             # --by-lead STEPS SCENE...: records and forecasts by lead, by zone
        for f in argv[2:]:
            by_lead(f, int(argv[1]))
        return
    if argv and argv[0] == "--margins":            # --margins JSON...: the chosen k's margins read off a replay
        for f in argv[1:]:
            margins(f)
        return
    if argv and argv[0] == "--reliability":        # --reliability SCENE...: the statistic of reliability() per scene
        for f in argv[1:]:
            print(f, f"{reliability(f):.1f}", flush=True)
        return
    def after(folder, result):
        if not CHOICES.get(folder):
            return ""
        result["choices"] = CHOICES[folder]        # into the --out JSON beside the ratios
        return " | k chosen " + " ".join(f"{c['k']:g} ({c['sse'][-1] / c['sse'][0]:.3f})" for c in CHOICES[folder])

    replay_main(run, __doc__.split("\n")[0], argv, after=after)


if __name__ == "__main__":
    main()
