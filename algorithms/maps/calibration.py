"""Calibrated spread per lead step and per pixel, and coherent ensemble members (issue 15).

Ten networks trained on the same data agree far more closely than any of them agrees with a later,
noisy acquisition, and how wrong the forecast is differs from pixel to pixel: a quiet field is
forecast within the noise, a mining bowl that speeds up is not. ``predict`` therefore replaces the
members' own spread by one fitted on **forecasts it has made and could check**, from the rolling
validation origins (:func:`skill_gate.rolling_origins`: every target before the models' test period
and not after the forecast start), with the **delivered** forecast as the centre (the gated median
where the model folder holds a skill gate).

Spread model (our choice; the paper is silent). At pixel ``p`` and lead step ``h`` the members'
P10-P90 band is ``centre + c_h s(p, h) [z_lo(h), z_hi(h)]`` where

* ``s(p, h) = sqrt(a_h + sum_j b_j x_j(p, h)²)`` (mm) scales the spread by the **evidence** the data
  carry at the pixel (:data:`FEATURES`): ``family`` the disagreement (std) of the classical forecasts
  of :mod:`anchors` (large where the motion left its long-term law), ``residual`` the residual
  scatter of the trajectory fit on the last two years (noisy pixels), ``members`` the members' own
  disagreement, ``motion`` how far the forecast moves from the last value (fast ground is harder).
  Each is made non-decreasing along the horizon (cummax). Independent error sources add in variance:
  ``a_h`` (what no evidence explains, e.g. the atmosphere of the target epoch) and ``b_j >= 0`` come
  from a non-negative least-squares fit of the squared validation errors (winsorised at their 99.9th
  percentile) across pixels, origins and steps, so evidence that does not predict the error gets
  weight 0. ``a_h`` is **pooled over the lead** (:data:`BASES`): ``constant`` or ``linear`` in ``h``
  with non-negative coefficients (so non-decreasing), the one whose leave-one-origin-out coverage per
  step is closer to the target (:func:`choose_base`). Each step has only as many target dates as
  origins, and each date has its own atmosphere, common to every pixel: one free value per step
  (``step``, the form before session 8, made non-decreasing by a running maximum) inherited every
  noisy date, too narrow at the first steps and ratcheted too wide after the first noisy one. (A
  multiplicative model, ``log |error|`` regressed on the log evidence, found no weight on the demo
  scene: the acquisition noise, the same everywhere, hides a proportional law; the additive one keeps
  the noise floor and lets the rare large errors speak.) Optionally (``seasonal``,
  :data:`DEFAULT_SEASONAL` off) the acquisition noise of the target date's season joins the evidence
  (:mod:`evidence`), not made monotone in lead, where the validation targets cover all twelve months.
* ``z`` the members' shape at step ``h``: normal scores (``dressing``) or the empirical quantiles of
  the validation errors divided by ``s`` (``conformal``), centred on their median so the delivered
  median stays the centre;
* ``c_h`` the split-conformal factor: the smallest value whose band holds the target share (80 %,
  with the finite-sample correction ``ceil((n + 1) 0.8) / n``) of the validation errors of every
  step together (one value for all steps with a pooled base; per step with ``step``); the band
  width ``c_h (z_hi - z_lo)`` is made non-decreasing in ``h`` (isotonic regression), so the band
  never narrows with lead time. With a pooled base the ``conformal`` shape is pooled over steps too.

Coherent members. Each member is one whole path, not independent noise per step: member ``k``
takes at step ``h`` the value of rank ``r_k(h)`` of the calibrated marginal, where ``r_k(h)`` is the
rank of a latent AR(1) path ``X_k(h) = rho X_k(h-1) + sqrt(1 - rho²) eps`` (ensemble copula
coupling with a Gaussian AR(1) template). ``rho`` is the persistence of the validation errors
along the lead, estimated as ``cov(lag 2) / cov(lag 1)`` of the normalised errors (white acquisition
noise adds nothing to either, so this is the AR(1) coefficient of their persistent part), and at
least :data:`RHO_MIN` (0.999: members keep their rank almost everywhere, see docs/README_calibration.md):
a member is a future of the deformation, whose forecast error persists; the acquisition noise of each
epoch is in the marginals (the band covers observations) but does not make each member jagged. The
template is the same at every pixel (seeded), so member ``k`` is one spatially coherent scenario.

The validation forecasts (:mod:`validation_forecasts`): whole contiguous row spans aligned to the file's block
height (issue 17), on ``predict``'s local processes where it has them (session 26).

Both methods are fitted on every run; the coverage and mean band width per lead step of each,
cross-validated over the origins (fit on half the origins, score on the other half), go into the
outputs' metadata (``DEFORMCAST_CALIBRATION``) and the log. Measurements: docs/README_calibration.md.
"""
from __future__ import annotations

