"""The local forecast without its candidates that ignore the seasons where a pixel's annual term is clear (session 38,
docs/skill.md), against the shipped local forecast, replayed like ``season_record_replay.py`` from several origins of
each scene, classical forecasts only.

Why: on the second generator's 107 and 121 (sessions 32-37) the local forecast lost 1.5-2x to the trajectory fits at
some origins, in every zone, background included: its track record, seven origins over the last two thirds of a
year, gave weight to the candidates without seasons (persistence, the mean of the last five, the lines through 6
months to all history) where the truth holds a 4.5 mm annual term (121: persistence 10.0 mm, the trajectory ensemble
3.0, the local forecast 6.4 at 6 epochs before the end). Where the annual term of a pixel's own series is clear, a
forecast without it is wrong by construction over half a year.

Variants (``anchors.level_offer`` and ``anchors._combine`` wrapped from outside):

* ``shipped``: the local forecast as it ships;
* ``season offer t > T``: at pixels whose annual term, fitted with a parabola and the semi-annual term through the
  last three years of the series (least squares, the date weights of the time function), has an amplitude above
  ``T`` of its standard error, the candidates without seasons (``NO_SEASON``) get no weight; the seasonal and
  trajectory candidates share it. ``T`` 3 and 6 (the residuals are correlated in time, so the nominal standard
  error is small and ``T`` is no probability).
* ``season swing > sigma``, ``> sigma / 2``: as ``t > 3``, and only where the fitted seasons change, over the next
  15 epochs from the origin (RMS), by more than the fit's residual standard deviation (or half of it): the season
  matters for this forecast's half year, beside the noise of one acquisition.
* ``season the record missed``: as ``t > 3``, and only where the fitted seasons change over the next 15 epochs
  (RMS) more than twice as much as over the targets the candidates' track record scored (its seven origins, each up
  to 15 epochs ahead, not past the forecast origin): a test of the reading that the record judged the candidates
  without seasons on a flat part of the cycle (it flagged at most 2 % of the pixels, none on 121: the reading was
  wrong; docs/skill.md, "Session 38").

Usage::

    .venv/bin/python benchmarks/season_record_replay.py --make ours:200-223 ind:100-123 --root build/srr
    .venv/bin/python benchmarks/season_offer_replay.py --out build/season_offer.json build/srr/*/seed_*
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()
from deformcast.algorithms.data import anchors as anc  # noqa: E402
from deformcast.algorithms.data.baselines import fit_stats, years_between  # noqa: E402
from season_record_replay import H, local, replay, replay_main  # noqa: E402

#: the candidates (family and extra) whose forecast holds no seasonal term
NO_SEASON = ("persistence", "mean_last_5", "linear", "linear_1y", "linear_2y", "linear_6m")
VARIANTS = {"shipped": None, "season offer t > 3": 3.0, "season offer t > 6": 6.0,
            "season swing > sigma": (3.0, 1.0), "season swing > sigma / 2": (3.0, 0.5),
            "season the record missed": (3.0, "record")}
#: years of history for the annual term's test
YEARS = 3.0
FLAGGED = {}


def _seasons(coef: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The fitted annual and semi-annual terms (len(t), n) at the years ``t`` (0 at the origin)."""
    w = 2.0 * np.pi
    ph = np.stack([np.cos(w * t), np.sin(w * t), np.cos(2 * w * t), np.sin(2 * w * t)])
    return ph.T @ coef[3:7]


