"""The adaptive anchor: a family of classical forecasts and the combination the data choose.

Why (issue 12). The networks learn the *correction* to a classical forecast (``target="residual"``).
With one fixed anchor, the MintPy-style trajectory fitted on all history, they won wherever a
pixel keeps its regime and lost threefold where subsidence starts, speeds up or stops inside the
record: the all-history fit is structurally wrong there, and on real Sentinel-1 points, where the
noise of the last acquisitions dominates a short forecast, every trajectory fit lost to a plain
mean of the last few epochs. No single classical forecast wins on every kind of data.

What. :data:`FAMILY` (:mod:`family`, which fits it) is a set of classical per-pixel forecasts from one origin,
each computed from the history up to that origin only (no look-ahead):

==========================  ==================================================================
``persistence``             the last valid value
``mean_last_5``             smoothed persistence: the mean of the last 5 valid epochs
``linear``                  offset + velocity fitted on all history
``linear_1y``, ``linear_2y`` the same on the last 1 / 2 years
``trajectory_2y``, ``_3y``  the MintPy-style time function (:mod:`baselines`) on the last 2 / 3 years
``trajectory``              the same on all history
``trajectory_ensemble``     the mean of trajectory fits on the last 1, 2, 3 years and all history
                            (the ``trajectory_ensemble`` baseline of :mod:`baselines`)
``trajectory_windows``      the mean of trajectory fits on windows of 1.3, 1.8, 2.3 and 2.8 years
==========================  ==================================================================

The anchor is the combination ``sum_c w[c, h] F_c[h]`` with one weight vector per lead step ``h``,
non-negative and summing to 1 (so a constant offset of the series passes through), fitted by
least squares on the *training* windows across pixels (:func:`fit_weights`) whose last input epoch
lies in the last two years of the training windows (:func:`recent_rows`: the ground as it behaves
now; on five varied-physics seeds this scored 2.68 / 3.08 / 2.67 / 2.74 / 2.46 mm against 2.79 /
3.10 / 2.61 / 2.76 / 2.50 mm for weights fitted on every training window). The weights are
stored in the data configuration of each model (``config["anchor_weights"]``), so a forecast uses
exactly the combination that was fitted. On a scene where regimes change the fit leans on the
recent windows; on a scene of steady motion on all history; on noise-dominated series on the
smoothed persistence. The networks then see every member of the family relative to the last
value (encoding ``regime``, :func:`regime_features`) and learn, across pixels, where to depart
from the combination.

Measured while choosing (a per-pixel simulator with nine kinds of motion, onset, stop, speed-up,
saturation, steps, rebound, 150 epochs at 12 days, 15-epoch horizon, 4 seeds, RMSE against the
noise-free truth): the fitted combination scored 5.31 mm against 5.19 for the best single member
(``trajectory_2y``) and 9.44 for the all-history trajectory when regimes change; 3.40 against
3.50 (``trajectory``) where every pixel keeps its regime. A per-pixel choice by each pixel's own
track record over its recent past (inverse-MSE weights over 6-15 earlier origins) did not beat
the single best member (5.25-5.41 mm): one pixel's history is too noisy to choose from, which is
why the choice is made across pixels (here) and refined per pixel by the networks.

Regime evidence (channels of the ``regime`` encoding): the mean residual of the all-history
trajectory fit over the last half year and the last year, divided by the fit's residual
scatter (a CUSUM-like statistic: large where the motion has left the long-term law), and the
velocity of the last year minus the all-history velocity, in mm/yr.
"""
from __future__ import annotations

import os
from typing import List, Optional

import numpy as np

from . import analog, pooling
from . import record_noise as rn
from . import flat_record as fr
from .pooling import class_prior, guided_box_mean, sampling_variance, shrink_to_class, trend_evidence, velocity_guide
from .track_record import (blend_sums, blend_weight, combined, inverse_mse_weight, local_spacing, record,  # noqa: F401
                           target_weights)
from .baselines import design_matrix, fit_stats, terms_for_span, years_between
from .family import (FAMILY, FAMILY_NAMES, _mean_last, _start, family_chunks,  # noqa: F401 (its home before)
                     family_forecasts)
from ..errors import DeformCastError

REGIME_EVIDENCE = ("res_6m", "res_1y", "dv_1y")
#: the combination is fitted on training windows ending in the last RECENT_YEARS (see recent_rows)
RECENT_YEARS = 2.0
REGIME_FEATURES = ([f"reg:end_{n}" for n in FAMILY_NAMES] + [f"reg:mid_{n}" for n in FAMILY_NAMES]
                   + [f"reg:{n}" for n in REGIME_EVIDENCE])


def default_weights(horizon: int) -> np.ndarray:
    """Equal weights (C, horizon): the combination before anything was fitted."""
    return np.full((len(FAMILY), int(horizon)), 1.0 / len(FAMILY))


