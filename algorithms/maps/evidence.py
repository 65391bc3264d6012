"""The evidence that scales the calibrated spread per pixel and lead step (:mod:`calibration`), and the
acquisition-noise terms by season of the target date (session 8, optional).

Evidence (:data:`FEATURES`), non-negative and non-decreasing along the horizon, from the history up to
the forecast origin only: ``family`` the disagreement (std) of the classical forecasts of
:mod:`anchors`, ``residual`` the residual scatter of the trajectory fit on the last
:data:`RESIDUAL_YEARS`, ``members`` the members' own disagreement, ``motion`` how far the forecast
moves from the last value.

Seasonal acquisition noise (:data:`NOISE_FEATURES`, ``seasonal=True``): the troposphere of a summer
acquisition is more turbulent than a winter one's, so the noise of the target date follows the
season. Four terms ``s_k(t) = sqrt((1 + cos(2 pi (doy(t) - peak_k) / 365.25)) / 2)`` with peaks in
January, April, July and October, the same at every pixel of a date; their non-negative weights
(``b_k s_k²`` in the variance) add up to any non-negative annual cycle. They are not made
non-decreasing along the horizon: the band of a forecast into winter narrows again after the summer.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Optional

import numpy as np

from ..data import anchors, dataset
from ..order_stats import member_median

FEATURES = ("family", "residual", "members", "motion")
NOISE_FEATURES = ("noise_jan", "noise_apr", "noise_jul", "noise_oct")
#: day of the year at which each seasonal noise term peaks
NOISE_PEAK_DOY = tuple(k * 365.25 / 4 for k in range(4))
#: years of history for the residual scatter of the trajectory fit
RESIDUAL_YEARS = 2.0


def season_features(target_dates) -> np.ndarray:
    """(len(NOISE_FEATURES), H): the seasonal noise terms of the target dates (see the module doc)."""
    td = np.asarray(target_dates, dtype="datetime64[D]")
    doy = (td - td.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.float64)
    return np.sqrt(np.stack([(1.0 + np.cos(2.0 * np.pi * (doy - p) / 365.25)) / 2.0 for p in NOISE_PEAK_DOY]))


def _fit_scatter(hist: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """Residual std of the trajectory fit on the last RESIDUAL_YEARS at each pixel (n,); where gaps
    stop the fit, the robust scatter of the epoch-to-epoch differences / sqrt(2)."""
    from ..data.baselines import fit_stats, terms_for_span, years_between

    start = anchors._start(dates, hist.shape[0] - 1, RESIDUAL_YEARS)
    y = hist[start:]
    t = years_between(dates[start:], dates[-1])
    deg, periods = terms_for_span(float(t[-1] - t[0]) if t.size else 0.0, True)
    sig = np.full(y.shape[1], np.nan)
    if y.shape[0] > 3:
        sig = fit_stats(y, t, np.zeros(1), deg, periods)[2]
    bad = ~np.isfinite(sig)
    if bad.any():
        d = np.diff(y[:, bad], axis=0)
        with np.errstate(all="ignore"), _quiet():
            med = np.nanmedian(d, axis=0)
            sig[bad] = 1.4826 * np.nanmedian(np.abs(d - med), axis=0) / math.sqrt(2.0)
    return sig


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


#: pixels per step of the members' spread (its float64 temporaries were 300 MB on a 64 000-pixel block at lead 30)
_CHUNK = 8192


def evidence(blk: np.ndarray, a0: int, r0: int, r1: int, o: int, dates, members: np.ndarray,
             valid: np.ndarray, horizon_model: Optional[int] = None, steps=None, cache=None,
             seasonal: bool = False, centre: Optional[np.ndarray] = None) -> np.ndarray:
    """The evidence :data:`FEATURES` at the pixels ``valid`` (bool (r1 - r0, W), row-major) of rows
    r0..r1 of a block read from row ``a0``, for a forecast from epoch ``o``: float64 ``(F, H, n)``,
    non-negative and non-decreasing along the horizon. ``members`` (M, H, r1 - r0, W) the delivered
    members. Uses the history up to ``o`` only. ``cache``: the block's :class:`anchors.FamilyCache`
    (the family from ``o`` is taken from it when its targets lie inside the stack). ``seasonal``:
    the :data:`NOISE_FEATURES` of the target dates follow as further rows (not made non-decreasing).
    ``centre``: the members' median at those pixels in float64 (H, n) where the caller has it already."""
    d = np.asarray(dates, dtype="datetime64[D]")
    M, H = members.shape[:2]
    sel = np.flatnonzero(np.asarray(valid).ravel())
    n = sel.size
    out = np.zeros((len(FEATURES), H, n))
    if n == 0:
        return np.zeros((len(FEATURES) + (len(NOISE_FEATURES) if seasonal else 0), H, 0))
    hist = np.asarray(blk[: o + 1, r0 - a0:r1 - a0], dtype=np.float64).reshape(o + 1, -1)[:, sel]
    L = max(H, int(horizon_model or H))
    td = dataset.target_dates(d, int(o), L)[:H]
    with _quiet(), np.errstate(all="ignore"):
        if cache is not None and o + L < d.size and cache.lead >= H:
            W = blk.shape[2]
            chunks = [(slice(None), cache(o)[:, :H, (r0 - a0) * W:(r1 - a0) * W][:, :, sel])]
        else:   # a chunk of pixels at a time (session 27: the whole block's family and its spread's temporaries
            chunks = anchors.family_chunks(hist, d[: o + 1], td, steps or None)     # were 550 MB at lead 30)
        for px, fam in chunks:
            # the same values as nanstd where the family is complete (the usual case), four times faster
            out[0][:, px] = np.std(fam, axis=0) if np.isfinite(fam).all() else np.nanstd(fam, axis=0)
        out[1] = _fit_scatter(hist, d[: o + 1])[None]
        mem = members[:, :, valid]
        if centre is None:
            centre = member_median(mem.astype(np.float64))
        for j in range(0, n, _CHUNK):       # in float64 without a float64 copy of all pixels: the same values
            out[2][:, j:j + _CHUNK] = mem[:, :, j:j + _CHUNK].std(axis=0, dtype=np.float64)
        last = anchors._mean_last(hist, 1)
        out[3] = np.abs(centre - last[None])
    for j in range(out.shape[0]):
        f = out[j]
        bad = ~np.isfinite(f)
        if bad.any():
            fill = np.nanmedian(f) if np.isfinite(f).any() else 0.0
            f[bad] = fill if np.isfinite(fill) else 0.0
        np.maximum.accumulate(np.maximum(f, 0.0), axis=0, out=f)
    if seasonal:
        sf = season_features(td)[:, :, None]
        out = np.concatenate([out, np.broadcast_to(sf, sf.shape[:2] + (n,))], axis=0)
    return out
