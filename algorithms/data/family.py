"""The classical family of forecasts (:data:`FAMILY`) from one origin, each computed from the history up to that
origin only: what the adaptive anchor combines (:mod:`anchors`, whose module doc says why these members), what the
local forecast and the skill gate weigh, and what the ``regime`` channels show the networks.

Every member is linear in a gap-free series (means of the last epochs, least-squares fits through designs fixed by
the dates, means of such fits): :func:`family_forecasts` applies the members' operator to all gap-free pixels at
once and fits the pixels with gaps one fit at a time (session 26). A fit that several members share (the trajectory
ensemble's windows, the record's seasons of the seasonal candidates) is made once per chunk of pixels (session 48).
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Optional

import numpy as np

from .baselines import TimeFunction, _system, as_time_function, design_matrix, epoch_weights, fit_operator, \
    fit_predict, fit_stats, terms_for_span, years_between
from ..errors import DeformCastError

#: (name, kind, years of history or None for all, extra)
FAMILY = (
    ("persistence", "persistence", None),
    ("mean_last_5", "mean_last", 5),
    ("linear", "linear", None),
    ("linear_1y", "linear", 1.0),
    ("linear_2y", "linear", 2.0),
    ("trajectory_2y", "trajectory", 2.0),
    ("trajectory_3y", "trajectory", 3.0),
    ("trajectory", "trajectory", None),
    ("trajectory_ensemble", "windows", (1.0, 2.0, 3.0, None)),
    ("trajectory_windows", "windows", (1.3, 1.8, 2.3, 2.8)),
)
FAMILY_NAMES = tuple(f[0] for f in FAMILY)


def _start(dates: np.ndarray, end: int, years: Optional[float]) -> int:
    if years is None:
        return 0
    cutoff = dates[end].astype("int64") - int(round(float(years) * 365.25))
    return int(np.searchsorted(dates.astype("int64"), cutoff, side="left"))


def _fit(y, dates, start, end, t_pred, full, time_function=None):
    t_fit = years_between(dates[start:end + 1], dates[end])
    span = float(t_fit[-1] - t_fit[0]) if t_fit.size else 0.0
    deg, periods = terms_for_span(span, full)
    return fit_predict(y[start:end + 1], t_fit, t_pred, deg, periods, time_function=time_function, ref=dates[end])


#: the trend's degree through the last epochs of the series without the record's seasons, per kind: ``seasonal_mean``
#: (session 34) its level, a smoothed persistence that keeps the annual cycle
SEASONAL_DEGREE = {"seasonal_mean": 0, "seasonal_linear": 1, "seasonal_quadratic": 2}
#: kind of a motion that dies out (session 36): ``a + b exp(-t / tau)`` through the last epochs of the series without
#: the record's seasons, the seasons added back; its entry's extra is ``(years of history, tau in years)``
SEASONAL_DECAY = "seasonal_decay"


def _seasonal_linear(y, dates, start, end, t_pred, time_function=None, degree=1, tau=None, memo=None):
    """A line through the last epochs ``start..end`` of the series with its seasonal motion removed, the
    seasonal motion added back: the velocity of the recent regime, the seasons of the whole record
    (annual and semi-annual terms of the all-history fit, where it spans 1.9 years). Without seasonal
    terms: the line alone. ``degree``: the line's degree; ``tau``: the decay of :func:`_trend` instead. ``memo``: a
    dict that keeps the all-history fit for the other members of the same series (:func:`_family_chunk`)."""
    t_all = years_between(dates[:end + 1], dates[end])
    deg, periods = terms_for_span(float(t_all[-1] - t_all[0]) if t_all.size else 0.0)
    if not periods:
        return _trend(y, dates, start, end, t_pred, time_function, degree, tau)
    coef = None if memo is None else memo.get("season")
    if coef is None:
        coef = _season_fit(y, dates, end, t_all, t_pred, deg, periods, time_function)
        if memo is not None:
            memo["season"] = coef
    cols = slice(deg + 1, deg + 1 + 2 * len(periods))

    def season(t):
        return design_matrix(t, deg, periods)[:, cols] @ np.nan_to_num(coef[cols])

    line = _trend(y[:end + 1] - season(t_all), dates, start, end, t_pred, time_function, degree, tau)
    return line + season(np.asarray(t_pred, dtype=np.float64))


def _season_fit(y, dates, end, t_all, t_pred, deg, periods, time_function):
    """The all-history fit's coefficients (p, n) of :func:`_seasonal_linear`."""
    yy, A, _ = _system(y[:end + 1], t_all, t_pred, deg, periods, time_function, dates[end])
    coef = np.full((A.shape[1], yy.shape[1]), np.nan)
    full = np.isfinite(yy).all(axis=0)
    if full.all():     # complete series share one design: one least-squares solve for all of them
        coef[:] = fit_operator(A, epoch_weights(time_function, dates[end], t_all)) @ yy
    elif full.any():
        coef[:, full] = fit_operator(A, epoch_weights(time_function, dates[end], t_all)) @ yy[:, full]
    if (~full).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            coef[:, ~full] = fit_stats(y[:end + 1][:, ~full], t_all, t_pred, deg, periods,
                                       time_function=time_function, ref=dates[end])[0]
    return coef