def recent_rows(ends: np.ndarray, dates, years: float = RECENT_YEARS, min_rows: int = 500) -> np.ndarray:
    """Indices of the windows whose last input epoch lies in the last ``years`` before the latest
    one (all windows when fewer than ``min_rows`` do): the combination is fitted where the ground
    behaves as it does now, not as it did at the start of the record."""
    e = np.asarray(ends, dtype=np.int64)
    if e.size == 0:
        return np.arange(0)
    d = np.asarray(dates, dtype="datetime64[D]").astype("int64")
    keep = np.flatnonzero(d[e] >= d[e.max()] - int(round(years * 365.25)))
    return keep if keep.size >= min_rows else np.arange(e.size)


def fit_weights(family: np.ndarray, truth: np.ndarray, max_rows: int = 20000, seed: int = 0) -> np.ndarray:
    """Simplex-constrained least squares per lead step: ``w[:, h] >= 0``, ``sum_c w[c, h] = 1``.

    ``family`` (N, C, h) mm, ``truth`` (N, h) mm of the training windows. Rows with a NaN are
    skipped; at most ``max_rows`` rows (a seeded sample) enter each fit. Solved as NNLS with the
    sum constraint as a heavily weighted extra row (exact to about 1e-6). Weights are smoothed
    over lead steps with a 3-step running mean (neighbouring steps carry nearly the same
    information; the smoothing keeps the combination from jumping between members from one step
    to the next) and renormalised.
    """
    from scipy.optimize import nnls

    F = np.asarray(family, dtype=np.float64)
    Y = np.asarray(truth, dtype=np.float64)
    N, C, H = F.shape
    if Y.shape != (N, H):
        raise DeformCastError(f"fit_weights: truth {Y.shape} does not match the family {F.shape}.")
    ok = np.isfinite(F).all(axis=(1, 2)) & np.isfinite(Y).all(axis=1)
    idx = np.flatnonzero(ok)
    if idx.size > max_rows:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_rows, replace=False))
    if idx.size < 2 * C:
        return default_weights(H)
    # relative to the first member (persistence): removes the arbitrary level of each series
    ref = F[idx, 0, :]
    W = np.zeros((C, H))
    for h in range(H):
        A = F[idx, :, h] - ref[:, h, None]
        b = Y[idx, h] - ref[:, h]
        lam = 1e3 * max(1.0, float(np.sqrt((A * A).sum() / A.size))) * np.sqrt(idx.size)
        A2 = np.vstack([A, np.full((1, C), lam)])
        b2 = np.concatenate([b, [lam]])
        w, _ = nnls(A2, b2, maxiter=50 * C)
        s = w.sum()
        W[:, h] = w / s if s > 0 else 1.0 / C
    if H >= 3:
        pad = np.concatenate([W[:, :1], W, W[:, -1:]], axis=1)
        W = (pad[:, :-2] + pad[:, 1:-1] + pad[:, 2:]) / 3.0
        W /= W.sum(axis=0, keepdims=True)
    return W


def combine(family: np.ndarray, weights) -> np.ndarray:
    """The anchor ``(h, n)`` from a family ``(C, h, n)`` and weights ``(C, h)``."""
    W = np.asarray(weights, dtype=np.float64)
    F = np.asarray(family, dtype=np.float64)
    if W.shape != F.shape[:2]:
        raise DeformCastError(f"Anchor weights {W.shape} do not fit the family {F.shape[:2]}: the model was "
                              "made by another version of DeformCast; retrain it.")
    return np.einsum("ch,chn->hn", W, F)


def regime_features(hist: np.ndarray, dates, family: np.ndarray, mid: int) -> np.ndarray:
    """Static channels of the ``regime`` encoding, float64 ``(n, len(REGIME_FEATURES))`` before asinh.

    Each family member's forecast minus the last value at the last and at the middle lead step
    (mm), then the regime evidence (see the module doc). NaN where undefined.
    """
    y = np.asarray(hist, dtype=np.float64)
    d = np.asarray(dates, dtype="datetime64[D]")
    end = d.size - 1
    last = _mean_last(y, 1)
    end_c = family[:, -1, :] - last[None]
    mid_c = family[:, int(mid), :] - last[None]
    t_fit = years_between(d, d[end])
    span = float(t_fit[-1] - t_fit[0]) if t_fit.size else 0.0
    deg, periods = terms_for_span(span)
    coef, _, sigma, _ = fit_stats(y, t_fit, t_fit[-1:], deg, periods)
    fitted = design_matrix(t_fit, deg, periods) @ coef                      # (T, n)
    res = y - fitted
    ev = []
    for yrs in (0.5, 1.0):
        s = _start(d, end, yrs)
        r = res[s:]
        ok = np.isfinite(r)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(ok, r, 0.0).sum(axis=0) / np.maximum(ok.sum(axis=0), 1)
            ev.append(np.where(ok.any(axis=0), m / np.maximum(sigma, 1e-3), np.nan))
    s1 = _start(d, end, 1.0)
    lin1 = fit_stats(y[s1:], t_fit[s1:], t_fit[-1:], 1, ())[0][1] if end - s1 >= 3 else np.full(y.shape[1], np.nan)
    ev.append(lin1 - coef[1])
    return np.concatenate([end_c, mid_c, np.stack(ev)], axis=0).T


