"""The spatial analog: a candidate of the local classical forecast that follows a neighbour's earlier path (session 49).

Why: a longwall panel moves a subsidence front across the pixels, and a bowl's edge spreads outwards. A pixel ahead of
the front follows, a few months later, the path its neighbours behind the front have already taken. No fit through a
pixel's own past extrapolates that (docs/skill.md, "Session 46": persistence was the least wrong there), but the
stack holds it: the neighbours' earlier paths. This is the method of analogues (Lorenz) with the neighbourhood as the
library, the lead-lag that InSAR analysts read off a front's profile.

At origin ``o`` the pixel's last :data:`WINDOW` epochs, each minus the value at ``o``, are compared with the same
span of every neighbour within :data:`RADIUS` pixels (the pixel itself included) ending ``L`` = 1 .. :data:`MAX_LAG`
epochs earlier, each minus its value at its end; each neighbour keeps its closest lag (mean squared difference). The
:data:`NEIGHBOURS` closest neighbours give the forecast: the pixel's value at ``o`` plus the mean of what those
neighbours did over the ``h`` epochs after the end of their matched span. Where ``h`` exceeds the lag ``L``, the
neighbour's own analog forecast continues its path (computed step by step, so each step needs only the steps before
it): the front is followed back along the pixels it has crossed. Gaps are filled by linear interpolation in time
first; a pixel without any value stays NaN. A pixel the front has not reached yet has nothing in its own path that
tells it is coming: the analog sees a front only where the pixel has started to move within the matched window.

In a raster read in blocks the search and the continued paths stop at the block's edge. The paths continued from
neighbour to neighbour reach beyond one radius, so the analog adds twice :data:`RADIUS` to the rows of halo the local
forecast reads around a block (``anchors.LOCAL_HALO``: 26 rows instead of 14). On a front crossing the raster
diagonally, the analog of a block's rows read with 14, 20, 26 and 34 rows of halo differed from the whole raster's by
at most 0.47, 0.10, 0.014 and 0.0007 mm. With it on and the 26 rows, ``predict`` in blocks of 3 rows gave the whole
raster's forecast to 1e-4 mm (the block tests of ``tests/test_skill_gate.py``, ``test_flat_record.py`` and
``test_record_noise.py``, run with ``DEFORMCAST_ANALOG=1`` in session 49).

The local forecast weighs it by its track record like every other candidate (:data:`ANALOG`, off by default: its
cost): where the ground does not move as a front, its record is that of a noisy persistence and it takes little weight.
"""
import os
from typing import Optional

import numpy as np

#: epochs of the path matched
WINDOW = 10
#: neighbours searched: a (2 RADIUS + 1)^2 box around the pixel
RADIUS = 6
#: the longest lag (epochs) between the pixel's path and a neighbour's
MAX_LAG = 20
#: the paths averaged
NEIGHBOURS = 5
#: a block with at least this share of pixels with a value is searched whole (contiguous slices), one with less (a
#: raster of scattered points) at its pixels with a value only (the same forecast, less work)
DENSE = 0.5
#: the analog is offered at a pixel only where at least this share of the (2 RADIUS + 1)^2 box around it (outside the
#: raster counts as empty) has a value: a quarter, 42 of 169 pixels (a dense raster's corner holds 49)
MIN_SHARE = 0.25