def _trend(y, dates, start, end, t_pred, time_function, degree, tau=None):
    """A polynomial of ``degree`` (no seasonal terms) through epochs ``start..end``, at ``t_pred``; with ``tau``
    (years): ``a + b exp(-t / tau)`` instead, a motion that dies out with that time constant (the
    exponential term of MintPy's time function, its onset at epoch ``start``: over the window the same fit
    whenever the motion began)."""
    t_fit = years_between(dates[start:end + 1], dates[end])
    if tau is not None:
        tf = as_time_function(time_function) or TimeFunction()
        tf = dataclasses.replace(tf, exp=tf.exp + ((dates[start], float(tau) * 365.25),))
        return fit_predict(y[start:end + 1], t_fit, t_pred, 0, (), time_function=tf, ref=dates[end])
    return fit_predict(y[start:end + 1], t_fit, t_pred, int(degree), (), time_function=time_function, ref=dates[end])


def _mean_last_of(y: np.ndarray, k: int):
    """(mean of the last ``k`` finite values along axis 0, how many there were)."""
    finite = np.isfinite(y)
    rank = np.cumsum(finite[::-1], axis=0)[::-1]      # 1 at the last finite value, 2 before ...
    use = finite & (rank <= int(k))
    n = use.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(use, y, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan), n


def _mean_last(y: np.ndarray, k: int) -> np.ndarray:
    """Mean of the last ``k`` finite values along axis 0 of (T, n); NaN where none.

    Looks at the last ``2 k + 8`` epochs first and goes back over the whole history only for the
    pixels with fewer than ``k`` values there (gaps): the same values (the sums may differ in the last
    bit); going over the whole history for every pixel took 8 % of ``predict``."""
    k = int(k)
    tail = min(y.shape[0], 2 * k + 8)
    out, n = _mean_last_of(y[-tail:], k)
    short = n < k
    if tail < y.shape[0] and short.any():
        out[short] = _mean_last_of(y[:, short], k)[0]
    return out


#: pixels with a gap fitted at once by :func:`family_forecasts` (its temporaries were 400 MB on a 64 000-pixel block)
FAMILY_CHUNK = 16384
#: gap-free pixels per product of the family's operator (:func:`_family_forecasts`): each product's float64 result
#: stays in the cache and goes straight into the output, in its dtype (session 27: 92 000 pixels, 16 members, 15
#: epochs into float32 in 0.17 s against 0.29 s for one product and 0.2 s for its conversion; the same bits)
OPERATOR_CHUNK = 4096


def family_forecasts(hist: np.ndarray, dates, target_dates, time_function=None, members=FAMILY,
                     dtype=np.float64) -> np.ndarray:
    """Every member of :data:`FAMILY` (or of ``members``, entries as in it) from the origin ``hist[-1]``:
    ``(C, h, n)`` in ``dtype`` (float64, or float32 for a cache: the fits run in float64 either way, the values are
    those of float64 results converted).

    ``hist`` (e + 1, n) mm with NaN gaps, the history up to and including the origin; ``dates``
    its e + 1 dates; ``target_dates`` the h forecast dates. NaN where a member cannot be fitted.
    ``time_function``: known events (steps at dates, exponential / logarithmic terms after an
    onset; :class:`baselines.TimeFunction`, e.g. from the STEPS parameter) added to every linear
    and trajectory fit whose window holds data on both sides of the event.
    """
    from .baselines import as_time_function

    tf = as_time_function(time_function)
    y = np.asarray(hist, dtype=np.float64)
    d = np.asarray(dates, dtype="datetime64[D]")
    if y.ndim != 2 or y.shape[0] != d.size:
        raise DeformCastError(f"family_forecasts: history {y.shape} does not match {d.size} dates.")
    if tf is not None and tf.step_dates:
        return _family_per_step_pattern(y, d, target_dates, tf, members).astype(dtype, copy=False)
    return _family_forecasts(y, d, target_dates, tf, members, dtype)


