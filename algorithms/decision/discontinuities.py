"""Differential movement: discontinuities (sharp steps) in the forecast deformation.

The step test behind tier 2's differential-movement rule of :mod:`zoning` (which re-exports these
names). QGIS-free; scipy is imported inside the functions.

Settlement that is large but smooth (a bowl over a mine, the wide trough of a groundwater
drawdown) tilts structures gently; what cracks buildings and breaks pipes and roads is a sharp
*step* between neighbouring ground, even a small one. In the Lower Rhine Embayment active faults
that hinder the drainage of the aquifers form narrow step-like settlement differences at the
surface ("Unstetigkeiten", whose zone of influence is mostly only a few metres wide), and this is
where mining damage from the dewatering concentrates; the wide settlement troughs are harmless to
buildings. A fault creeping a few mm per year therefore matters although it never exceeds an
absolute threshold such as 10 mm. The rule, on FORECAST's last band (give ``uncertainty``'s
OUTPUT_DEFORMATION, the median deformation over the horizon; a cumulative series makes the step
the one since the series' reference epoch):

* :func:`step_statistics`: at every pixel and in ``n_step_orientations()`` (30) orientations, a
  plane plus a step on a line through the pixel, fitted in a rectangle of 19 pixels along the line
  by 9 across (``STEP_HALF_LENGTH``, ``STEP_HALF_WIDTH``). The plane absorbs tilts (bowl flanks),
  the length averages the per-pixel forecast noise along the trace (19 x 4 pixels a side), the
  9-pixel width stays below a bowl's influence radius, and the step must beat a smooth cubic rival
  (it must be sharp). t = step / standard error, divided by the map's noise-inflation factor
  (median |t| over its white-noise value, floored at 1) for spatially correlated noise.
* :func:`discontinuity_traces`: the ridge of that statistic across the line (non-maximum
  suppression), linked into traces of one sign as in Canny's hysteresis: a trace needs one pixel
  with z >= ``step_z``, the rest >= ``step_link_z``, |step| >= ``step_mm`` everywhere and at least
  ``STEP_HALF_LENGTH + 1`` = 10 pixels (so no single window's noise makes a trace).
* :func:`discontinuity_band`: pixels within ``discontinuity_buffer_m`` of a trace go to tier 2.
* ``KNOWN_FAULTS`` (optional): a raster of the distance (m) to mapped faults (e.g. GDAL proximity of
  the fault lines; the scene's ``fault_distance`` covariate); traces farther than
  ``discontinuity_buffer_m`` from a mapped fault are dropped (steps elsewhere are left to the other
  rules, e.g. a mining front).

Defaults and why:

* ``step_mm`` = 1 mm over the forecast period: a brittle structure or rigid pipe that crosses a
  sharp step takes it at one joint or crack, so the crack opens by about the step. 1 mm is the upper
  limit of "very slight" damage in the crack-width classification of Burland et al. (1977) (0
  negligible < 0.1 mm, 1 very slight < 1 mm, 2 slight < 5 mm, 3 moderate 5-15 mm): a step above it
  adds damage beyond "very slight" within one forecast period and reaches "moderate" within a few.
  It is also about the smallest step a levelling line across the trace (the verification that tier
  2 prescribes) can confirm. The significance test keeps noise out; step_mm keeps out significant
  but negligible steps of very smooth forecasts.
* ``step_z`` = 5, ``step_link_z`` = 4: on simulated Gaussian noise fields (490 000 pixels each:
  white, and spatially correlated with lag-1 correlation 0.44, 0.54 and 0.78) the calibrated
  statistic exceeds 5 in 5e-5 to 3e-4 of the pixels and 4 in 3e-3 to 7e-3; linked traces with
  these two thresholds covered 0.002 to 0.03 % of the pixels (11 to 131 pixels per field).
* ``discontinuity_buffer_m`` = 150 m: the California Alquist-Priolo earthquake fault zones, the
  established practice of a zone around active (including creeping) fault traces in which a
  site investigation is required before building — the same "verify before acting" as tier 2 —
  extend about 500 ft (150 m) either side of major active faults (200-300 ft for well-defined
  minor ones). The physical zone of influence is narrower (metres), but the trace itself is only
  located to about one pixel (50-100 m for InSAR ground-motion grids, 100 m for EGMS Ortho), and
  the buffer also takes in structures and pipe sections that cross the trace.

The rule finds the steps the forecast keeps: on the built-in scene (a fault step of 4.4-5.5 mm over
the one-year horizon, per-pixel forecast noise about 2 mm) it finds the fault along most of its
length where the forecast median keeps about 3 mm of the step and misses it where the networks have
smoothed the step to 1 mm; figures per seed in the README.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..progress import Progress, silent
from ..io.raster import Grid


#: Appended to the action of every zone that holds pixels of a discontinuity's buffer.
DISCONTINUITY_ACTION = ("Differential-movement discontinuity (a step in the forecast deformation): inspect buildings, "
                        "pipes and roads that cross the trace, level across it and check mapped faults.")


# ---- differential movement: discontinuities (steps) in the forecast deformation --------------
#: Step-detector window in pixels: half-length along the trace and half-width across it (per side).
STEP_HALF_LENGTH = 9
STEP_HALF_WIDTH = 4
#: Smallest noise standard deviation (mm) the step test assumes; below any InSAR/levelling precision.
STEP_NOISE_FLOOR_MM = 0.1
#: Median of the orientation-maximised |t| on Gaussian white noise for the window above (simulated on
#: 2 x 700 x 700 pixels: 2.190, 2.194); the reference of the noise-inflation factor (see step_statistics).
STEP_NULL_MEDIAN_T = 2.19
_STEP_BLOCK_PIXELS = 262_144
#: Non-maximum suppression reach (pixels either side along the step's normal): a step's response
#: falls off over the window's half-width; within 2 pixels it is still a side lobe of the same step
#: (the two pixels straddling a step respond almost equally), so the ridge keeps one pixel of it.
_RIDGE_PX = 2


def n_step_orientations(half_length: int = STEP_HALF_LENGTH) -> int:
    """Orientations tried: adjacent ones differ by at most 1 / (half_length + 0.5) rad, so a straight
    trace lies within half a pixel of one of them at the window's ends."""
    return int(math.ceil(math.pi * (half_length + 0.5)))


