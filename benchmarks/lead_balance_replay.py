"""The local forecast's candidates scored with each lead step weighed as the forecast weighs it (session 39).

The classical candidates' track record (``track_record.record``) averages each record origin's mean squared error
over the epochs it scores, then averages the origins alike. Its seven origins at lead 15 (``anchors.candidate_origins``:
e - 20, e - 17, ..., e - 2) score 15, 15, 14, 11, 8, 5 and 2 epochs, so lead 1 weighs 0.160 of the record and lead
15 0.019: the record judges mostly the first two steps (a third of it), where the candidates that follow the last
acquisitions win, while the forecast it chooses is judged over fifteen steps alike, and its error grows with the lead.
Session 35 measured one weight vector per run of lead steps (each run scored on a third of the draws: better on ours,
worse on the second generator). These variants keep one weight vector and every draw, and weigh the lead steps:

* ``shipped``: as ``anchors`` holds it;
* ``pairs``: every (origin, step) pair alike (lead 1 weighs 7 / 70 of the record, lead 15 2 / 70);
* ``balanced``: each lead step alike, the mean over the origins that reach it (lead 15: the mean of two origins);
* ``half``: the mean of ``shipped`` and ``balanced``.

Each epoch keeps its date weight (``target_weights``). The sampling variance of the record (the empirical Bayes
shrink of session 35) is still taken from each origin's own mean. Classical forecasts only, replayed like
``season_record_replay.py`` (the same scenes, origins and ratios; ``fair``: against the truth, relative to the family
member best against the expected observation).

Usage::

    .venv/bin/python benchmarks/lead_balance_replay.py --out build/lead_balance.json build/srr/*/seed_*
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()

from deformcast.algorithms.data import anchors as anc  # noqa: E402
from deformcast.algorithms.data import track_record  # noqa: E402
from season_record_replay import local, patched_variants, replay, replay_main  # noqa: E402

VARIANTS = ("shipped", "pairs", "balanced", "half")


def lead_record(mode: str):
    """A ``track_record.record`` that weighs the lead steps by ``mode`` (:data:`VARIANTS` but ``shipped``)."""
    def rec(flat, lead, origins, forecasts, weights=None, errors=None, keep=None):
        e = flat.shape[0] - 1
        L = int(lead)
        num, den, per_origin = None, np.zeros(L), []
        for o in origins:
            m = min(L, e - int(o))
            if m < 1:
                continue
            f = forecasts(o)
            if f is None:
                continue
            w = np.ones(m) if weights is None else np.asarray(weights[o + 1:o + m + 1], dtype=np.float64)
            se = (np.asarray(f[:, :m], dtype=np.float64) - flat[o + 1:o + m + 1][None]) ** 2    # (k, m, n)
            if num is None:
                num = np.zeros((se.shape[0], L, se.shape[2]))
            mean_o = np.einsum("kmn,m->kn", np.nan_to_num(se), w) / w.sum()
            per_origin.append(mean_o)
            if keep is not None:
                keep.append(mean_o.astype(np.float32))
            if mode == "pairs":
                num[:, 0] += mean_o * w.sum()
                den[0] += w.sum()
            else:       # per lead step: that step's weighted mean over the origins that reach it
                num[:, :m] += np.nan_to_num(se) * w[None, :, None]
                den[:m] += w
        if num is None:
            return None
        if mode == "pairs":
            return num[:, 0] / den[0]
        have = den > 0
        balanced = (num[:, have] / den[have][None, :, None]).mean(axis=1)
        if mode == "balanced":
            return balanced
        shipped = np.mean(per_origin, axis=0)
        return 0.5 * (shipped + balanced)
    return rec


def run(folder: str, steps, only=None) -> dict:
    def forecasts(y, o, hd, td, tf, fam):
        cache = anc.FamilyCache(y[:o + 1], hd, 15, tf)
        return patched_variants(VARIANTS, only, "record", lambda name: None if name == "shipped" else lead_record(name),
                                lambda: local(y, o, hd, td, tf, fam, cache))

    return replay(folder, steps, forecasts)


def main(argv=None):
    assert anc.record is track_record.record
    replay_main(run, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()
