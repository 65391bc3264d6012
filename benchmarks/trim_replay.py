"""The local forecast's candidates trimmed to those whose pooled record lies near the best (session 48, docs/skill.md),
replayed like ``season_record_replay.py`` from several origins of each scene, classical forecasts only; ``--real`` on
the real tracks as ``smoothing_replay.py``.

Why: in the third generator's mining bowls that stopped (seed 24, session 48) the pooled records told the candidates
apart (persistence and the short means about 6 mm, the all-history fits 10-13 mm as root records), yet the inverse
squared records left the nine worse candidates a third of the weight; the local forecast scored 8.7-10.7 mm where
persistence scored 6.5-9.5. A sharper power everywhere helps there and loses on the second generator, whose records
are mostly noise (``quiet_power_replay.py``). Trimming (as forecast combinations trim their worst members) gives no
weight to a candidate whose pooled record is more than ``k`` times the pixel's best: where the records lie close, as
noise makes them, nothing changes.

Variants: ``shipped``; ``trim 2x`` and ``trim 4x`` (the pooled record, a squared error, at most 2 or 4 times the best);
``se trim z3``, ``z2`` and ``z1`` (:data:`SE_VARIANTS`: withheld only where the record is worse than the best by more
than 3, 2 or 1 standard errors of the difference, which noise cannot make).

Usage::

    .venv/bin/python benchmarks/trim_replay.py --out build/trim.json build/srr/*/seed_*
    .venv/bin/python benchmarks/trim_replay.py --real build/real_ps/asc build/real_ps/desc
"""
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()
from deformcast.algorithms.data import anchors as anc, flat_record as fr, pooling  # noqa: E402
from season_record_replay import H, patched_variants  # noqa: E402
from smoothing_replay import variants_main  # noqa: E402

VARIANTS = {"shipped": None, "trim 2x": 2.0, "trim 4x": 4.0}
#: trimmed by the records' own sampling error: a candidate is withheld where its pooled record exceeds the best one's
#: by more than z standard errors of the difference (the two sampling variances of ``pooling.sampling_variance``
#: summed; the shipped seven origins' also at the quiet pixels, whose longer record has a smaller one)
SE_VARIANTS = {"se trim z3": 3.0, "se trim z2": 2.0, "se trim z1": 1.0}
SHIPPED = anc._combine
WHERE_FLAT = fr.where_flat


def trimmed(k: float):
    """``anchors._combine`` with the candidates whose pooled record exceeds ``k`` times the pixel's best withheld."""
    def combine(pooled, family, offer=None, power=None):
        fin = np.isfinite(family).all(axis=1)
        has = fin if offer is None else fin & offer
        with np.errstate(invalid="ignore"):
            best = np.nanmin(np.where(has, pooled, np.nan), axis=0)
            far = pooled > k * np.maximum(best, 1e-6)[None]
        # a withheld candidate is not offered (``has`` itself stays: the local forecast reads it for its validity)
        w, _, has = SHIPPED(np.where(far, np.inf, pooled), family, offer, power)
        w = np.where(far, 0.0, w)
        w = w / np.nansum(w, axis=0, keepdims=True)
        out = np.einsum("cn,chn->hn", np.nan_to_num(w), np.nan_to_num(family))
        return w, out, has
    return combine


def se_trimmed(z: float):
    """``flat_record.where_flat`` whose records of the candidates significantly worse than the pixel's best are made
    too large to take weight (1e30: finite, so the pixel keeps its forecast)."""
    def where_flat(pooled, flat, dates, lead, extra, forecasts, weights, errors, err, per_origin, guide, shape,
                   *a, **k):
        rec = WHERE_FLAT(pooled, flat, dates, lead, extra, forecasts, weights, errors, err, per_origin, guide, shape,
                         *a, **k)
        s2 = pooling.sampling_variance(per_origin, shape, anc.LOCAL_BOX)
        if s2 is None:
            return rec
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            b = np.nanargmin(np.where(np.isfinite(rec), rec, np.inf), axis=0)
            cols = np.arange(rec.shape[1])
            far = rec - rec[b, cols][None] > z * np.sqrt(s2 + s2[b, cols][None])
        return np.where(far, 1e30, rec)
    return where_flat


def variants(y, o, hd, td, tf, fam, only=None, lead=H) -> dict:
    """Each variant's local forecast (lead, pixels) from origin ``o`` of the stack ``y``."""
    cache = anc.FamilyCache(y[:o + 1], hd, lead, tf)

    def compute():
        return anc.local_forecast(y[:o + 1], hd, td, lead, tf, family=fam, past_family=cache).reshape(lead, -1)

    out = patched_variants(VARIANTS, only, "_combine", lambda n: None if VARIANTS[n] is None else trimmed(VARIANTS[n]),
                           compute)
    return {**out, **patched_variants(SE_VARIANTS, only, "where_flat", lambda n: se_trimmed(SE_VARIANTS[n]), compute,
                                      module=fr)}


def main(argv=None):
    variants_main(variants, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()
