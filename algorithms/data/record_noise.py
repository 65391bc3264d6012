"""The targets' noise taken out of the local classical forecast's track record (session 40).

Each candidate's pooled record (``anchors.local_forecast``) is its mean squared error against observations that hold
the targets' noise, the same for every candidate: on a noisy stack the inverse squared records are nearly flat and
candidates that forecast badly keep weight. Taking the noise out sharpens the weights; on our generator's 24 replayed
scenes that brought the local forecast from 1.005 to 0.976 of the best family member against the truth (all 24
better), on the second generator's it lost (0.994 -> 1.017 against the expected observation): there the records are
mostly noise and sharper weights follow it. So each scene chooses from its own past, with a margin
(:func:`noise_choice`; docs/skill.md, "Session 39" and "Session 40").

Since session 41 the record is the squared mean error over each origin's scored epochs (``track_record.RECORD_MEAN``),
which holds about 1/m of the targets' noise: the choice is off by default and kept for benchmarks (docs/skill.md,
"Session 41").
"""
from __future__ import annotations

import os
from typing import Callable, Optional

import numpy as np

from .track_record import RECORD_MEAN, local_spacing

#: the targets' noise taken out of the classical candidates' pooled record (:func:`noise_choice`, session 40): only
#: with the mean squared error as the record (``DEFORMCAST_RECORD_MEAN=0``), whose noise it is; since session 41 the
#: record is the squared mean error, which holds about 1/m of that noise, and the choice is off.
#: ``DEFORMCAST_RECORD_NOISE=0``: never (sessions 4-39), ``1``: session 40's choice, for benchmarks
RECORD_NOISE = os.environ.get("DEFORMCAST_RECORD_NOISE", "0" if RECORD_MEAN else "1") != "0"
#: the noise is taken out only where the scene's past local forecasts with it were this much closer to what was then
#: observed (``DEFORMCAST_NOISE_MARGIN``; session 39 chose 1 % on 48 replayed scenes)
NOISE_MARGIN = float(os.environ.get("DEFORMCAST_NOISE_MARGIN", "0.01"))
#: at least this share of each pooled record is kept when the noise is taken out
NOISE_KEEP = 0.1
#: the earliest origin of :func:`noise_sse`'s past local forecasts
NOISE_MIN_ORIGIN = 30


