"""Tiered control zones: the engineering decision layer.

Combines, per pixel, the susceptibility class (from ``uncertainty``), one uncertainty layer
(``spread``: band 1 of OUTPUT_SPREAD, the members' standard deviation in mm; or ``ambiguity``:
the normalised class entropy, 0..1), the exceedance probability of one threshold (one band of
OUTPUT_EXCEEDANCE) and optionally the residual hot spots (the Gi* z-scores written by
``residuals`` as OUTPUT_HOTSPOTS) into four tiers. Liu et al. (2026) motivate a tiered
strategy (control where the forecast is severe and reliable, verification where it is severe but
uncertain or where errors cluster, e.g. along faults); the rule table below is our concrete
reading of it and is a parameter (``RULES``, a JSON object overriding any of these keys):

=========================  =========  ==================================================
key                        default    meaning
=========================  =========  ==================================================
``high_class_min``         N - 1      class >= this is "high susceptibility" (N = number
                                      of classes in the susceptibility legend: 4 of 5)
``moderate_class_min``     ceil(N/2)  class >= this is "moderate" (3 of 5)
``exceedance_high``        0.5        P(exceed) >= this is "high exceedance probability"
``exceedance_moderate``    0.2        P(exceed) >= this counts for enhanced monitoring
``uncertainty_max``        null       uncertainty <= this is "confident"; null = 0.5 for
                                      ambiguity, the median spread over the valid area
                                      for spread
``hotspot_z``              1.96       Gi* z >= this is a residual hot spot (95 %)
``step_mm``                1.0        |step| (mm) across a discontinuity trace >= this
``step_z``                 5.0        calibrated step statistic >= this anchors a trace
``step_link_z``            4.0        calibrated step statistic >= this continues it
``discontinuity_buffer_m`` 150        pixels within this distance (m) of a trace: tier 2
=========================  =========  ==================================================

Tiers (the first rule that holds wins):

1. **Immediate control**: high susceptibility AND P(exceed) >= exceedance_high AND confident.
2. **Verify & densify monitoring**: (high susceptibility AND NOT confident AND P(exceed) >=
   exceedance_moderate) OR (residual hot spot AND (class >= moderate_class_min OR P(exceed) >=
   exceedance_moderate)) OR within ``discontinuity_buffer_m`` of a differential-movement
   discontinuity (below; needs FORECAST).
3. **Enhanced monitoring**: P(exceed) >= exceedance_moderate (this includes high, confident pixels
   whose exceedance probability is not high).
4. **Routine monitoring**: everything else that is valid.

A pixel is valid where susceptibility, uncertainty and exceedance are all valid (a missing
optional hot-spot value counts as "no hot spot"). The tier raster holds 1..4 (nodata 0).

Differential movement (discontinuities)
---------------------------------------
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

Zones: contiguous pixels of one tier (4-connected, i.e. sharing an edge; ``EIGHT_CONNECTED``
joins diagonal neighbours too) are labelled with ``scipy.ndimage.label`` and turned into
polygons with ``gdal.Polygonize`` using the same connectivity, so every polygon is exactly one
labelled zone; zones smaller than ``MIN_AREA`` (m²) get no polygon (they keep their tier in the
raster). Areas are pixel counts x cell area (for a geographic CRS, cell area from the WGS84
radius at each row's latitude). Attributes: tier, tier_name, area_m2, n_pixels, mean_def_mm and
max_abs_def_mm (the signed value of largest magnitude, from the optional FORECAST raster's last
band, e.g. ``uncertainty``'s OUTPUT_DEFORMATION), max_exceed_p, mean_uncert, max_step_mm (the
signed step of largest magnitude on a discontinuity trace in the zone), action (with
``DISCONTINUITY_ACTION`` appended where the zone holds a discontinuity's buffer). Optional
OUTPUT_DISCONTINUITY: step (mm), calibrated statistic and 2 trace / 1 buffer / 0 none.

Memory: the layers are held whole (a handful of bytes per pixel): labelling contiguous zones
needs the whole map. The step test runs in row blocks; its results (step, statistic, orientation)
add about 20 bytes per pixel.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from .errors import DeformCastError
from .progress import Progress, silent
from .raster import Grid, crs_equal, open_raster, read_band, write_raster
from . import styles

UNCERTAINTY_TYPES = ["ambiguity", "spread"]
TIERS = {
    1: ("Tier 1 – immediate control", "#d7191c",
        "Immediate control: plan mitigation (e.g. restrict groundwater/mining extraction, reinforce "
        "structures), inspect assets and monitor at high frequency."),
    2: ("Tier 2 – verify & densify monitoring", "#fdae61",
        "Verify the forecast: densify monitoring (levelling, GNSS, corner reflectors), check faults "
        "and local causes before committing to control measures."),
    3: ("Tier 3 – enhanced monitoring", "#ffffbf",
        "Enhanced monitoring: shorten the InSAR update interval and review at each new acquisition."),
    4: ("Tier 4 – routine monitoring", "#1a9641", "Routine monitoring at the standard interval."),
}
RULE_DOC = {
    "high_class_min": "susceptibility class >= this is high",
    "moderate_class_min": "susceptibility class >= this is moderate",
    "exceedance_high": "P(exceed) >= this is high",
    "exceedance_moderate": "P(exceed) >= this is needed for tiers 2 (uncertain) and 3",
    "uncertainty_max": "uncertainty <= this is confident",
    "hotspot_z": "Gi* z >= this is a residual hot spot",
    "step_mm": "|step| (mm) across a discontinuity trace >= this counts (differential movement)",
    "step_z": "calibrated step statistic >= this anchors a discontinuity trace",
    "step_link_z": "calibrated step statistic >= this continues an anchored trace",
    "discontinuity_buffer_m": "pixels within this distance (m) of a trace go to tier 2",
}
#: Appended to the action of every zone that holds pixels of a discontinuity's buffer.
DISCONTINUITY_ACTION = ("Differential-movement discontinuity (a step in the forecast deformation): inspect buildings, "
                        "pipes and roads that cross the trace, level across it and check mapped faults.")


def default_rules(n_classes: int) -> dict:
    return {"high_class_min": max(2, n_classes - 1), "moderate_class_min": max(1, math.ceil(n_classes / 2)),
            "exceedance_high": 0.5, "exceedance_moderate": 0.2, "uncertainty_max": None, "hotspot_z": 1.96,
            "step_mm": 1.0, "step_z": 5.0, "step_link_z": 4.0, "discontinuity_buffer_m": 150.0}


def parse_rules(text, n_classes: int) -> dict:
    rules = default_rules(n_classes)
    if text is None or (isinstance(text, str) and not text.strip()):
        return rules
    if isinstance(text, dict):
        given = text
    else:
        try:
            given = json.loads(str(text))
        except json.JSONDecodeError as e:
            raise DeformCastError(f"RULES is not valid JSON ({e.msg} at character {e.pos}). Give an object such as "
                                  '{"exceedance_high": 0.6, "hotspot_z": 2.576}.') from None
    if not isinstance(given, dict):
        raise DeformCastError('RULES must be a JSON object, e.g. {"exceedance_high": 0.6}.')
    for k, v in given.items():
        if k not in rules:
            raise DeformCastError(f"RULES: unknown key '{k}'. Valid keys: {', '.join(rules)}.")
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)):
            raise DeformCastError(f"RULES: '{k}' must be a number (or null for uncertainty_max).")
        if v is None and k != "uncertainty_max":
            raise DeformCastError(f"RULES: '{k}' must be a number.")
        rules[k] = v
    for k in ("exceedance_high", "exceedance_moderate"):
        if not 0 <= rules[k] <= 1:
            raise DeformCastError(f"RULES: '{k}' is a probability between 0 and 1.")
    for k in ("step_mm", "discontinuity_buffer_m"):
        if rules[k] < 0:
            raise DeformCastError(f"RULES: '{k}' must be >= 0.")
    if rules["step_z"] <= 0 or rules["step_link_z"] <= 0:
        raise DeformCastError("RULES: 'step_z' and 'step_link_z' must be > 0.")
    if rules["step_link_z"] > rules["step_z"]:
        raise DeformCastError("RULES: 'step_link_z' (continues a trace) must not exceed 'step_z' (anchors it).")
    return rules


def assign_tiers(suscept, uncert, exceed, rules: dict, hot_z=None, discontinuity=None) -> np.ndarray:
    """Tier 1..4 per pixel (0 where invalid); ``rules`` fully resolved (uncertainty_max a number).

    ``discontinuity``: optional bool mask of the pixels within ``discontinuity_buffer_m`` of a
    discontinuity trace (:func:`discontinuity_band`); they go to tier 2 unless tier 1 holds.
    """
    s = np.asarray(suscept, dtype=np.float64)
    u = np.asarray(uncert, dtype=np.float64)
    p = np.asarray(exceed, dtype=np.float64)
    valid = np.isfinite(s) & (s >= 1) & np.isfinite(u) & np.isfinite(p)
    high = s >= rules["high_class_min"]
    moderate = s >= rules["moderate_class_min"]
    confident = u <= rules["uncertainty_max"]
    hot = np.zeros(s.shape, bool) if hot_z is None else np.nan_to_num(np.asarray(hot_z, np.float64), nan=-np.inf) >= rules["hotspot_z"]
    # Susceptibility classes are relative (quantiles of the area), so every map has "high" classes,
    # even where nothing moves. The exceedance probability is absolute evidence: tiers 1-3 need it.
    likely = p >= rules["exceedance_moderate"]
    t1 = high & (p >= rules["exceedance_high"]) & confident
    t2 = (high & ~confident & likely) | (hot & (moderate | likely))
    if discontinuity is not None:
        # a significant step is absolute evidence (mm) by itself: no class or exceedance needed
        t2 = t2 | np.asarray(discontinuity, bool)
    t3 = likely
    tiers = np.select([t1, t2, t3], [1, 2, 3], default=4).astype(np.uint8)
    tiers[~valid] = 0
    return tiers


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


def _read1(path: str, band: int, what: str, to_mm: bool = False):
    ds, grid = open_raster(path, what)
    if band < 1 or band > ds.RasterCount:
        raise DeformCastError(f"{what} has {ds.RasterCount} band(s); band {band} does not exist. "
                              + ("Bands: " + "; ".join(f"{i + 1}: {ds.GetRasterBand(i + 1).GetDescription()}"
                                                       for i in range(ds.RasterCount))))
    # nodata, band scale/offset (and, for displacement, the length unit) as GDAL declares them
    a = read_band(ds.GetRasterBand(band), to_mm=to_mm).astype(np.float64)
    return a, grid, ds


def _n_classes_of(ds, arr) -> int:
    md = ds.GetMetadata() or {}
    lim = md.get("DEFORMCAST_CLASS_LIMITS")
    if lim:
        return len([x for x in lim.split(",") if x.strip()]) + 1
    return int(np.nanmax(arr)) if np.isfinite(arr).any() else 5


def pixel_area(grid: Grid) -> np.ndarray:
    """Area (m²) of one pixel per row, shape (H, 1)."""
    from osgeo import osr

    gt = grid.geotransform
    cell = abs(gt[1] * gt[5] - gt[2] * gt[4])
    if grid.crs_wkt:
        s = osr.SpatialReference()
        s.ImportFromWkt(grid.crs_wkt)
        if s.IsGeographic():
            R = 6371008.8
            lat = gt[3] + (np.arange(grid.height) + 0.5) * gt[5]
            a = cell * (math.pi / 180.0) ** 2 * R * R * np.cos(np.radians(lat))
            return a[:, None]
        f = s.GetLinearUnits() or 1.0
        return np.full((grid.height, 1), cell * f * f)
    return np.full((grid.height, 1), cell)


def zone_style_qml(field_name: str = "tier") -> str:
    """Categorized polygon style (QGIS renderer-v2) by tier, with the tier names as legend."""
    from xml.sax.saxutils import escape

    cats, syms = [], []
    for i, (t, (name, colour, _)) in enumerate(TIERS.items()):
        cats.append(f'<category render="true" symbol="{i}" value="{t}" label="{escape(name)}"/>')
        r, g, b = (int(colour[k:k + 2], 16) for k in (1, 3, 5))
        syms.append(
            f'<symbol alpha="0.75" type="fill" name="{i}" clip_to_extent="1" force_rhr="0">'
            '<layer class="SimpleFill" enabled="1" pass="0" locked="0">'
            f'<prop k="color" v="{r},{g},{b},255"/><prop k="outline_color" v="60,60,60,255"/>'
            '<prop k="outline_style" v="solid"/><prop k="outline_width" v="0.26"/>'
            '<prop k="outline_width_unit" v="MM"/><prop k="style" v="solid"/></layer></symbol>')
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.22.0" styleCategories="AllStyleCategories">\n'
            f'<renderer-v2 type="categorizedSymbol" attr="{field_name}" forceraster="0" symbollevels="0" '
            'enableorderby="0" referencescale="-1">'
            f"<categories>{''.join(cats)}</categories><symbols>{''.join(syms)}</symbols>"
            "</renderer-v2>\n<blendMode>0</blendMode><featureBlendMode>0</featureBlendMode>\n"
            "<layerGeometryType>2</layerGeometryType>\n</qgis>\n")


@dataclass
class ZoningResult:
    outputs: Dict[str, str]
    rules: dict
    tier_area_m2: Dict[int, float]
    tier_pixels: Dict[int, int]
    n_zones: int
    n_zones_dropped: int
    zone_rows: List[list] = field(default_factory=list)
    #: the differential-movement rule: applied (bool), why not (note), trace/buffer pixels, the noise
    #: inflation factor, the largest step (mm, signed) on a trace, the FORECAST band used
    discontinuity: dict = field(default_factory=dict)


def run_zoning(susceptibility: str, uncertainty: str, exceedance: str, outputs: Dict[str, Optional[str]],
               uncertainty_type: str = "ambiguity", exceedance_band: int = 1, hotspots: Optional[str] = None,
               forecast: Optional[str] = None, rules=None, min_area: float = 0.0, eight_connected: bool = False,
               progress: Optional[Progress] = None, discontinuities: bool = True,
               known_faults: Optional[str] = None) -> ZoningResult:
    """Tier raster, zone polygons (GeoPackage + .qml) and report; see the module doc.

    ``outputs`` keys: OUTPUT_TIERS, OUTPUT_ZONES (.gpkg), OUTPUT_REPORT, OUTPUT_DISCONTINUITY.
    ``discontinuities``: apply the differential-movement rule (needs ``forecast``); ``known_faults``:
    optional raster of the distance (m, sign ignored) to mapped faults that restricts the traces.
    """
    from scipy import ndimage

    progress = progress or silent()
    if uncertainty_type not in UNCERTAINTY_TYPES:
        raise DeformCastError(f"UNCERTAINTY_TYPE: unknown value '{uncertainty_type}'. Valid values: "
                              + ", ".join(UNCERTAINTY_TYPES) + ".")
    if min_area is None or min_area < 0:
        raise DeformCastError("MIN_AREA must be >= 0 m².")
    s, grid, sds = _read1(susceptibility, 1, "SUSCEPTIBILITY")
    n_classes = _n_classes_of(sds, s)
    u, ug, _ = _read1(uncertainty, 1, "The uncertainty layer (SPREAD/AMBIGUITY)",
                     to_mm=uncertainty_type == "spread")
    p, pg, _ = _read1(exceedance, int(exceedance_band), "EXCEEDANCE")
    layers = [("the uncertainty layer", ug), ("EXCEEDANCE", pg)]
    hz = None
    if hotspots:
        hz, hg, hds = _read1(hotspots, 1, "HOTSPOTS")
        if (hds.GetMetadata() or {}).get("DEFORMCAST_KIND") == "hotspot_classes":
            raise DeformCastError("HOTSPOTS is the hot/cold-spot class raster of 'residuals'; give its Gi* z-score "
                                  "raster (OUTPUT_HOTSPOTS) instead: the rule compares z with hotspot_z.")
        layers.append(("HOTSPOTS", hg))
    fc = None
    if forecast:
        fds_path = forecast
        from osgeo import gdal

        nb = gdal.Open(str(fds_path)).RasterCount if os.path.exists(str(fds_path)) else 1
        fc, fg, fcds = _read1(forecast, nb, "FORECAST", to_mm=True)
        layers.append(("FORECAST", fg))
        fc_band = fcds.GetRasterBand(nb).GetDescription() or f"band {nb}"
    kf = None
    if known_faults:
        kf, kg, _ = _read1(known_faults, 1, "KNOWN_FAULTS")
        layers.append(("KNOWN_FAULTS", kg))
    for what, g in layers:
        if not g.same_as(grid):
            why = (f"{g.width} x {g.height} vs {grid.width} x {grid.height} pixels"
                   if (g.width, g.height) != (grid.width, grid.height) else
                   ("different CRS" if not crs_equal(g.crs_wkt, grid.crs_wkt) else "different geotransform"))
            raise DeformCastError(f"{what} is not on the grid of SUSCEPTIBILITY ({why}). Use the layers "
                                  "written by 'uncertainty' (and 'residuals') for the same stack.")
    if uncertainty_type == "ambiguity" and np.nanmax(u) > 1.0 + 1e-6:
        raise DeformCastError("UNCERTAINTY_TYPE is 'ambiguity' but the layer has values above 1: it looks like a "
                              "spread layer (mm). Set UNCERTAINTY_TYPE to 'spread'.")
    if np.isfinite(p).any() and (np.nanmin(p) < -1e-6 or np.nanmax(p) > 1 + 1e-6):
        raise DeformCastError("EXCEEDANCE values are not probabilities (0..1). Give OUTPUT_EXCEEDANCE of "
                              "'uncertainty' and pick the threshold with EXCEEDANCE_BAND.")
    rules = parse_rules(rules, n_classes)
    if rules["uncertainty_max"] is None:
        if uncertainty_type == "ambiguity":
            rules["uncertainty_max"] = 0.5
        else:
            vv = u[np.isfinite(u) & np.isfinite(s)]
            rules["uncertainty_max"] = float(np.median(vv)) if vv.size else 0.0
        rules["uncertainty_max_source"] = ("default for ambiguity" if uncertainty_type == "ambiguity"
                                           else "median spread over the valid area")
    progress.set(0.1)
    disc = {"applied": False}
    band = traces = stepf = None
    if not discontinuities:
        disc["note"] = "switched off"
    elif fc is None:
        disc["note"] = "no FORECAST raster was given"
    else:
        stepf = step_statistics(fc, progress=progress.sub(0.1, 0.2))
        fvalid = np.isfinite(fc)
        traces = discontinuity_traces(stepf, rules["step_mm"], rules["step_z"], fvalid, link_z=rules["step_link_z"])
        if kf is not None:
            traces &= np.isfinite(kf) & (np.abs(np.nan_to_num(kf, nan=np.inf)) <= rules["discontinuity_buffer_m"])
        band = discontinuity_band(traces, rules["discontinuity_buffer_m"], grid)
        ts = stepf.step[traces]
        disc.update({"applied": True, "trace_pixels": int(traces.sum()), "inflation": stepf.inflation,
                     "forecast_band": fc_band, "known_faults": bool(known_faults),
                     "max_step_mm": float(ts[np.argmax(np.abs(ts))]) if ts.size else None})
    progress.set(0.2)
    tiers = assign_tiers(s, u, p, rules, hz, band)
    valid = tiers > 0
    if not valid.any():
        raise DeformCastError("No pixel is valid in all of SUSCEPTIBILITY, the uncertainty layer and EXCEEDANCE.")
    parea = np.broadcast_to(pixel_area(grid), tiers.shape)
    if band is not None:
        disc["buffer_pixels"] = int((band & valid).sum())
        disc["buffer_tier2_pixels"] = int((band & (tiers == 2)).sum())
    tier_pixels = {t: int((tiers == t).sum()) for t in TIERS}
    tier_area = {t: float(parea[tiers == t].sum()) for t in TIERS}
    written: Dict[str, str] = {}
    if outputs.get("OUTPUT_DISCONTINUITY"):
        if stepf is None:
            raise DeformCastError("OUTPUT_DISCONTINUITY needs the differential-movement rule: give FORECAST "
                                  "(e.g. uncertainty's OUTPUT_DEFORMATION) and leave DISCONTINUITIES on.")
        cls = np.where(traces, 2.0, np.where(band, 1.0, 0.0)).astype(np.float32)
        cls[~np.isfinite(fc)] = np.nan
        m = float(np.nanmax(np.abs(stepf.step))) if np.isfinite(stepf.step).any() else 1.0
        written["OUTPUT_DISCONTINUITY"] = write_raster(
            outputs["OUTPUT_DISCONTINUITY"], np.stack([stepf.step, stepf.z, cls]).astype(np.float32), grid,
            ["step across the best-oriented line (mm)", "calibrated step statistic t / inflation",
             "discontinuity: 2 trace, 1 within discontinuity_buffer_m, 0 none"], "float32", None,
            styles.pseudocolor(-max(m, 1e-6), max(m, 1e-6), "residual", 1, "mm"),
            {"DEFORMCAST_KIND": "discontinuity", "DEFORMCAST_STEP_INFLATION": f"{stepf.inflation:.4f}"})
    if outputs.get("OUTPUT_TIERS"):
        written["OUTPUT_TIERS"] = write_raster(
            outputs["OUTPUT_TIERS"], tiers, grid, ["control tier"], "uint8", 0,
            styles.categorical([(t, v[0], v[1]) for t, v in TIERS.items()]),
            {"DEFORMCAST_KIND": "tiers", "DEFORMCAST_RULES": json.dumps(rules)})
    # ---- zones ---------------------------------------------------------------------------
    structure = np.ones((3, 3), bool) if eight_connected else None
    labels = np.zeros(tiers.shape, np.int32)
    offset = 0
    for t in TIERS:
        lab, n = ndimage.label(tiers == t, structure=structure)
        labels[lab > 0] = lab[lab > 0] + offset
        offset += n
        progress.check()
    n_lab = offset
    flat = labels.ravel()
    nl = n_lab + 1
    cnt = np.bincount(flat, minlength=nl)
    area = np.bincount(flat, weights=parea.ravel(), minlength=nl)
    tier_of = np.zeros(nl, np.int64)
    tier_of[flat] = tiers.ravel()
    up = np.nan_to_num(u, nan=0.0).ravel()
    mean_u = np.bincount(flat, weights=up, minlength=nl) / np.maximum(cnt, 1)
    pp = np.nan_to_num(p, nan=-np.inf).ravel()
    max_p = np.full(nl, -np.inf)
    np.maximum.at(max_p, flat, pp)
    if fc is not None:
        fv = np.isfinite(fc).ravel()
        f0 = np.nan_to_num(fc, nan=0.0).ravel()
        fcount = np.bincount(flat, weights=fv.astype(float), minlength=nl)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_f = np.bincount(flat, weights=f0, minlength=nl) / fcount
        absf = np.where(fv, np.abs(f0), -1.0)
        order = np.lexsort((absf, flat))  # by label, then |value|: each label's last entry is its max
        sf = flat[order]
        ends = np.nonzero(np.r_[sf[1:] != sf[:-1], True])[0]
        okv = absf[order][ends] >= 0
        max_f = np.full(nl, np.nan)
        max_f[sf[ends][okv]] = f0[order][ends][okv]
    in_band = np.zeros(nl, bool)
    max_step = np.full(nl, np.nan)
    if band is not None:
        in_band[flat[band.ravel()]] = True
        tl = flat[traces.ravel()]
        tv = stepf.step.ravel()[traces.ravel()]
        order = np.lexsort((np.abs(tv), tl))
        ends = np.nonzero(np.r_[tl[order][1:] != tl[order][:-1], True])[0] if tl.size else np.array([], int)
        max_step[tl[order][ends]] = tv[order][ends]
    keep = [int(k) for k in np.nonzero(area[1:] >= min_area)[0] + 1]
    dropped = n_lab - len(keep)
    progress.set(0.4)
    zone_rows = []
    zpath = outputs.get("OUTPUT_ZONES")
    if zpath:
        rows_by_label = {}
        for k in keep:
            t = int(tier_of[k])
            rows_by_label[k] = {
                "tier": t, "tier_name": TIERS[t][0], "area_m2": float(area[k]), "n_pixels": int(cnt[k]),
                "mean_def_mm": float(mean_f[k]) if fc is not None and np.isfinite(mean_f[k]) else None,
                "max_abs_def_mm": float(max_f[k]) if fc is not None and np.isfinite(max_f[k]) else None,
                "max_exceed_p": float(max_p[k]), "mean_uncert": float(mean_u[k]),
                "max_step_mm": float(max_step[k]) if np.isfinite(max_step[k]) else None,
                "action": TIERS[t][2] + (" " + DISCONTINUITY_ACTION if in_band[k] else "")}
        written["OUTPUT_ZONES"] = _write_zones(zpath, labels, set(keep), rows_by_label, grid, eight_connected,
                                               progress.sub(0.4, 0.9))
        zone_rows = [[r["tier"], k, r["area_m2"], r["max_exceed_p"]] for k, r in rows_by_label.items()]
    res = ZoningResult(written, rules, tier_area, tier_pixels, len(keep), dropped, zone_rows, disc)
    if outputs.get("OUTPUT_REPORT"):
        res.outputs["OUTPUT_REPORT"] = write_report(outputs["OUTPUT_REPORT"], res, uncertainty_type, min_area,
                                                    tiers, bool(hotspots))
    progress.set(1.0)
    return res


def _write_zones(path: str, labels: np.ndarray, keep: set, attrs: Dict[int, dict], grid: Grid,
                 eight_connected: bool, progress: Progress) -> str:
    from osgeo import gdal, ogr, osr

    gdal.UseExceptions()
    path = str(path)
    if not path.lower().endswith(".gpkg"):
        path = os.path.splitext(path)[0] + ".gpkg"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".part.gpkg"
    if os.path.exists(tmp):
        os.remove(tmp)
    lab = np.where(np.isin(labels, np.fromiter(keep, dtype=np.int64, count=len(keep))), labels, 0).astype(np.int32)
    mem = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_Int32)
    mem.SetGeoTransform(grid.geotransform)
    srs = None
    if grid.crs_wkt:
        mem.SetProjection(grid.crs_wkt)
        srs = osr.SpatialReference()
        srs.ImportFromWkt(grid.crs_wkt)
    band = mem.GetRasterBand(1)
    band.WriteArray(lab)
    band.SetNoDataValue(0)
    try:
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(tmp)
        lyr = ds.CreateLayer("zones", srs, ogr.wkbPolygon)
        fields = [("label", ogr.OFTInteger), ("tier", ogr.OFTInteger), ("tier_name", ogr.OFTString),
                  ("area_m2", ogr.OFTReal), ("n_pixels", ogr.OFTInteger), ("mean_def_mm", ogr.OFTReal),
                  ("max_abs_def_mm", ogr.OFTReal), ("max_exceed_p", ogr.OFTReal), ("mean_uncert", ogr.OFTReal),
                  ("max_step_mm", ogr.OFTReal), ("action", ogr.OFTString)]
        for name, kind in fields:
            lyr.CreateField(ogr.FieldDefn(name, kind))
        opts = ["8CONNECTED=8"] if eight_connected else []

        def cb(frac, msg, data):
            try:
                progress.set(0.8 * frac)
            except BaseException:
                return 0
            return 1

        try:
            gdal.Polygonize(band, band, lyr, 0, opts, callback=cb)
        except RuntimeError as e:
            progress.check()  # a Cancel stops Polygonize through its callback: report it as Cancel
            raise DeformCastError(f"GDAL could not turn the zones into polygons: {e}") from None
        progress.check()
        lyr.StartTransaction()
        lyr.ResetReading()
        for f in lyr:
            a = attrs.get(int(f.GetField("label")))
            if a is None:
                continue
            for k, v in a.items():
                if v is not None:
                    f.SetField(k, v)
            lyr.SetFeature(f)
        lyr.CommitTransaction()
        ds = None
        progress.check()
    except BaseException:
        ds = None
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)
    with open(os.path.splitext(path)[0] + ".qml", "w", encoding="utf-8") as fh:
        fh.write(zone_style_qml())
    return path


def write_report(path: str, res: ZoningResult, uncertainty_type: str, min_area: float, tiers: np.ndarray,
                 with_hotspots: bool) -> str:
    from .report import Report, new_figure

    rep = Report("DeformCast – tiered control zones")
    total = sum(res.tier_area_m2.values())
    rep.heading("Area per tier")
    rep.table([[TIERS[t][0], res.tier_pixels[t], res.tier_area_m2[t] / 1e6,
                100 * res.tier_area_m2[t] / total if total else float("nan"), TIERS[t][2]] for t in TIERS],
              ["tier", "pixels", "area (km²)", "% of valid area", "action"])
    rep.paragraph(f"{res.n_zones} zone polygon(s) of at least {min_area:g} m²; {res.n_zones_dropped} smaller "
                  "contiguous zone(s) keep their tier in the raster but get no polygon.")
    fig = new_figure(6, 4)
    ax = fig.add_subplot(111)
    cmap_cols = ["#ffffff"] + [TIERS[t][1] for t in TIERS]
    from matplotlib.colors import ListedColormap

    ax.imshow(tiers, cmap=ListedColormap(cmap_cols), vmin=-0.5, vmax=4.5, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    rep.figure(fig, "Tier map (red 1, orange 2, yellow 3, green 4; white = no data).")
    rep.heading("Rule table")
    rows = [[k, res.rules[k], RULE_DOC[k]] for k in RULE_DOC]
    rep.table(rows, ["rule", "value", "meaning"])
    if "uncertainty_max_source" in res.rules:
        rep.paragraph(f"uncertainty_max: {res.rules['uncertainty_max_source']} (uncertainty layer: {uncertainty_type}).",
                      cls="muted")
    rep.html("<ol><li><b>Tier 1 immediate control</b>: high susceptibility AND P(exceed) &ge; exceedance_high AND "
             "uncertainty &le; uncertainty_max.</li><li><b>Tier 2 verify &amp; densify</b>: high susceptibility AND "
             "uncertainty &gt; uncertainty_max (with P(exceed) &ge; exceedance_moderate), OR residual hot spot "
             "(Gi* z &ge; hotspot_z" + ("" if with_hotspots else "; no HOTSPOTS layer was given")
             + ") where the class is at least moderate or P(exceed) &ge; exceedance_moderate, OR within "
             "discontinuity_buffer_m of a differential-movement discontinuity trace ("
             + ("applied" if res.discontinuity.get("applied") else "not applied: "
                + res.discontinuity.get("note", "")) + ").</li>"
             "<li><b>Tier 3 enhanced monitoring</b>: P(exceed) &ge; "
             "exceedance_moderate.</li><li><b>Tier 4 routine</b>: the rest.</li></ol>"
             "<p class='muted'>The first rule that holds wins.</p>")
    d = res.discontinuity
    rep.heading("Differential movement (discontinuities)")
    if d.get("applied"):
        ms = d.get("max_step_mm")
        rep.paragraph(
            f"Step test on FORECAST ({d.get('forecast_band')}): a local plane plus a step fitted in an oriented "
            f"{2 * STEP_HALF_LENGTH + 1} x {2 * STEP_HALF_WIDTH + 1} pixel window, {n_step_orientations()} "
            f"orientations; noise-inflation factor {d['inflation']:.2f} (median |t| / {STEP_NULL_MEDIAN_T}, floored "
            f"at 1). A trace needs |step| ≥ step_mm = {res.rules['step_mm']:g} mm, one pixel with calibrated t "
            f"≥ step_z = {res.rules['step_z']:g}, its other pixels ≥ step_link_z = {res.rules['step_link_z']:g}, "
            f"and at least {STEP_HALF_LENGTH + 1} linked pixels of one sign"
            + ("; traces restricted to mapped faults (KNOWN_FAULTS)" if d.get("known_faults") else "") + ". "
            f"{d['trace_pixels']} trace pixel(s); {d.get('buffer_pixels', 0)} pixel(s) within "
            f"{res.rules['discontinuity_buffer_m']:g} m, {d.get('buffer_tier2_pixels', 0)} of them in tier 2"
            + (f"; largest step on a trace {ms:+.1f} mm." if ms is not None else "."))
    else:
        rep.paragraph(f"Not applied: {d.get('note', '')}.", cls="muted")
    return rep.save(path)
