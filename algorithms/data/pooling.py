"""Neighbourhood means of the local track record, plain or guided by the pixels' recent velocity.

The local classical forecast and the local blend (:func:`anchors.local_forecast`) pool each pixel's
track record over a ``box`` x ``box`` neighbourhood: one pixel's record is too noisy to choose from,
and deformation regimes are spatially coherent. At a sharp boundary between regimes (a fault trace with
a creeping side and a stable side, the rim of a mining bowl) a plain box mixes the records of both
sides. :func:`guided_box_mean` weighs each neighbour by how alike its recent velocity is to the pixel's,
in units of their standard errors (a bilateral filter whose range term is a test statistic):

    w_ij = exp(-(v_i - v_j)^2 / (2 K^2 (se_i^2 + se_j^2)))

so a neighbour whose velocity differs by noise only keeps nearly full weight, one across a boundary
that the data resolve gets little. The weights depend only on the two pixels, never on the block read
or on a scene-wide scale, so a raster processed in blocks gives the same result as in one piece.
``K = inf`` (or no guide) is the plain box mean exactly. Measured in docs/skill.md (session 10).

Since session 35 the pooled record is then shrunk towards the mean record of the pixels with like evidence for
a trend (:func:`shrink_to_class`): a neighbourhood holds few independent draws of each date's atmosphere where
that is correlated over many pixels, and the scene's pixels of the same class hold many. How far each pixel
leans on its class is empirical Bayes: the share of its pooled record's variance that the spread between the
record's origins calls noise. The classes and their means are the scene's (:func:`class_prior`): ``predict``
estimates them once for a raster forecast in several blocks (``gating.scene_blend_prior``), so blocks give
the one-block result as above; elsewhere (the calibration's sampled spans, the gate's bands) each call's own.
"""
from __future__ import annotations

import os
import warnings
from typing import Optional, Tuple

import numpy as np

#: years of history behind the guide's velocity (the recent regime)
GUIDE_YEARS = 2.0
#: K of the range term, in standard errors of the velocity difference (docs/skill.md: 1.5 and 3 measured
#: alike on 70 replayed scenes)
GUIDE_K = 2.0


def box_mean(a: np.ndarray, box: int) -> np.ndarray:
    """NaN-aware mean over a box x box neighbourhood of the last two axes (edges: nearest)."""
    from scipy.ndimage import uniform_filter

    ok = np.isfinite(a)
    size = (1,) * (a.ndim - 2) + (int(box), int(box))
    num = uniform_filter(np.where(ok, a, 0.0), size, mode="nearest")
    den = uniform_filter(ok.astype(np.float64), size, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-9, num / np.maximum(den, 1e-9), np.nan)