def target_noise(flat: np.ndarray, dates, lead: int) -> float:
    """The noise variance of the local track record's targets: the mean over the last ``lead + lead // 3`` dates of
    the history ``flat`` (epochs, n; up to the origin) of each date's noise squared, :func:`date_weights.date_spread`
    of its complete series (0 where it cannot be estimated). The noise every pixel of a date shares (the reference
    area's) is not in it."""
    from .date_weights import date_spread

    flat = np.asarray(flat, dtype=np.float64)
    ok = np.isfinite(flat).all(axis=0)
    s = date_spread(flat[:, ok], dates)
    if s is None:
        return 0.0
    L = int(lead)
    return float(np.mean(s[-(L + L // 3):] ** 2))


def noise_backs(lead: int) -> tuple:
    """How far before the origin :func:`noise_sse`'s past local forecasts start: the lead and the first record
    origin's distance (lead 15: 15 and 20 epochs), so that their whole lead lies in the history."""
    return int(lead), int(lead) + local_spacing(lead)


def without_noise(pooled: np.ndarray, noise: float) -> np.ndarray:
    """The pooled records ``pooled`` less the noise variance ``noise``, at least :data:`NOISE_KEEP` of each kept
    (``pooled`` itself where ``noise`` is not positive)."""
    return pooled if noise <= 0 else np.maximum(pooled - noise, NOISE_KEEP * pooled)


def noise_sse(hist: np.ndarray, dates, lead: int, forecast: Callable, time_function=None, cache=None,
              score: Optional[np.ndarray] = None, noise_at=None, memo: Optional[dict] = None) -> np.ndarray:
    """The sums of squared errors ``[without, with]`` of the local forecasts (``forecast``: ``anchors.local_forecast``,
    which this module does not import: it calls :func:`auto_noise`) from the origins :func:`noise_backs`
    before the end of ``hist`` (e + 1, rows, cols), over their ``lead`` epochs, against what was observed then, made
    without and with the targets' noise (:func:`target_noise` of the history up to each of those origins, or
    ``noise_at(origin)``) taken out of the record; over the pixels ``score`` ((rows*cols,) bool; all when None) that
    both forecasts and the observations hold. Reads nothing after the end of ``hist``. Origins before
    :data:`NOISE_MIN_ORIGIN` are left out (zeros when none is left). ``memo`` (a block's, without ``score`` and
    ``noise_at``): each earlier origin's sums, kept for the choices of later origins that share it (the gate's and
    the calibration's origins five epochs apart, at lead 15)."""
    y = np.asarray(hist, dtype=np.float64)
    d = np.asarray(dates, dtype="datetime64[D]")
    e, L = y.shape[0] - 1, int(lead)
    flat = y.reshape(e + 1, -1)
    sse = np.zeros(2)
    for b in noise_backs(L):
        p = e - b
        if p < NOISE_MIN_ORIGIN:
            continue
        if memo is not None and (p, L) in memo:
            sse += memo[(p, L)]
            continue
        s2 = target_noise(flat[:p + 1], d[:p + 1], L) if noise_at is None else float(noise_at(p))
        fcs = forecast(y[:p + 1], d[:p + 1], d[p + 1:p + L + 1], L, time_function, past_family=cache,
                             record_noise=[0.0, s2])
        obs = flat[p + 1:p + L + 1]
        ok = np.isfinite(obs).all(axis=0) if score is None else np.asarray(score, bool) & np.isfinite(obs).all(axis=0)
        fcs = [f.reshape(L, -1) for f in fcs]
        for f in fcs:
            ok &= np.isfinite(f).all(axis=0)
        got = np.array([float(np.sum((f[:, ok] - obs[:, ok]) ** 2)) for f in fcs])
        if memo is not None:
            memo[(p, L)] = got
        sse += got
    return sse


def noise_chosen(sse) -> bool:
    """Whether the noise is taken out, from :func:`noise_sse`'s sums: only where the forecasts with it were closer
    by more than :data:`NOISE_MARGIN`."""
    return bool(sse[1] < (1.0 - NOISE_MARGIN) * sse[0])


def auto_noise(hist: np.ndarray, dates, lead: int, forecast: Callable, time_function=None, cache=None) -> float:
    """``anchors.local_forecast``'s ``record_noise="auto"``: :func:`noise_choice`'s noise, 0 with
    :data:`RECORD_NOISE` off."""
    return noise_choice(hist, dates, lead, forecast, time_function, cache)["noise"] if RECORD_NOISE else 0.0


def noise_choice(hist: np.ndarray, dates, lead: int, forecast: Callable, time_function=None, cache=None) -> dict:
    """The noise variance the local forecast from the end of ``hist`` (e + 1, rows, cols) takes out of its
    candidates' record (session 40): ``{"noise", "sse", "target_noise"}``, ``noise`` = :func:`target_noise` where
    :func:`noise_chosen` says so from :func:`noise_sse` on all the pixels given, else 0. Kept per origin in ``cache``.

    Why: the module's docstring (docs/skill.md, "Session 39" and "Session 40").
    ``forecast``: ``anchors.local_forecast``. ``cache``: the block's ``anchors.FamilyCache``, whose history holds
    ``hist``'s."""
    key = (int(np.shape(hist)[0]) - 1, int(lead))
    if cache is not None and key in cache.noise:
        return cache.noise[key]
    y = np.asarray(hist, dtype=np.float64)
    # the earlier origins' errors without keeping their family: a cache that keeps it (the gate's and the
    # calibration's, over many origins) would hold twice as many origins for these forecasts
    view = cache if cache is None or cache.lean else type(cache)(cache.flat, cache.dates, cache.lead, cache.tf, True)
    sse = noise_sse(y, dates, lead, forecast, time_function, view, memo=None if cache is None else cache.noise_origins)
    s2 = target_noise(y.reshape(y.shape[0], -1), dates, lead)
    got = {"noise": s2 if noise_chosen(sse) else 0.0, "sse": sse.tolist(), "target_noise": s2}
    if cache is not None:
        cache.noise[key] = got
    return got
