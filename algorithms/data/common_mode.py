"""Each date's common noise, taken out of the networks' training and validation targets (session 14).

Why. Every pixel of an InSAR stack carries, at each date, the noise of the reference area and the part of
the atmosphere that the whole scene shares. No forecast can know it for a future date, yet it is in every
training target, the same at every pixel of a date. A network that recognises a date from the pattern of
its input window (the shared noise of the past dates is a fingerprint) can learn that date's noise, and
with spatial validation the validation pixels share the training pixels' dates, so the tuning rewards it.
Measured on the second generator (docs/skill.md, "Session 14"): from origins whose input windows had been
training windows, the raw ensemble's error common to all pixels was two thirds of the trajectory fit's (a
third on some origins); from later origins it was larger than the fit's.

What. The common mode of each date is the median, over a spread sample of pixels with a complete record
before the test period, of the residual of each pixel's trajectory fit (offset, velocity, acceleration,
annual and semi-annual terms) on that record, as regional filtering does for GNSS networks. Its part that
changes from date to date (the common mode less its centred running mean over :data:`SMOOTH` dates) is
subtracted from the targets of the training and validation windows; the slow part (a drifting reference,
regional motion) stays in them. Inputs, test windows and everything ``predict`` does are unchanged, so a
model trained with it needs nothing at prediction time. The test period is never read (the leakage test).
"""
from __future__ import annotations

import os
from typing import Callable, Dict, Optional

import numpy as np

from .baselines import design_matrix, years_between

try:  # scipy is a core dependency; the import is local to keep this module light
    from scipy.ndimage import gaussian_filter
except ImportError:  # pragma: no cover
    gaussian_filter = None

#: take the date-to-date common noise out of the training and validation targets (env
#: ``DEFORMCAST_TARGET_COMMON_MODE=0`` switches it off, for benchmarks)
TARGET_COMMON_MODE = os.environ.get("DEFORMCAST_TARGET_COMMON_MODE", "1") != "0"
#: dates of the centred running mean whose departure is the date-to-date part
SMOOTH = 7
#: pixels sampled (on a regular lattice) to estimate the common mode
MAX_PIXELS = 40000
#: fewer complete pixels than this: no estimate (zeros)
MIN_PIXELS = 50
#: the spatially smooth part of each date's noise too, not only the part common to the scene (env
#: ``DEFORMCAST_TARGET_SPATIAL=1`` switches it on: an experiment, docs/skill.md "Session 15")
TARGET_SPATIAL = os.environ.get("DEFORMCAST_TARGET_SPATIAL", "0") != "0"
#: Gaussian sigma of the low-pass in space, in pixels of the stack (at least one lattice step)
SPATIAL_SIGMA = float(os.environ.get("DEFORMCAST_TARGET_SPATIAL_SIGMA", "3"))
#: pixels sampled for the spatial part (a denser lattice than the common mode's)
MAX_FIELD_PIXELS = 250000


def running_mean(c: np.ndarray, k: int = SMOOTH) -> np.ndarray:
    """Centred running mean of ``c`` over ``k`` values, shorter windows at the ends."""
    c = np.asarray(c, dtype=np.float64)
    h = int(k) // 2
    cs = np.concatenate([[0.0], np.cumsum(c)])
    i = np.arange(c.size)
    lo, hi = np.maximum(0, i - h), np.minimum(c.size, i + h + 1)
    return (cs[hi] - cs[lo]) / (hi - lo)


def common_residual(y: np.ndarray, dates) -> np.ndarray:
    """The median over complete series ``y`` (epochs, n) of the residual of each one's trajectory fit (offset,
    velocity, acceleration, annual and semi-annual terms) at each date: (epochs,)."""
    d = np.asarray(dates, dtype="datetime64[D]")
    X = design_matrix(years_between(d, d[0]))
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    return np.median(y - X @ beta, axis=1)