def _season_fit(flat: np.ndarray, dates, tf=None):
    """The fit of :data:`YEARS` (parabola, annual and semi-annual terms) at each pixel: ``(coef, annual amplitude over
    its standard error (n,), residual standard deviation (n,), the change of the seasons over the next :data:`H`
    epochs at the median spacing (H, n))``."""
    d = np.asarray(dates, dtype="datetime64[D]")
    start = anc._start(d, d.size - 1, YEARS)
    t = years_between(d[start:], d[-1])
    coef, se, sig, _ = fit_stats(flat[start:], t, np.zeros(1), 2, (1.0, 0.5), tf, ref=d[-1])
    step = float(np.median(np.diff(d[start:]).astype(np.float64))) / 365.25
    ahead = _seasons(coef, step * np.arange(1, H + 1)) - _seasons(coef, np.zeros(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        tstat = np.hypot(coef[3], coef[4]) / np.sqrt((se[3] ** 2 + se[4] ** 2) / 2.0)
    return coef, tstat, sig, ahead


def record_swing(flat: np.ndarray, dates, tf=None):
    """Each pixel's annual amplitude over its standard error (n,), and the RMS of the fitted seasons' change over
    the next :data:`H` epochs from the origin over the RMS of their change over the targets the candidates' track
    record scored (:func:`anchors.candidate_origins`, each origin up to H epochs ahead, not past the forecast
    origin), (n,)."""
    d = np.asarray(dates, dtype="datetime64[D]")
    e = d.size - 1
    coef, tstat, _, ahead = _season_fit(flat, d, tf)
    past = []
    for o in anc.candidate_origins(e, H):
        to = years_between(d[o:o + 1], d[-1])
        tg = years_between(d[o + 1:min(o + H, e) + 1], d[-1])
        past.append(_seasons(coef, tg) - _seasons(coef, to))
    past = np.concatenate(past) if past else np.zeros((1, flat.shape[1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return tstat, np.sqrt(np.mean(ahead ** 2, axis=0)) / np.sqrt(np.mean(past ** 2, axis=0))


def season_t(flat: np.ndarray, dates, tf=None, swing: bool = False):
    """Each pixel's annual amplitude over its standard error (n,), NaN where the fit fails; with ``swing`` also the
    RMS over the next :data:`H` epochs (at the median spacing) of the fitted seasons' change since the origin over
    the fit's residual standard deviation (n,)."""
    _, tstat, sig, ahead = _season_fit(flat, dates, tf)
    if not swing:
        return tstat
    with np.errstate(invalid="ignore", divide="ignore"):
        return tstat, np.sqrt(np.mean(ahead ** 2, axis=0)) / sig


def season_offer(level_offer, thr: float, tf):
    def offer(flat, dates, shape, guide, n_fam, C):
        got = level_offer(flat, dates, shape, guide, n_fam, C)
        got = np.ones((C, flat.shape[1]), bool) if got is None else got.copy()
        with np.errstate(invalid="ignore"):
            if isinstance(thr, tuple) and thr[1] == "record":
                ts, ratio = record_swing(flat, dates, tf)
                clear = (ts > thr[0]) & (ratio > 2.0)
            elif isinstance(thr, tuple):
                ts, ratio = season_t(flat, dates, tf, swing=True)
                clear = (ts > thr[0]) & (ratio > thr[1])
            else:
                clear = season_t(flat, dates, tf) > thr
        FLAGGED.setdefault(thr, []).append(float(np.mean(clear)))
        for j, name in enumerate(anc.LOCAL_NAMES[:C]):
            if name in NO_SEASON:
                got[j] &= ~clear
        return got
    return offer


def combine_keeping_family(combine, n_fam: int):
    """``anchors._combine`` whose ``has`` counts a withheld family member as present (the local forecast drops the
    pixels where a family member is missing: a withheld one is not missing)."""
    def comb(pooled, family, offer=None, power=None):
        w, out, has = combine(pooled, family, offer, power)
        has[:n_fam] |= np.isfinite(family[:n_fam]).all(axis=1)
        return w, out, has
    return comb


def run_offers(folder: str, steps, only, variants: dict, make_offer) -> dict:
    """:func:`season_record_replay.replay` of the local forecast with each variant's ``anchors.level_offer``:
    ``make_offer(level_offer, spec, tf)`` for each ``spec`` of ``variants`` (None: as shipped), a withheld family
    member not counted as missing (:func:`combine_keeping_family`); the variants share one family cache per origin."""
    def forecasts(y, o, hd, td, tf, fam):
        out = {}
        cache = anc.FamilyCache(y[:o + 1], hd, H, tf)      # the same candidates in every variant: one family cache
        for name, spec in variants.items():
            if only and name not in only:
                continue
            level_offer, combine = anc.level_offer, anc._combine
            if spec is not None:
                anc.level_offer = make_offer(level_offer, spec, tf)
                anc._combine = combine_keeping_family(combine, len(anc.FAMILY))
            try:
                out[name] = local(y, o, hd, td, tf, fam, cache)
            finally:
                anc.level_offer, anc._combine = level_offer, combine
        return out

    return replay(folder, steps, forecasts)


def run(folder: str, steps, only=None) -> dict:
    return run_offers(folder, steps, only, VARIANTS, season_offer)


def main(argv=None):
    def after(folder, res):
        res["flagged"] = {str(k): float(np.mean(v)) for k, v in FLAGGED.items()}
        return " | share flagged " + " ".join(f"{k}: {np.mean(v):.2f}" for k, v in FLAGGED.items())

    replay_main(run, __doc__.split("\n")[0], argv, before=FLAGGED.clear, after=after)


if __name__ == "__main__":
    main()
