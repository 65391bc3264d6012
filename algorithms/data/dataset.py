"""Leak-free spatiotemporal training sets: windows, time splits, spatial hold-out, encodings.

API (stable; the models/training code is written against it)
-------------------------------------------------------------

``prepare(stack, dates, grid, window, horizon, encodings=("none",), covariates=None, n_val=None, n_test=None,
target="increment", baseline="trajectory", baseline_years=None, max_samples=20000, max_eval_samples=None,
stride=1, spatial_holdout=0.0, holdout_block=16, neighbourhood_k=3, fourier=0, seed=0, block_rows=None,
validation="time", val_fraction=0.2, progress=None) -> Prepared``

* ``max_samples`` caps the training windows, ``max_eval_samples`` (default = ``max_samples``)
  the validation and test windows; ``stride`` keeps every stride-th end epoch.
* ``stack``: float32 ``(T, H, W)`` mm, NaN = nodata, **or** a :class:`raster.StackInfo` / path
  (then it is read block-wise by rows, never whole). ``dates``: datetime64[D] ``(T,)`` (ignored
  for a StackInfo, which knows its dates). ``grid``: :class:`raster.Grid`.
* ``covariates``: ``{name: (H, W) array}`` static rasters already on the stack grid.

``Prepared`` has

* ``.train``, ``.val``, ``.test``: :class:`Samples`, each with
  ``X`` float32 ``(N, window, F)`` network input, ``Y`` float32 ``(N, horizon)`` network target,
  ``anchor`` float32 ``(N, horizon)`` mm, ``truth`` float32 ``(N, horizon)`` mm cumulative
  displacement at the target epochs (``to_mm(Y, anchor, norm) == truth`` up to rounding; in the
  training and validation windows less each date's common noise, :mod:`common_mode`, session 14),
  ``pixel`` int64 ``(N,)`` flat pixel index ``row * W + col``, ``end`` int64 ``(N,)`` index of
  the last input epoch, ``holdout`` bool ``(N,)`` (pixel lies in a spatial hold-out block).
* ``.norm``: JSON-serialisable dict (fitted on training windows only).
* ``.config``: JSON-serialisable dict (window, horizon, encodings, target, baseline, split indices and dates, k,
  fourier, covariate names, grid shape...). Save ``config`` and ``norm`` with a model; they are all
  :func:`forecast_inputs` needs, with the stack's date weights in ``steps`` where ``config["date_weights"]``.
* ``.feature_names``: list of F channel names; ``.n_features``.
* ``.holdout_mask``: bool ``(H, W)`` or None.

Forecasting (after the last epoch, or a backtest from an earlier epoch), block by block::

    a0, a1 = read_rows(r0, r1, grid.height, config)        # rows to read incl. halo
    block = read_stack(info, rows=(a0, a1))                 # (T, a1 - a0, W)
    X, valid, anchor = forecast_inputs(block, dates, grid, a0, config, norm,
                                       covariates_block=..., end_index=None, out_rows=(r0, r1))
    y = model(X)                                            # (n, horizon), n = valid.sum()
    mm = to_mm(y, anchor, norm)                             # (n, horizon) cumulative mm
    out[:, valid] = mm.T                                    # valid: bool (r1 - r0, W), row-major

``covariates_block``: ``{name: (a1 - a0, W)}`` rows a0..a1 of each covariate.
``target_dates(dates, end_index, horizon)`` gives the forecast epochs' dates (beyond the last
acquisition they continue at the recent acquisition step, the median of the last 30 intervals). With
``target="residual"`` the classical anchor is evaluated at these dates; ``dates`` must match the block's
epochs, and when the block holds only the epochs up to ``end_index`` the later ones are placed at that step.

``validate_inputs(T, window, horizon, n_val=None, n_test=None) -> (n_val, n_test)`` raises
:class:`DeformCastError` naming the fix when there are too few epochs.

Constants: ``ENCODINGS`` (none, temporal, spatial, neighbourhood, covariates), ``TARGETS``
(increment, residual).

Science choices (where Liu et al. 2026 is silent)
------------------------------------------------
Split in time by TARGET epochs. The last ``n_test`` epochs are the test period, the ``n_val``
before them validation, the rest training (defaults: ``max(horizon, ceil(10 % of T))`` each).
A training window has its inputs AND all its targets inside the training period; a validation
window has all targets in the validation period (its inputs may reach back into training); a
test window has all targets in the test period. So no two splits share a target epoch, and
nothing from the test period reaches training samples, normalisation, early stopping or tuning
(the leakage test overwrites the test epochs with garbage and checks that training and
validation arrays and ``norm`` are bit-identical).

Spatial validation (``validation="space"``). With a one-year horizon on a series of a few years,
the time split leaves training windows with short histories only (on the 4.9-year demo scene the
last training window ends two years in), while a forecast starts from the whole record: whatever
a network learns about correcting a classical fit on short histories does not carry over. With
``space`` the validation windows are the pixels of square blocks (about ``val_fraction`` of the
area, seeded, :func:`validation_mask`) and training windows come from the other pixels; both may
have their targets anywhere before the test period. Training neighbourhoods hide the validation
pixels. Nearby pixels share atmospheric noise, so the validation loss is somewhat optimistic;
the test period stays unseen either way (same leakage test).

Spatial hold-out (optional): square blocks of ``holdout_block`` pixels, a fraction
``spatial_holdout`` of them chosen at random (seeded), are removed from training and validation
(their values are NaN for the neighbourhood features of training samples too). Test samples
come from all pixels; ``Samples.holdout`` says which pixels are unseen ground (transfer score).

Sampling. Training (and validation/test) windows are a uniform random sample without
replacement of all valid (pixel, end epoch) pairs: each pair gets a pseudo-random key from a hash
of (seed, split, pixel, end) and the ``max_samples`` smallest keys are kept while the stack is
scanned block by block. Memory is bounded by one row block plus at most twice ``max_samples``
windows per split, so it does not grow with the area, and the sample does not depend on the
block size. A window with a NaN anywhere in its inputs or targets is skipped. ``disp_scale`` is
1.4826 x median |disp| over the training windows.

Targets. The network never sees absolute displacement (its reference is arbitrary):
``target="increment"`` learns displacement at each horizon epoch relative to the last input
epoch, divided by a robust per-step scale (1.4826 x median |increment| of the training windows);
``target="residual"`` learns the difference between the truth and a classical forecast
(``baseline``, default the MintPy-style ``trajectory`` of :mod:`baselines`, fitted per pixel on
all history up to the last input epoch, or on the last ``baseline_years`` only), divided by its
robust per-step scale. Default chosen by measurement: on the built-in synthetic scene (seeds
0-2, 1500 pixels, 40 forecast origins, 12 steps ahead, RMSE against the noise-free truth) the
all-history trajectory anchor scored 1.99 / 2.12 / 1.97 mm, a 3-year-capped one 2.19 / 2.27 /
2.32 mm and the trajectory ensemble 2.36 / 2.35 / 2.38 mm. (Training anchors see a shorter
history than test anchors; the fit is still the same model.) The network thus
learns the correction to the classical forecast. In both cases ``mm = y * target_scale + anchor``
where ``anchor`` is the last input value (increment) or the classical forecast (residual).

Encodings, per time step channels (combinable; ``none`` adds nothing):

* always: ``disp`` = (displacement - displacement at the last input epoch) / disp_scale.
* ``temporal``: ``t`` = years since the first epoch / length of the training period in years;
  ``doy_sin``, ``doy_cos`` = sin/cos(2 pi day-of-year / 365.25).
* ``spatial``: ``x``, ``y`` pixel-centre coordinates scaled to [-1, 1] over the grid extent
  (from the grid, not the data, so no statistics are fitted); with ``fourier=n`` also
  sin/cos(2^k pi x), sin/cos(2^k pi y) for k < n. Constant along time.
* ``neighbourhood``: k x k patch (default k = 3) around the pixel, each neighbour relative to its
  own value at the last input epoch: ``nb_mean`` = NaN-mean over the patch, ``nb_dx``/``nb_dy``
  = (mean of the right minus left column) / (k - 1) and (top minus bottom row) / (k - 1), all
  divided by disp_scale (0 where undefined). Mean + gradient (3 channels for any k) rather than
  the flattened patch (k*k channels) keeps the input size fixed and tolerates NaN neighbours.
  Patches are cut at the raster edge.
* ``trajectory``: the classical per-pixel fit as 20 static channels: the full MintPy-style model
  (see :mod:`baselines`) fitted on all epochs up to the window's last one; t-values
  (coefficient / standard error) of velocity, acceleration and the four seasonal terms; what each
  of these six terms adds between the last input epoch and the last (``trj:end_*``) and the
  middle (``trj:mid_*``) forecast epoch, in mm; the residual standard deviation of the fit and the
  last value minus the fit there, in mm; each passed through ``asinh`` (linear near 0, logarithmic
  beyond, so the larger values of long records at forecast time stay in the range seen in
  training). Windows need ``FULL_MODEL_YEARS`` (1.9) years of history before their last epoch
  (earlier windows are not sampled, such pixels are not forecast). With the residual target the
  network sees which terms of its anchor are significant and learns, across pixels, how far to
  trust them (e.g. a noise-level acceleration extrapolated for a year): measured on the demo scene
  (seeds 0-2, one-year horizon, resnet_transformer, spatial validation) 1.91 / 1.89 / 1.83 mm RMSE
  against the noise-free truth versus 2.12 / 2.33 / 2.12 for the trajectory baseline; without it
  (window only, any other encoding) the correction never beat the anchor.
* ``regime``: the classical family of :mod:`anchors` as static channels: each member's forecast
  minus the last value at the middle and the last forecast epoch, and regime-change evidence (the
  all-history fit's mean residual over the last half year and year in units of its scatter, the
  last year's velocity minus the all-history one), through ``asinh``. With ``baseline="adaptive"``
  (the default of every entrance, :data:`tuning.MODEL_DEFAULTS`) the residual target's anchor is the
  combination of that family fitted on the recent training windows (``config["anchor_weights"]``),
  and ``steps`` (known step dates, ``config["steps"]``) enter every fit of the family.
* ``covariates``: each static covariate standardised with mean/std of the training pixels,
  NaN -> 0 (the mean), constant along time. Class rasters (e.g. lithology codes) enter as
  numbers like any other covariate; give one 0/1 mask per class when the codes have no order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import anchors as anc
from . import common_mode, date_weights
from .baselines import years_between
from ..errors import DeformCastError
from ..progress import Progress, silent
from ..io.raster import Grid, StackInfo, check_dates, iso, open_stack, read_stack, row_blocks
from .features import (ANCHORS, ENCODINGS, FULL_MODEL_YEARS, SPLITS, TARGETS, TRAJECTORY_FEATURES,  # noqa: F401 - re-exported
    VALIDATIONS, _anchors, _DISP_CHANNELS, _family, _features, _robust_scale, auto_encodings, default_period, family_at,
    feature_names, first_full_end, halo, is_auto, parse_encodings, read_rows, target_dates, to_mm, to_net,
    cadence_warning, recent_step_days,
    trajectory_ends, validate_inputs, _steps, AUTO_STEPS)
from .series import FILL_EPOCHS, fill_window_gaps
from .selection import _keys, _Reservoir, holdout_mask, validation_mask  # noqa: F401

_BLOCK_VALUES = 1 << 23  # about 32 MB of float32 per row block read
_CHUNK = 4096  # samples whose features are built at once


# --------------------------------------------------------------------------------------------
# containers
# --------------------------------------------------------------------------------------------
@dataclass
class Samples:
    """Windows of one split (see the module docstring for the meaning of each array)."""

    X: np.ndarray
    Y: np.ndarray
    anchor: np.ndarray
    truth: np.ndarray
    pixel: np.ndarray
    end: np.ndarray
    holdout: np.ndarray

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def subset(self, index) -> "Samples":
        return Samples(self.X[index], self.Y[index], self.anchor[index], self.truth[index],
                       self.pixel[index], self.end[index], self.holdout[index])

    def rows_cols(self, width: int) -> Tuple[np.ndarray, np.ndarray]:
        return self.pixel // int(width), self.pixel % int(width)


@dataclass
class Prepared:
    train: Samples
    val: Samples
    test: Samples
    norm: dict
    config: dict
    feature_names: List[str]
    holdout_mask: Optional[np.ndarray] = None
    dates: Optional[np.ndarray] = None
    grid: Optional[Grid] = None
    date_weights: Optional[dict] = None   # {date: weight} of date_weights.estimate, for the training loss

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

def _as_source(stack, dates, grid):
    if isinstance(stack, (str, StackInfo)):
        info = open_stack(stack) if isinstance(stack, str) else stack
        return info, info.dates, info.grid
    a = np.asarray(stack)
    if a.ndim != 3:
        raise DeformCastError(f"The displacement stack must be (T, H, W); got shape {a.shape}.")
    if dates is None:
        raise DeformCastError("The stack's dates are missing; give one date per epoch.")
    d = check_dates(np.asarray(dates, dtype="datetime64[D]"))
    if d.size != a.shape[0]:
        raise DeformCastError(f"The stack has {a.shape[0]} epochs but {d.size} dates were given.")
    if grid is not None and tuple(grid.shape) != tuple(a.shape[1:]):
        raise DeformCastError(f"The stack is {a.shape[1:]} pixels but its grid says {grid.shape}.")
    return a, d, grid


def _file_block_height(source) -> int:
    if not isinstance(source, StackInfo):
        return 1
    from osgeo import gdal

    gdal.UseExceptions()
    ds = gdal.Open(source.source)
    return int(ds.GetRasterBand(1).GetBlockSize()[1])


def _read(source, a0, a1):
    if isinstance(source, StackInfo):
        return read_stack(source, rows=(a0, a1))
    return source[:, a0:a1]


#: training and validation windows that end in the last RECENT_WEIGHT_YEARS before the latest one are drawn
#: 2^RECENT_SHIFT = 4 times as often as older ones (their selection keys are divided by 4: each window's chance
#: to be among the ``max_samples`` with the smallest keys grows fourfold while that chance is small): the
#: networks learn more from the ground as it behaves now (session 11, docs/skill.md). 0: uniform, as before.
RECENT_SHIFT, RECENT_WEIGHT_YEARS = 2, 1.0


def prepare(stack, dates, grid: Optional[Grid], window: int, horizon: int, encodings=("none",),
            covariates: Optional[Dict[str, np.ndarray]] = None, n_val: Optional[int] = None,
            n_test: Optional[int] = None, target: str = "increment",
            baseline: str = "trajectory", baseline_years: Optional[float] = None,
            max_samples: int = 20000, max_eval_samples: Optional[int] = None, stride: int = 1,
            spatial_holdout: float = 0.0, holdout_block: int = 16, neighbourhood_k: int = 3,
            fourier: int = 0, seed: int = 0, block_rows: Optional[int] = None,
            validation: str = "time", val_fraction: float = 0.2, steps=None,
            progress: Optional[Progress] = None) -> Prepared:
    """Build the train/validation/test windows (see the module docstring)."""
    progress = progress or silent()
    source, dates, grid = _as_source(stack, dates, grid)
    T = int(dates.size)
    H, W = (grid.shape if grid is not None else source.shape[1:])
    window, horizon = int(window), int(horizon)
    if window < 2:
        raise DeformCastError(f"WINDOW must be at least 2 epochs (got {window}): the network sees the "
                              "motion over the window relative to its last epoch.")
    nv, nt = validate_inputs(T, window, horizon, n_val, n_test)
    enc = parse_encodings(encodings)
    if target not in TARGETS:
        raise DeformCastError(f"Unknown target '{target}'; valid: {', '.join(TARGETS)}.")
    if baseline not in ANCHORS:
        raise DeformCastError(f"Unknown baseline '{baseline}'; valid: {', '.join(ANCHORS)}.")
    k = int(neighbourhood_k)
    if "neighbourhood" in enc and (k < 3 or k % 2 == 0):
        raise DeformCastError(f"The neighbourhood size must be an odd number >= 3 (got {k}).")
    if int(stride) < 1:
        raise DeformCastError(f"The window stride must be at least 1 (got {stride}).")
    if int(max_samples) < 1:
        raise DeformCastError(f"max_samples must be at least 1 (got {max_samples}).")
    validation = str(validation or "time").strip().lower()
    if validation not in VALIDATIONS:
        raise DeformCastError(f"Unknown VALIDATION '{validation}'; valid: {', '.join(VALIDATIONS)}.")
    if validation == "space" and not 0.0 < float(val_fraction) < 1.0:
        raise DeformCastError(f"The validation fraction must lie between 0 and 1 (got {val_fraction}).")
    covariates = dict(covariates or {})
    if "covariates" in enc and not covariates:
        raise DeformCastError("ENCODING 'covariates' was chosen but no COVARIATES were given; add "
                              "covariate rasters or drop 'covariates' from ENCODING.")
    for name, c in covariates.items():
        if np.shape(c) != (H, W):
            raise DeformCastError(f"Covariate '{name}' is {np.shape(c)} pixels but the stack is "
                                  f"{(H, W)}; align it to the stack grid first.")
    cov_names = sorted(covariates) if "covariates" in enc else []
    detected = None
    if isinstance(steps, str) and steps.strip().lower() == AUTO_STEPS:
        from .step_detect import detect_in_source, report_steps

        progress.log("Looking for steps (offsets at one date) in the stack ...")
        detected = detect_in_source(source, dates)
        steps = [x["date"] for x in detected]
        report_steps(detected, progress)
    train_end = T - nv - nt
    val_end = T - nt
    max_eval = int(max_eval_samples or max_samples)
    hmask = holdout_mask((H, W), float(spatial_holdout), holdout_block, seed)
    vmask = None
    if validation == "space":  # validation pixels: blocks apart from the spatial hold-out ones
        vmask = validation_mask((H, W), float(val_fraction), holdout_block, seed)
        if hmask is not None:
            vmask &= ~hmask
            if not vmask.any():
                raise DeformCastError("No validation block is left outside the spatial hold-out; lower "
                                      "SPATIAL_HOLDOUT or use time validation.")
    adaptive = target == "residual" and baseline == "adaptive"
    min_end = window - 1
    if "trajectory" in enc:
        min_end = max(min_end, first_full_end(dates))

    config = {
        "window": window, "horizon": horizon, "encodings": list(enc) or ["none"],
        "target": target, "baseline": baseline,
        "baseline_years": None if baseline_years is None else float(baseline_years),
        "steps": [iso(d) for d in _steps(steps)], "steps_detected": detected,
        "neighbourhood_k": k, "fourier": int(fourier), "covariate_names": cov_names,
        "n_epochs": T, "n_val": nv, "n_test": nt, "train_end": train_end, "val_end": val_end,
        "test_start": val_end,
        "split_dates": {"train": [iso(dates[0]), iso(dates[train_end - 1])],
                        "val": [iso(dates[train_end]), iso(dates[val_end - 1])],
                        "test": [iso(dates[val_end]), iso(dates[T - 1])]},
        "validation": validation, "val_fraction": float(val_fraction) if validation == "space" else None,
        "min_end_index": int(min_end),
        "stride": int(stride), "max_samples": int(max_samples), "max_eval_samples": max_eval,
        "seed": int(seed), "spatial_holdout": float(spatial_holdout),
        "holdout_block": int(holdout_block), "grid_shape": [int(H), int(W)],
        "step_days": float(np.median(np.diff(dates).astype(np.int64))) if T > 1 else 0.0,
    }
    # provisional norm (disp_scale 1, target_scale 1); the real scales come from training windows
    cov_stats = {}
    for name in cov_names:
        v = np.asarray(covariates[name], dtype=np.float64)
        ok = np.isfinite(v) if hmask is None else (np.isfinite(v) & ~hmask)
        if not ok.any():
            raise DeformCastError(f"Covariate '{name}' has no valid value on the training pixels; "
                                  "check that it overlaps the stack.")
        m, s = float(v[ok].mean()), float(v[ok].std())
        cov_stats[name] = {"mean": m, "std": s if s > 1e-12 else 1.0}
    span = float(years_between(dates[train_end - 1:train_end], dates[0])[0])
    norm = {"disp_scale": 1.0, "target_scale": [1.0] * horizon, "date0": iso(dates[0]),
            "time_scale_years": span if span > 0 else 1.0, "covariates": cov_stats}
    config["feature_names"] = feature_names(config)

    def _ends(lo, hi, first=min_end):
        lo = max(lo, first)
        return np.arange(lo, hi + 1, int(stride), dtype=np.int64) if hi >= lo else np.zeros(0, np.int64)

    plans = {  # split -> (ends, epochs visible, cap, salt)
        "train": (_ends(window - 1, train_end - 1 - horizon), train_end, int(max_samples), 1),
        "val": (_ends(train_end - 1, val_end - 1 - horizon), val_end, max_eval, 2),
        "test": (_ends(val_end - 1, T - 1 - horizon, window - 1), T, max_eval, 3),
    }
    if validation == "space":  # training and validation windows share the epochs before the test period
        plans["train"] = (_ends(window - 1, val_end - 1 - horizon), val_end, int(max_samples), 1)
        plans["val"] = (_ends(window - 1, val_end - 1 - horizon), val_end, max_eval, 2)
    if "trajectory" in enc and plans["train"][0].size == 0:
        raise DeformCastError(
            f"The 'trajectory' encoding needs {FULL_MODEL_YEARS} years of history before a training window "
            f"ends, and the training period ({config['split_dates']['train'][0]}..{config['split_dates']['train'][1]}) "
            "leaves no such window before its targets. Use VALIDATION 'space' (training windows may then "
            "reach into the validation period), a shorter HORIZON, a longer series, or drop 'trajectory'.")
    res = {s: _Reservoir(plans[s][2]) for s in SPLITS}
    last_end = max([int(plans[s][0].max()) for s in ("train", "val") if plans[s][0].size] or [0])
    recent_cut = anc._start(dates, last_end, RECENT_WEIGHT_YEARS)     # the first end in the last year
    h = halo(config)
    if block_rows is None:
        block_rows = max(1, _BLOCK_VALUES // max(1, T * W))
        by = _file_block_height(source)
        if 1 < by <= block_rows:  # whole tiles/strips per read: GDAL decompresses each one once
            block_rows = (block_rows // by) * by
    blocks = list(row_blocks(H, int(block_rows)))
    lat = (common_mode.lattice(lambda r0, r1: _read(source, r0, r1), T, (H, W), int(block_rows), progress.check)
           if (common_mode.TARGET_COMMON_MODE or date_weights.ENABLED) and val_end >= 10 else None)
    cw = (common_mode.date_noise(None, val_end, dates, (H, W), T, sample=lat)
          if common_mode.TARGET_COMMON_MODE and lat is not None else None)
    config["target_common_mode"] = None if cw is None else round(float(np.sqrt(np.mean(cw[:val_end] ** 2))), 4)
    if cw is not None:
        progress.log(f"Each date's common noise ({config['target_common_mode']:.2f} rms in the stack's units) is taken "
                     "out of the training and validation targets; the forecasts are unchanged otherwise.")
    # every date's weight reads nothing after it, nor a date before the test period anything in it
    dw = date_weights.estimate(lat, dates, val_end) if date_weights.ENABLED and lat is not None else None
    config["date_weights"], config["noisy_dates"] = bool(dw), date_weights.noisiest(dw, before=dates[val_end])
    if dw:
        wv = np.array(list(dw.values()))
        progress.log(f"Each acquisition weighs in the classical fits by the inverse of its noise variance "
                     f"(date_weights.py): weights {wv.min():.2f} .. {wv.max():.2f}, {int((wv < 0.5).sum())} of "
                     f"{wv.size} dates below 0.5.")
    fcfg = dict(config, steps=date_weights.time_function(config["steps"], dw))   # the fits' time function
    seen_data = False
    for bi, (r0, r1) in enumerate(blocks):
        a0, a1 = max(0, r0 - h), min(H, r1 + h)
        blk = _read(source, a0, a1)
        cov_blk = {n: np.asarray(covariates[n])[a0:a1] for n in cov_names}
        hm_blk = None if hmask is None else hmask[a0:a1]
        vm_blk = None if vmask is None else vmask[a0:a1]
        hide_train = hm_blk if vm_blk is None else (vm_blk if hm_blk is None else (hm_blk | vm_blk))
        centre = blk[:, r0 - a0:r1 - a0]  # (T, h, W)
        for split in SPLITS:
            ends, t_vis, cap, salt = plans[split]
            if ends.size == 0:
                continue
            sub = centre[:t_vis]
            bad = np.concatenate([np.zeros((1,) + sub.shape[1:], np.int32),
                                  np.cumsum(~np.isfinite(sub), axis=0, dtype=np.int32)])
            seen_data = seen_data or bool((bad[-1] < t_vis).any())
            excl = None
            if hm_blk is not None and split != "test":
                excl = hm_blk[r0 - a0:r1 - a0]
            if vm_blk is not None and split != "test":
                vm_c = vm_blk[r0 - a0:r1 - a0]
                other = vm_c if split == "train" else ~vm_c
                excl = other if excl is None else (excl | other)
            pix_base = np.arange(r0 * W, r1 * W, dtype=np.int64).reshape(r1 - r0, W)
            sel_pix, sel_end, sel_key = [], [], []
            for e in ends:
                ok = (bad[e + horizon + 1] - bad[e - window + 1]) == 0
                if excl is not None:
                    ok &= ~excl
                if not ok.any():
                    continue
                p = pix_base[ok]
                kk = _keys(seed, salt, p, np.full(p.size, e, np.int64))
                if split != "test" and e >= recent_cut:   # the last year's windows drawn 2^RECENT_SHIFT times as often
                    kk = kk >> np.uint64(RECENT_SHIFT)
                thr = res[split].threshold
                if thr is not None:
                    m = kk < thr
                    p, kk = p[m], kk[m]
                if kk.size > cap:
                    keep = np.argpartition(kk, cap - 1)[:cap]
                    p, kk = p[keep], kk[keep]
                sel_pix.append(p)
                sel_end.append(np.full(p.size, e, np.int64))
                sel_key.append(kk)
            if not sel_pix:
                continue
            p = np.concatenate(sel_pix)
            e_ = np.concatenate(sel_end)
            kk = np.concatenate(sel_key)
            if kk.size > cap:
                keep = np.argpartition(kk, cap - 1)[:cap]
                p, e_, kk = p[keep], e_[keep], kk[keep]
            order = np.argsort(kk)  # smallest keys first: later chunks are cut by the threshold
            p, e_, kk = p[order], e_[order], kk[order]
            vis = blk[:t_vis]
            for c0 in range(0, p.size, _CHUNK):
                pc, ec, kc = p[c0:c0 + _CHUNK], e_[c0:c0 + _CHUNK], kk[c0:c0 + _CHUNK]
                thr = res[split].threshold
                if thr is not None:
                    m = kc < thr
                    if not m.any():
                        break
                    pc, ec, kc = pc[m], ec[m], kc[m]
                rows, cols = pc // W, pc % W
                fam = (_family(vis, a0, rows, cols, ec, dates, horizon, fcfg["steps"])
                       if adaptive or "regime" in enc else None)
                X = _features(vis, a0, rows, cols, ec, dates, (H, W), fcfg, norm, cov_blk,
                              None if split == "test" else (hide_train if split == "train" else hm_blk),
                              family=fam)
                anchor = _anchors(vis, a0, rows, cols, ec, dates, fcfg, family=fam)
                tt = ec[:, None] + 1 + np.arange(horizon)[None, :]
                truth = vis[tt, (rows - a0)[:, None], cols[:, None]].astype(np.float32)
                if cw is not None and split != "test":   # each date's common noise out (common_mode.py)
                    truth = truth - cw[tt].astype(np.float32)
                good = np.isfinite(anchor).all(axis=1) & np.isfinite(X).all(axis=(1, 2))
                held = np.zeros(pc.size, bool) if hmask is None else hmask[rows, cols]
                part = {"key": kc, "X": X, "anchor": anchor, "truth": truth, "pixel": pc, "end": ec,
                        "holdout": held}
                if adaptive:
                    good &= np.isfinite(fam).all(axis=(1, 2))
                    part["family"] = fam
                res[split].add({k2: v[good] for k2, v in part.items()})
                progress.check()
        progress.set((bi + 1) / len(blocks))

    got = {s: res[s].result() for s in SPLITS}
    names = config["feature_names"]
    if not seen_data:
        validate_inputs(T, window, horizon, nv, nt, stack=np.full(1, np.nan))  # all nodata
    if got["train"] is None:
        raise DeformCastError(
            f"No training window: no pixel has {window + horizon} consecutive valid epochs (WINDOW "
            f"{window} + HORIZON {horizon}) in the training period {config['split_dates']['train'][0]}.."
            f"{config['split_dates']['train'][1]}. The stack may be all nodata there; lower WINDOW or "
            "HORIZON, or check the nodata value.")
    for s in ("val", "test"):
        if got[s] is None:
            raise DeformCastError(
                f"No {'validation' if s == 'val' else 'test'} window: no pixel has valid data for the "
                f"WINDOW {window} epochs before and the HORIZON {horizon} epochs of the "
                f"{'validation' if s == 'val' else 'test'} period. Check the nodata in the last "
                "epochs, or lower WINDOW/HORIZON.")
    if adaptive:  # the anchor's combination, fitted on the training windows only (see anchors.recent_rows)
        tr_ = got["train"]
        rec = anc.recent_rows(tr_["end"], dates)
        W_a = anc.fit_weights(tr_["family"][rec], tr_["truth"][rec], seed=seed)
        config["anchor_weights"] = [[round(float(v), 6) for v in row] for row in W_a]
        W_a = np.asarray(config["anchor_weights"])
        for s in SPLITS:
            g = got[s]
            g["anchor"] = np.einsum("ch,nch->nh", W_a, g.pop("family").astype(np.float64)).astype(np.float32)
    tr = got["train"]
    disp_idx = [i for i, n in enumerate(names) if n in _DISP_CHANNELS]
    ds = float(_robust_scale(tr["X"][:, :-1, 0]))
    raw = tr["truth"].astype(np.float64) - tr["anchor"].astype(np.float64)
    ts = [float(v) for v in np.atleast_1d(_robust_scale(raw, axis=0))]
    norm["disp_scale"] = ds
    norm["target_scale"] = ts
    out = {}
    for s in SPLITS:
        g = got[s]
        X = g["X"]
        X[:, :, disp_idx] = X[:, :, disp_idx] / np.float32(ds)
        Y = to_net(g["truth"], g["anchor"], norm)
        out[s] = Samples(X, Y.astype(np.float32), g["anchor"], g["truth"], g["pixel"], g["end"],
                         g["holdout"])
    return Prepared(out["train"], out["val"], out["test"], norm, config, list(names), hmask, dates, grid, dw)


# --------------------------------------------------------------------------------------------
# forecasting inputs, block-wise
# --------------------------------------------------------------------------------------------
def forecast_inputs(stack_block: np.ndarray, dates, grid: Optional[Grid], row0: int, config: dict,
                    norm: dict, covariates_block: Optional[Dict[str, np.ndarray]] = None,
                    end_index: Optional[int] = None,
                    out_rows: Optional[Tuple[int, int]] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Network inputs for every pixel of rows ``out_rows`` whose last WINDOW epochs are valid once gaps of up to
    3 acquisitions in the last 64 are filled (:func:`series.fill_window_gaps`; the origin's value is never invented).

    ``stack_block`` (T, h, W) holds rows ``row0..row0+h`` of the stack (read them with :func:`read_rows` so the
    neighbourhood halo is included). ``end_index`` = index of the last input epoch (default: the last epoch, i.e.
    a forecast into the future; ``config["test_start"] - 1`` for a backtest of the test period). Returns
    ``(X (n, window, F), valid (r1 - r0, W) bool, anchor (n, horizon) mm)``, pixels in row-major order.
    """
    blk = np.asarray(stack_block)
    dates = np.asarray(dates, dtype="datetime64[D]")
    T = dates.size
    if blk.ndim != 3 or blk.shape[0] != T:
        raise DeformCastError(f"The stack block must be (T={T}, rows, cols); got {blk.shape}.")
    window = int(config["window"])
    e = T - 1 if end_index is None else int(end_index)
    if not window - 1 <= e < T:
        raise DeformCastError(f"Cannot forecast from epoch {e}: it needs {window} epochs of input "
                              f"(WINDOW) up to it and the stack has {T}.")
    H, W = (grid.shape if grid is not None else tuple(config["grid_shape"]))
    if blk.shape[2] != W:
        raise DeformCastError(f"The stack block is {blk.shape[2]} pixels wide but the grid {W}.")
    if tuple(config["grid_shape"]) != (H, W) and ("spatial" in config["encodings"]):
        raise DeformCastError("This model was trained on a grid of "
                              f"{tuple(config['grid_shape'])} pixels with spatial encoding; the "
                              f"stack is {(H, W)}. Use the same grid as for training.")
    row0 = int(row0)
    r0, r1 = (row0, row0 + blk.shape[1]) if out_rows is None else (int(out_rows[0]), int(out_rows[1]))
    if r0 < row0 or r1 > row0 + blk.shape[1]:
        raise DeformCastError("out_rows lie outside the rows of the stack block.")
    names = list(config["covariate_names"]) if "covariates" in config["encodings"] else []
    for n in names:
        if covariates_block is None or n not in covariates_block:
            raise DeformCastError(f"The model needs the covariate '{n}'; give it in COVARIATES.")
    hist = blk[:e + 1]
    filled = fill_window_gaps(hist, dates[:e + 1], FILL_EPOCHS)
    blk = blk if filled is hist else np.concatenate([filled, blk[e + 1:]])
    centre = blk[e - window + 1:e + 1, r0 - row0:r1 - row0]
    valid = np.isfinite(centre).all(axis=0)
    rr, cc = np.nonzero(valid)
    rows = (rr + r0).astype(np.int64)
    cols = cc.astype(np.int64)
    ends = np.full(rows.size, e, np.int64)
    vis = blk[: e + 1]
    fam = None
    if ("regime" in config["encodings"]
            or (config.get("target") == "residual" and config.get("baseline") == "adaptive")):
        fam = family_at(blk, vis, row0, rows, cols, e, dates, int(config["horizon"]), config.get("steps"))
    anchor = _anchors(vis, row0, rows, cols, ends, dates, config, family=fam)
    good = np.isfinite(anchor).all(axis=1)
    if fam is not None:
        good &= np.isfinite(fam).all(axis=(1, 2))
    if not good.all():
        valid[rr[~good], cc[~good]] = False
        rows, cols, ends, anchor = rows[good], cols[good], ends[good], anchor[good]
        fam = None if fam is None else fam[good]
    X = _features(vis, row0, rows, cols, ends, dates, (H, W), config, norm, covariates_block, None,
                  same_end=True, family=fam, block_obj=blk)
    if "trajectory" in config["encodings"] or "regime" in config["encodings"]:  # too short / gappy a history
        ok = np.isfinite(X).all(axis=(1, 2))
        if not ok.all():
            valid[rows[~ok] - r0, cols[~ok]] = False
            X, anchor = X[ok], anchor[ok]
    return X, valid, anchor