class DateNoise:
    """Each date's noise to take out of a training target: the part common to the scene (``common``, one value
    per epoch) plus, optionally, the spatially smooth departure from it (``field``, epochs x lattice rows x
    lattice columns, the lattice every ``step`` pixels)."""

    def __init__(self, common: np.ndarray, field: Optional[np.ndarray] = None, step: int = 1):
        self.common = np.asarray(common, dtype=np.float64)
        self.field = field
        self.step = int(step)

    def at(self, tt: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The noise at epochs ``tt`` (n, horizon) of pixels ``rows``, ``cols`` (n,): (n, horizon)."""
        v = self.common[tt]
        if self.field is None:
            return v
        h, w = self.field.shape[1:]
        i = np.minimum((np.asarray(rows) + self.step // 2) // self.step, h - 1)
        j = np.minimum((np.asarray(cols) + self.step // 2) // self.step, w - 1)
        return v + self.field[tt, i[:, None], j[:, None]]

    def rms(self, n: int) -> Dict[str, float]:
        """Root mean squares over the first ``n`` epochs: the common part, and the spatial part (over the
        lattice) where there is one."""
        out = {"common": float(np.sqrt(np.mean(self.common[:n] ** 2)))}
        if self.field is not None:
            out["spatial"] = float(np.sqrt(np.nanmean(self.field[:n].astype(np.float64) ** 2)))
        return out


def _lattice(read, n_fit: int, H: int, W: int, step: int, block_rows: int, check) -> np.ndarray:
    """The first ``n_fit`` epochs of the pixels on a lattice every ``step`` rows and columns: (n_fit, h, w)."""
    cols = np.arange(0, W, step)
    parts = []
    for r0 in range(0, H, int(block_rows)):
        r1 = min(H, r0 + int(block_rows))
        rows = [r - r0 for r in range(r0, r1) if r % step == 0]
        if not rows:
            continue
        parts.append(np.asarray(read(r0, r1))[:n_fit][:, rows][:, :, cols].astype(np.float32))
        if check is not None:
            check()
    return np.concatenate(parts, axis=1) if parts else np.zeros((n_fit, 0, cols.size), np.float32)


def spatial_part(y: np.ndarray, dates, step: int, steps=(), sigma: float = None) -> np.ndarray:
    """The spatially smooth, date-to-date departure of each date's residual field from its median over the
    scene. ``y`` (epochs, h, w) the lattice, NaN where a record is incomplete (left out); each complete
    series is fitted (offset, velocity, acceleration, annual and semi-annual terms and the ``steps``, dates),
    the residual less the date's median over the scene is high-passed in time (less its centred running mean
    over :data:`SMOOTH` dates) and low-passed in space (a Gaussian of ``sigma`` pixels of the stack, at least
    one lattice step, that skips incomplete series): (epochs, h, w) float32, 0 where nothing is near."""
    sigma = SPATIAL_SIGMA if sigma is None else float(sigma)
    n, h, w = y.shape
    d = np.asarray(dates, dtype="datetime64[D]")[:n]
    t = years_between(d, d[0])
    st = [float(years_between(np.array([np.datetime64(s, "D")]), d[0])[0]) for s in steps]
    st = [s for s in st if t[0] < s <= t[-1]]
    X = design_matrix(t, steps=st)
    flat = y.reshape(n, -1)
    ok = np.isfinite(flat).all(axis=0)
    res = np.zeros_like(flat, dtype=np.float32)
    if ok.any():
        yy = flat[:, ok].astype(np.float64)
        r = yy - X @ (np.linalg.pinv(X) @ yy)
        r -= np.median(r, axis=1, keepdims=True)
        cs = np.cumsum(np.concatenate([np.zeros((1, r.shape[1])), r]), axis=0)   # running mean, as running_mean
        hk = SMOOTH // 2
        i = np.arange(n)
        lo, hi = np.maximum(0, i - hk), np.minimum(n, i + hk + 1)
        res[:, ok] = (r - (cs[hi] - cs[lo]) / (hi - lo)[:, None]).astype(np.float32)
    res = res.reshape(n, h, w)
    m = ok.reshape(h, w).astype(np.float64)
    s_l = max(1.0, sigma / float(step))
    den = gaussian_filter(m, s_l, mode="constant", cval=0.0)
    out = np.zeros((n, h, w), np.float32)
    near = den > 0.05
    for k in range(n):
        num = gaussian_filter(res[k].astype(np.float64), s_l, mode="constant", cval=0.0)
        out[k][near] = (num[near] / den[near]).astype(np.float32)
    return out


def date_noise(read: Callable[[int, int], np.ndarray], n_fit: int, dates, shape, n_epochs: int,
               block_rows: int = 64, check: Optional[Callable[[], None]] = None, spatial: bool = False,
               steps=()):
    """Each date's noise in the stack's units, 0 from ``n_fit`` on; None when fewer than :data:`MIN_PIXELS`
    sampled pixels have a complete record over the first ``n_fit`` epochs. ``read(r0, r1)`` returns rows
    ``r0:r1`` of the stack, (epochs, rows, cols); only its first ``n_fit`` epochs are used. ``check()`` is
    called after each block read (``Progress.check``: Cancel).

    ``spatial`` False: the date-to-date common noise as an array (n_epochs,). True: a :class:`DateNoise` with the spatially smooth part too (:func:`spatial_part`,
    ``steps`` the known step dates)."""
    H, W = int(shape[0]), int(shape[1])
    n_fit = int(n_fit)
    if n_fit < 10:
        return None
    step = max(1, int(np.ceil(np.sqrt(H * W / float(MAX_FIELD_PIXELS if spatial else MAX_PIXELS)))))
    lat = _lattice(read, n_fit, H, W, step, block_rows, check)
    flat = lat.reshape(n_fit, -1)
    okc = np.isfinite(flat).all(axis=0)
    sub = max(1, int(np.ceil(np.sqrt(okc.size / float(MAX_PIXELS))))) if spatial else 1
    y = flat[:, okc][:, ::sub * sub].astype(np.float64) if sub > 1 else flat[:, okc].astype(np.float64)
    if y.shape[1] < MIN_PIXELS:
        return None
    c = common_residual(y, np.asarray(dates, dtype="datetime64[D]")[:n_fit])
    common = np.zeros(int(n_epochs))
    common[:n_fit] = c - running_mean(c)
    if not spatial:
        return common
    part = spatial_part(lat, dates, step, steps)
    field = np.zeros((int(n_epochs),) + part.shape[1:], np.float32)
    field[:n_fit] = part
    return DateNoise(common, field, step)