import math
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..io import raster
from .evidence import FEATURES, NOISE_FEATURES, evidence, season_features  # noqa: F401 (the evidence of the fit)
from ..errors import DeformCastError
from ..order_stats import member_median
from ..progress import Progress
from .validation_forecasts import (MAX_ORIGINS, SPAN_ROWS, block_height, collect, origins_for,  # noqa: F401 (their
                                   read_spans)                                                  # home until session 26)

METHODS = ("dressing", "conformal")
#: chosen by benchmarks/bench_calibration.py (docs/README_calibration.md)
DEFAULT_METHOD = "dressing"
#: the acquisition noise by season of the target date (off: the band stays monotone in lead; see the docs)
DEFAULT_SEASONAL = False
TARGET = 0.8
#: the largest number of (pixel, origin) samples per step the regression uses
MAX_FIT_SAMPLES = 200_000
#: forms of the base variance ``a_h`` along the lead, simplest first (see the module doc); ``step``
#: (one free value per step, the form before session 8) is kept for comparison, not chosen
BASES = ("constant", "linear", "step")
CHOSEN_BASES = ("constant", "linear")
TEMPLATE_SEED = 20260415
#: the least persistence of the members' ranks along the lead (see the module doc)
RHO_MIN = 0.999


# ---------------------------------------------------------------------------------------------
# the fit (pure numpy: the tests drive it with known errors)
# ---------------------------------------------------------------------------------------------
def _normal_scores(M: int) -> np.ndarray:
    from statistics import NormalDist

    nd = NormalDist()
    return np.array([nd.inv_cdf((k + 0.5) / M) for k in range(M)], dtype=np.float64)


def _isotonic(y: np.ndarray, w: Optional[np.ndarray] = None) -> np.ndarray:
    """Non-decreasing least-squares fit of ``y`` (pool adjacent violators)."""
    y = np.asarray(y, np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, np.float64)
    vals, wts, cnt = [], [], []
    for yi, wi in zip(y, w):
        vals.append(yi)
        wts.append(wi)
        cnt.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v2, w2, c2 = vals.pop(), wts.pop(), cnt.pop()
            v1, w1, c1 = vals.pop(), wts.pop(), cnt.pop()
            ww = w1 + w2
            vals.append((v1 * w1 + v2 * w2) / ww if ww > 0 else 0.5 * (v1 + v2))
            wts.append(ww)
            cnt.append(c1 + c2)
    return np.repeat(vals, cnt)


def scale(model: dict, feats: np.ndarray) -> np.ndarray:
    """``s(p, h) = sqrt(a_h + sum_j b_j x_j(p, h)²)`` of the spread model for evidence ``feats``
    (F, H, n) -> (H, n), mm."""
    b = np.asarray(model["coef"], np.float64)
    H = feats.shape[1]
    a = np.asarray(model["base_var"], np.float64)[:H]
    ne = sum(f not in NOISE_FEATURES for f in model["features"])          # the evidence rows come first
    v = a[:, None] + np.tensordot(b[:ne], np.square(feats[:ne]), axes=(0, 0))
    s = np.maximum.accumulate(np.sqrt(np.maximum(v, 1e-12)), axis=0)   # never narrower with lead
    if feats.shape[0] > ne:   # the seasonal noise of the target date: not monotone in lead
        s = np.sqrt(s * s + np.tensordot(b[ne:], np.square(feats[ne:]), axes=(0, 0)))
    return s


def _band(shape: np.ndarray, lo: float = 10.0, hi: float = 90.0) -> Tuple[np.ndarray, np.ndarray]:
    """P``lo``/P``hi`` (numpy's linear interpolation) of the members' shape per step (H, M)."""
    return np.percentile(shape, lo, axis=1), np.percentile(shape, hi, axis=1)


