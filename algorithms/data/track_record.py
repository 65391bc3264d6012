"""The track record of forecasts from earlier origins, the local classical forecast and blend of :mod:`anchors`
are built on.

``record``: each forecast's mean squared error against what was observed after earlier origins; ``blend_weight``:
the least-squares weight of the combination of two forecasts over such a record; ``inverse_mse_weight``: the
weight by inverse squared errors (sessions 4-8, kept for benchmarks/gate_replay.py).

Since session 17 each target epoch weighs by its date's weight (the time function's ``date_weights``,
:mod:`date_weights`, the inverse of the date's noise variance measured on the stack): a date whose atmosphere is
three times the median's says a ninth as much about which forecast tracks the ground. Replayed from six origins on
the eight scenes of sessions 14-16 (benchmarks/origin_replay.py, the session-16 members) the delivered forecast
moved by -1.5 % to +0.6 % against the truth (better on the four scenes of the second generator) and by -1.2 % to
0 % against the later acquisitions (docs/skill.md, "Session 17").
"""
from __future__ import annotations

import os
import warnings
from typing import Optional

import numpy as np

from .baselines import epoch_weights, years_between
from .pooling import guided_box_mean


def local_spacing(lead: int) -> int:
    """Epochs between the origins of the local track record (a third of the lead, at least 1)."""
    return max(1, int(lead) // 3)

#: weigh each target date of a track record by its date weight; ``DEFORMCAST_RECORD_WEIGHTS=0``: every date
#: alike (sessions 4-16), for benchmarks
RECORD_WEIGHTED = os.environ.get("DEFORMCAST_RECORD_WEIGHTS", "1") != "0"

#: the weight of the scene's mean sums beside the neighbourhood's in the blend weight (:func:`blend_weight`,
#: session 18); 0: the neighbourhood's alone (sessions 9-17). ``DEFORMCAST_BLEND_PRIOR`` for benchmarks
BLEND_PRIOR = float(os.environ.get("DEFORMCAST_BLEND_PRIOR", "1"))
#: the neighbourhood's and the scene's mean sums in the blend weight are over the pixels with a record (session 42,
#: :func:`blend_weight`); ``DEFORMCAST_BLEND_RECORD_MEANS=0``: over every pixel (sessions 18-41), for benchmarks
BLEND_RECORD_MEANS = os.environ.get("DEFORMCAST_BLEND_RECORD_MEANS", "1") != "0"
#: each origin's record is the squared mean error over its m scored epochs, not the mean squared error: the noise of
#: the targets, the same for every candidate and the bulk of a mean squared error on a noisy stack, enters about 1/m
#: of it, so the inverse squared records follow the candidates' own errors (session 41, docs/skill.md; it replaces
#: session 40's choice of taking the noise out, :mod:`record_noise`). ``DEFORMCAST_RECORD_MEAN=0``: the mean squared
#: error (sessions 4-40), for benchmarks
RECORD_MEAN = os.environ.get("DEFORMCAST_RECORD_MEAN", "1") != "0"
#: with :data:`RECORD_MEAN`, the scored epochs of each origin are cut into this many runs of consecutive epochs and the
#: record is the mean over the runs of each run's squared mean error, weighted by the run's epochs (session 48): a mean
#: over all of them (1, session 41) cannot tell a forecast of the right shape over the lead from one that is right on
#: average; ``DEFORMCAST_RECORD_BLOCKS`` sets it for experiments
RECORD_BLOCKS = int(os.environ.get("DEFORMCAST_RECORD_BLOCKS", "1") or 1)


def target_weights(time_function, d) -> Optional[np.ndarray]:
    """Each epoch's weight as a target of the track record, (T,), or None (every epoch alike)."""
    if not RECORD_WEIGHTED or len(d) == 0:
        return None
    return epoch_weights(time_function, d[0], years_between(d, d[0]))


def wmean(x: np.ndarray, w: Optional[np.ndarray]) -> np.ndarray:
    """The mean of ``x`` (k, m, n) over its epochs (axis 1), NaN ignored, each epoch weighted by ``w``
    (m,) or alike (None): (k, n), NaN where an entry has no value."""
    if w is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # a pixel without later values: NaN
            return np.nanmean(x, axis=1)
    w = np.asarray(w, dtype=np.float64)
    ok = np.isfinite(x)
    if ok.all():                                   # no gap: one weighted sum over the epochs
        return _epoch_sum(x, w) / w.sum()
    num = _epoch_sum(np.where(ok, x, 0.0), w)
    den = _epoch_sum(ok, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _epoch_sum(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sum_t w[t] x[:, t]`` of ``x`` (k, m, n), epoch after epoch: each value's sum runs in the same order whatever
    the other values (a BLAS product's did not: the track record made in pixel chunks differed in the last bit,
    session 27)."""
    if x.shape[1] == 0:
        return np.zeros((x.shape[0],) + x.shape[2:])
    out = x[:, 0] * w[0]
    for t in range(1, x.shape[1]):
        out += x[:, t] * w[t]
    return out


def record(flat: np.ndarray, lead: int, origins, forecasts, weights=None, errors=None,
           keep: Optional[list] = None) -> Optional[np.ndarray]:
    """Mean squared error of ``forecasts(o)`` ((k, >= m, n) or None) from each origin over the
    ``m = min(lead, e - o)`` epochs after it that ``flat`` (history up to ``e``) holds, averaged over
    the origins: (k, n), or None when no origin could be scored. ``weights`` (T,): each epoch's weight
    as a target (:func:`target_weights`), None: alike. ``errors(o, m, weights of the m epochs)``: the (k, n) errors
    from origin ``o`` made without ``forecasts(o)`` (``anchors.FamilyCache.errors``), or None to make them here.
    ``keep``: a list that receives each scored origin's errors (k, n) in float32 (the record's spread over its
    origins, ``pooling.sampling_variance``)."""
    err, n = None, 0
    e = flat.shape[0] - 1
    for o in origins:
        m = min(int(lead), e - int(o))
        if m < 1:
            continue
        wo = None if weights is None else weights[o + 1:o + m + 1]
        got = None if errors is None else errors(o, m, wo)
        if got is None:
            f = forecasts(o)
            if f is None:
                continue
            got = squared_errors(f, flat[o + 1:o + m + 1], wo)
        if keep is not None:
            keep.append(got.astype(np.float32))
        err = got if err is None else err + got
        n += 1
    return None if n == 0 else err / n


def squared_errors(f: np.ndarray, obs: np.ndarray, weights=None) -> np.ndarray:
    """(k, n): each forecast of ``f`` (k, >= m, n)'s weighted mean squared error against ``obs`` (m, n), the epochs
    weighted by ``weights`` (m,) or alike (:func:`wmean`). One forecast at a time: the squared errors of all of them at
    once held 0.9 GB on a 64 000-pixel block."""
    m = obs.shape[0]
    out = np.empty((f.shape[0], f.shape[2]))
    for c in range(f.shape[0]):
        if RECORD_MEAN:     # the squared mean error over the scored epochs (session 41), or over runs of them
            out[c] = _run_squared_means(f[c, :m] - obs, weights)
        else:
            out[c] = wmean(((f[c, :m] - obs) ** 2)[None], weights)[0]
    return out


def combined(w: np.ndarray, fam: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """The family (C, m, n) combined with the weights ``w`` (C, n): (1, m, n); NaN members weigh 0."""
    if fam is None:
        return None
    num = np.zeros(fam.shape[1:])
    if np.isfinite(fam).all():          # a complete family (the usual case): the same sums without the masks
        den = np.zeros(fam.shape[2:])
        tmp = np.empty(fam.shape[1:])
        for c in range(fam.shape[0]):
            num += np.multiply(w[c], fam[c], out=tmp)
            den += w[c]
        den = np.broadcast_to(den, num.shape)
    else:
        den = np.zeros(fam.shape[1:])
        for c in range(fam.shape[0]):   # one member at a time (float64 copies of the whole family are large)
            ok = np.isfinite(fam[c])
            num += w[c] * np.where(ok, fam[c], 0.0)
            den += w[c] * ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return (num / np.where(den > 0, den, np.nan))[None]


def inverse_mse_weight(e_err: Optional[np.ndarray], pooled: np.ndarray, shape, box: int, power: float,
                       guide=None) -> np.ndarray:
    """``m_E^-p / (m_E^-p + m_F^-p)``: the ensemble's pooled recent MSE against the best family member's."""
    R, Wd = shape
    if e_err is None:
        return np.ones(R * Wd)
    m_e = np.maximum(guided_box_mean(e_err.reshape(1, R, Wd), box, guide).reshape(-1), 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # pixels without any record: NaN
        m_f = np.maximum(np.nanmin(pooled, axis=0), 1e-6)
    with np.errstate(invalid="ignore", divide="ignore"):
        return m_e ** -power / (m_e ** -power + m_f ** -power)


def blend_sums(flat: np.ndarray, lead: int, origins, ens, local, n_px: int, weights=None, local_on=None):
    """The per-pixel sums of :func:`blend_weight` before any pooling, ``(num, den, k)``: ``num`` and ``den``
    (n_px,) the weighted means over each origin's epochs of ``(F - y)(F - E)`` and ``(F - E)^2`` summed over
    the origins (0 where a pixel has none), ``k`` the number of origins with a record.

    ``local_on(o, pixels)``: ``local(o)`` on the given pixels only, (1, >= m, len(pixels)). Given, ``F`` is made only
    where the ensemble has a past forecast (``predict`` keeps its record on every ninth pixel,
    ``skill_gate.record_mask``; the other pixels' sums are 0 either way): the same sums at an eighth of the cost
    (session 27)."""
    num, den, k = np.zeros(n_px), np.zeros(n_px), 0
    e = flat.shape[0] - 1
    for o in origins:
        E = ens(o)
        m = min(int(lead), e - int(o))
        if E is None or m < 1:
            continue
        y = flat[None, o + 1:o + m + 1]
        E = E[:, :m]
        px = slice(None)
        if local_on is not None:
            has = np.isfinite(E[0]).any(axis=0)
            if not has.all():
                px = np.flatnonzero(has)
        F = local(o) if isinstance(px, slice) else local_on(o, px)
        if F is None:
            continue
        if not isinstance(px, slice):
            y, E = y[:, :, px], E[:, :, px]
        a, b = F[:, :m] - y, F[:, :m] - E
        wo = None if weights is None else weights[o + 1:o + m + 1]
        num[px] += np.nan_to_num(wmean(a * b, wo)[0])
        den[px] += np.nan_to_num(wmean(b * b, wo)[0])
        k += 1
    return num, den, k


def blend_weight(flat: np.ndarray, lead: int, origins, ens, local, shape, box: int, guide=None,
                 weights=None, prior: Optional[float] = None, prior_sums=None, local_on=None) -> np.ndarray:
    """The ensemble's weight in the local blend per pixel, (rows*cols,): the least-squares weight of
    the combination ``w E + (1 - w) F`` over the track record, ``w = sum (F - y)(F - E) / sum (F - E)^2``
    clipped to [0, 1], the sums over the origins, their epochs up to the origin of the forecast and
    a ``box`` x ``box`` neighbourhood (``E`` the ensemble's forecasts ``ens(o)``, ``F`` the local classical
    forecast's ``local(o)``, ``y`` what was observed). It is the optimal combination of two forecasts
    whose errors are correlated (Bates and Granger 1969, with the covariance): where the ensemble was
    far off and the classical forecast right it is about 0 even when both records look alike in size,
    which the weight by inverse squared errors (session 4-8) did not give (a stopped mining bowl kept
    8 % of an ensemble 10 mm off). 1 where the ensemble has no record.

    Shrunk towards the scene (session 18): the neighbourhood's mean sums plus ``prior`` (default
    :data:`BLEND_PRIOR`, 1) times the scene's, ``w = (n_box + prior n_scene) / (d_box + prior d_scene)``, both means
    over the pixels with a record (session 42, :data:`BLEND_RECORD_MEANS`; the scene's weight where the box holds
    none). Over every pixel, as until then, the empty cells of points gridded onto a raster (99.7 % of a real
    track's) diluted the scene's mean far more than a box's: beside a box holding one point of a real track the
    scene weighed about a tenth of that point. On a dense raster the two differ only as the record lattice's share
    of a box differs from its share of the scene. A
    neighbourhood holds few independent draws of an atmosphere correlated over 4 to 15 pixels, and its
    weight swings with them; the scene holds many. ``prior_sums``: the scene's mean sums ``(n_scene, d_scene)``
    (:func:`blend_sums` averaged over the raster's pixels with a record, ``gating.scene_blend_prior``); None: those of
    this block (the scene when the block is the whole raster). Replayed from six origins on the eight scenes
    of sessions 14-17 it was better on six or seven of eight against the truth, mean 0.953 -> 0.942 / 0.943
    (docs/skill.md, sessions 17-18). ``local_on``: as in :func:`blend_sums`."""
    R, Wd = shape
    num, den, n = blend_sums(flat, lead, origins, ens, local, R * Wd, weights, local_on)
    if n == 0:
        return np.ones(R * Wd)
    lam = BLEND_PRIOR if prior is None else float(prior)
    has = den > 0 if BLEND_RECORD_MEANS else np.ones(den.shape, bool)  # the pixels with a record (session 42)
    if not has.any():
        return np.ones(R * Wd)
    g_num, g_den = (float(num[has].mean()), float(den[has].mean())) if prior_sums is None else map(float, prior_sums)
    sums = np.where(has, np.stack([num, den]), np.nan).reshape(2, R, Wd)
    num, den = guided_box_mean(sums, box, guide).reshape(2, -1)   # one pass; NaN: no record in the box
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.clip(np.where(np.isfinite(num), (num + lam * g_num) / (den + lam * g_den),
                             np.float64(g_num) / np.float64(g_den)), 0.0, 1.0)
    return np.where(np.isfinite(w), w, 1.0)


def _run_squared_means(x: np.ndarray, weights=None) -> np.ndarray:
    """(n,): the squared weighted mean of ``x`` (m, n) over its epochs, or with :data:`RECORD_BLOCKS` runs, the mean of
    the runs' squared means weighted by their epochs (runs without a value left out; NaN where none has one)."""
    m = x.shape[0]
    k = min(max(RECORD_BLOCKS, 1), m)
    if k == 1:
        return wmean(x[None], weights)[0] ** 2
    num = np.zeros(x.shape[1])
    den = np.zeros(x.shape[1])
    for run in np.array_split(np.arange(m), k):
        sq = wmean(x[run][None], None if weights is None else np.asarray(weights)[run])[0] ** 2
        ok = np.isfinite(sq)
        num += np.where(ok, sq, 0.0) * run.size
        den += ok * run.size
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
