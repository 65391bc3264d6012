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
from typing import Callable, Optional

import numpy as np

from .baselines import design_matrix, years_between

#: take the date-to-date common noise out of the training and validation targets (env
#: ``DEFORMCAST_TARGET_COMMON_MODE=0`` switches it off, for benchmarks)
TARGET_COMMON_MODE = os.environ.get("DEFORMCAST_TARGET_COMMON_MODE", "1") != "0"
#: dates of the centred running mean whose departure is the date-to-date part
SMOOTH = 7
#: pixels sampled (on a regular lattice) to estimate the common mode
MAX_PIXELS = 40000
#: fewer complete pixels than this: no estimate (zeros)
MIN_PIXELS = 50


def running_mean(c: np.ndarray, k: int = SMOOTH) -> np.ndarray:
    """Centred running mean of ``c`` along its first axis over ``k`` values, shorter windows at the ends
    (every column of a 2-D ``c`` at once)."""
    c = np.asarray(c, dtype=np.float64)
    h = int(k) // 2
    n = c.shape[0]
    cs = np.concatenate([np.zeros((1,) + c.shape[1:]), np.cumsum(c, axis=0)])
    i = np.arange(n)
    lo, hi = np.maximum(0, i - h), np.minimum(n, i + h + 1)
    return (cs[hi] - cs[lo]) / (hi - lo).reshape((n,) + (1,) * (c.ndim - 1))


def least_squares(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``np.linalg.lstsq(X, y, rcond=None)[0]`` for a small design ``X`` (epochs, terms) and many series ``y``
    (epochs, n): the pseudo-inverse of ``X`` (with lstsq's cut-off of small singular values) times ``y``. The
    same minimum-norm solution to about 1e-13 relative, 20 times faster with 40 000 series (lstsq solves
    every right-hand side through the SVD of ``X`` again: 0.18 s against 0.008 s)."""
    X = np.asarray(X, dtype=np.float64)
    return np.linalg.pinv(X, rcond=np.finfo(np.float64).eps * max(X.shape)) @ y


def trajectory_residual(y: np.ndarray, dates) -> np.ndarray:
    """The residual of each complete series of ``y`` (epochs, n) from its trajectory fit (offset, velocity,
    acceleration, annual and semi-annual terms): (epochs, n)."""
    d = np.asarray(dates, dtype="datetime64[D]")
    X = design_matrix(years_between(d, d[0]))
    return y - X @ least_squares(X, y)


def common_residual(y: np.ndarray, dates) -> np.ndarray:
    """The median over complete series ``y`` (epochs, n) of the residual of each one's trajectory fit at each
    date (:func:`trajectory_residual`): (epochs,)."""
    return np.median(trajectory_residual(y, dates), axis=1)


def lattice(read: Callable[[int, int], np.ndarray], n_epochs: int, shape, block_rows: int = 64,
            check: Optional[Callable[[], None]] = None) -> Optional[np.ndarray]:
    """The first ``n_epochs`` of the pixels on a regular lattice of at most :data:`MAX_PIXELS` pixels, NaN
    gaps kept: (n_epochs, n) float64, or None when fewer than :data:`MIN_PIXELS` pixels have any value.
    ``read(r0, r1)`` returns rows ``r0:r1`` of the stack, (epochs, rows, cols); ``check()`` is called after
    each block read (``Progress.check``: Cancel)."""
    H, W = int(shape[0]), int(shape[1])
    n_epochs = int(n_epochs)
    step = max(1, int(np.ceil(np.sqrt(H * W / float(MAX_PIXELS)))))
    cols = np.arange(0, W, step)
    picked = []
    for r0 in range(0, H, int(block_rows)):
        r1 = min(H, r0 + int(block_rows))
        rows = [r - r0 for r in range(r0, r1) if r % step == 0]
        if not rows:
            continue
        blk = np.asarray(read(r0, r1))[:n_epochs][:, rows][:, :, cols].reshape(n_epochs, -1)
        picked.append(blk[:, np.isfinite(blk).any(axis=0)].astype(np.float64))
        if check is not None:
            check()
    y = np.concatenate(picked, axis=1) if picked else np.zeros((n_epochs, 0))
    return y if y.shape[1] >= MIN_PIXELS else None


def date_noise(read: Callable[[int, int], np.ndarray], n_fit: int, dates, shape, n_epochs: int,
               block_rows: int = 64, check: Optional[Callable[[], None]] = None,
               sample: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """The date-to-date common noise (n_epochs,) in the stack's units, 0 from ``n_fit`` on; None when
    fewer than :data:`MIN_PIXELS` sampled pixels have a complete record over the first ``n_fit`` epochs.
    ``read(r0, r1)`` returns rows ``r0:r1`` of the stack, (epochs, rows, cols); only its first ``n_fit``
    epochs are used. ``check()`` is called after each block read (``Progress.check``: Cancel).
    ``sample``: the :func:`lattice` of the first ``n_fit`` epochs when it was read already."""
    n_fit = int(n_fit)
    if n_fit < 10:
        return None
    y = lattice(read, n_fit, shape, block_rows, check) if sample is None else sample[:n_fit]
    if y is None:
        return None
    y = y[:, np.isfinite(y).all(axis=0)]
    if y.shape[1] < MIN_PIXELS:
        return None
    c = common_residual(y, np.asarray(dates, dtype="datetime64[D]")[:n_fit])
    out = np.zeros(int(n_epochs))
    out[:n_fit] = c - running_mean(c)
    return out