def velocity_guide(flat: np.ndarray, dates, shape, years: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Each pixel's velocity (mm/yr) over the last ``years`` (default ``GUIDE_YEARS``) of ``flat`` (T, n)
    and its standard error, both (rows, cols) by ``shape``; NaN where fewer than 4 values."""
    years = GUIDE_YEARS if years is None else years
    y = np.asarray(flat, dtype=np.float64)
    d = np.asarray(dates, dtype="datetime64[D]")
    t = (d - d[-1]).astype(np.float64) / 365.25
    keep = t >= -float(years)
    y, t = y[keep], t[keep]
    ok = np.isfinite(y)
    w = ok.astype(np.float64)
    yy = np.where(ok, y, 0.0)
    n = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tm = (w * t[:, None]).sum(axis=0) / n
        ym = yy.sum(axis=0) / n
        dt = (t[:, None] - tm) * w
        stt = (dt * dt).sum(axis=0)
        v = (dt * (yy - ym)).sum(axis=0) / stt
        res = (yy - ym - v * (t[:, None] - tm)) * w
        se = np.sqrt((res * res).sum(axis=0) / np.maximum(n - 2, 1) / stt)
    bad = (n < 4) | ~np.isfinite(v) | ~np.isfinite(se)
    v[bad], se[bad] = np.nan, np.nan
    return v.reshape(shape), se.reshape(shape)


def guided_box_mean(a: np.ndarray, box: int, guide: Optional[Tuple[np.ndarray, np.ndarray]],
                    k: Optional[float] = None) -> np.ndarray:
    """:func:`box_mean` with each neighbour weighted by the likeness of its velocity to the pixel's
    (module doc). ``guide``: ``(v, se)`` (rows, cols) from :func:`velocity_guide`, or None (plain box).
    A pixel or neighbour without a guide value counts as alike (weight 1). ``k``: default ``GUIDE_K``."""
    k = GUIDE_K if k is None else float(k)
    if guide is None or not np.isfinite(k):
        return box_mean(a, box)
    v, se = (np.asarray(g, dtype=np.float64) for g in guide)
    R, W = v.shape
    if a.shape[-2:] != (R, W):
        raise ValueError(f"guided_box_mean: values {a.shape[-2:]} and guide {(R, W)} differ in shape")
    h = int(box) // 2
    lead = [(0, 0)] * (a.ndim - 2)
    ok = np.isfinite(a)
    ap = np.pad(np.where(ok, a, 0.0), lead + [(h, h), (h, h)], mode="edge")
    # the values of one pixel are usually all finite or all missing alike (the candidates of the local forecast):
    # then one weight sum serves every leading index (the same sums in the same order; session 26)
    first = ok[(0,) * len(lead)] if lead else ok
    alike = bool(lead) and bool((ok == first).all())
    okp = np.pad((first if alike else ok).astype(np.float64), ([] if alike else lead) + [(h, h), (h, h)], mode="edge")
    vp = np.pad(v, h, mode="edge")
    s2p = np.pad(se * se, h, mode="edge")
    num = np.zeros(a.shape)
    den = np.zeros(okp.shape[:-2] + (R, W))
    tmp = np.empty(a.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for dy in range(-h, h + 1):
            for dx in range(-h, h + 1):
                rs, cs = slice(h + dy, h + dy + R), slice(h + dx, h + dx + W)
                z2 = (vp[rs, cs] - v) ** 2 / (k * k * (s2p[rs, cs] + se * se))
                wgt = np.where(np.isfinite(z2), np.exp(-0.5 * z2), 1.0)
                num += np.multiply(wgt, ap[..., rs, cs], out=tmp)
                den += wgt * okp[..., rs, cs]
    den = np.broadcast_to(den, a.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-9, num / np.maximum(den, 1e-9), np.nan)


#: classes of the evidence for a trend (|v| / se of :func:`velocity_guide`) within which the local track record is
#: shrunk towards the class's mean record by empirical Bayes (:func:`shrink_to_class`, session 35); 0: not shrunk
#: (sessions 10-34). ``DEFORMCAST_EVIDENCE_CLASSES`` sets it for experiments, processes started by a run included.
EVIDENCE_CLASSES = int(os.environ.get("DEFORMCAST_EVIDENCE_CLASSES", "5"))


def trend_evidence(guide: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(n,): each pixel's |v| / se of its two-year velocity (:func:`velocity_guide`), NaN where unknown."""
    v, se = (np.asarray(g, dtype=np.float64).reshape(-1) for g in guide)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(v) / se
    return np.where(np.isfinite(z), z, np.nan)


def sampling_variance(per_origin, shape, box: int) -> Optional[np.ndarray]:
    """(C, n): the sampling variance of a pooled track record: the variance over the record's origins of each
    origin's record pooled over a plain ``box`` x ``box`` neighbourhood, over the number of origins. ``per_origin``:
    the (C, n) record of each origin (``track_record.record``'s ``keep``); None with fewer than two. The plain box
    (not the guided one) keeps it cheap: one uniform filter over every origin and candidate at once."""
    if len(per_origin) < 2:
        return None
    k = len(per_origin)
    C = per_origin[0].shape[0]
    po = box_mean(np.stack(per_origin).astype(np.float64).reshape((k, C) + tuple(shape)), box).reshape(k, C, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanvar(po, axis=0, ddof=1) / k


def class_prior(pooled: np.ndarray, s2: np.ndarray, z: np.ndarray, classes: int) -> Optional[dict]:
    """What :func:`shrink_to_class` shrinks towards, from pixels with a pooled record ``pooled`` (C, n), its sampling
    variance ``s2`` (C, n) and their trend evidence ``z`` (n,): the bounds between ``classes`` quantile classes of
    ``z`` (``edges``), each class's mean record (``mean``, (classes, C)) and the spread of the pooled records
    between its pixels that their sampling variance does not explain (``spread``, (classes, C), at least 0).
    None with fewer than 10 pixels that hold all three."""
    ok = np.isfinite(z) & np.isfinite(pooled).all(axis=0) & np.isfinite(s2).all(axis=0)
    if ok.sum() < 10 or classes < 1:
        return None
    edges = np.quantile(z[ok], np.linspace(0.0, 1.0, classes + 1)[1:-1])
    idx = np.flatnonzero(ok)
    cls = np.searchsorted(edges, z[idx])
    C = pooled.shape[0]
    mean, spread = np.full((classes, C), np.nan), np.full((classes, C), np.nan)
    for b in range(classes):
        sel = idx[cls == b]
        if sel.size >= 2:
            mean[b] = pooled[:, sel].mean(axis=1)
            spread[b] = np.maximum(pooled[:, sel].var(axis=1) - s2[:, sel].mean(axis=1), 0.0)

    def listed(a):          # JSON without NaN (a class without two pixels): None, read back as NaN
        return [[float(x) if np.isfinite(x) else None for x in row] for row in a]

    return {"edges": edges.tolist(), "mean": listed(mean), "spread": listed(spread)}


def shrink_to_class(pooled: np.ndarray, s2: Optional[np.ndarray], z: np.ndarray, prior: Optional[dict]) -> np.ndarray:
    """The pooled track record ``pooled`` (C, n) shrunk towards the mean record of its class of trend evidence
    (:func:`class_prior`) by empirical Bayes: ``(1 - l) pooled + l mean`` with ``l = s2 / (s2 + spread)``, the share
    of the pooled record's variance that is sampling noise. A pixel whose neighbourhood holds few independent
    draws of the atmosphere (a large ``s2``) leans on its class; where the class's pixels differ by more than
    their noise (regimes the record tells apart: a large ``spread``) each keeps its own record. Pixels without a
    class, a sampling variance or a class mean keep their record."""
    if prior is None or s2 is None:
        return pooled
    edges = np.asarray(prior["edges"], dtype=np.float64)
    mean, spread = (np.asarray(prior[k], dtype=np.float64) for k in ("mean", "spread"))
    cls = np.searchsorted(edges, np.where(np.isfinite(z), z, 0.0))
    m, V = mean[cls].T, spread[cls].T                         # (C, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = s2 / (s2 + V)
    use = np.isfinite(lam) & np.isfinite(m) & np.isfinite(z)[None] & np.isfinite(pooled)
    return np.where(use, (1.0 - lam) * pooled + lam * m, pooled)


#: the local forecast's candidates whose pooled record exceeds this many times the pixel's best take no weight
#: (:func:`trimmed`, session 48); 0: every candidate keeps its inverse-record weight (sessions 4-47).
#: ``DEFORMCAST_LOCAL_TRIM`` sets it for experiments
LOCAL_TRIM = float(os.environ.get("DEFORMCAST_LOCAL_TRIM", "0") or 0)


def trimmed(records: np.ndarray, k: float = None) -> np.ndarray:
    """``records`` (C, n), the candidates' pooled records (NaN: not offered), with NaN where a record exceeds ``k``
    (default :data:`LOCAL_TRIM`) times the pixel's best (at least 1e-6): the forecast combinations' trimming of their
    worst members. ``records`` itself when ``k`` is 0."""
    k = LOCAL_TRIM if k is None else float(k)
    if k <= 0:
        return records
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # a pixel without any record: all NaN
        best = np.maximum(np.nanmin(records, axis=0), 1e-6)
        return np.where(records > k * best[None], np.nan, records)


#: the local forecast's candidates whose pooled record exceeds the pixel's best by more than this many standard errors
#: of the difference (:func:`se_trimmed`, session 48) take no weight; 0: none withheld (sessions 4-47).
#: ``DEFORMCAST_SE_TRIM`` sets it for experiments
SE_TRIM = float(os.environ.get("DEFORMCAST_SE_TRIM", "0") or 0)


def se_trimmed(records: np.ndarray, s2: Optional[np.ndarray], z: float = None) -> np.ndarray:
    """``records`` (C, n), the candidates' pooled records, with 1e30 (finite: the pixel keeps its forecast, the
    candidate no weight) where a record exceeds the pixel's best by more than ``z`` (default :data:`SE_TRIM`) times
    ``sqrt(s2_c + s2_best)``, ``s2`` (C, n) their sampling variances (:func:`sampling_variance`): a trim that noise
    cannot cause. ``records`` itself when ``z`` is 0 or ``s2`` None."""
    z = SE_TRIM if z is None else float(z)
    if z <= 0 or s2 is None:
        return records
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        b = np.argmin(np.where(np.isfinite(records), records, np.inf), axis=0)
        cols = np.arange(records.shape[1])
        far = records - records[b, cols][None] > z * np.sqrt(s2 + s2[b, cols][None])
    return np.where(far, 1e30, records)