def _shapes(method: str, u: np.ndarray, M: int, pooled: bool = False) -> np.ndarray:
    """Members' shape per step (H, M), increasing, centred on its median; ``pooled``: one shape from
    every step's normalised errors."""
    H = u.shape[0]
    if method == "dressing":
        sh = np.broadcast_to(_normal_scores(M), (H, M)).copy()
    elif method == "conformal" and pooled:
        lv = (np.arange(M) + 0.5) / M
        fin = u[np.isfinite(u)]
        sh = np.broadcast_to(np.quantile(fin, lv) if fin.size else _normal_scores(M), (H, M)).copy()
    elif method == "conformal":
        lv = (np.arange(M) + 0.5) / M
        sh = np.stack([np.quantile(u[h][np.isfinite(u[h])], lv) if np.isfinite(u[h]).any() else _normal_scores(M)
                       for h in range(H)])
        sh = np.maximum.accumulate(sh, axis=1)
    else:
        raise DeformCastError(f"CALIBRATION: unknown method '{method}'. Valid values: {', '.join(METHODS)}.")
    return sh - np.median(sh, axis=1, keepdims=True)


def _needed_factor(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The smallest factor ``c`` with ``c lo <= u <= c hi`` for each normalised error ``u``."""
    with np.errstate(all="ignore"):
        need = np.where(u >= 0, u / hi if hi > 0 else np.inf, u / lo if lo < 0 else np.inf)
    return np.where(np.isfinite(need), np.maximum(need, 0.0), np.inf)


def _base_design(base: str, H: int) -> np.ndarray:
    """(H, k) columns of the base variance along the lead for ``base`` (non-negative coefficients keep
    it non-decreasing; ``step``: one free value per step, made non-decreasing after the fit)."""
    t = np.arange(1, H + 1, dtype=np.float64) / H
    if base == "linear":
        return np.stack([np.ones(H), t], axis=1)
    if base == "constant":
        return np.ones((H, 1))
    if base == "step":
        return np.eye(H)
    raise DeformCastError(f"Unknown calibration base '{base}'. Valid values: {', '.join(BASES)}.")


def _fit_base(err: np.ndarray, feats: np.ndarray, base: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(base variance per step (H,), evidence weights (F,))``: non-negative least squares of the
    squared errors (winsorised at their 99.9th percentile per step) across pixels, origins and steps."""
    from scipy.optimize import nnls

    H, N = err.shape
    F = feats.shape[0]
    rng = np.random.default_rng(0)
    per = max(1, MAX_FIT_SAMPLES // max(1, H))
    take = np.arange(N) if N <= per else np.sort(rng.choice(N, per, replace=False))
    e2 = np.square(err[:, take])
    e2 = np.minimum(e2, np.quantile(e2, 0.999, axis=1, keepdims=True))
    x2 = np.square(feats[:, :, take])
    n = take.size
    B = _base_design(base, H)
    A = np.concatenate([np.repeat(B, n, axis=0), x2.reshape(F, -1).T], axis=1)
    colscale = np.maximum(np.sqrt(np.mean(A * A, axis=0)), 1e-12)
    sol = nnls(A / colscale, e2.ravel(), maxiter=50 * A.shape[1])[0] / colscale
    k = B.shape[1]
    return np.maximum.accumulate(np.maximum(B @ sol[:k], 1e-6)), sol[k:]


def months_covered(dates, origins, H: int) -> set:
    """The calendar months (1-12) of the target dates of forecasts from ``origins`` over ``H`` steps."""
    d = np.asarray(dates, dtype="datetime64[M]")
    return {int(m) % 12 + 1 for o in origins for m in d[int(o) + 1:int(o) + 1 + H].astype(np.int64)}


def is_seasonal(model: Optional[dict]) -> bool:
    """Whether a spread model uses the seasonal noise terms (its evidence then needs them)."""
    return bool(model) and any(f in NOISE_FEATURES for f in model.get("features", ()))


def fit(err: np.ndarray, feats: np.ndarray, M: int, method: str = DEFAULT_METHOD, target: float = TARGET,
        origin: Optional[np.ndarray] = None, base: Optional[str] = None) -> dict:
    """The spread model (see the module doc) from validation errors ``err`` (H, N) = observation -
    delivered centre and their evidence ``feats`` (F, H, N); ``M`` members. JSON-serialisable.

    ``base``: the form of the base variance along the lead (:data:`BASES`); None chooses it by
    leave-one-origin-out coverage (:func:`choose_base`) when ``origin`` (N,) names at least 3
    origins, else ``linear``."""
    err = np.asarray(err, np.float64)
    feats = np.asarray(feats, np.float64)
    H, N = err.shape
    if N == 0 or M < 2:
        raise DeformCastError("No validation value to calibrate the spread on.")
    F = feats.shape[0]
    scores = None
    if base is None:
        if origin is not None and np.unique(origin).size >= 3:
            base, scores = choose_base(err, feats, origin, M, method, target)
        else:
            base = "linear"
    base_var, coef = _fit_base(err, feats, base)
    model = {"method": method, "features": list((FEATURES + NOISE_FEATURES)[:F]), "coef": coef.tolist(),
             "base_var": base_var.tolist(),
             "base": base, "target": float(target), "M": int(M), "seed": TEMPLATE_SEED}
    if scores is not None:
        model["base_scores"] = scores
    s = scale(model, feats)
    u = err / s
    pooled = base != "step"
    shape = _shapes(method, u, M, pooled=pooled)
    lo, hi = _band(shape)
    if pooled:
        # one factor for every step: the base and the evidence carry the growth with lead, and
        # every step's factor is fitted on all steps' errors (a few dates per step make a
        # per-step quantile swing with each date's atmosphere)
        need = np.concatenate([_needed_factor(u[h], lo[h], hi[h]) for h in range(H)])
        level = min(1.0, math.ceil((need.size + 1) * float(target)) / need.size)
        factor = np.full(H, float(np.quantile(need, level, method="higher")))
    else:
        level = min(1.0, math.ceil((N + 1) * float(target)) / N)
        factor = np.array([float(np.quantile(_needed_factor(u[h], lo[h], hi[h]), level, method="higher"))
                           for h in range(H)])
    factor = np.where(np.isfinite(factor), factor, np.nanmax(np.where(np.isfinite(factor), factor, np.nan)))
    width = _isotonic(factor * (hi - lo))
    model["factor"] = (width / (hi - lo)).tolist()
    model["shape"] = shape.tolist()
    # persistence of the members' ranks: the normalised errors are a persistent part (AR(1), rho)
    # plus white acquisition noise; white noise adds nothing to the lag-1 and lag-2 covariances,
    # so rho = cov(lag 2) / cov(lag 1) (the AR(1)-plus-noise identification)
    c1 = sum(float(np.mean(u[h] * u[h + 1])) for h in range(H - 1))
    c2 = sum(float(np.mean(u[h] * u[h + 2])) for h in range(H - 2)) * (H - 1) / max(1, H - 2)
    model["rho_estimated"] = float(np.clip(c2 / c1, 0.0, 0.995)) if H > 2 and c1 > 0 else RHO_MIN
    model["rho"] = max(RHO_MIN, model["rho_estimated"])
    return model


def choose_base(err, feats, origin, M, method, target=TARGET) -> Tuple[str, Dict[str, float]]:
    """The base form (:data:`CHOSEN_BASES`) whose leave-one-origin-out coverage per step is closest to
    the target (mean squared deviation over steps; ties go to the simpler form), with each form's score."""
    folds = [origin == o for o in np.unique(origin)]
    scores = {b: float(np.mean(np.square(np.asarray(_out_of_fold(err, feats, folds, M, method, target, b)["coverage"])
                                         - target))) for b in CHOSEN_BASES}
    return min(CHOSEN_BASES, key=lambda b: (round(scores[b], 6), CHOSEN_BASES.index(b))), scores


def evaluate(model: dict, err: np.ndarray, feats: np.ndarray) -> dict:
    """Coverage of the members' P10-P90 band and its mean width (mm) per step on errors ``err``."""
    err = np.asarray(err, np.float64)
    H = err.shape[0]
    s = scale(model, feats)
    shape = np.asarray(model["shape"])[:H]
    lo, hi = _band(shape)
    c = np.asarray(model["factor"])[:H]
    a, b = (c * lo)[:, None] * s, (c * hi)[:, None] * s
    inside = (err >= a) & (err <= b)
    w = b - a
    return {"coverage": inside.mean(axis=1).tolist(), "width_mm": w.mean(axis=1).tolist(),
            "rank_corr_last": rank_corr(w[-1], np.abs(err[-1]))}


def rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(spearmanr(a[ok], b[ok])[0])


def cross_validate(err, feats, origin, M, method, target=TARGET, base: Optional[str] = None) -> Optional[dict]:
    """Fit on every other origin, score on the others, and the reverse; pooled coverage and width
    (``base`` as in :func:`fit`; None: ``linear``)."""
    uo = np.unique(origin)
    if uo.size < 2:
        return None
    fold = np.isin(origin, uo[1::2])
    return _out_of_fold(err, feats, [fold, ~fold], M, method, target, base or "linear")


def _out_of_fold(err, feats, folds, M, method, target, base) -> dict:
    """Coverage and mean width per step of each fold (bool (N,)) scored by a fit (form ``base``) on the
    rest, pooled over the folds by their sizes."""
    cov, wid, n = 0.0, 0.0, 0
    for test in folds:
        m = fit(err[:, ~test], feats[:, :, ~test], M, method, target, base=base)
        ev = evaluate(m, err[:, test], feats[:, :, test])
        k = int(test.sum())
        cov = cov + np.asarray(ev["coverage"]) * k
        wid = wid + np.asarray(ev["width_mm"]) * k
        n += k
    return {"coverage": (cov / n).tolist(), "width_mm": (wid / n).tolist()}


# ---------------------------------------------------------------------------------------------
# coherent members
# ---------------------------------------------------------------------------------------------
def member_ranks(M: int, H: int, rho: float, seed: int = TEMPLATE_SEED) -> np.ndarray:
    """(M, H) rank of member k at step h: the ranks of M latent AR(1) paths with lag-1 correlation rho."""
    rng = np.random.default_rng(int(seed))
    X = np.empty((M, H))
    X[:, 0] = rng.standard_normal(M)
    r = float(np.clip(rho, 0.0, 0.999))
    for h in range(1, H):
        X[:, h] = r * X[:, h - 1] + math.sqrt(1.0 - r * r) * rng.standard_normal(M)
    return np.argsort(np.argsort(X, axis=0, kind="stable"), axis=0, kind="stable")


def apply(model: dict, out: np.ndarray, valid: np.ndarray, feats: np.ndarray,
          centre: Optional[np.ndarray] = None) -> np.ndarray:
    """Replace the members ``out`` (M, H, rows, W) at ``valid`` by calibrated coherent paths around
    their median (in place); return the median (H, rows, W), NaN elsewhere. ``centre``: that median at
    ``valid`` (H, n) where the caller has it already."""
    M, H = out.shape[:2]
    med = np.full(out.shape[1:], np.nan, np.float32)
    if not valid.any():
        return med
    if centre is None:
        with np.errstate(all="ignore"):
            centre = member_median(out[:, :, valid])
    s = scale(model, feats).astype(np.float32)
    shape = np.asarray(model["shape"], np.float64)[:H]
    c = np.asarray(model["factor"], np.float64)[:H]
    ranks = member_ranks(M, H, model["rho"], model.get("seed", TEMPLATE_SEED))
    dev = (c[None] * np.take_along_axis(shape.T, ranks, axis=0)).astype(np.float32)   # (M, H)
    out[:, :, valid] = centre[None] + dev[:, :, None] * s[None]
    med[:, valid] = centre
    return med


_CACHE: Dict[tuple, dict] = {}


def _cache_key(info, loaded, configs, e, H, gate, seasonal=False) -> tuple:
    """What the collected validation forecasts depend on: the stack, the members, the horizon, the gate
    and the validation origins (not the forecast start itself: forecasts from any start after the
    last validation target share them)."""
    import json

    win = max(int(m.meta["window"]) for m in loaded)
    folders = tuple(os.path.abspath(m.folder) for m in loaded)
    stamps = tuple(os.path.getmtime(os.path.join(f, n)) for f in folders for n in os.listdir(f))
    return (os.path.abspath(info.path), os.path.getmtime(info.path), folders, stamps,
            tuple(origins_for(configs, info, H, win, e)), int(H), json.dumps(gate, sort_keys=True, default=str),
            bool(seasonal))


def calibrate(info, loaded, configs, cov, e: int, H: int, dev: str, batch_size: int, method: str = DEFAULT_METHOD,
              gate=None, target: float = TARGET, progress: Optional[Progress] = None,
              seasonal: bool = False, remote: Optional[tuple] = None, meanwhile=None) -> Tuple[Optional[dict], dict]:
    """``(model or None, details)``: the spread model of ``method`` fitted on the validation origins,
    and what the metadata and the log report (coverage and width per step of both methods).
    ``seasonal``: with the acquisition noise by season of the target date (:mod:`evidence`). ``remote``: ``(pool,
    job)``, local processes that forecast the validation origins (:func:`validation_forecasts.collect`), and
    ``meanwhile()`` runs in this process while they do (not at all where nothing is forecast there)."""
    if method not in METHODS:
        raise DeformCastError(f"CALIBRATION: unknown method '{method}'. Valid values: {', '.join(METHODS)}.")
    key = _cache_key(info, loaded, configs, e, H, gate, seasonal)
    data = _CACHE.get(key)
    if data is None:
        data = collect(info, loaded, configs, cov, e, H, dev, batch_size, gate, progress=progress, seasonal=seasonal,
                       remote=remote, meanwhile=meanwhile)
        _CACHE.clear()          # one stack at a time: predict's second method (the benchmark) reuses it
        if data is not None:
            _CACHE[key] = data
    if data is None:
        return None, {"calibrated": False, "reason": "no validation origin before the forecast start to calibrate on"}
    M = len(loaded)
    err, feats, origin = data["err"], data["feats"], data["origin"]
    note = None
    months = len(months_covered(info.dates, data["origins"], H)) if seasonal else 12
    if months < 12:
        note = (f"seasonal noise not used: the validation targets cover {months} of 12 calendar months, and "
                "the season of the noise needs a whole year")
        feats, seasonal = feats[:len(FEATURES)], False
    model = fit(err, feats, M, method, target, origin=origin)
    ins = evaluate(model, err, feats)
    comp = {}
    for mt in METHODS:
        cv = cross_validate(err, feats, origin, M, mt, target, base=model["base"])
        comp[mt] = cv if cv is not None else evaluate(fit(err, feats, M, mt, target, base=model["base"]), err, feats)
    dates = info.dates
    details = {"calibrated": True, "method": method, "target": target,
               "origins": [raster.iso(dates[o]) for o in data["origins"]],
               "n_values_per_step": int(err.shape[1]), "n_pixels_per_step": int(err.shape[1]),
               "raw_coverage": data["raw_in"].mean(axis=1).tolist(),
               "calibrated_coverage": ins["coverage"], "width_mm": ins["width_mm"],
               "sigma_mm": (np.asarray(ins["width_mm"]) / (2 * 1.2816)).tolist(),
               "spread_error_rank_corr_last": ins["rank_corr_last"],
               "evidence": dict(zip(model["features"], model["coef"])), "base": model["base"],
               "seasonal_noise": bool(seasonal), "seasonal_note": note,
               "base_scores": model.get("base_scores"), "base_sd_mm": np.sqrt(model["base_var"]).tolist(),
               "rho": model["rho"], "rho_estimated": model["rho_estimated"],
               "factor": model["factor"], "cross_validated": comp}
    return model, details


def log_lines(details: dict) -> List[str]:
    """The log's account of a calibration (per step coverage and width of both methods)."""
    if not details.get("calibrated"):
        return [f"No calibration: {details.get('reason')}."]
    ev = ", ".join(f"{k} {v:.2f}" for k, v in details["evidence"].items())
    lines = [f"Spread calibrated ({details['method']}) on {len(details['origins'])} validation origins "
             f"({details['origins'][0]} .. {details['origins'][-1]}), {details['n_values_per_step']} values per step; "
             f"evidence weights {ev}; base spread along the lead: {details.get('base', 'step')}"
             + (" (leave-one-origin-out deviation from the target coverage: "
                + ", ".join(f"{k} {v:.4f}" for k, v in details["base_scores"].items()) + ")"
                if details.get("base_scores") else "")
             + f"; member paths AR(1) rho {details['rho']:.2f}; "
             f"rank correlation of spread and |error| at the last step {details['spread_error_rank_corr_last']:.2f}."]
    if details.get("seasonal_note"):
        lines.append(f"  {details['seasonal_note']}.")
    for mt, r in details["cross_validated"].items():
        lines.append(f"  {mt} (cross-validated over origins): P10-P90 coverage per step "
                     + ", ".join(f"{c:.0%}" for c in r["coverage"]) + "; mean width (mm) "
                     + ", ".join(f"{w:.1f}" for w in r["width_mm"]))
    return lines
