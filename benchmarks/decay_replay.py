"""The local forecast's candidates of a motion that dies out (session 36, docs/skill.md): ``a + b exp(-t / tau)``
through the last year of the series without the record's seasons, tau 0.3 and 0.6 years, the seasons added back
(``seasonal_decay_tau4m`` and ``_tau7m`` of :data:`anchors.LOCAL_EXTRA`), against the local forecast without them,
replayed like ``season_record_replay.py`` from several origins of each scene, classical forecasts only.

Why: a mining bowl that is stopping and a saturating uplift follow neither a line nor a parabola through their
last year; the local forecast's line and quadratic candidates overshoot them at the horizon (issue 12: "47's
saturating uplift, stopped bowls").

Variants (each put into ``anchors.LOCAL_EXTRA`` from outside; the family cache is built per variant):

* ``without decay``: sessions 34-35 (``DEFORMCAST_DECAY=0``);
* ``decay``: both candidates offered everywhere (shipped since session 36);
* ``decay tau 0.3``: the shorter time constant only;
* ``decay tau 0.6``: the longer one only;
* ``decay + tau 0.15``, ``decay + tau 1.0``: a third time constant beside the two;
* ``decay + 6m window``: a third decay candidate through the last half year only (tau 0.3 years; session 38: a
  bowl whose motion began within the last year has its kink inside the one-year window, which the decay's onset at
  the window's start cannot follow);
* ``decay + 2y window``: a third one through the last two years (tau 0.6 years: a slower rebound or stop);
* ``decay + tau 0.15 + 2y window``: both of the above third candidates (session 39);
* ``decay + 2y tau 1.0``: a third one through the last two years, tau 1.0 years;
* ``decay, tau 0.6 over 2y``: the longer time constant fitted through two years instead of one (two candidates);
* ``decay where it fits``: both, each offered only at pixels where it fits the last year of the series without the
  record's seasons better than a line through the same epochs does (the sum of squared residuals of the two
  two-parameter fits, the decay's and ``seasonal_linear`` over one year; session 37: evidence of a motion that
  dies out instead of the track record alone). Put into ``anchors.level_offer`` from outside.

Usage::

    .venv/bin/python benchmarks/season_record_replay.py --make ours:200-223 ind:100-123 --root build/srr
    .venv/bin/python benchmarks/decay_replay.py --out build/decay_replay.json build/srr/*/seed_*
"""
import sys
import os

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()
from deformcast.algorithms.data import anchors as anc  # noqa: E402
from season_record_replay import local, replay, replay_main  # noqa: E402

DECAY = tuple(c for c in anc.LOCAL_EXTRA if c[1] == "seasonal_decay") or (
    ("seasonal_decay_tau4m", "seasonal_decay", (1.0, 0.3)), ("seasonal_decay_tau7m", "seasonal_decay", (1.0, 0.6)))
BASE = tuple(c for c in anc.LOCAL_EXTRA if c[1] != "seasonal_decay")
VARIANTS = {"without decay": BASE, "decay": BASE + DECAY, "decay tau 0.3": BASE + DECAY[:1],
            "decay tau 0.6": BASE + DECAY[1:], "decay where it fits": BASE + DECAY,
            "decay + tau 0.15": BASE + DECAY + (("seasonal_decay_tau2m", "seasonal_decay", (1.0, 0.15)),),
            "decay + tau 1.0": BASE + DECAY + (("seasonal_decay_tau12m", "seasonal_decay", (1.0, 1.0)),),
            "decay + 6m window": BASE + DECAY + (("seasonal_decay_6m_tau4m", "seasonal_decay", (0.5, 0.3)),),
            "decay + 2y window": BASE + DECAY + (("seasonal_decay_2y_tau7m", "seasonal_decay", (2.0, 0.6)),),
            "decay + tau 0.15 + 2y window": BASE + DECAY + (("seasonal_decay_tau2m", "seasonal_decay", (1.0, 0.15)),
                                                            ("seasonal_decay_2y_tau7m", "seasonal_decay", (2.0, 0.6))),
            "decay + 2y tau 1.0": BASE + DECAY + (("seasonal_decay_2y_tau12m", "seasonal_decay", (2.0, 1.0)),),
            "decay, tau 0.6 over 2y": BASE + DECAY[:1] + (("seasonal_decay_2y_tau7m", "seasonal_decay", (2.0, 0.6)),)}
LINE_1Y = (("line_1y", "seasonal_linear", 1.0),)


def offer_where_it_fits(level_offer):
    """``anchors.level_offer`` that also withholds each decay candidate where its fit through the last year leaves
    larger residuals than a line's (both without the record's seasons, which they share)."""
    def offer(flat, dates, shape, guide, n_fam, C):
        got = level_offer(flat, dates, shape, guide, n_fam, C)
        got = np.ones((C, flat.shape[1]), bool) if got is None else got
        d = np.asarray(dates, dtype="datetime64[D]")
        win = d >= d[-1] - np.timedelta64(365, "D")
        fits = anc.family_forecasts(flat, d, d[win], None, LINE_1Y + DECAY)    # fitted values in the window
        rss = np.nansum((fits - flat[None, win]) ** 2, axis=1)                 # (1 + decay, n)
        for j, c in enumerate(anc.LOCAL_EXTRA):
            if c[1] == "seasonal_decay":
                k = 1 + [x[0] for x in DECAY].index(c[0])
                got[n_fam + j] &= rss[k] < rss[0]
        return got
    return offer


def run(folder: str, steps, only=None) -> dict:
    def forecasts(y, o, hd, td, tf, fam):
        out = {}
        for name, extra in VARIANTS.items():
            if only and name not in only:
                continue
            anc.LOCAL_EXTRA = extra
            level_offer = anc.level_offer
            if name == "decay where it fits":
                anc.level_offer = offer_where_it_fits(level_offer)
            try:
                out[name] = local(y, o, hd, td, tf, fam)
            finally:
                anc.LOCAL_EXTRA, anc.level_offer = BASE + DECAY, level_offer
        return out

    return replay(folder, steps, forecasts)


def main(argv=None):
    replay_main(run, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()
