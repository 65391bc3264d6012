"""A longer track record for the local forecast on quiet ground (session 46, docs/skill.md), against the shipped
record, replayed like ``season_record_replay.py`` from several origins of each scene, classical forecasts only.

Why: on the third generator's quiet background the local forecast lost to the all-history fits on every scene
(``local_zone_replay.py``: 1.00-1.52 of the best family member there). Its candidates' record, seven origins over the
last 20 epochs, is a few draws of each date's atmosphere; there the candidates' records lay within a few tenths of a
millimetre of each other and the weights were nearly flat over ten candidates, the noisy short ones included. A
record over a longer span holds more independent dates. Session 34 measured older origins for every pixel (lost on
six of ten scenes: a moving pixel's record must stay recent); this keeps the shipped record where the ground moves.

Variants:

* ``seven origins``: the candidates' record of sessions 34-46 (``flat_record`` off), which the next three change;
* ``long record everywhere``: origins every 3 epochs from 40 epochs before the origin (fourteen), every pixel;
* ``long record where flat``: that record at pixels whose two-year velocity lies within ``anchors.TREND_T`` standard
  errors of zero (as the level candidates are offered), the shipped one elsewhere;
* ``long record, lower half of evidence``: at pixels whose two-year |v| / se is below the scene's median;
* ``shipped``: ``local_forecast`` as it ships, with ``data.flat_record`` (session 47): where the two-year and the
  half-year velocities are flat, the seven origins and seven more before them (e - 41 .. e - 2), pooled and shrunk with
  the longer record's class means. Its noise choice is the one of ``seven origins`` (one per origin in the cache).

Usage::

    .venv/bin/python benchmarks/record_span_replay.py --out build/rsr.json build/srr/*/seed_*
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()
from deformcast.algorithms.data import anchors as anc, flat_record, pooling  # noqa: E402
from season_record_replay import H, local, replay, replay_main  # noqa: E402

VARIANTS = ("seven origins", "long record everywhere", "long record where flat", "long record, lower half of evidence",
            "shipped")
#: the long record's origins before the forecast origin ``e``: e - SPAN, e - SPAN + STEP, ..., e - STEP
SPAN, STEP = 40, 3


def run(folder: str, steps, only=None) -> dict:
    def forecasts(y, o, hd, td, tf, fam):
        cache = anc.FamilyCache(y[:o + 1], hd, H, tf)
        was, flat_record.FLAT_RECORD_ORIGINS = flat_record.FLAT_RECORD_ORIGINS, 0     # the record of sessions 34-46
        try:
            base = local(y, o, hd, td, tf, fam, cache)
        finally:
            flat_record.FLAT_RECORD_ORIGINS = was
        longer = local(y, o, hd, td, tf, fam, cache, origins=[x for x in range(o - SPAN, o, STEP) if x >= 10])
        v, se = pooling.velocity_guide(y[:o + 1].reshape(o + 1, -1), hd, y.shape[1:])
        z = (np.abs(v) / se).reshape(-1)
        with np.errstate(invalid="ignore"):
            masks = {"long record everywhere": np.ones(z.size, bool), "long record where flat": z < anc.TREND_T,
                     "long record, lower half of evidence": z < np.nanmedian(z)}
        out = {"seven origins": base}
        if not only or "shipped" in only:
            out["shipped"] = local(y, o, hd, td, tf, fam, cache)
        for name, m in masks.items():
            out[name] = np.where(m[None], longer, base)
        return {k: f for k, f in out.items() if not only or k in only}

    return replay(folder, steps, forecasts)


def main(argv=None):
    replay_main(run, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()
