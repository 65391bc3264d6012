"""Each acquisition's weight in the classical fits: the inverse of its noise variance (session 16).

Why. The noise of an InSAR acquisition is mostly its atmosphere, and its size changes greatly from date to
date: a turbulent summer afternoon, a storm front or an ionospheric event can put several times the usual
delay into one date, every pixel of the scene at once. Ordinary least squares gives such a date the same
weight as a quiet one, so one bad date bends every trajectory fit that holds it, and through the fits the
forecasts, the networks' anchor and inputs, and the skill gate's candidates. Weighted least squares with
the inverse noise variance of each date is the efficient fit under such noise; MintPy's ``timeseries_rms``
serves the hard version of the same idea (dates whose residual RMS is an outlier are excluded).

What. The noise of a date is measured on the stack itself, on a lattice of at most
:data:`common_mode.MAX_PIXELS` pixels with a complete record: the residual of each pixel's trajectory fit
(offset, velocity, acceleration, annual and semi-annual terms), less the median over the pixels at that
date (the common mode: a shift of all pixels, which a fit's offset absorbs only in part and which weights
cannot tell from the rest), less its centred running mean over :data:`common_mode.SMOOTH` dates (what is left
of unmodelled motion, which changes slowly), gives a field per date whose robust spread over the pixels
(1.4826 x the median absolute deviation) is that date's noise ``s(t)``. The weight is ``1 / max(s(t),
FLOOR x median s)^2`` over the median's, so a typical date weighs about 1 and no date more than
``1 / FLOOR^2``. Every linear and trajectory fit of the classical family (:mod:`anchors`) takes them
(``baselines.TimeFunction.date_weights``); persistence and the mean of the last epochs do not.

No look-ahead. A date before the models' test period takes its noise from the epochs before that period
(the estimate above); a date in or after it from its own departure from each pixel's trajectory fit on the
epochs before it (:func:`one_step_spread`, scaled to the first estimate on the 30 dates before the test
period), which reads nothing after that date. So the training windows, the rolling origins of the gate and
the calibration never see the test period (the leakage tests write garbage there and get the same result),
and every date weighs the same in training, in the track records of earlier origins and in the forecast.

A model records whether it was trained with them (``data_config["date_weights"]``). ``predict`` gives
each model the fits it was trained with: models of earlier versions get ordinary least squares. The
environment variable ``DEFORMCAST_DATE_WEIGHTS=0`` switches them off for new models (for benchmarks).

Measured (docs/skill.md, "Session 16"): over six origins of eight benchmark scenes, the weighted trajectory
fits on 2 and 3 years and on all history scored 0.74-0.93 of the ordinary ones against the truth on the
second generator (whose atmosphere has a log-normal level per date and bad dates) and 0.91-1.03 on ours.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from . import common_mode
from .baselines import design_matrix, years_between

#: weighted classical fits for newly trained models (``DEFORMCAST_DATE_WEIGHTS=0``: off, for benchmarks)
ENABLED = os.environ.get("DEFORMCAST_DATE_WEIGHTS", "1") != "0"
#: the networks' training and validation loss weigh each target epoch by its date's weight (session 17;
#: ``DEFORMCAST_LOSS_WEIGHTS=0``: every epoch alike, for benchmarks)
LOSS_WEIGHTS = os.environ.get("DEFORMCAST_LOSS_WEIGHTS", "1") != "0"
#: no date's noise is taken as below this fraction of the median date's (caps a weight at 1 / FLOOR^2)
FLOOR = 0.3
#: fewer epochs than this: no estimate (every date weighs 1)
MIN_EPOCHS = 12


def date_spread(y: np.ndarray, dates) -> Optional[np.ndarray]:
    """The noise of each date (epochs,) from complete series ``y`` (epochs, n): the robust spread over the
    series of their trajectory-fit residual less each date's median and less its running mean in time.
    None with fewer than :data:`common_mode.MIN_PIXELS` series or :data:`MIN_EPOCHS` epochs."""
    y = np.asarray(y, dtype=np.float64)
    d = np.asarray(dates, dtype="datetime64[D]")
    if y.ndim != 2 or y.shape[0] < MIN_EPOCHS or y.shape[1] < common_mode.MIN_PIXELS:
        return None
    r = common_mode.trajectory_residual(y, d)
    r = r - np.median(r, axis=1, keepdims=True)
    r = r - common_mode.running_mean(r)
    s = _mad(r - np.median(r, axis=1, keepdims=True))
    return s if np.isfinite(s).all() and float(np.median(s)) > 0 else None


def _mad(r: np.ndarray) -> np.ndarray:
    """1.4826 x the median absolute value along the last axis (the robust spread of centred values)."""
    return 1.4826 * np.median(np.abs(r), axis=-1)


#: dates whose weight is below this (noise at least twice the median date's) are listed in the reports
NOISY_WEIGHT = 0.25


def noisiest(weights: Optional[Dict], top: int = 12, before=None) -> list:
    """``[[ISO date, weight], ...]``: the ``top`` dates of lowest weight below :data:`NOISY_WEIGHT`, noisiest
    first, only dates before ``before`` when given (JSON, for a model's ``data_config["noisy_dates"]``, which
    lists the dates training saw, and the reports)."""
    if not weights:
        return []
    end = None if before is None else np.datetime64(before, "D")
    low = sorted((w, d) for d, w in weights.items() if w < NOISY_WEIGHT and (end is None or d < end))[: int(top)]
    return [[str(np.datetime64(d, "D")), round(float(w), 3)] for w, d in low]


def weights_from_spread(s: np.ndarray, scale: Optional[float] = None) -> np.ndarray:
    """``1 / max(s, FLOOR scale)^2`` over ``1 / scale^2``; ``scale`` the median of ``s`` unless given."""
    s = np.asarray(s, dtype=np.float64)
    scale = float(np.median(s)) if scale is None else float(scale)
    return (scale / np.maximum(s, FLOOR * scale)) ** 2


def one_step_spread(y: np.ndarray, dates, t: int) -> float:
    """The robust spread over complete series ``y`` of date ``t``'s departure from each one's trajectory fit on
    the epochs before it, less the date's median: a noise of date ``t`` that reads nothing after it."""
    d = np.asarray(dates, dtype="datetime64[D]")
    X = design_matrix(years_between(d[:t + 1], d[t]))
    beta = common_mode.least_squares(X[:t], y[:t])
    r = y[t] - X[t] @ beta
    return float(_mad(r - np.median(r)))