def _family_per_step_pattern(y: np.ndarray, d: np.ndarray, target_dates, tf, members=FAMILY) -> np.ndarray:
    """:func:`family_forecasts` where each step date enters only the fits of the pixels whose history
    shows the step: pixels grouped by the steps they show (:func:`step_detect.groups_by_steps`)."""
    from .step_detect import groups_by_steps

    td = np.atleast_1d(np.asarray(target_dates, dtype="datetime64[D]"))
    out = np.full((len(members), td.size, y.shape[1]), np.nan)
    for cols, sub in groups_by_steps(y, d, tf):
        out[:, :, cols] = _family_forecasts(y[:, cols], d, td, sub, members)
    return out


def family_errors(hist: np.ndarray, dates, target_dates, obs: np.ndarray, weights=None, time_function=None,
                  members=FAMILY) -> np.ndarray:
    """Each member's mean squared error over the epochs after the origin ``hist[-1]``, (C, n) float64: the member's
    forecast as :class:`anchors.FamilyCache` keeps it (float32) against ``obs`` ((m, n), the m epochs after the
    origin), each epoch weighted by ``weights`` (m,) or alike (``track_record.wmean``). The same values as
    ``track_record.record`` makes of ``family_forecasts(..., dtype=float32)``, without the family of every pixel: the
    operator's product and the errors run in chunks of :data:`OPERATOR_CHUNK` pixels (session 27: a gated ``predict``
    block held the family of four earlier origins, 700 MB at a 30-epoch horizon)."""
    from .track_record import squared_errors

    obs = np.asarray(obs, dtype=np.float64)
    out = np.empty((len(members), obs.shape[1]))
    for c, fam in family_chunks(hist, dates, target_dates, time_function, members, np.float32):
        out[:, c] = squared_errors(fam, obs[:, c], weights)
    return out


def family_chunks(hist: np.ndarray, dates, target_dates, time_function=None, members=FAMILY, dtype=np.float64):
    """:func:`family_forecasts` a chunk of :data:`OPERATOR_CHUNK` pixels at a time: ``(slice of the pixels, (C, h, k)
    in dtype)`` pairs, the members' operator found once; the same values. One pair for all pixels where the operator
    does not serve (known steps, fewer pixels than epochs, no gap-free pixel)."""
    from .baselines import as_time_function

    tf = as_time_function(time_function)
    y = np.asarray(hist, dtype=np.float64)
    d = np.asarray(dates, dtype="datetime64[D]")
    n, T = y.shape[1], y.shape[0]
    if (tf is not None and tf.step_dates) or n <= T or not np.isfinite(y).all(axis=0).any():
        yield slice(0, n), family_forecasts(y, d, target_dates, tf, members, dtype=dtype)
        return
    op = _family_by_fits(np.eye(T), d, target_dates, tf, members)
    for j in range(0, n, OPERATOR_CHUNK):
        c = slice(j, min(n, j + OPERATOR_CHUNK))
        yield c, _family_forecasts(y[:, c], d, target_dates, tf, members, dtype, op)


