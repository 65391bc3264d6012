"""Exceedance probabilities from an ensemble's few members, by kernel dressing (session 33).

The exceedance map (``uncertainty``'s ``OUTPUT_EXCEEDANCE``, which the tiers of ``zoning`` read) gives per pixel
the probability that the deformation over the horizon reaches a threshold. Until session 32 it was the share of
members whose deformation ``d_m`` does: with the main job's ten members a probability of 0, 0.1, ..., 1, so a pixel
whose members sit just below the threshold reads 0 and one with a single member above it 0.1, whatever the spread.
The members are a sample of the predictive distribution; the share is that sample's step function.

What. Each member is dressed with a Gaussian kernel and the probability is the mean over the members of the
kernel's mass beyond the threshold (the smoothed bootstrap of the members' distribution; ensemble "kernel dressing",
Roulston and Smith 2003; Wang and Bishop 2005 for the variance-preserving form):

* kernel width ``h = b s``, ``s`` the members' standard deviation at the pixel (ddof 0, as the spread map's band 1)
  and ``b = 1.06 M^(-1/5)`` (Silverman's normal reference rule for ``M`` members: 0.67 for ten), not fitted to any
  scene;
* the members are first drawn towards their mean by ``sqrt(1 - b^2)``, so the dressed distribution has exactly the
  members' mean and variance (``(1 - b^2) s^2 + b^2 s^2``: the spread the calibration fitted, which the spread map
  shows) instead of a variance widened by the kernel (``s^2 + h^2``: 45 % more for ten members);
* ``P(v >= t) = mean_m P(v(D) >= t)`` with ``D ~ N(mu + sqrt(1 - b^2) (d_m - mu), h^2)``: for ``magnitude``
  (``v = |d|``) ``Phi((d'_m - t) / h) + Phi((-t - d'_m) / h)``, for ``subsidence`` (``v = -d``) ``Phi((-t - d'_m) / h)``,
  for ``uplift`` (``v = d``) ``Phi((d'_m - t) / h)``; a magnitude threshold at or below 0 is always reached.
* Where the members agree exactly (``s = 0``) or there are fewer than :data:`MIN_MEMBERS`, the share of members.

Measured (docs/README_calibration.md, "Session 33"): Brier skill of the exceedance at 10 and 20 mm against the
later acquisitions, pooled over 16 forecast origins of ten scenes of both generators, the members as they ship:
better than the share at 18 of 20 scene-thresholds. At 20 mm on all ten, most where exceedances are rare (under 1 %
of the pixels) and the share's steps decide: -0.034 -> +0.008, -0.451 -> -0.305, -0.141 -> -0.041, -0.747 -> -0.729;
at 10 mm by up to 0.013, with two ties (-0.001) on the second generator. Kernels of the sample standard deviation
(ddof 1, a variance 5 % above the members') were measured beside it: better at 10 mm, worse at the rare 20 mm.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.special import ndtr

from ..errors import DeformCastError

MODES = ["magnitude", "subsidence", "uplift"]

#: fewer members than this: the share of members (no spread to dress them with)
MIN_MEMBERS = 3
#: kernel widths beyond which a member's kernel counts as wholly on its side of the threshold (Phi(-6) = 1e-9)
NEAR = 6.0


def bandwidth_factor(n_members: int) -> float:
    """``b`` of the kernel width ``b s``: Silverman's normal reference rule, ``1.06 n^(-1/5)``."""
    return float(1.06 * max(int(n_members), 1) ** -0.2)


def exceedance_probability(d: np.ndarray, thresholds: Sequence[float], mode: str = "magnitude") -> np.ndarray:
    """``(len(thresholds), ...)`` float64: the probability that ``v(d) >= t`` for each threshold ``t``, from the
    members' deformations ``d`` ``(M, ...)`` (all finite) by variance-preserving kernel dressing (module doc).
    ``mode``: ``magnitude`` (``v = |d|``), ``subsidence`` (``v = -d``) or ``uplift`` (``v = d``)."""
    if mode not in MODES:
        transform_value(d, mode)        # the error that names the valid modes
    d = np.asarray(d, dtype=np.float64)
    m, shape = d.shape[0], d.shape[1:]
    thresholds = [float(t) for t in thresholds]
    out = np.empty((len(thresholds),) + shape)
    d = d.reshape(m, -1)
    b = bandwidth_factor(m)
    h = b * d.std(axis=0)
    dressed = (h > 0) & (m >= MIN_MEMBERS)
    flat = out.reshape(len(thresholds), d.shape[1])
    if not dressed.all():       # the share of members where they agree exactly, or are too few
        v = transform_value(d[:, ~dressed], mode)
        for k, t in enumerate(thresholds):
            flat[k, ~dressed] = (v >= t).mean(axis=0)
    if not dressed.any() or not thresholds:
        return out
    mu = d.mean(axis=0)
    # in float32 (the map is float32, and ndtr is faster on it): the shrunk members and the inverse kernel width
    centre = (mu[None] + np.sqrt(1.0 - b * b) * (d - mu[None])).astype(np.float32)
    inv = np.where(dressed, 1.0 / np.where(dressed, h, 1.0), 0.0).astype(np.float32)
    for k, t in enumerate(thresholds):
        if mode == "magnitude" and t <= 0:     # |d| >= t always
            flat[k, dressed] = 1.0
            continue
        # v >= t where d >= t (sign +1) or d <= -t (sign -1): each side is one term of the probability
        sides = ((1, t), (-1, -t)) if mode == "magnitude" else (((-1, -t),) if mode == "subsidence" else ((1, t),))
        p = np.zeros(centre.shape[1])
        for sign, edge in sides:
            # each shrunk member's kernel mass beyond the edge: 1 or 0 where it lies more than NEAR kernel widths
            # from it (to within 1e-9), the normal tail where it lies nearer (evaluated there alone)
            e32 = np.float32(edge)
            near = np.zeros(centre.shape[1], bool)
            for c in centre:
                p += (c >= e32) if sign > 0 else (c <= e32)
                near |= np.abs(c - e32) * inv < NEAR
            idx = np.flatnonzero(near & dressed)
            if idx.size == 0:
                continue
            c, w = centre[:, idx], inv[idx][None]
            beyond = (c >= e32) if sign > 0 else (c <= e32)
            kern = ndtr((c - e32) * w) if sign > 0 else ndtr((e32 - c) * w)
            p[idx] += (kern - beyond).sum(axis=0)
        flat[k, dressed] = np.clip(p[dressed] / m, 0.0, 1.0)
    return out


def transform_value(d: np.ndarray, mode: str) -> np.ndarray:
    """The value that is classified and thresholded: ``|d|`` (magnitude), ``-d`` (subsidence) or ``d`` (uplift)."""
    if mode == "magnitude":
        return np.abs(d)
    if mode == "subsidence":
        return -d
    if mode == "uplift":
        return d
    raise DeformCastError(f"MODE: unknown value '{mode}'. Valid values: {', '.join(MODES)}.")