@dataclass
class StepField:
    step: np.ndarray   # mm, signed: the side the normal points to minus the other side (NaN: no test)
    t: np.ndarray      # step / its standard error, same sign (0: no test)
    orient: np.ndarray  # orientation index k (normal at angle pi k / n from east, counter-clockwise), -1: none
    n_orient: int
    inflation: float = 1.0  # lambda: t / lambda is compared with step_z
    sharp: Optional[np.ndarray] = None  # the step explains more than a smooth cubic across the line

    @property
    def z(self) -> np.ndarray:
        """The calibrated statistic t / inflation."""
        return self.t / self.inflation


def _step_kernels(half_length: int, half_width: int, n_orient: int):
    r = int(math.ceil(math.hypot(half_length + 0.5, half_width + 0.5)))
    ax = np.arange(-r, r + 1, dtype=np.float64)
    X = ax[None, :].repeat(ax.size, 0)          # east, pixels
    Y = -ax[:, None].repeat(ax.size, 1)         # north (rows go south)
    out = []
    for k in range(n_orient):
        th = math.pi * k / n_orient
        u = X * math.cos(th) + Y * math.sin(th)   # across the trace (along the normal)
        v = -X * math.sin(th) + Y * math.cos(th)  # along the trace
        w = ((np.abs(u) <= half_width + 0.5) & (np.abs(v) <= half_length + 0.5)).astype(np.float64)
        h = np.where(np.abs(u) < 0.5, 0.0, 0.5 * np.sign(u))  # pixels the line passes through: no side
        phis = [w, w * u, w * v, w * h, w * u ** 3]  # plane (1, u, v), step, smooth rival u^3
        # w is 0/1, so phis[i] * phis[j] = w * phi_i * phi_j: the normal-matrix kernels (the step and
        # the cubic are alternatives, never fitted together: no (3, 4) entry)
        out.append((phis, [(i, j, phis[i] * phis[j]) for i in range(5) for j in range(i, 5) if (i, j) != (3, 4)],
                    float((w * (h > 0)).sum())))
    return r, out