def describe(weights, top: int = 3) -> str:
    """'trajectory_2y 0.45, trajectory_windows 0.30, ...' (largest mean weights first)."""
    W = np.asarray(weights, dtype=np.float64).mean(axis=1)
    order = np.argsort(-W)[:top]
    return ", ".join(f"{FAMILY_NAMES[i]} {W[i]:.2f}" for i in order if W[i] > 0.005)


def check_weights(weights, horizon: int) -> np.ndarray:
    W = np.asarray(weights, dtype=np.float64)
    if W.shape != (len(FAMILY), int(horizon)) or not np.isfinite(W).all():
        raise DeformCastError("The model's anchor weights are damaged or from another version of DeformCast; "
                              "retrain the model.")
    return W



#: the ``local`` classical forecast (:func:`local_forecast`): K earlier origins ending within the last
#: ``lead`` epochs (:func:`local_origins`), errors pooled over a BOX x BOX neighbourhood,
#: inverse-MSE^POWER weights. BOX was 9 until session 10; with the neighbours weighted by velocity
#: (``LOCAL_GUIDED``) a wider box no longer mixes regimes, and 15 measured best of 9, 15 and 21 over 75
#: replayed scenes (mean 0.9101 -> 0.9073 of the best classical forecast; docs/skill.md)
LOCAL_ORIGINS, LOCAL_BOX, LOCAL_POWER = 4, 15, 2.0
#: origins about a year back in the classical candidates' local track record (:func:`season_origins`, session 32):
#: 0, none (as in sessions 4-31): measured and not taken (the classical ``local`` forecast gained on both generators
#: over 48 replayed scenes, the delivered forecast over six origins of ten fresh scenes did not: docs/skill.md,
#: "Session 32"). ``DEFORMCAST_SEASON_ORIGINS`` sets it for experiments, processes started by a run included.
LOCAL_SEASON_ORIGINS = int(os.environ.get("DEFORMCAST_SEASON_ORIGINS", "0"))
#: the ensemble's weight in the local blend: "least_squares" (:func:`track_record.blend_weight`, session 9) or
#: "inverse_mse" (``m_E^-p / (m_E^-p + m_F^-p)``, sessions 4-8; kept for benchmarks/gate_replay.py)
LOCAL_BLEND = "least_squares"
#: rows of halo the local blend needs around a block to give the whole raster's result: the blend's sums are
#: pooled over the neighbourhood, and each neighbour's sum uses the local forecast's weights, themselves pooled
#: over its own neighbourhood: two boxes (until session 11 one box: 0.35 mm off on a test scene), and twice the radius
#: of the spatial analog (session 49), whose paths continued from neighbour to neighbour reach further (data.analog)
LOCAL_HALO = 2 * (LOCAL_BOX // 2) + (2 * analog.RADIUS if analog.ANALOG else 0)
#: classical forecasts the local track record weighs beside the family, entries as in :data:`FAMILY`.
#: They are not inputs of the networks (their channels and the anchor weights stay those of
#: :data:`FAMILY`, so models trained before keep working). ``linear_6m``: the velocity of the last half
#: year, the shortest window of the candidates, for a bowl that started or sped up within the last year.
#: Replayed on 40 benchmark seeds (benchmarks/gate_replay.py, session 7) the delivered forecast improved on
#: 13 and moved by at most +0.006 of the best classical RMSE on the others (docs/skill.md).
#: ``seasonal_linear_6m`` (session 10): the same half-year velocity through the series with the seasons
#: of the whole record removed, the seasons added back (:func:`_seasonal_linear`): a bowl that changed
#: regime lately, in ground that also moves with the seasons. Replayed over 75 scenes the delivered
#: forecast's mean went 0.9073 -> 0.9011 of the best classical forecast (zones above 1.05: 92 -> 84 of
#: 306), and on 5 scenes never looked at before (seeds 77-81) it improved 4 and tied 1 (docs/skill.md).
#: ``seasonal_quadratic_1y`` (session 10): a parabola through the last year of the series without the
#: seasons of the whole record, the seasons added back: a bowl that started or sped up within the last
#: year and is still accelerating. Replayed over 85 scenes: mean 0.9032 -> 0.8961, worst scene 1.101 ->
#: 0.917 (a bowl that started a year before the end), 33 scenes better and 31 worse by at most 0.019.
#: ``seasonal_mean_2m`` (session 34): the level of the last two months of the series without the seasons of the
#: whole record, the seasons added back: smoothed persistence for ground without a trend, offered only there
#: (:data:`LEVEL_CANDIDATES`). Replayed from six origins on 18 scenes of both generators, no scene worse by more
#: than 0.002 against the truth, the expected observation or the acquisitions (means 0.9636 -> 0.9628, 0.7887 ->
#: 0.7867, 0.9332 -> 0.9329 of the best classical forecast); offered everywhere it lost on four scenes (a bowl that
#: sped up: +0.038; docs/skill.md, "Session 34").
#: ``seasonal_decay_tau4m`` and ``_tau7m`` (session 36): ``a + b exp(-t / tau)`` through the last year of the series
#: without the seasons of the whole record, tau 0.3 and 0.6 years, the seasons added back: a bowl that is stopping,
#: a saturating uplift (docs/skill.md, "Session 36"). ``DEFORMCAST_DECAY=0`` leaves them out (sessions 34-35).
LOCAL_EXTRA = (("linear_6m", "linear", 0.5), ("seasonal_linear_6m", "seasonal_linear", 0.5),
               ("seasonal_quadratic_1y", "seasonal_quadratic", 1.0), ("seasonal_mean_2m", "seasonal_mean", 1.0 / 6.0)) \
    + ((("seasonal_decay_tau4m", "seasonal_decay", (1.0, 0.3)), ("seasonal_decay_tau7m", "seasonal_decay", (1.0, 0.6)))
       if os.environ.get("DEFORMCAST_DECAY", "1") != "0" else ())
#: candidates of :data:`LOCAL_EXTRA` that hold a level: offered only at pixels whose velocity over the last two years
#: (:func:`pooling.velocity_guide`) lies within :data:`TREND_T` standard errors of zero; elsewhere they get no weight
LEVEL_CANDIDATES = ("seasonal_mean_2m",)
TREND_T = 2.0
LOCAL_NAMES = FAMILY_NAMES + tuple(f[0] for f in LOCAL_EXTRA)
#: pool the track record over neighbours weighted by the likeness of their recent velocity
#: (:mod:`pooling`, session 10); False: the plain box (sessions 4-9, kept for benchmarks/gate_replay.py)
LOCAL_GUIDED = True


def local_origins(e: int, lead: int) -> List[int]:
    """The earlier origins of the local track record at origin ``e``: ``e - lead - S + j S`` for
    j = 0..3 (S = :func:`local_spacing`; lead 15: e - 20, e - 15, e - 10, e - 5), each scored on the
    epochs from it up to ``e`` (the full lead for the first two, 2/3 and 1/3 of it for the others);
    at least 10 epochs of history.

    Why these and not older origins with a full lead (``e - lead - 5 j``, before session 5): at the
    final forecast origin the targets of the last three lie in the models' test period, which no
    network trained on, and two thirds of the first one's. Older origins score the ensemble on
    targets its training windows held (for the 80 % of training pixels of spatial validation), so
    its record looked better than it was and the blend trusted it where the regime had changed.
    Without the first origin (three origins, the last with 5 epochs) the record is too short and
    noisy: one benchmark seed's fast bowl went from 1.07 to 2.04 of the best classical forecast
    (docs/skill.md).
    """
    e, L = int(e), int(lead)
    S = local_spacing(L)
    return [o for o in (e - L - S + j * S for j in range(LOCAL_ORIGINS)) if 10 <= o < e]


#: the classical candidates' local track record (:func:`candidate_origins`, session 34): ``dense``, every
#: :func:`candidate_spacing` epochs over the span of :func:`local_origins`; ``recent``, the ensemble's four origins
#: (sessions 4-33). ``DEFORMCAST_LOCAL_CANDIDATES`` sets it for experiments, processes started by a run included.
LOCAL_CANDIDATES = os.environ.get("DEFORMCAST_LOCAL_CANDIDATES", "dense")


def candidate_spacing(lead: int) -> int:
    """Epochs between the origins of the classical candidates' track record (a fifth of the lead, at least 1)."""
    return max(1, int(lead) // 5)


def candidate_origins(e: int, lead: int) -> List[int]:
    """The earlier origins of the classical candidates' local track record at origin ``e``: from the first of
    :func:`local_origins` (``e - lead - S``) up to ``e - 1`` every :func:`candidate_spacing` epochs (lead 15:
    e - 20, e - 17, ..., e - 2, seven origins; lead 30: e - 40, e - 34, ..., e - 4), each scored on the epochs
    from it up to ``e``; at least 10 epochs of history. With ``LOCAL_CANDIDATES = "recent"``:
    :func:`local_origins`.

    Why (session 34, docs/skill.md): the candidates' record is a few noisy draws of each date's atmosphere,
    and a classical fit, unlike the networks, has no training windows an origin could overlap, so any origin
    of the same recent span may score it. Seven origins instead of four, over the same span: replayed from six
    origins on fourteen scenes of both generators, the delivered forecast improved on eight against the later
    acquisitions and the expected observation and worsened on none (mean 0.939 -> 0.935 and 0.804 -> 0.795 of
    the best classical forecast), and moved by at most 0.007 against the truth (0.982 -> 0.981). Origins
    further back (four origins scored on the whole lead, e - 15 .. e - 30) lost on six of ten scenes (0.958 ->
    0.994 against the truth): the record must stay recent. On four fresh scenes run after the choice: within 0.005
    either way. The ensemble's record keeps :func:`local_origins`."""
    e, L = int(e), int(lead)
    if LOCAL_CANDIDATES == "recent":
        return local_origins(e, L)
    return [o for o in range(e - L - local_spacing(L), e, candidate_spacing(L)) if 10 <= o < e]


def season_origins(dates, e: int, lead: int) -> List[int]:
    """The origins about a year before ``e`` whose ``lead`` targets fall in the season the forecast from ``e``
    covers (:data:`LOCAL_SEASON_ORIGINS` of them, :func:`local_spacing` apart, the first the acquisition nearest to
    one year before ``e``); only origins whose whole lead the history up to ``e`` holds, whose date lies within a
    spacing of its place in the year and that have at least 10 epochs of history. The classical candidates' local
    track record scores these beside :func:`local_origins` (not the ensemble's: its training windows held their
    targets).

    Why (session 32, docs/skill.md): the last origins score the candidates on the half year before the forecast
    origin, the opposite phase of an annual cycle to a half-year forecast, so a candidate that follows the last
    half year's seasonal slope looks best just before the season turns. On a scene of the second generator whose
    future was a summer (seed 35) ``local`` scored 1.52 of the best family member; with the origin a year back,
    1.30. Off by default (:data:`LOCAL_SEASON_ORIGINS`): the delivered forecast did not gain."""
    if LOCAL_SEASON_ORIGINS <= 0:
        return []
    d = np.asarray(dates, dtype="datetime64[D]")
    e, L = int(e), int(lead)
    if e < 1 or e >= d.size:
        return []
    S = local_spacing(L)
    step = float(np.median(np.diff(d[: e + 1]).astype(np.float64)))
    out = []
    for j in range(LOCAL_SEASON_ORIGINS):
        want = d[e] - np.timedelta64(int(round(365.25 + j * S * step)), "D")
        o = int(np.argmin(np.abs((d[: e + 1] - want).astype(np.int64))))
        if 10 <= o and o + L <= e and abs(int((d[o] - want).astype(np.int64))) <= max(1.0, S * step):
            out.append(o)
    return sorted(set(out))


def local_forecast(hist: np.ndarray, dates, target_dates, lead: int, time_function=None,
                   family: Optional[np.ndarray] = None, ensemble=None, past_family=None, origins=None,
                   prior_sums=None, sums_only: bool = False, memo: Optional[dict] = None,
                   record_prior: Optional[dict] = None, evidence: Optional[dict] = None, record_noise="auto"):
    """The ``local`` classical forecast of a block of pixels, float64 ``(h, rows, cols)``.

    Each member of the family and of :data:`LOCAL_EXTRA` is scored by its own recent track record around each pixel:
    from earlier origins within the last ``lead + lead // 3`` epochs (:func:`candidate_origins`, seven for most leads;
    ``origins`` others, for benchmarks/gate_replay.py, the ensemble's record's too; with
    :data:`LOCAL_SEASON_ORIGINS`, off by default, also origins a year back for the candidates,
    :func:`season_origins`; at flat pixels with :data:`flat_record.FLAT_RECORD_ORIGINS`, more origins before them),
    forecasts up to ``e`` compared with what was observed, squared errors averaged over the origins and over a
    ``LOCAL_BOX`` x ``LOCAL_BOX`` neighbourhood (deformation regimes are spatially coherent: a
    mining bowl's pixels share their law, one pixel's record is too noisy to choose from), each
    neighbour weighted by the likeness of its velocity over the last two years to the pixel's
    (:func:`pooling.guided_box_mean`, ``LOCAL_GUIDED``: the two sides of a fault are not pooled); the
    forecast is the family weighted by inverse MSE^``LOCAL_POWER``. ``hist`` (e + 1, rows, cols) holds
    the history up to the origin only. Where the history is too short for one earlier origin the
    result is NaN. ``family``: the family at the origin if already computed, (C, h, rows*cols).

    ``ensemble``: ``(now (h, rows*cols), past)`` with ``past(o)`` the ensemble median forecast from
    each earlier origin ``o`` over ``lead`` epochs ((lead, rows*cols), or None where it has none).
    Then the result is ``(blend, w)``: the ensemble blended with the local classical forecast per
    pixel, ``w E + (1 - w) F`` with ``w`` the least-squares weight of that combination over the same
    track record and neighbourhood (:func:`track_record.blend_weight`; session 9, before it the inverse squared
    MSE of each); ``w`` (rows*cols,) is 1 where the ensemble has no record. ``past_family(o)``: the
    family from an earlier origin over the next ``lead`` epochs, (C, lead, rows*cols), when the caller
    keeps them (:class:`FamilyCache`). ``prior_sums``: the scene's mean sums the blend weight is shrunk
    towards (:func:`track_record.blend_weight`; None: this block's). ``sums_only``: with ``ensemble``, return the
    blend weight's per-pixel sums ``(num, den)`` (:func:`track_record.blend_sums`) instead of the blend.

    The pooled record of each pixel is shrunk towards the mean record of the pixels of its class of trend
    evidence (:func:`pooling.shrink_to_class`, session 35; :data:`pooling.EVIDENCE_CLASSES` quantile classes of the
    two-year |v| / se), by the share of its variance that the spread of its origins' records calls sampling noise.
    ``record_prior``: the classes and their means estimated on the scene (:func:`pooling.class_prior`,
    ``gating.scene_blend_prior``); None: those of the pixels of this call. ``evidence``: a dict that receives the
    unshrunk pooled record, its sampling variance and the trend evidence of every pixel (``pooled``, ``s2``, ``z``),
    for that estimate.

    ``memo`` (a block's :attr:`FamilyCache.local`): the classical local forecast and, where it was fitted here,
    the family at the origin are left in it (:func:`memo_key`) when ``ensemble`` is given, and taken from it
    (once) by the call without ``ensemble`` that follows: the skill gate's blend and its candidates ask for the
    same local forecast of a block (session 19; before, ``predict`` computed it twice).

    ``record_noise``: the noise variance taken out of each pooled record (:mod:`record_noise`, session 40): ``"auto"``,
    chosen from the history given (kept per origin in a :class:`FamilyCache` ``past_family``); a number, that variance
    (the scene's: ``predict`` on a raster of several blocks); 0, none (sessions 4-39). A list of numbers (without
    ``ensemble``): a list of forecasts, one per value, from one track record (:func:`record_noise.noise_sse`).
    """
    given_past = past_family
    y = np.asarray(hist, dtype=np.float64)
    d = np.asarray(dates, dtype="datetime64[D]")
    T, R, Wd = y.shape
    e = T - 1
    flat = y.reshape(T, -1)
    L = int(lead)
    key = memo_key(e, target_dates, L) if memo is not None and origins is None else None
    if key is not None and ensemble is None and key in memo:
        return memo.pop(key)["local"]
    fresh = family is None
    n_fam = len(FAMILY) if fresh else family.shape[0]
    if fresh:   # the family and the extra candidates, a chunk of pixels at a time (session 27: whole, 350 MB a block)
        family = family_chunks(flat, d, target_dates, time_function, tuple(FAMILY) + tuple(LOCAL_EXTRA))
    elif LOCAL_EXTRA:
        family = np.concatenate([family, family_forecasts(flat, d, target_dates, time_function, LOCAL_EXTRA)])
    default = origins is None
    origins = local_origins(e, L) if default else [int(o) for o in origins]
    # the candidates' record: denser origins over the same recent span (session 34) and, when switched on, the
    # origins a year back (the season the forecast covers); the ensemble's record below keeps ``origins``
    fam_origins = candidate_origins(e, L) if default else origins
    fam_origins = fam_origins + [o for o in (season_origins(d, e, L) if default else []) if o not in fam_origins]

    def fitted_from(o, members=FAMILY):
        return family_forecasts(flat[:o + 1], d[:o + 1], d[o + 1:o + L + 1], time_function, members)

    past_family = past_family or fitted_from
    cache = past_family if isinstance(past_family, FamilyCache) and LOCAL_EXTRA else None
    if LOCAL_EXTRA and hasattr(past_family, "both"):    # a FamilyCache: both in one cached array
        past_family = past_family.both
    elif LOCAL_EXTRA:
        fam_of = past_family

        def past_family(o):
            f = fam_of(o)
            return None if f is None else np.concatenate([f, fitted_from(o, LOCAL_EXTRA)])
    Hh = np.size(target_dates)
    errors, on = (None, None) if cache is None else (cache.errors, cache.on)
    if analog.ANALOG:       # the spatial analog, the last candidate (session 49)
        family, past_family, errors, on = analog.attach(y, L, Hh, family, fresh, past_family, errors, on, cache)
    C = len(FAMILY) + len(LOCAL_EXTRA) + analog.ANALOG if fresh else family.shape[0]
    tw = target_weights(time_function, d)
    per_origin = [] if pooling.EVIDENCE_CLASSES > 0 and LOCAL_GUIDED else None
    err = record(flat, L, fam_origins, past_family, tw, errors=errors, keep=per_origin)
    if err is None:
        if sums_only:
            return np.zeros(R * Wd), np.zeros(R * Wd)
        out = np.full((Hh, R, Wd), np.nan)
        return out if ensemble is None else (ensemble[0].reshape(Hh, R, Wd), np.ones(R * Wd))
    guide = velocity_guide(flat, d, (R, Wd)) if LOCAL_GUIDED else None
    pooled = guided_box_mean(err.reshape(C, R, Wd), LOCAL_BOX, guide).reshape(C, -1)
    s2 = None if per_origin is None else sampling_variance(per_origin, (R, Wd), LOCAL_BOX)
    if s2 is not None:          # shrunk towards its class of trend evidence (session 35)
        z = trend_evidence(guide)
        if evidence is not None:
            evidence.update(pooled=pooled, s2=s2, z=z)
        prior = record_prior if record_prior is not None else class_prior(pooled, s2, z, pooling.EVIDENCE_CLASSES)
        quiet = fr.quiet_ground(flat, d, guide, (R, Wd), TREND_T)      # quiet ground: session 47
        pooled = fr.where_flat(shrink_to_class(pooled, s2, z, prior), flat, d, L, fr.flat_origins(
            fam_origins, candidate_spacing(L)) if default else [], past_family, tw, errors, err, per_origin, guide,
            (R, Wd), z, TREND_T, LOCAL_BOX, record_prior, evidence, quiet)
        pooled = pooling.se_trimmed(pooled, s2)         # pooling.SE_TRIM, off by default (session 48)
    power = fr.candidate_power(quiet if s2 is not None else None, LOCAL_POWER)
    offer = level_offer(flat, d, (R, Wd), guide, n_fam, C - analog.ANALOG)
    offer = analog.offer(offer, guide, (R, Wd), C, flat[-1]) if analog.ANALOG else offer
    many = isinstance(record_noise, (list, tuple))
    if isinstance(record_noise, str):
        record_noise = rn.auto_noise(y, d, L, local_forecast, time_function,
                                     given_past if isinstance(given_past, FamilyCache) else None)
    noises = [float(v) for v in record_noise] if many else [float(record_noise or 0.0)]
    recs = [rn.without_noise(pooled, nz) for nz in noises]
    got = [(np.empty((C, R * Wd)), np.empty((Hh, R * Wd)), np.empty((C, R * Wd), bool)) for _ in noises]
    for px, fam in (family if fresh else [(slice(None), family)]):     # one pass over the family's chunks
        for rec, (w, out, has) in zip(recs, got):
            w[:, px], out[:, px], has[:, px] = _combine(rec[:, px], fam, None if offer is None else offer[:, px],
                                                        None if power is None else power[px])
    for w, out, has in got:
        bad = ~np.isfinite(pooled[:n_fam]).all(axis=0) | ~has[:n_fam].all(axis=0)
        out[:, bad] = np.nan
    if many:
        return [out.reshape(Hh, R, Wd) for _, out, _ in got]
    w, out, has = got[0]
    if ensemble is None:
        return out.reshape(Hh, R, Wd)
    if key is not None and not sums_only:   # the family is not kept: the gate's candidates fit their pixels again
        memo[key] = {"local": out.reshape(Hh, R, Wd).copy()}
    now, past = ensemble
    now = np.asarray(now, dtype=np.float64).reshape(Hh, -1)

    def ens(o):
        f = past(o)
        return None if f is None else np.asarray(f, dtype=np.float64).reshape(1, -1, R * Wd)

    if LOCAL_BLEND == "inverse_mse":
        wE = inverse_mse_weight(record(flat, L, origins, ens, tw), np.where(has, pooled, np.nan), (R, Wd), LOCAL_BOX,
                                LOCAL_POWER, guide)
    else:
        w0 = np.nan_to_num(w)

        def local_past(o):
            return combined(w0, past_family(o))

        def local_past_on(o, px):       # on the pixels of the ensemble's record only (session 27)
            f = on(o, px) if cache is not None else past_family(o)
            return None if f is None else combined(w0[:, px], f if cache is not None else f[:, :, px])

        if sums_only:
            return blend_sums(flat, L, origins, ens, local_past, R * Wd, tw, local_past_on)[:2]
        wE = blend_weight(flat, L, origins, ens, local_past, (R, Wd), LOCAL_BOX, guide, tw, prior_sums=prior_sums,
                          local_on=local_past_on)
    wE = np.where(np.isfinite(wE) & ~bad, wE, 1.0)
    blend = wE[None] * now + (1.0 - wE[None]) * np.where(np.isfinite(out), out, now)
    return blend.reshape(Hh, R, Wd), wE


def level_offer(flat: np.ndarray, dates, shape, guide, n_fam: int, C: int) -> Optional[np.ndarray]:
    """:func:`flat_record.level_offer` of :data:`LOCAL_EXTRA`'s :data:`LEVEL_CANDIDATES` with :data:`TREND_T`."""
    return fr.level_offer(flat, dates, shape, guide, [n_fam + j for j, c in enumerate(LOCAL_EXTRA)
                                                      if c[0] in LEVEL_CANDIDATES], C, TREND_T)


def _combine(pooled: np.ndarray, family: np.ndarray, offer: Optional[np.ndarray] = None, power=None):
    """The local forecast's weights (C, n), the family combined with them (h, n) and where each member has a forecast
    (C, n) bool, for pixels with the pooled records ``pooled`` (C, n) and the family ``family`` (C, h, n); ``offer``
    (C, n) bool: where each candidate may take weight (:func:`level_offer`), None: wherever it has a forecast;
    ``power``: the weights' power per pixel (n,) (:func:`flat_record.candidate_power`), None: :data:`LOCAL_POWER`. Per
    pixel, so a chunk of pixels at a time gives the same values."""
    # a candidate without a forecast at a pixel (an extra one whose short window holds too few values
    # there) gets no weight and no say in the best record; the family itself must be complete
    fin = np.isfinite(family).all(axis=1)                      # (C, n)
    has = fin if offer is None else fin & offer
    pooled_has = pooling.trimmed(np.where(has, pooled, np.nan))     # pooling.LOCAL_TRIM, off by default
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.maximum(pooled_has, 1e-6) ** -(LOCAL_POWER if power is None else power)
        w = w / np.nansum(w, axis=0, keepdims=True)
    # a complete family (the usual case) is combined as it is: no float64 copy of it with its NaN zeroed
    out = np.einsum("cn,chn->hn", np.nan_to_num(w), family if fin.all() else np.nan_to_num(family))
    return w, out, has


def memo_key(e: int, target_dates, lead: int) -> tuple:
    """The key of :func:`local_forecast`'s ``memo``: the origin, the lead and the target dates."""
    return int(e), int(lead), np.asarray(target_dates, dtype="datetime64[D]").astype(np.int64).tobytes()


class FamilyCache:
    """The family of a block from any origin ``o`` over the next ``lead`` epochs, computed once:
    the local track record and the candidates of the skill gate ask for the same origins. Kept in float32
    (session 18): the cache of a 64 000-pixel block held 650 MB in float64, the largest share of ``predict``'s
    memory with the local blend (docs/benchmarks.md); the fits themselves run in float64 and the callers'
    arithmetic with float64 observations stays float64."""

    def __init__(self, hist: np.ndarray, dates, lead: int, time_function=None, lean: bool = False):
        self.flat = np.asarray(hist, dtype=np.float64).reshape(np.shape(hist)[0], -1)
        self.dates = np.asarray(dates, dtype="datetime64[D]")
        self.lead, self.tf = int(lead), time_function
        self.lean = bool(lean)
        self._memo = {}
        self.local = {}     # local_forecast's memo: the blend's local forecast, for the gate's candidates
        self.noise = {}     # noise_choice's per origin and lead
        self.noise_origins = {}     # noise_sse's sums per earlier origin and lead

    def errors(self, o: int, m: int, weights=None) -> Optional[np.ndarray]:
        """The local track record's errors from origin ``o`` over its next ``m`` epochs, (C + extra, n)
        (:func:`family.family_errors`), for a ``lean`` cache that does not hold that origin's family: one
        forecast from each earlier origin (``predict``'s blocks) needs the errors of every pixel, not the family.
        None otherwise: the caller takes the errors of :meth:`both` (the calibration's origins share them)."""
        o = int(o)
        if not self.lean or (o, "both") in self._memo:
            return None
        from .family import family_errors

        m = min(int(m), self.lead)      # forecast the scored epochs only: each target's forecast is its own
        return family_errors(self.flat[:o + 1], self.dates[:o + 1], self.dates[o + 1:o + m + 1],
                             self.flat[o + 1:o + m + 1], weights, self.tf, tuple(FAMILY) + tuple(LOCAL_EXTRA))

    def on(self, o: int, pixels) -> np.ndarray:
        """:meth:`both` on the given pixels only, (C + extra, lead, len(pixels)): fitted there alone when the cache is
        ``lean`` and does not hold that origin's family."""
        o = int(o)
        if not self.lean or (o, "both") in self._memo:
            return self.both(o)[:, :, pixels]
        return family_forecasts(self.flat[:o + 1, pixels], self.dates[:o + 1], self.dates[o + 1:o + self.lead + 1],
                                self.tf, tuple(FAMILY) + tuple(LOCAL_EXTRA), dtype=np.float32)

    def __call__(self, o: int) -> np.ndarray:
        return self._get(int(o), FAMILY)

    def release(self, keep=()) -> None:
        """Forget the families from every origin but ``keep`` (the local memo stays)."""
        keep = {int(o) for o in keep}
        self._memo = {k: v for k, v in self._memo.items() if k[0] in keep}

    def both(self, o: int) -> np.ndarray:
        """:data:`FAMILY` and :data:`LOCAL_EXTRA` from origin ``o`` in one array, (C + extra, lead, n): the local
        track record's candidates. Kept as one entry (the family is a view of it), so the record does not
        concatenate a copy per origin (the peak of a gated ``predict`` block, session 20)."""
        o = int(o)
        key = (o, "both")
        if key not in self._memo:
            fam = self._memo.pop((o, tuple(FAMILY)), None)
            self._memo[key] = (self._fit(o, tuple(FAMILY) + tuple(LOCAL_EXTRA)) if fam is None else
                               np.concatenate([fam, self._fit(o, LOCAL_EXTRA)]))
        return self._memo[key]

    def _get(self, o: int, members) -> np.ndarray:
        both = self._memo.get((o, "both"))
        if both is not None and tuple(members) == tuple(FAMILY):
            return both[:len(FAMILY)]
        key = (o, tuple(members))
        if key not in self._memo:
            self._memo[key] = self._fit(o, members)
        return self._memo[key]

    def _fit(self, o: int, members) -> np.ndarray:
        return family_forecasts(self.flat[:o + 1], self.dates[:o + 1], self.dates[o + 1:o + self.lead + 1], self.tf,
                                members, dtype=np.float32)
