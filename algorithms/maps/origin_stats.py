"""How the skill gate puts its rolling origins together (:mod:`skill_gate`).

Each rolling origin is one draw of the atmosphere and of the ground's events. Pooling the squared errors of all
origins (sessions 1-24) lets an origin whose errors are large for every forecast (a jump that no fit follows)
outvote the others: on 135 GNSS series two origins of twelve, where every fit but ``local`` erred by 10-19 mm,
sent the gate to the classical forecast although the ensemble was better at eight (docs/skill.md, "Session 25").
Since session 25 the gate compares forecasts origin by origin: the geometric mean over origins of the per-origin
RMSE ratio (Armstrong & Collopy's relative error measure for choosing among methods across series), each origin's
log ratio weighted by its number of scored values, decides; and its least-squares blend weights scale each value
by ``1 / RMSE`` of the reference at its origin, so an origin weighs by its number of values there too, not by the
size of its errors.
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def rmse(a, b) -> float:
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(np.sqrt(np.mean(d * d))) if d.size else float("nan")


def mae(a, b) -> float:
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(np.mean(np.abs(d))) if d.size else float("nan")


#: how the rolling origins are put together where the gate decides (:func:`skill_gate._earned`): ``"geometric"`` (since
#: session 25) the geometric mean over origins of each origin's RMSE ratio, weighted by the origin's number of
#: values; ``"pooled"`` (sessions 1-24) the RMSE of all values together, where two origins with
#: jumps that every forecast misses by 10-19 mm outweigh ten (docs/skill.md, "Session 25")
ORIGIN_AGGREGATION = "geometric"


def per_origin(origin) -> bool:
    return ORIGIN_AGGREGATION == "geometric" and origin is not None and np.unique(origin).size >= 2


def origin_scale(B: np.ndarray, Y: np.ndarray, origin) -> Optional[np.ndarray]:
    """One factor per value, ``1 / RMSE`` of the reference ``B`` at the value's origin: in a least-squares fit each
    origin then weighs by its number of values, whatever the size of its errors (as in :func:`ratio`); None where
    the aggregation is pooled. An origin where the reference is exact or not finite gets 0 (no say)."""
    if not per_origin(origin):
        return None
    sc = np.ones(Y.shape[1], np.float64)
    for o in np.unique(origin):
        m = origin == o
        r = rmse(B[:, m], Y[:, m])
        sc[m] = 1.0 / r if r > 0 and np.isfinite(r) else 0.0
    return sc


def ratio(X: np.ndarray, R: np.ndarray, Y: np.ndarray, origin=None) -> float:
    """How ``X`` scores beside ``R`` against ``Y``: the geometric mean over origins of the per-origin RMSE ratio, each
    origin's log ratio weighted by its number of values (Armstrong & Collopy's relative error, a geometric mean so
    that neither one origin's scale nor one origin's outlier decides), or the ratio of the pooled RMSEs (one origin,
    or ``ORIGIN_AGGREGATION`` pooled). NaN where a forecast is not finite at some origin (as the pooled RMSE is:
    the gate then falls back); an origin where exactly one of the two is exact makes the ratio 0 or inf; one where
    both are exact has no say."""
    if not per_origin(origin):
        rr, rx = rmse(R, Y), rmse(X, Y)
        return rx / rr if rr > 0 else float("inf") if rx > 0 else 1.0
    logs, wts = [], []
    for o in np.unique(origin):
        m = origin == o
        rx, rr = rmse(X[:, m], Y[:, m]), rmse(R[:, m], Y[:, m])
        if not (np.isfinite(rx) and np.isfinite(rr)):
            return float("nan")
        if rx == 0 and rr == 0:
            continue
        logs.append(np.inf if rr == 0 else -np.inf if rx == 0 else np.log(rx / rr))
        wts.append(float(m.sum()))
    if not logs:
        return 1.0
    lg = np.asarray(logs)
    if np.isinf(lg).any():
        return float("inf") if (lg == np.inf).sum() >= (lg == -np.inf).sum() else 0.0
    return float(np.exp(np.average(lg, weights=wts)))


def geometric_rmse(per_origin_rmse, counts) -> float:
    """The weighted geometric mean of per-origin RMSEs (weights: each origin's number of values), the figure whose
    ratios are :func:`ratio`'s: NaN where one is not finite, 0 where one is 0."""
    r = np.asarray(per_origin_rmse, np.float64)
    w = np.asarray(counts, np.float64)
    if r.size == 0 or not np.isfinite(r).all():
        return float("nan")
    if (r <= 0).any():
        return 0.0
    return float(np.exp(np.average(np.log(r), weights=w)))