#: dates before the split whose one-step spread calibrates it against :func:`date_spread`
CALIBRATION_DATES = 30


def estimate(y: np.ndarray, dates, split: int) -> Optional[Dict[np.datetime64, float]]:
    """``{date: weight}`` from the lattice ``y`` (epochs, n; NaN gaps). Dates before index ``split`` (the models'
    test period) take :func:`date_spread` of the pixels complete over ``[0, split)``; each later date ``t``
    takes :func:`one_step_spread` of the pixels complete up to ``t`` (nothing after ``t`` read), scaled by the
    median ratio of the two estimates over the last :data:`CALIBRATION_DATES` dates before the split. A date's
    weight is therefore the same whatever the forecast origin. None where no estimate is possible."""
    y = np.asarray(y, dtype=np.float64)
    d = np.asarray(dates, dtype="datetime64[D]")
    T = y.shape[0]
    split = int(min(max(split, 0), T))
    s_pre = date_spread(y[:split][:, np.isfinite(y[:split]).all(axis=0)], d[:split]) if split else None
    if s_pre is None:
        return None
    scale = float(np.median(s_pre))
    out = dict(zip(d[:split].tolist(), weights_from_spread(s_pre, scale).tolist()))
    if split < T:
        k = int(min(CALIBRATION_DATES, split - MIN_EPOCHS))
        # complete_to[t]: the series with a value at every date up to t (one pass; session 28: each date's own
        # check over its whole history was a third of the estimate's time, in each of predict's processes)
        complete_to = np.logical_and.accumulate(np.isfinite(y), axis=0)
        full = complete_to[split - 1]
        ratio = None
        if k >= 5:
            y_full = y[:, full]
            c = np.array([one_step_spread(y_full[:t + 1], d, t) for t in range(split - k, split)])
            with np.errstate(divide="ignore", invalid="ignore"):
                q = s_pre[split - k:] / c
            q = q[np.isfinite(q) & (q > 0)]
            ratio = float(np.median(q)) if q.size else None
        for t in range(split, T):
            full_t = complete_to[t]
            s_t = (one_step_spread(y[:t + 1][:, full_t], d, t) * ratio
                   if ratio and full_t.sum() >= common_mode.MIN_PIXELS else np.nan)
            out[d[t].tolist()] = float(weights_from_spread(np.array([s_t]), scale)[0]) if np.isfinite(s_t) else 1.0
    return {np.datetime64(k, "D"): float(v) for k, v in out.items()}


def from_reader(read: Callable[[int, int], np.ndarray], dates, shape, n_epochs: int, split: int,
                block_rows: int = 64, check: Optional[Callable[[], None]] = None) -> Optional[Dict]:
    """:func:`estimate` on a lattice of the stack read through ``read(r0, r1)`` (its first ``n_epochs``)."""
    y = common_mode.lattice(read, n_epochs, shape, block_rows, check)
    return None if y is None else estimate(y, np.asarray(dates, dtype="datetime64[D]")[:n_epochs], split)


#: (stack path, modification time, epochs, split) -> weights, for the steps of one main job
_MEMO: "OrderedDict[tuple, Optional[Dict]]" = OrderedDict()


