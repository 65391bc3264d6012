"""Time-series handling of displacement stacks: regular sampling and re-referencing (QGIS-free).

Why regularise
--------------
The models see a series as a sequence of equally spaced epochs. Real InSAR products are not
equally spaced: Sentinel-1 stacks switch from 12-day to 6-day sampling (EGMS L2 2016-2021 when
Sentinel-1B flew, and back to 12 days after its loss in December 2021), acquisitions are
missing, and single pixels lose coherence for some epochs. Liu et al. (2026) work on an
already-regular series and do not say how to get one, so the rule here is ours:

* **Target epochs**: the first acquisition date, then every ``step_days`` days up to (and
  including, when it falls on the step) the last acquisition. ``step_days`` defaults to the
  **median** spacing of the acquisitions, i.e. the spacing that most of the record already has.
* **Value at a target epoch, per pixel**: if the pixel has a valid value observed on exactly
  that date, that value. Otherwise linear interpolation in time between the pixel's nearest
  valid observation before and its nearest valid observation after the target date.
  Linear interpolation is the least-assuming choice for cumulative displacement (it neither
  adds nor removes deformation between two measurements and never overshoots).
* **Gaps stay gaps**: when the two bracketing valid observations are more than
  ``max_gap_days`` apart (default ``3 x step_days``), the target epoch stays NaN rather than
  being bridged with a straight line over a period with no measurement. Nothing is extrapolated:
  before a pixel's first valid observation and after its last one the value is NaN.

Re-referencing (:func:`rereference`) subtracts each pixel's value at one epoch (the first by
default), so every series starts at 0 mm. A pixel with no value at the reference epoch cannot be
referred to it and becomes NaN throughout (it would otherwise be on a different datum from its
neighbours).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..errors import DeformCastError
from ..io.raster import check_dates


def median_step_days(dates) -> int:
    """The median spacing of ``dates`` in whole days (at least 1)."""
    d = np.asarray(dates, dtype="datetime64[D]")
    if d.size < 2:
        raise DeformCastError("A time series needs at least two acquisition dates to be regularised.")
    return max(1, int(round(float(np.median(np.diff(d).astype(np.int64))))))


def regular_dates(dates, step_days: int) -> np.ndarray:
    """First date, then every ``step_days`` up to the last date (datetime64[D])."""
    d = np.asarray(dates, dtype="datetime64[D]")
    span = int((d[-1] - d[0]).astype(np.int64))
    n = span // int(step_days) + 1
    return d[0] + np.arange(n, dtype=np.int64) * int(step_days)


def regularise(values: np.ndarray, dates, step_days: Optional[int] = None,
               max_gap_days: Optional[float] = None, chunk: int = 262144,
               progress=None) -> Tuple[np.ndarray, np.ndarray]:
    """Resample a series onto a fixed time step (rule in the module docstring).

    ``values``: ``(T, ...)`` with NaN for missing values, e.g. ``(T, N)`` points or
    ``(T, H, W)`` a stack; ``dates``: T acquisition dates in time order without duplicates.
    ``step_days``: target spacing (default: median spacing). ``max_gap_days``: longest interval
    between two valid observations that may be bridged (default ``3 * step_days``).
    Returns ``(values (T', ...) float32, dates (T',) datetime64[D])``. Pixels are processed in
    chunks of ``chunk`` columns so memory stays bounded.
    """
    v = np.asarray(values)
    d = check_dates(np.asarray(dates, dtype="datetime64[D]"), "the time series")
    if v.shape[0] != d.size:
        raise DeformCastError(f"The series has {v.shape[0]} epochs but {d.size} dates were given; "
                              "give one date per epoch.")
    step = median_step_days(d) if step_days is None else int(step_days)
    if step < 1:
        raise DeformCastError("The regularisation step must be at least 1 day.")
    max_gap = 3.0 * step if max_gap_days is None else float(max_gap_days)
    tgt = regular_dates(d, step)
    t_obs = (d - d[0]).astype(np.int64).astype(np.float64)
    t_tgt = (tgt - d[0]).astype(np.int64).astype(np.float64)
    T = d.size
    flat = v.reshape(T, -1)
    N = flat.shape[1]
    out = np.full((tgt.size, N), np.nan, dtype=np.float32)
    # index of the last original epoch at or before each target date
    k = np.searchsorted(t_obs, t_tgt, side="right") - 1
    idx = np.arange(T, dtype=np.int32)[:, None]
    for c0 in range(0, N, max(1, int(chunk))):
        c1 = min(N, c0 + chunk)
        block = flat[:, c0:c1].astype(np.float64)
        valid = np.isfinite(block)
        # last valid index at or before t, first valid index at or after t (-1 / T when none)
        prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=0)
        nxt = np.minimum.accumulate(np.where(valid, idx, T)[::-1], axis=0)[::-1]
        cols = np.arange(c1 - c0)
        for j in range(tgt.size):
            kk = k[j]
            p = prev[kk]
            exact = (t_obs[kk] == t_tgt[j]) & valid[kk]
            n_idx = nxt[kk + 1] if kk + 1 < T else np.full(c1 - c0, T, dtype=np.int32)
            ok = (p >= 0) & (n_idx < T)
            pc = np.clip(p, 0, T - 1)
            nc = np.clip(n_idx, 0, T - 1)
            tp, tn = t_obs[pc], t_obs[nc]
            ok &= (tn - tp) <= max_gap
            w = np.where(tn > tp, (t_tgt[j] - tp) / np.where(tn > tp, tn - tp, 1.0), 0.0)
            vp, vn = block[pc, cols], block[nc, cols]
            interp = vp + w * (vn - vp)
            res = np.where(ok, interp, np.nan)
            res = np.where(exact, block[kk], res)
            out[j, c0:c1] = res
        if progress is not None:
            progress.set(c1 / N)
    return out.reshape((tgt.size,) + v.shape[1:]), tgt


def rereference(values: np.ndarray, index: int = 0) -> np.ndarray:
    """Displacement relative to epoch ``index`` of each pixel (that epoch becomes 0 mm).

    Pixels with no value at the reference epoch become NaN throughout (see module docstring).
    """
    v = np.asarray(values, dtype=np.float32)
    T = v.shape[0]
    if not -T <= int(index) < T:
        raise DeformCastError(f"Reference epoch {index} does not exist; the series has {T} epochs "
                              f"(give 0..{T - 1}).")
    ref = v[int(index)]
    return (v - ref[None]).astype(np.float32)


#: the longest run of missing acquisitions inside a forecast's input window that is filled (epochs)
MAX_WINDOW_GAP = 3
#: the span before a forecast origin whose short gaps are filled (epochs): the same for every member, whatever its
#: window (members share their classical anchor, fitted on the filled history), longer than any searched window
FILL_EPOCHS = 64


def fill_window_gaps(hist: np.ndarray, dates, window: int, max_gap: int = MAX_WINDOW_GAP) -> np.ndarray:
    """``hist`` (e + 1, ...) with the gaps of up to ``max_gap`` missing acquisitions inside its last ``window``
    epochs filled by linear interpolation in time between the acquisitions on either side (session 22; the
    forecasts pass :data:`FILL_EPOCHS`, so every member sees the same history).

    A forecast's networks read a value at every epoch of their input window; without this a pixel with one
    missing acquisition there got no forecast at all (with 2 % of the values missing at random, a third of
    the pixels of a 20-epoch window). Only gaps with a value on both sides are filled: the last epoch (the
    forecast origin) is never invented, and a record that ends earlier stays unforecast. Returns ``hist``
    itself when nothing is filled, else a float32 copy."""
    h = np.asarray(hist)
    T = h.shape[0]
    w = int(min(int(window), T))
    flat = h.reshape(T, -1)
    gap_cols = np.nonzero(~np.isfinite(flat[T - w:]).all(axis=0) & np.isfinite(flat[-1]))[0]
    if gap_cols.size == 0 or w < 1:
        return hist
    lo = max(0, T - w - int(max_gap))                    # a gap at the window's start needs its left neighbour
    sub = flat[lo:, gap_cols].astype(np.float64)
    m = sub.shape[0]
    ok = np.isfinite(sub)
    idx = np.arange(m)[:, None]
    prev = np.maximum.accumulate(np.where(ok, idx, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(ok, idx, m)[::-1], axis=0)[::-1]
    fill = ~ok & (prev >= 0) & (nxt < m) & (nxt - prev - 1 <= int(max_gap))
    fill[: m - w] = False                                # only inside the window
    if not fill.any():
        return hist
    t = (np.asarray(dates, dtype="datetime64[D]")[lo:T] - np.datetime64("1970-01-01", "D")).astype(np.float64)
    pc, nc = np.clip(prev, 0, m - 1), np.clip(nxt, 0, m - 1)
    cols = np.arange(sub.shape[1])[None, :]
    tp, tn = t[pc], t[nc]
    frac = (t[:, None] - tp) / np.where(tn > tp, tn - tp, 1.0)
    sub = np.where(fill, sub[pc, cols] + frac * (sub[nc, cols] - sub[pc, cols]), sub)
    out = np.array(flat, dtype=np.float32, copy=True)
    out[lo:, gap_cols] = sub.astype(np.float32)
    return out.reshape(h.shape)
