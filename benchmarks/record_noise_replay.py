"""The local forecast's weights with the acquisitions' noise taken out of the candidates' record (session 39).

Each candidate's pooled record is its mean squared error against the observations of the record's targets. That
error holds the targets' own noise (each date's atmosphere and the pixel noise), the same for every candidate, so on
a noisy stack the inverse squared records are nearly flat and candidates that forecast badly keep weight (the second
generator's 50 and 53, docs/skill.md "Session 39": the level and decay candidates held a third of the weight). The
variants subtract ``k`` times the noise variance of the record's targets from every candidate's pooled record before
the weights are formed (at least a tenth of the record is kept):

* ``shipped``: as ``anchors`` holds it;
* ``noise k=0.5``, ``noise k=1``: the noise variance is the mean over the record's target dates (the last
  ``lead + lead // 3`` epochs before the origin) of each date's noise squared, measured on the history up to the
  origin (``date_weights.date_spread``: the robust spread over the pixels of the trajectory-fit residual, less each
  date's median; the noise shared by every pixel of a date, such as the reference area's, is not in it, so this
  underestimates the targets' noise).

Classical forecasts only, replayed like ``season_record_replay.py`` (the same scenes, origins and ratios).

Usage::

    .venv/bin/python benchmarks/record_noise_replay.py --out build/record_noise.json build/srr/*/seed_*
    .venv/bin/python benchmarks/record_noise_replay.py --reliability build/srr/ours/seed_200 build/srr/ind/seed_100
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()

from deformcast.algorithms.data import anchors as anc, date_weights  # noqa: E402
from season_record_replay import local, patched_variants, replay, replay_main, scene_arrays  # noqa: E402

VARIANTS = {"shipped": 0.0, "noise k=0.5": 0.5, "noise k=1": 1.0}


def target_noise(flat: np.ndarray, dates, lead: int) -> float:
    """The mean squared noise of the record's target dates from the history ``flat`` (epochs, n) up to the origin."""
    ok = np.isfinite(flat).all(axis=0)
    s = date_weights.date_spread(flat[:, ok], dates)
    if s is None:
        return 0.0
    span = int(lead) + int(lead) // 3
    return float(np.mean(s[-span:] ** 2))


def run(folder: str, steps, only=None) -> dict:
    def forecasts(y, o, hd, td, tf, fam):
        cache = anc.FamilyCache(y[:o + 1], hd, 15, tf)
        s2 = target_noise(y[:o + 1].reshape(o + 1, -1), hd, 15)
        shipped = anc._combine

        def make(name):
            k = VARIANTS[name]
            if k <= 0:
                return None

            def combine(pooled, family, offer=None):
                return shipped(np.maximum(pooled - k * s2, 0.1 * pooled), family, offer)
            return combine

        return patched_variants(VARIANTS, only, "_combine", make, lambda: local(y, o, hd, td, tf, fam, cache))

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


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--reliability":        # --reliability SCENE...: the statistic of reliability() per scene
        for f in argv[1:]:
            print(f, f"{reliability(f):.1f}", flush=True)
        return
    replay_main(run, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()