def fill_gaps(y: np.ndarray) -> np.ndarray:
    """``y`` (T, ...) with each pixel's missing epochs filled by linear interpolation in time (the first and last
    values held beyond them); pixels without any value stay NaN. A new float64 array."""
    y = np.asarray(y, dtype=np.float64)
    T = y.shape[0]
    out = y.reshape(T, -1).copy()
    bad = ~np.isfinite(out)
    some = bad.any(axis=0) & ~bad.all(axis=0)       # only the pixels with gaps and a value (points: few of the raster)
    if not some.any():
        return out.reshape(y.shape)
    f, bad = out[:, some], bad[:, some]
    t = np.arange(T)[:, None]
    good_t = np.where(~bad, t, -1)
    prev = np.maximum.accumulate(good_t, axis=0)                         # last valid epoch at or before t
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(~bad, t, T), 0), axis=0), 0)   # first valid at or after
    has_prev, has_next = prev >= 0, nxt < T
    vp = np.take_along_axis(f, np.clip(prev, 0, T - 1), axis=0)
    vn = np.take_along_axis(f, np.clip(nxt, 0, T - 1), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(nxt > prev, (t - prev) / np.maximum(nxt - prev, 1), 0.0)
        mid = vp + frac * (vn - vp)
    fill = np.where(has_prev & has_next, mid, np.where(has_prev, vp, np.where(has_next, vn, np.nan)))
    f[bad] = fill[bad]
    out[:, some] = f
    return out.reshape(y.shape)


def analog_forecast(hist: np.ndarray, horizon: int, window: int = WINDOW, radius: int = RADIUS,
                    max_lag: int = MAX_LAG, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """The analog forecast of the block ``hist`` (T, rows, cols), history up to its last epoch only, over the next
    ``horizon`` epochs: float64 ``(horizon, rows, cols)``; NaN at pixels without any value. Where the history is too
    short for one lag (``T < window + 2``), persistence of the filled series."""
    Y = fill_gaps(hist)
    T, R, C = Y.shape
    o = T - 1
    H = int(horizon)
    lags = min(int(max_lag), o - int(window))
    if lags < 1 or H < 1:
        return np.repeat(Y[o:o + 1], max(H, 0), axis=0)
    W, r, K = int(window), int(radius), int(neighbours)
    side = 2 * r + 1
    has = np.isfinite(Y[o])
    dense = has.mean() >= DENSE     # scattered points: the pixels with a value only, each neighbour gathered
    pi, pj = np.nonzero(np.ones_like(has) if dense else has)
    n = pi.size
    A = (Y[o - W:o, pi, pj] - Y[o, pi, pj]).astype(np.float32)         # their paths, times o - W .. o - 1
    pad = np.pad(Y[o - lags - W:o + 1].astype(np.float32), ((0, 0), (r, r), (r, r)), constant_values=np.nan)
    best_d = np.empty((side * side, n), np.float32)          # each neighbour's closest path over the lags ...
    best_m = np.empty((side * side, n), np.int64)            # ... and its lag, L = lags - m
    buf, dist = np.empty((W, n), np.float32), np.empty((lags, n), np.float32)
    for cell in range(side * side):
        dy, dx = divmod(cell, side)
        if dense:                                                       # times o - lags - W .. o
            Z = np.ascontiguousarray(pad[:, dy:dy + R, dx:dx + C]).reshape(pad.shape[0], n)
        else:
            Z = np.take(pad.reshape(pad.shape[0], -1), (pi + dy) * (C + 2 * r) + pj + dx, axis=1)
        for m in range(lags):           # the neighbour's path over o - L - W .. o - L - 1 minus its value at o - L
            np.subtract(Z[m:m + W], Z[m + W], out=buf)
            buf -= A
            buf *= buf
            buf.sum(axis=0, out=dist[m])
        np.nan_to_num(dist, copy=False, nan=np.inf)
        best_m[cell] = np.argmin(dist, axis=0)
        best_d[cell] = np.take_along_axis(dist, best_m[cell][None], 0)[0]
    K = min(K, side * side)
    pick = np.argpartition(best_d, K - 1, axis=0)[:K]                  # the K closest neighbours
    use = np.isfinite(np.take_along_axis(best_d, pick, 0))
    L = lags - np.take_along_axis(best_m, pick, 0)
    qi = np.clip(pi[None] + pick // side - r, 0, R - 1)
    qj = np.clip(pj[None] + pick % side - r, 0, C - 1)
    ext = np.concatenate([Y, np.full((H, R, C), np.nan)])
    base = ext[o - L, qi, qj]
    cnt = use.sum(axis=0)
    for h in range(1, H + 1):
        inc = np.where(use, ext[o - L + h, qi, qj] - base, 0.0)
        ext[o + h, pi, pj] = Y[o, pi, pj] + np.where(cnt > 0, inc.sum(axis=0) / np.maximum(cnt, 1), 0.0)
    return ext[o + 1:]


#: the analog among the local forecast's candidates (``anchors.local_forecast``): off by default, ``DEFORMCAST_ANALOG=1``
#: puts it in (set before the package is imported: ``anchors.LOCAL_HALO`` grows with it). Measured in session 49
#: (docs/skill.md): the delivered forecast gains up to 8 % where a front crosses the pixels and is neutral elsewhere,
#: but it costs about 6 s per origin for a block of 64 000 pixels (the local forecast of such a block from 4 s to 96 s),
#: which would put ``predict`` on a million pixels far beyond its five minutes. It waits for a cheaper search.
ANALOG = os.environ.get("DEFORMCAST_ANALOG", "0") == "1"
#: offered only at pixels within :data:`RADIUS` of a pixel whose two-year velocity lies at least this many standard
#: errors from zero (``pooling.trend_evidence``): a pixel with no moving ground around it has no path to follow.
#: 0: everywhere. ``DEFORMCAST_ANALOG_T`` sets it for experiments.
OFFER_T = float(os.environ.get("DEFORMCAST_ANALOG_T", "0"))


def attach(y: np.ndarray, lead: int, steps: int, family, fresh: bool, forecasts, errors, on=None, cache=None):
    """The analog as the last candidate of ``anchors.local_forecast``'s block ``y`` (e + 1, rows, cols): returns
    ``(family, forecasts, errors, on)`` with it appended. ``family``: the candidates at the origin, (C, steps, n) or,
    when ``fresh``, an iterator of pixel chunks ``(px, (C, steps, len(px)))``; ``forecasts(o)``: the candidates from
    an earlier origin (C, >= m, n) or None; ``errors(o, m, weights)``: their squared errors, or None (then
    ``forecasts`` serves); ``on(o, pixels)``: the candidates from ``o`` on some pixels (``FamilyCache.on``) or None.
    Each origin's analog is made once, kept in ``cache`` (an ``anchors.FamilyCache`` of the block, whose ``release``
    forgets it with the families) or for this call."""
    from .track_record import squared_errors

    memo = cache._memo if cache is not None else {}
    flat = y.reshape(y.shape[0], -1)
    e = y.shape[0] - 1

    def at(o: int, h: int) -> np.ndarray:
        key = (int(o), "analog", int(h))
        if key not in memo:
            memo[key] = analog_forecast(y[:int(o) + 1], int(h)).reshape(int(h), -1).astype(np.float32)
        return memo[key]

    def past(o):
        f = forecasts(o)
        return None if f is None else np.concatenate([f, at(o, lead)[None, :f.shape[1]].astype(f.dtype)])

    def errs(o, m, w):
        got = errors(o, m, w)
        return None if got is None else np.concatenate([got, squared_errors(at(o, lead)[None, :m].astype(
            np.float64), flat[o + 1:o + m + 1], w)])

    def on_px(o, px):
        f = on(o, px)
        return np.concatenate([f, at(o, lead)[None, :f.shape[1], px].astype(f.dtype)])

    now = at(e, steps)[None]
    if fresh:
        family = ((px, np.concatenate([f, now[:, :, px].astype(f.dtype)])) for px, f in family)
    else:
        family = np.concatenate([family, now.astype(family.dtype)])
    return family, past, (errs if errors is not None else None), (on_px if on is not None else None)


def offer(offered: Optional[np.ndarray], guide, shape, C: int, last: Optional[np.ndarray] = None) -> np.ndarray:
    """(C, n) bool: ``offered`` ((C - 1, n), ``anchors.level_offer``'s; None: every candidate everywhere) and the
    analog's row, the last: True where :data:`OFFER_T` allows it, only in a block where at least :data:`DENSE` of the
    pixels have a value at the origin (``last``, the block's values there; None: all), and there only at pixels with at
    least :data:`MIN_SHARE` of the :data:`RADIUS` box around them holding one. Scattered points are too far apart for a
    front to pass from one to the next: replayed on the real Doñana points (session 49), the analog offered everywhere
    lost 0.5 % on the ascending track, and offered where a quarter of the box held points, 0.4 %."""
    out = np.ones((C, int(np.prod(shape))), bool)
    if offered is not None:
        out[:-1] = offered
    if last is not None and np.isfinite(last).mean() < DENSE:
        out[-1] = False
    elif last is not None:
        from scipy.ndimage import uniform_filter

        share = uniform_filter(np.isfinite(np.reshape(last, shape)).astype(np.float64), size=2 * RADIUS + 1,
                               mode="constant", cval=0.0)
        out[-1] &= share.reshape(-1) >= MIN_SHARE - 1e-9
    if OFFER_T > 0 and guide is not None:
        from scipy.ndimage import maximum_filter
        from .pooling import trend_evidence

        z = np.nan_to_num(trend_evidence(guide), nan=0.0).reshape(shape)
        out[-1] &= maximum_filter(z, size=2 * RADIUS + 1, mode="constant", cval=0.0).reshape(-1) >= OFFER_T
    return out