def step_statistics(d: np.ndarray, half_length: int = STEP_HALF_LENGTH, half_width: int = STEP_HALF_WIDTH,
                    progress: Optional[Progress] = None) -> StepField:
    """Largest significant step of ``d`` at each pixel: a local plane plus a step fitted by least squares.

    For each of :func:`n_step_orientations` orientations an oriented rectangle centred on the pixel,
    ``2 half_length + 1`` pixels along a candidate trace through the pixel centre and ``2 half_width + 1``
    across it, is fitted with ``d = a + b u + c v + s H(u)`` (``u`` across, ``v`` along the trace,
    ``H = -1/2 | 0 | +1/2``: pixels the line passes through belong to neither side). ``s`` is the step
    between the two half-neighbourhoods that a plane cannot explain: a uniform tilt (e.g. a subsidence
    bowl's flank) gives ``s = 0``, whereas the plain difference of the half-neighbourhood means would
    report the tilt times the window width. Its t statistic is ``s / se(s)`` with the noise variance of
    the residuals in the window (floored at ``STEP_NOISE_FLOOR_MM``). A smooth but curved transition (the
    toe or flank of a subsidence bowl, whose influence radius is a few pixels) also projects onto
    ``H``; so the step must be *sharp*: it must explain more of the window's variance beyond the plane
    than the smooth rival with the same number of parameters, ``a + b u + c v + e u^3`` (equal-size
    models: the smaller residual sum of squares wins, as AIC or BIC would decide). The orientation with
    the largest ``|t|`` is kept. A pixel is tested when it is valid and each side holds at least half
    of its nominal pixels. Sums run as FFT correlations in row blocks with a halo, so memory does not
    grow with the raster (about 13 s and 300 MB per million pixels on one core).

    Spatially correlated noise (forecast errors are: neighbouring pixels share atmosphere and model
    errors) makes the residual variance understate the variance of the step, so ``t`` is too large
    everywhere by a roughly constant factor. As in genomic control (Devlin & Roeder 1999), that
    factor is estimated from the bulk of the map, which holds no discontinuity: ``inflation = max(1,
    median |t| / STEP_NULL_MEDIAN_T)``; the traces compare ``t / inflation`` with ``step_z``. Floored
    at 1, it never makes the test more lenient than the white-noise theory.
    """
    from scipy import fft as sfft

    progress = progress or silent()
    d = np.asarray(d, dtype=np.float64)
    H, W = d.shape
    n_or = n_step_orientations(half_length)
    r, kern = _step_kernels(half_length, half_width, n_or)
    K = 2 * r + 1
    step = np.full((H, W), np.nan)
    tstat = np.zeros((H, W))
    orient = np.full((H, W), -1, dtype=np.int16)
    sharp = np.zeros((H, W), bool)
    bh = max(1, _STEP_BLOCK_PIXELS // max(1, W))
    blocks = [(a, min(H, a + bh)) for a in range(0, H, bh)]
    for bi, (r0, r1) in enumerate(blocks):
        s0, s1 = max(0, r0 - r), min(H, r1 + r)
        slab = d[s0:s1]
        m = np.isfinite(slab)
        if not m.any():
            continue
        f = np.where(m, slab - np.median(slab[m]), 0.0)  # offset-free: the model has a constant
        mf = m.astype(np.float64)
        h, w = slab.shape
        fshape = [sfft.next_fast_len(h + K - 1, real=True), sfft.next_fast_len(w + K - 1, real=True)]
        Fm, Ff, Fff = (sfft.rfft2(a, fshape) for a in (mf, f, f * f))

        def corr(Fa, Fk):
            return sfft.irfft2(Fa * Fk, fshape)[r:r + h, r:r + w]

        keep = slice(r0 - s0, r0 - s0 + (r1 - r0))
        best = np.zeros((r1 - r0, W))
        for k, (_phis, pairs, nside) in enumerate(kern):
            spec = {}
            for i, j, kk in pairs:
                spec[(i, j)] = sfft.rfft2(kk[::-1, ::-1], fshape)
            S = {ij: corr(Fm, Fk) for ij, Fk in spec.items()}      # normal matrix entries
            b = [corr(Ff, spec[(0, i)]) for i in range(5)]           # right-hand side
            ff = corr(Fff, spec[(0, 0)])
            n_all = np.rint(S[(0, 0)])
            n_side = np.rint(4.0 * S[(3, 3)])            # pixels on either side (h^2 = 1/4)
            n_diff = np.rint(2.0 * S[(0, 3)])            # (+ side) - (- side)
            n_pos, n_neg = 0.5 * (n_side + n_diff), 0.5 * (n_side - n_diff)
            ok = m & (n_pos >= 0.5 * nside) & (n_neg >= 0.5 * nside) & (n_all > 4)
            # closed form (a batched 4 x 4 solve is slow): the plane block A (3 x 3) is inverted by
            # cofactors; the step coefficient follows from the Schur complement of A.
            a00, a01, a02, a11, a12, a22 = (S[(0, 0)], S[(0, 1)], S[(0, 2)], S[(1, 1)], S[(1, 2)], S[(2, 2)])
            c00, c01, c02 = a11 * a22 - a12 * a12, a02 * a12 - a01 * a22, a01 * a12 - a02 * a11
            c11, c12, c22 = a00 * a22 - a02 * a02, a01 * a02 - a00 * a12, a00 * a11 - a01 * a01
            det = a00 * c00 + a01 * c01 + a02 * c02
            ok &= det > 1e-9 * np.maximum(a00, 1.0) ** 3
            with np.errstate(divide="ignore", invalid="ignore"):
                idet = np.where(ok, 1.0 / det, 0.0)

                def ainv(x0, x1, x2):  # A^-1 x
                    return ((c00 * x0 + c01 * x1 + c02 * x2) * idet, (c01 * x0 + c11 * x1 + c12 * x2) * idet,
                            (c02 * x0 + c12 * x1 + c22 * x2) * idet)

                zb = ainv(b[0], b[1], b[2])

                def beyond_plane(q):  # Schur complement and the coefficient's numerator of term q
                    y = ainv(S[(0, q)], S[(1, q)], S[(2, q)])
                    sc = S[(q, q)] - (y[0] * S[(0, q)] + y[1] * S[(1, q)] + y[2] * S[(2, q)])
                    return sc, b[q] - (y[0] * b[0] + y[1] * b[1] + y[2] * b[2])

                schur, num = beyond_plane(3)
                ok &= schur > 1e-9 * np.maximum(S[(3, 3)], 1e-12)
                s = np.where(ok, num / schur, np.nan)
                gain = np.where(ok, num * num / schur, 0.0)          # sum of squares the step explains
                sc3, num3 = beyond_plane(4)
                gain3 = np.where(sc3 > 0, num3 * num3 / np.where(sc3 > 0, sc3, 1.0), 0.0)
                fit = zb[0] * b[0] + zb[1] * b[1] + zb[2] * b[2] + gain
                s2 = np.maximum(np.maximum(ff - fit, 0.0) / np.maximum(n_all - 4, 1.0), STEP_NOISE_FLOOR_MM ** 2)
                t = np.where(ok, s / np.sqrt(s2 / schur), 0.0)
            tt, ss, sh = t[keep], s[keep], (gain > gain3)[keep]
            better = np.abs(tt) > best
            best[better] = np.abs(tt[better])
            tstat[r0:r1][better] = tt[better]
            step[r0:r1][better] = ss[better]
            orient[r0:r1][better] = k
            sharp[r0:r1][better] = sh[better]
            progress.check()
        progress.set((bi + 1) / len(blocks))
    tested = orient >= 0
    lam = max(1.0, float(np.median(np.abs(tstat[tested]))) / STEP_NULL_MEDIAN_T) if tested.any() else 1.0
    return StepField(step, tstat, orient, n_or, lam, sharp)


def _cell_size_m(grid: Grid):
    """(row spacing, column spacing) in metres; geographic grids at the raster's central latitude."""
    from osgeo import osr

    gt = grid.geotransform
    dx, dy = math.hypot(gt[1], gt[4]), math.hypot(gt[2], gt[5])
    if grid.crs_wkt:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(grid.crs_wkt)
        if srs.IsGeographic():
            lat = gt[3] + 0.5 * grid.height * gt[5]
            mdeg = math.pi / 180.0 * 6371008.8
            return dy * mdeg, dx * mdeg * math.cos(math.radians(lat))
        f = srs.GetLinearUnits() or 1.0
        return dy * f, dx * f
    return dy, dx


def discontinuity_traces(sf: StepField, step_mm: float, step_z: float, valid=None,
                         min_pixels: Optional[int] = None, link_z: Optional[float] = None) -> np.ndarray:
    """Trace pixels of significant steps (bool).

    Candidates are the ridge of ``|z|`` across each candidate trace (non-maximum suppression over two
    pixels either side along the step's normal, as in Canny's edge detector) with ``|step| >= step_mm``. Candidates with ``|z| >=
    link_z`` (default ``step_z``) are linked into traces of one sign (8-connected, bridging one-pixel
    gaps left by holes or noise); a trace is kept when it holds at least one pixel with ``|z| >=
    step_z`` and at least ``min_pixels`` pixels (default ``STEP_HALF_LENGTH + 1``: it reaches more than
    half a window beyond any one window, so a single window's noise cannot make a trace)."""
    from scipy import ndimage

    if min_pixels is None:
        min_pixels = STEP_HALF_LENGTH + 1
    if link_z is None:
        link_z = step_z
    z = np.nan_to_num(sf.z, nan=0.0)
    at = np.abs(z)
    th = np.pi * np.maximum(sf.orient, 0) / sf.n_orient
    pad = np.pad(at, _RIDGE_PX)
    rr, cc = np.indices(at.shape) + _RIDGE_PX
    ridge = np.ones(at.shape, bool)
    for k in range(1, _RIDGE_PX + 1):  # the maximum over +-_RIDGE_PX pixels along the step's normal
        dc = np.rint(k * np.cos(th)).astype(int)
        dr = np.rint(-k * np.sin(th)).astype(int)
        ridge &= (at >= pad[rr + dr, cc + dc]) & (at >= pad[rr - dr, cc - dc])
    s = np.nan_to_num(sf.step, nan=0.0)
    base = ridge & (sf.orient >= 0) & (at >= min(link_z, step_z)) & (np.abs(s) >= step_mm)
    if sf.sharp is not None:
        base &= sf.sharp
    if valid is not None:
        base &= valid
    out = np.zeros(at.shape, bool)
    eight = np.ones((3, 3), bool)
    for sign in (1.0, -1.0):
        det = base & (np.sign(s) == sign)
        if not det.any():
            continue
        lab, n = ndimage.label(ndimage.binary_dilation(det, eight), eight)
        size = np.bincount(lab[det], minlength=n + 1)
        strong = np.zeros(n + 1, bool)
        strong[lab[det & (at >= step_z)]] = True
        good = strong & (size >= min_pixels)
        good[0] = False
        out |= det & good[lab]
    return out


def discontinuity_band(traces: np.ndarray, buffer_m: float, grid: Grid) -> np.ndarray:
    """Pixels whose centre lies within ``buffer_m`` of a trace pixel's centre (traces included)."""
    from scipy import ndimage

    if not traces.any():
        return np.zeros(traces.shape, bool)
    dist = ndimage.distance_transform_edt(~traces, sampling=_cell_size_m(grid))
    return dist <= buffer_m + 1e-9