def for_stack(info, split: int, end: Optional[int] = None) -> Optional[Dict]:
    """:func:`from_reader` on a stack opened with ``raster.open_stack``, its epochs up to index ``end`` (the
    forecast origin; default the last), kept for the last few stacks."""
    from ..io import raster

    path = os.path.abspath(str(info.path))
    try:
        stamp = os.path.getmtime(path)
    except OSError:
        stamp = None
    n = int(info.n_epochs) if end is None else int(min(int(end) + 1, info.n_epochs))
    key = (path, stamp, n, int(split), str(info.dates[0]), str(info.dates[-1]))
    if key not in _MEMO:
        H, W = info.grid.shape
        _MEMO[key] = from_reader(lambda r0, r1: raster.read_stack(info, rows=(r0, r1)), info.dates, (H, W),
                                 n, int(min(split, n)))
        while len(_MEMO) > 4:
            _MEMO.popitem(last=False)
    return _MEMO[key]


def sample_weights(prep, split: str) -> Optional[np.ndarray]:
    """The weight of each target of the windows of ``split`` ("train", "val", "test") of a
    ``dataset.Prepared``: float32 ``(N, horizon)``, each target epoch's date weight, or None (no date
    weights, or :data:`LOSS_WEIGHTS` off). A target on a date whose noise is 3x the median's weighs a ninth
    in the loss, as the same date does in the classical fits: the networks learn the ground's motion, not
    that date's atmosphere."""
    weights = getattr(prep, "date_weights", None)
    if not LOSS_WEIGHTS or not weights or prep.dates is None:
        return None
    s = getattr(prep, split)
    d = np.asarray(prep.dates, dtype="datetime64[D]")
    w = np.array([weights.get(np.datetime64(t, "D"), 1.0) for t in d.tolist()], dtype=np.float32)
    idx = np.asarray(s.end, dtype=np.int64)[:, None] + 1 + np.arange(s.Y.shape[1])[None]
    return w[np.clip(idx, 0, w.size - 1)]


def time_function(steps, weights: Optional[Dict]):
    """The fits' time function: the known ``steps`` (ISO dates, a TimeFunction or None) with ``weights``."""
    from .baselines import TimeFunction, as_time_function

    tf = as_time_function(steps)
    if not weights:
        return tf
    base = tf or TimeFunction()
    return base.with_date_weights(weights)


def bound(cfg: dict, info, end: Optional[int] = None) -> dict:
    """A model's ``data_config`` for the stack ``info`` (read up to index ``end``, the forecast origin; default
    the last epoch): when it was trained with date weights, ``steps`` becomes the fits' time function with
    the stack's weights; otherwise ``cfg`` itself."""
    if not cfg.get("date_weights") or not hasattr(info, "path"):
        return cfg
    return dict(cfg, steps=time_function(cfg.get("steps"), for_stack(info, split_of(cfg, info), end)))


def split_of(cfg: dict, info) -> int:
    """The index in the stack ``info`` of a model's test period (its first date), where its date weights change
    estimate (:func:`estimate`)."""
    test = (cfg.get("split_dates") or {}).get("test") or [None]
    return (int(np.searchsorted(np.asarray(info.dates, dtype="datetime64[D]"), np.datetime64(test[0], "D")))
            if test[0] else int(cfg.get("test_start", info.n_epochs)))


def prefetch(info, configs: Sequence[dict], end: Optional[int] = None) -> None:
    """:func:`for_stack` for each test split of ``configs`` (models' data configs) trained with date weights, so
    that :func:`bind` finds them ready (``predict`` before it makes the job of its local processes or Dask workers,
    which take them with it: :func:`known_for`, session 29)."""
    for split in sorted({split_of(c, info) for c in configs if c.get("date_weights")}):
        for_stack(info, split, end)


def known_for(info) -> list:
    """``[(key, weights), ...]``: what :func:`for_stack` holds for the stack ``info`` (for :func:`remember` in
    another process, which then does not read the stack again for them)."""
    path = os.path.abspath(str(info.path))
    return [(k, v) for k, v in _MEMO.items() if k[0] == path]


def remember(entries) -> None:
    """Take :func:`known_for`'s entries of another process (a key whose file changed since is never asked for:
    its modification time is part of it)."""
    for k, v in entries or ():
        _MEMO[tuple(k)] = v
    while len(_MEMO) > 4:
        _MEMO.popitem(last=False)


def bind(loaded: Sequence, info, end: Optional[int] = None) -> None:
    """Give each loaded member (``modelio.LoadedModel``) its :func:`bound` data config (in memory only)."""
    for m in loaded:
        cfg = m.meta.get("data_config") or {}
        m.meta["data_config"] = bound(cfg, info, end)
