"""The local forecast's short-window candidates withheld where the pixel's history shows no change of regime
(session 46, docs/skill.md), against the shipped local forecast, replayed like ``season_record_replay.py`` from several
origins of each scene, classical forecasts only.

Why: issue 12 asks for regime-change evidence "as channels and as a selector of the fit window". The networks see it
as channels (``anchors.REGIME_FEATURES``); the local forecast, which carries most of the delivered skill on generators
we did not write, chooses its candidates by their track record alone. On the third generator's fourteen scenes
(session 46's zone diagnosis) the local forecast lost to the best classical forecast of the quiet background on every
scene (1.00-1.52 of it, the hindsight best nearly always an all-history or two-year fit): a record of seven noisy
origins gives weight to candidates that follow the last acquisitions (persistence, the half-year lines, the one-year
quadratic) where nothing has changed.

The evidence, at each pixel, from the history up to the origin (the all-history trajectory with the steps found in the
stack, as the family fits it; ``r`` its residuals, ``s`` their standard deviation):

* the mean residual over the last half year and over the last year, in standard errors (``mean r / (s / sqrt(n))``);
* the velocity of the last year minus that of the all-history fit, in standard errors of the one-year velocity.

Where every |t| stays below ``T`` (no evidence of a change) the candidates of :data:`SHORT` get no weight; the
long fits share it. Residuals correlated in time (real data, an unmodelled motion) make the t-values large, so
the selector then offers every candidate, as shipped.

Variants: ``shipped``; ``regime T=2``, ``T=3``, ``T=4``; ``regime T=3, 5x5 max``: the largest |t| of the pixel's 5 x 5
neighbourhood (a bowl's edge pixels, whose own evidence is weak, follow their neighbours).

Usage::

    .venv/bin/python benchmarks/regime_offer_replay.py --out build/rox.json build/srr/blind/seed_*
"""
import os
import sys

import numpy as np
from scipy.ndimage import maximum_filter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()
from deformcast.algorithms.data import anchors as anc  # noqa: E402
from deformcast.algorithms.data.baselines import fit_stats, terms_for_span, years_between  # noqa: E402
from season_offer_replay import run_offers  # noqa: E402
from season_record_replay import replay_main  # noqa: E402

#: candidates that follow the last acquisitions: withheld where the history shows no change of regime
SHORT = ("persistence", "mean_last_5", "linear_1y", "linear_6m", "seasonal_linear_6m", "seasonal_quadratic_1y",
         "seasonal_mean_2m", "seasonal_decay_tau4m", "seasonal_decay_tau7m")
VARIANTS = {"shipped": None, "regime T=2": (2.0, 1), "regime T=3": (3.0, 1), "regime T=4": (4.0, 1),
            "regime T=3, 5x5 max": (3.0, 5)}
FLAGGED = {}


def regime_t(flat: np.ndarray, dates, tf=None) -> np.ndarray:
    """(n,): each pixel's largest |t| of the three pieces of regime-change evidence (module doc); NaN where unknown."""
    y = np.asarray(flat, dtype=np.float64)
    d = np.asarray(dates, dtype="datetime64[D]")
    e = d.size - 1
    t = years_between(d, d[e])
    deg, periods = terms_for_span(float(t[-1] - t[0]))
    coef, _, sigma, pred = fit_stats(y, t, t, deg, periods, tf, ref=d[e])
    res = y - pred
    out = []
    for yrs in (0.5, 1.0):
        s = anc._start(d, e, yrs)
        r = res[s:]
        ok = np.isfinite(r)
        n = ok.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(ok, r, 0.0).sum(axis=0) / n
            out.append(np.abs(m) / (sigma / np.sqrt(n)))
    s1 = anc._start(d, e, 1.0)
    c1, se1, _, _ = fit_stats(y[s1:], t[s1:], t[-1:], 1, ())
    with np.errstate(invalid="ignore", divide="ignore"):
        out.append(np.abs(c1[1] - coef[1]) / se1[1])
    with np.errstate(invalid="ignore"):
        return np.max(np.stack(out), axis=0)


def regime_offer(level_offer, spec, tf):
    thr, box = spec

    def offer(flat, dates, shape, guide, n_fam, C):
        got = level_offer(flat, dates, shape, guide, n_fam, C)
        got = np.ones((C, flat.shape[1]), bool) if got is None else got.copy()
        z = regime_t(flat, dates, tf)
        if box > 1:
            z = maximum_filter(np.nan_to_num(z, nan=np.inf).reshape(shape), size=box, mode="nearest").reshape(-1)
        quiet = np.isfinite(z) & (z < thr)
        FLAGGED.setdefault(str(spec), []).append(float(np.mean(quiet)))
        for j, name in enumerate(anc.LOCAL_NAMES[:C]):
            if name in SHORT:
                got[j] &= ~quiet
        return got
    return offer


def run(folder: str, steps, only=None) -> dict:
    return run_offers(folder, steps, only, VARIANTS, regime_offer)


def main(argv=None):
    def after(folder, res):
        res["quiet"] = {k: float(np.mean(v)) for k, v in FLAGGED.items()}
        return " | share quiet " + " ".join(f"{k}: {np.mean(v):.2f}" for k, v in FLAGGED.items())

    replay_main(run, __doc__.split("\n")[0], argv, before=FLAGGED.clear, after=after)


if __name__ == "__main__":
    main()
