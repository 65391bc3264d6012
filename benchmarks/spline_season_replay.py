"""The seasons of the local forecast's short-window candidates beside a flexible trend (session 33, docs/skill.md,
measured and not taken): ``seasonal_linear_6m`` and ``seasonal_quadratic_1y`` take their annual and semi-annual
terms from the all-history fit, a parabola that misses a bowl whose motion started, sped up or stopped; here the
seasonal terms are fitted beside a linear spline with knots every ``--knot`` years back from the origin instead.
The ``local`` forecast with each, replayed like ``season_record_replay.py`` from several origins of each scene,
classical forecasts only; ratios to the best ordinary family member chosen in hindsight.

Usage::

    .venv/bin/python benchmarks/spline_season_replay.py --out build/spline.json build/srr/*/seed_*
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
from deformcast.algorithms.data import anchors as anc, family as famod  # noqa: E402
from deformcast.algorithms.data.baselines import (_event_terms, design_matrix, epoch_weights,  # noqa: E402
                                                  fit_operator, years_between, terms_for_span)
from combination_replay import print_summary  # noqa: E402
from season_record_replay import replay  # noqa: E402

H = 15
ORIG = famod._seasonal_linear
KNOT = [1.0]


def spline_seasonal_linear(y, dates, start, end, t_pred, time_function=None, degree=1, tau=None, memo=None):
    """``family._seasonal_linear`` with the seasons fitted beside a linear spline (gap-free series; others as shipped;
    with ``tau``, the shipped decay member; ``memo`` ignored)."""
    t_all = years_between(dates[:end + 1], dates[end])
    span = float(t_all[-1] - t_all[0]) if t_all.size else 0.0
    deg, periods = terms_for_span(span)
    if not periods or tau is not None:     # the decay members as shipped
        return ORIG(y, dates, start, end, t_pred, time_function, degree, tau)
    yy = np.asarray(y[:end + 1], dtype=np.float64)
    full = np.isfinite(yy).all(axis=0)
    if not full.all():
        return ORIG(y, dates, start, end, t_pred, time_function, degree, tau)
    ev = _event_terms(time_function, dates[end], t_all)
    A = design_matrix(t_all, 1, periods, **ev)
    knots = [-k * KNOT[0] for k in range(1, 50) if -k * KNOT[0] > t_all[0] + 0.5 * KNOT[0]]
    H_ = np.stack([np.maximum(t_all - k, 0.0) for k in knots], axis=1) if knots else np.zeros((t_all.size, 0))
    A2 = np.concatenate([A, H_], axis=1)
    coef = fit_operator(A2, epoch_weights(time_function, dates[end], t_all)) @ yy
    cols = slice(2, 2 + 2 * len(periods))
    def season(t):
        return design_matrix(t, 1, periods)[:, cols] @ coef[cols]
    line = famod._trend(yy - season(t_all), dates, start, end, t_pred, time_function, degree)
    return line + season(np.asarray(t_pred, dtype=np.float64))


def run(folder, steps):
    def forecasts(y, o, hd, td, tf, fam):
        fc = {}
        for name, fn in (("shipped", ORIG), ("spline seasons", spline_seasonal_linear)):
            famod._seasonal_linear = fn
            flat = y[:o + 1].reshape(o + 1, -1)
            extra = anc.family_forecasts(flat, hd, td, tf, anc.LOCAL_EXTRA)
            cache = anc.FamilyCache(y[:o + 1], hd, H, tf)
            fc[name] = anc.local_forecast(y[:o + 1], hd, td, H, tf, family=fam, past_family=cache).reshape(H, -1)
            fc[name + ": seasonal_linear_6m"] = extra[1]
        famod._seasonal_linear = ORIG
        return fc

    return replay(folder, steps, forecasts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scenes", nargs="+")
    ap.add_argument("--origins", type=int, nargs="+", default=[15, 12, 9, 6, 3, 0])
    ap.add_argument("--knot", type=float, default=1.0)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    KNOT[0] = a.knot
    allres = {}
    for f in a.scenes:
        allres[f] = run(f, a.origins)
        print(f, " | ".join(f"{n} {np.mean(v):.3f}" for n, v in allres[f]["truth"].items()), flush=True)
    groups = {"ours": [f for f in a.scenes if "/ind" not in f], "second generator": [f for f in a.scenes if "/ind" in f]}
    for g, fs in groups.items():
        if fs:
            for tn in ("truth", "expected"):
                print_summary({f: allres[f] for f in fs}, tn, f"{g}, {tn} ({len(fs)} scenes)")
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            json.dump(allres, fh, indent=1)


if __name__ == "__main__":
    main()