def _family_forecasts(y: np.ndarray, d: np.ndarray, target_dates, tf, members=FAMILY, dtype=np.float64,
                      op: Optional[np.ndarray] = None) -> np.ndarray:
    """The family of pixels that share one time function ``tf``. Every member is linear in a gap-free series
    (means of the last epochs, least-squares fits through fixed designs, means of fits), so for the pixels without
    a gap the family is one matrix product: the members' operator ``(C h, T)``, found by forecasting the
    columns of the identity (:func:`_family_by_fits` on ``T`` columns), times the series. The pixels with a gap are
    fitted one fit at a time. Session 26: 0.13 s against 0.78 s for 92 000 gap-free pixels and 13 members
    (the same values to 1e-13: only the order of the sums differs; docs/benchmarks.md, "Session 26"). The product
    runs in chunks of :data:`OPERATOR_CHUNK` pixels straight into the output (session 27). ``op``: the operator, when
    the caller has it (:func:`family_errors`, a chunk at a time: then it is used whatever the chunk's size)."""
    n, T = y.shape[1], y.shape[0]
    full = np.isfinite(y).all(axis=0)
    if (op is None and n <= T) or not full.any():      # a few pixels: no cheaper than fitting them
        return _family_by_fits(y, d, target_dates, tf, members).astype(dtype, copy=False)
    if op is None:
        op = _family_by_fits(np.eye(T), d, target_dates, tf, members)        # (C, h, T)
    C, h = op.shape[:2]
    opm = op.reshape(C * h, T)
    if full.all():
        out = np.empty((C * h, n), dtype)
        for j in range(0, n, OPERATOR_CHUNK):
            out[:, j:j + OPERATOR_CHUNK] = opm @ y[:, j:j + OPERATOR_CHUNK]
        return out.reshape(C, h, n)
    out = np.empty((C, h, n), dtype)
    out[:, :, full] = (opm @ y[:, full]).reshape(C, h, -1)
    out[:, :, ~full] = _family_by_fits(y[:, ~full], d, target_dates, tf, members)
    return out


def _family_by_fits(y: np.ndarray, d: np.ndarray, target_dates, tf, members=FAMILY) -> np.ndarray:
    """The family fit by fit, in chunks of :data:`FAMILY_CHUNK` pixels (each pixel's fits are its own; the
    temporaries stay small). Pixels without any value are NaN, never fitted (session 41: points gridded onto a raster
    leave most cells empty; the skill gate of 442 points on 138 000 cells spent 3/4 of its time fitting them)."""
    some = np.isfinite(y).any(axis=0)
    if not some.all():
        out = np.full((len(members), np.atleast_1d(np.asarray(target_dates)).size, y.shape[1]), np.nan)
        if some.any():
            out[:, :, some] = _family_by_fits(y[:, some], d, target_dates, tf, members)
        return out
    if y.shape[1] <= FAMILY_CHUNK:
        return _family_chunk(y, d, target_dates, tf, members)
    h = np.atleast_1d(np.asarray(target_dates)).size
    out = np.empty((len(members), h, y.shape[1]))
    for j in range(0, y.shape[1], FAMILY_CHUNK):
        out[:, :, j:j + FAMILY_CHUNK] = _family_chunk(y[:, j:j + FAMILY_CHUNK], d, target_dates, tf, members)
    return out


def _family_chunk(y: np.ndarray, d: np.ndarray, target_dates, tf, members=FAMILY) -> np.ndarray:
    end = d.size - 1
    td = np.atleast_1d(np.asarray(target_dates, dtype="datetime64[D]"))
    t_pred = years_between(td, d[end])
    h, n = td.size, y.shape[1]
    out = np.full((len(members), h, n), np.nan)   # every pixel holds a value (:func:`_family_by_fits` keeps the rest NaN)
    memo = {}       # fits that several members share (session 48: the trajectory ensemble's and the seasons)

    def fit(start, full):
        if (start, full) not in memo:
            memo[(start, full)] = _fit(y, d, start, end, t_pred, full, tf)
        return memo[(start, full)]

    for c, (_, kind, arg) in enumerate(members):
        if kind == "persistence":
            out[c] = _mean_last(y, 1)[None]
        elif kind == "mean_last":
            out[c] = _mean_last(y, int(arg))[None]
        elif kind in ("linear", "trajectory"):
            out[c] = fit(_start(d, end, arg), kind == "trajectory")
        elif kind in SEASONAL_DEGREE:
            out[c] = _seasonal_linear(y, d, _start(d, end, arg), end, t_pred, tf, SEASONAL_DEGREE[kind], memo=memo)
        elif kind == SEASONAL_DECAY:
            out[c] = _seasonal_linear(y, d, _start(d, end, arg[0]), end, t_pred, tf, tau=arg[1], memo=memo)
        else:  # windows
            starts = sorted({_start(d, end, yrs) for yrs in arg})
            fits = np.stack([fit(s, True) for s in starts])
            ok = np.isfinite(fits)
            cnt = ok.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[c] = np.where(cnt > 0, np.where(ok, fits, 0.0).sum(axis=0) / np.maximum(cnt, 1), np.nan)
    return out
