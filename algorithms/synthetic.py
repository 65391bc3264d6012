"""The built-in synthetic demo scene: a Rhineland-like lignite coalfield with known physics.

(``physics="varied"`` draws other physics from the seed; see *Varied physics* below.)

Every other part of DeformCast uses this scene for demos, tests and benchmarks, because its
noise-free truth (including the future beyond the stack) is known exactly. The paper (Liu et al.
2026, Remote Sensing 18(2):234) works on real Sentinel-1 data and does not describe a synthetic
scene; every choice below is ours and is recorded, with its value, in ``Scene.params``.

Conventions
-----------
* Values in millimetres, **positive = uplift** (towards the satellite), line of sight taken as
  vertical (EGMS Ortho "U" component is vertical; we do not project onto a LOS vector).
* Every series is referenced to the first epoch: ``truth[0] == 0`` and ``observed[0] == 0``
  (or NaN) everywhere. Noise terms are referenced the same way, ``n(t) - n(t0)``, as in an
  SBAS inversion that sets the first acquisition to zero, so noise in all epochs shares the
  first epoch's noise.
* Dates are regular: ``start + k * step_days`` (12 days: one Sentinel-1 satellite after
  Sentinel-1B failed; EGMS uses 6 or 12 days). ``future_dates`` continue the same spacing.
* Grid: north-up, ``cell`` metres, EPSG:25832 (ETRS89 / UTM 32N) by default, the upper-left
  corner placed so the scene is centred at 6.50 E, 50.95 N (between the Hambach and Garzweiler
  open pits). Any projected CRS in metres is accepted.

The scene is a *template scaled to its extent*: feature positions are fractions of the width
and height, feature sizes are fractions of ``L = min(width, height) * cell`` (4000 m for the
default 100 x 80 px at 50 m). So a 40 x 30 px test scene and a 1000 x 1000 px benchmark scene
contain the same features. The transient processes (bowl acceleration, rebound) are timed as
fractions of the observed period, so every scene, short or long, shows the same story; the
fault creep is a physical rate in mm/yr. Positions, rates and sizes are jittered per seed
(a few per cent), so different seeds give different but equally structured scenes.

Signal components (truth = sum; each is 0 at the first epoch)
-------------------------------------------------------------
1. **Mining / dewatering subsidence bowls** (zone 1; two of them). Knothe / probability-integral
   influence function: a point subsides by ``S_max * K(x, y)`` with
   ``K = integral over the extracted panel of (1/r^2) exp(-pi s^2 / r^2)``, influence radius
   ``r = H / tan(beta)`` (depth ``H``, angle of major influence ``beta``). For a rectangular
   panel (half-sizes ``a``, ``b``, rotated) this integral is separable:
   ``K = 1/4 [erf(sqrt(pi)(a - xi)/r) + erf(sqrt(pi)(a + xi)/r)] [same with b, eta]``.
   The bowl deepens with an accelerating time law ``h(w) = alpha w + (1 - alpha) w^p``,
   ``w = max(0, u - u0) / (1 - u0)``, ``u = t / T_obs``, ``p > 1`` (dewatering drawdown and
   extraction rate growing), so ``h = 1`` at the last observed epoch and the acceleration goes
   on into the future. Bowl A starts at t0 (S_max ~130 mm); bowl B switches on at a quarter of
   the period (S_max ~80 mm) — a non-stationary onset for the forecasters to cope with.
   The Knothe *time* function (lag between extraction and subsidence) is not modelled: the
   time law above already describes the surface response.
2. **Fault creep** (zone 2 = a buffer of ``0.06 L`` on either side). A straight NNW-SSE fault
   (the trend of the Erft and Rur faults of the Lower Rhine Embayment). A hanging-wall strip on
   the east side creeps down at ``v`` mm/yr (~5), the west side is stable:
   ``-v t (1/2 + arctan(d / w) / pi) exp(-max(d, 0) / D)``. The arctan step has width
   ``w = cell / 5``, so it is sharp at the pixel scale whatever the resolution; the creep decays
   away from the fault over ``D = 0.06 L`` (compaction of the hanging-wall sediments next to a
   fault that acts as a groundwater barrier), so the background beyond the buffer stays quiet.
   ``d`` is the signed distance to the fault (the ``fault_distance`` covariate).
3. **Groundwater-rebound uplift** (zone 3, where the footprint exceeds 0.25): after pumping
   stops near a closed pit, the ground rises towards an asymptote
   ``U_inf G(x, y) (1 - exp(-(t - t_on) / tau))`` with a flat-topped footprint
   ``G = exp(-rho^4)`` (``rho`` = elliptical radius). ``U_inf`` ~30 mm, ``t_on`` = 8 % and
   ``tau`` = 22 % of the observed period, so ~97 % of the asymptote is reached by its end.
4. **Seasonal signal** by lithology: ``A cos(2 pi (year - peak)) + A2 cos(4 pi (year - peak2))``
   with amplitude and phase per class (clays swell in the wet winter and shrink in summer;
   gravels show mainly thermal expansion of the scatterers in summer; floodplain alluvium follows
   the spring groundwater high). Lithology classes: 1 Quaternary terrace gravel/sand, 2 loess,
   3 Tertiary clay/silt, 4 Holocene floodplain alluvium (a meandering band along the fault).

Noise (observed = truth + n(t) - n(t0))
---------------------------------------
* Turbulent atmosphere: a Gaussian field per epoch with power spectrum ``P(k) ~ (k^2 +
  k0^2)^(-beta/2)``, ``beta = 8/3`` (Kolmogorov turbulence, the 2-D slope Hanssen 2001 reports
  for InSAR at km scales), outer scale 50 km (``k0``), generated by filtering complex white noise
  with an inverse real FFT (periodic at the scene edges; this is a synthetic scene). Its
  standard deviation per epoch is ~2.5 mm, larger in summer (wet troposphere) and log-normally
  varying between epochs.
* Stratified troposphere: ``k_t * (dem - mean dem)`` with ``k_t ~ N(0, 0.01 mm/m)`` per epoch.
* White noise (phase noise, unwrapping residue): 1.0 mm per pixel and epoch.
* Decorrelation: a restored pit lake and a forest patch (NaN in every epoch), 1 % of pixels
  lost at random (NaN in every epoch), and optionally a fraction ``gap_fraction`` (default 0)
  of single pixel-epochs lost. The default stack is thus regular in time with fixed holes.
  ``truth`` is finite everywhere (it is the physical model, also under the lake).

Covariates (``Scene.covariates``, float32 (H, W))
------------------------------------------------
``fault_distance`` signed distance to the fault in metres (positive on the creeping east side),
``mining_mask`` 1 inside the extracted panels (what a mine plan shows; the bowls extend about
one influence radius beyond), ``lithology`` class 1..4, ``dem`` metres above sea level
(regional slope from the SW ridge towards the NE, a fault scarp with the west side higher, a
floodplain incision, the lake at water level, gentle random relief).

Varied physics (``physics="varied"``)
------------------------------------
Everything above is the *demo* physics (``physics="demo"``, the default; bit-identical for a
given seed). ``physics="varied"`` keeps the grid, the conventions, the lithology, the DEM, the
lake, the forest and the noise model, but draws the physics from the seed (a ninth random
stream, so the demo's eight streams are untouched), to evaluate forecasters on scenes unlike the
demo. Every drawn value is recorded in ``params["physics"]`` (``mode``, ``bowls``, ``fault``,
``uplift``, ``step``, ``seasonal_growth``, ``noise``); ``params["bowls"]``, ``["fault"]``,
``["uplift"]`` and ``["noise"]`` hold the values used. ``T`` is the observed period in years.

* **Bowls**: 1 to 3 (Knothe panel shape as above: half-sizes 0.06-0.12 L x 0.04-0.08 L, any
  rotation, depth 0.07-0.12 L, tan(beta) 1.3-2.0), placed apart from each other, the fault, the
  lake and the forest. ``S_max`` 30-200 mm is the subsidence over the record at full influence
  (each time law is 1 at the last observed epoch). Each bowl gets its own law (no law twice in a
  scene, :func:`bowl_time_law`): ``onset`` at 20-80 % of T, then linear or accelerating
  (``alpha`` 0-0.4, ``power`` 1.5-2.5); ``stop``: subsiding from t0, extraction ends at 40-85 %
  of T, then the rate decays as ``exp(-(t - t_stop) / tau)``, tau 0.1-0.5 yr (residual
  subsidence); ``speedup``: the rate is multiplied by 2-4 from a break in the last 40 % of T on,
  continuing into the future; ``saturating``: ``S_inf (1 - exp(-(t - t0) / tau))``, t0 0-30 %
  and tau 15-60 % of T. A ``stop`` or ``speedup`` date is, with probability 0.6, drawn instead in
  the *late* window from ``T - 1 yr`` to the last future epoch (``event_timing = "late"``):
  regime changes near the forecast origin are what break classical trajectory fits. Each bowl
  records ``event_years``, ``event_in_last_year_or_future`` and ``event_in_future``.
* **Fault**: its trace moved (top at 55-85 % of the width, the bottom 5 % west to 20 % east of
  it), the same sharp profile and ``fault_distance``; creep ``v0`` 1-8 mm/yr with a law drawn
  among ``steady``, ``accelerating`` (``v = v0 (1 + k t)``, k 0.1-0.6 /yr) and ``creep_event``
  (a step of 2-10 mm at 15-90 % of T on the same profile) (:func:`fault_time_law`).
* **Uplift**: present in about 2/3 of the seeds: the rebound law with onset 0-60 % and tau
  10-50 % of T, asymptote 10-40 mm, footprint 0.10-0.16 L x 0.06-0.10 L; else absent (no zone 3).
* **Step area**: in about half of the seeds a step at 10-95 % of T in an ellipse (semi-axes
  0.10-0.20 L, ratio 0.5-1), away from the bowls: ``coseismic`` (smooth footprint
  ``exp(-rho^4)``, +-5-30 mm) or ``unwrapping`` (sharp ellipse, +-27.73 mm = half the Sentinel-1
  C-band wavelength). It is part of the truth and stays in all later epochs (the stack and the
  future observations carry it alike). Zone 4 "Step area" (on top of the others, footprint
  > 0.25); scenes without a step keep zones 0-3.
* **Seasonal**: the lithology amplitudes are multiplied by ``1 + g_c t`` (t years since the
  first epoch), ``g_c`` drawn per class in ``[-g_max, g_max]``, ``g_max = min(0.3, 0.75 / t_end)``
  so the factor stays within 0.25-1.75 up to the last future epoch.
* **Noise**: atmospheric std 1.0-4.0 mm (before the summer and log-normal factors), white
  noise 0.5-2.5 mm.

Speed: everything but the noise is separable (space map x time function), so the truth is one
matrix product; the noise is one inverse FFT per epoch, done in blocks of epochs with progress
and cancel checks between blocks. Only numpy (and GDAL for the CRS) is needed.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from .errors import DeformCastError
from .progress import Progress

COVARIATE_NAMES = ("fault_distance", "mining_mask", "lithology", "dem")

ZONE_NAMES = {
    0: "Background (quiet)",
    1: "Mining subsidence bowl",
    2: "Fault zone",
    3: "Groundwater-rebound uplift",
}
ZONE_COLOURS = {0: "#d9d9d9", 1: "#d7191c", 2: "#7b3294", 3: "#2c7bb6", 4: "#fdae61"}  # 4: varied only

LITHOLOGY = {
    # class: name, annual amplitude mm, day of year of annual peak uplift,
    #        semi-annual amplitude mm, day of year of its first peak, colour
    1: ("Quaternary terrace gravel and sand", 1.2, 200, 0.2, 200, "#f6e8a6"),
    2: ("Loess and loess loam", 2.5, 70, 0.4, 40, "#e0b36b"),
    3: ("Tertiary clay and silt", 5.5, 45, 1.0, 30, "#8c6d4f"),
    4: ("Holocene floodplain alluvium", 4.0, 90, 0.6, 60, "#9ecae1"),
}

_YEAR = 365.2425
_DEFAULT_LONLAT = (6.50, 50.95)  # between the Hambach and Garzweiler open pits


@dataclass
class Scene:
    """A synthetic scene in memory (see the module docstring for the physics)."""

    grid: object  # algorithms.raster.Grid
    dates: np.ndarray  # datetime64[D], n_epochs
    future_dates: np.ndarray  # datetime64[D], n_future
    observed: np.ndarray  # float32 (n_epochs, H, W), mm, NaN = decorrelated
    truth: np.ndarray  # float32 (n_epochs + n_future, H, W), noise-free, finite
    future_observed: np.ndarray  # float32 (n_future, H, W), noisy, same NaN holes
    covariates: Dict[str, np.ndarray]  # name -> float32 (H, W)
    zones: np.ndarray  # int (H, W): 0 quiet, 1 bowls, 2 fault, 3 uplift (4 step area: varied only)
    params: dict  # JSON-serialisable, every physical parameter used
    zone_names: Dict[int, str] = field(default_factory=lambda: dict(ZONE_NAMES))
    lithology_names: Dict[int, str] = field(
        default_factory=lambda: {k: v[0] for k, v in LITHOLOGY.items()})

    @property
    def all_dates(self) -> np.ndarray:
        """Observed then future dates (the time axis of ``truth``)."""
        return np.concatenate([self.dates, self.future_dates])

    @property
    def valid(self) -> np.ndarray:
        """(H, W) bool: pixels with data in every observed epoch."""
        return np.all(np.isfinite(self.observed), axis=0)


# ----------------------------------------------------------------------------------------------
# small numerical helpers (numpy only)
# ----------------------------------------------------------------------------------------------
def erf(x: np.ndarray) -> np.ndarray:
    """Vectorised error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7)."""
    x = np.asarray(x, dtype=np.float64)
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def knothe_panel(xi: np.ndarray, eta: np.ndarray, a: float, b: float, r: float) -> np.ndarray:
    """Knothe influence integral (0..1) of a rectangular panel of half-sizes ``a`` x ``b``.

    ``xi``, ``eta``: coordinates in the panel's own frame (m, origin at its centre);
    ``r``: influence radius H / tan(beta). 1 means full subsidence ``S_max``.
    """
    c = np.sqrt(np.pi) / r
    fx = 0.5 * (erf(c * (a - xi)) + erf(c * (a + xi)))
    fy = 0.5 * (erf(c * (b - eta)) + erf(c * (b + eta)))
    return fx * fy


def accelerating_law(u: np.ndarray, onset: float, alpha: float, power: float) -> np.ndarray:
    """``alpha w + (1 - alpha) w**power``, ``w = max(0, u - onset) / (1 - onset)``; 1 at u = 1."""
    w = np.maximum(0.0, np.asarray(u, dtype=np.float64) - onset) / (1.0 - onset)
    return alpha * w + (1.0 - alpha) * w ** power


def rebound_law(t_years: np.ndarray, onset: float, tau: float) -> np.ndarray:
    """``1 - exp(-(t - onset) / tau)`` after onset, 0 before."""
    dt = np.maximum(0.0, np.asarray(t_years, dtype=np.float64) - onset)
    return 1.0 - np.exp(-dt / tau)


def _spectral_filter(shape, beta: float, k0: float) -> np.ndarray:
    """Amplitude filter ``(k^2 + k0^2)^(-beta/4)`` on the rfft2 grid (k in cycles/pixel)."""
    h, w = shape
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    k2 = kx * kx + ky * ky
    filt = np.zeros_like(k2)
    nz = k2 > 0
    filt[nz] = (k2[nz] + k0 * k0) ** (-beta / 4.0)
    return filt  # the k = 0 (mean) term is 0: fields have zero spatial mean


def powerlaw_noise(rng: np.random.Generator, n: int, shape, beta: float = 8.0 / 3.0,
                   k0: float = 0.0, filt: Optional[np.ndarray] = None) -> np.ndarray:
    """``n`` independent zero-mean, unit-std Gaussian fields (n, H, W) with P(k) ~ k^-beta."""
    h, w = shape
    if filt is None:
        filt = _spectral_filter(shape, beta, k0)
    wr = filt.shape[1]
    spec = rng.standard_normal((n, h, wr), dtype=np.float32).astype(np.complex64)
    spec.imag = rng.standard_normal((n, h, wr), dtype=np.float32)
    spec *= filt.astype(np.float32)
    f = np.fft.irfft2(spec, s=(h, w), axes=(1, 2))
    f -= f.mean(axis=(1, 2), keepdims=True)
    sd = f.std(axis=(1, 2), keepdims=True)
    sd[sd == 0] = 1.0
    return (f / sd).astype(np.float32)


def _smooth_field(rng: np.random.Generator, shape, corr_px: float) -> np.ndarray:
    """Zero-mean unit-std Gaussian random field with a Gaussian correlation of ``corr_px`` px."""
    h, w = shape
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    filt = np.exp(-2.0 * (np.pi * corr_px) ** 2 * (kx * kx + ky * ky))
    white = rng.standard_normal((h, w))
    f = np.fft.irfft2(np.fft.rfft2(white) * filt, s=(h, w))
    f -= f.mean()
    sd = f.std()
    return f / (sd if sd > 0 else 1.0)


def radial_spectrum(field: np.ndarray):
    """Radially averaged power spectrum of a 2-D field -> (k cycles/pixel, power)."""
    f = np.asarray(field, dtype=np.float64)
    f = f - f.mean()
    p = np.abs(np.fft.fft2(f)) ** 2
    ky = np.fft.fftfreq(f.shape[0])[:, None]
    kx = np.fft.fftfreq(f.shape[1])[None, :]
    k = np.sqrt(kx * kx + ky * ky)
    dk = 1.0 / max(f.shape)
    idx = np.rint(k / dk).astype(int)
    n = np.bincount(idx.ravel())
    s = np.bincount(idx.ravel(), p.ravel())
    ok = (n > 0) & (np.arange(n.size) > 0)
    kk = np.arange(n.size)[ok] * dk
    return kk, s[ok] / n[ok]


def _rot(dx, dy, deg):
    """Coordinates in a frame rotated by ``deg`` (counter-clockwise from east)."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return dx * c + dy * s, -dx * s + dy * c


def decimal_year(dates: np.ndarray) -> np.ndarray:
    d = np.asarray(dates, dtype="datetime64[D]").astype(np.int64)  # days since 1970-01-01
    return 1970.0 + d / _YEAR


# ----------------------------------------------------------------------------------------------
# validation and grid
# ----------------------------------------------------------------------------------------------
def _as_int(name: str, value, lo: int, hi: int, why: str) -> int:
    try:
        v = int(value)
        if v != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise DeformCastError(f"{name} must be a whole number, got '{value}'.") from None
    if v < lo or v > hi:
        raise DeformCastError(f"{name} = {v} is out of range: give a value from {lo} to {hi} ({why}).")
    return v


def _check_args(seed, width, height, n_epochs, n_future, step_days, start, cell, epsg, gap_fraction):
    from .raster import parse_date

    seed = _as_int("SEED", seed, 0, 2 ** 32 - 1, "any non-negative integer; the same seed gives the same scene")
    width = _as_int("WIDTH", width, 16, 20000, "pixels; small scenes need at least 16 to hold the features")
    height = _as_int("HEIGHT", height, 16, 20000, "pixels; small scenes need at least 16 to hold the features")
    n_epochs = _as_int("N_EPOCHS", n_epochs, 30, 5000,
                       "the forecasters need at least 30 acquisitions for windows, training and validation")
    n_future = _as_int("N_FUTURE", n_future, 1, 1000, "epochs of future truth after the stack")
    step_days = _as_int("STEP_DAYS", step_days, 1, 366, "days between acquisitions; Sentinel-1 uses 6 or 12")
    try:
        cell = float(cell)
    except (TypeError, ValueError):
        raise DeformCastError(f"CELL_SIZE must be a number of metres, got '{cell}'.") from None
    if not np.isfinite(cell) or cell <= 0 or cell > 10000:
        raise DeformCastError(f"CELL_SIZE = {cell} m is out of range: give a cell size above 0 and up to "
                              "10000 m (EGMS Ortho uses 100 m).")
    d0 = parse_date(start)
    if d0 is None:
        raise DeformCastError(f"The start date '{start}' is not a date; give it as YYYY-MM-DD.")
    try:
        gap_fraction = float(gap_fraction)
    except (TypeError, ValueError):
        raise DeformCastError(f"gap_fraction must be a number from 0 to 0.5, got '{gap_fraction}'.") from None
    if not 0.0 <= gap_fraction <= 0.5:
        raise DeformCastError(f"gap_fraction = {gap_fraction} is out of range: give 0 to 0.5.")
    # the scene holds observed, truth and future arrays in float32, plus per-block temporaries
    need = 4.0 * width * height * (2 * n_epochs + 3 * n_future + 40)
    avail = _available_memory()
    if avail is not None and need > 0.8 * avail:
        raise DeformCastError(
            f"A {width} x {height} px scene with {n_epochs} + {n_future} epochs needs about "
            f"{need / 2 ** 30:.1f} GiB of memory but only {avail / 2 ** 30:.1f} GiB is free. Make WIDTH, "
            "HEIGHT or N_EPOCHS smaller.")
    epsg = _as_int("EPSG", epsg, 1024, 999999, "an EPSG code of a projected CRS in metres, e.g. 25832")
    return seed, width, height, n_epochs, n_future, step_days, d0, cell, epsg, gap_fraction


def _available_memory() -> Optional[float]:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES")) * float(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _scene_grid(epsg: int, cell: float, width: int, height: int):
    """Grid in ``epsg`` centred on the Rhineland point, corner snapped to whole cells."""
    from osgeo import osr

    from .raster import make_grid

    osr.UseExceptions()
    srs = osr.SpatialReference()
    try:
        srs.ImportFromEPSG(int(epsg))
    except RuntimeError:
        raise DeformCastError(f"EPSG:{epsg} is not a known coordinate reference system; use a projected "
                              "CRS in metres such as EPSG:25832 (ETRS89 / UTM 32N).") from None
    if not srs.IsProjected():
        raise DeformCastError(f"EPSG:{epsg} is not a projected CRS; the scene needs metres. Use e.g. "
                              "EPSG:25832 (ETRS89 / UTM 32N) or EPSG:3035.")
    geo = osr.SpatialReference()
    geo.ImportFromEPSG(4326)
    geo.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    try:
        cx, cy, _ = osr.CoordinateTransformation(geo, srs).TransformPoint(*_DEFAULT_LONLAT)
    except RuntimeError:
        raise DeformCastError(f"EPSG:{epsg} does not cover the Rhineland (6.5 E, 50.95 N); use "
                              "EPSG:25832.") from None
    x0 = np.floor((cx - 0.5 * width * cell) / cell) * cell
    y0 = np.ceil((cy + 0.5 * height * cell) / cell) * cell
    return make_grid(float(x0), float(y0), cell, width, height, epsg)


# ----------------------------------------------------------------------------------------------
# the scene
# ----------------------------------------------------------------------------------------------
def _layout(rng: np.random.Generator, width: int, height: int, cell: float, x0: float, y0: float,
            t_obs: float) -> dict:
    """Feature parameters in map units, jittered per seed (all plain floats, JSON-ready)."""
    L = min(width, height) * cell
    W, H = width * cell, height * cell

    def j(v, rel):  # multiplicative jitter
        return float(v * (1.0 + rel * rng.uniform(-1.0, 1.0)))

    def pos(u, v, d=0.025):  # fractional position -> map coordinates, jittered
        uu = u + d * rng.uniform(-1.0, 1.0)
        vv = v + d * rng.uniform(-1.0, 1.0)
        return [float(x0 + uu * W), float(y0 - vv * H)]

    bowls = []
    for name, (u, v), half_l, half_w, rot, depth, tanb, smax, onset, alpha, power in (
        ("A", (0.30, 0.38), 0.11, 0.07, 25.0, 0.11, 1.4, 130.0, 0.0, 0.30, 2.0),
        ("B", (0.60, 0.70), 0.09, 0.06, -35.0, 0.09, 1.6, 80.0, 0.25, 0.0, 1.7),
    ):
        d_m = j(depth * L, 0.08)
        tb = j(tanb, 0.05)
        on = float(max(0.0, onset + (0.03 * rng.uniform(-1, 1) if onset > 0 else 0.0)))
        bowls.append({
            "name": name,
            "centre_xy_m": pos(u, v),
            "half_length_m": j(half_l * L, 0.08),
            "half_width_m": j(half_w * L, 0.08),
            "rotation_deg": float(rot + 8.0 * rng.uniform(-1, 1)),
            "depth_m": d_m,
            "tan_beta": tb,
            "influence_radius_m": d_m / tb,
            "s_max_mm": j(smax, 0.12),
            "onset_fraction": on,
            "onset_years": on * t_obs,
            "alpha_linear_share": float(alpha),
            "power": j(power, 0.05),
            "time_law": "h(w) = alpha*w + (1-alpha)*w**power, w = max(0, t/T_obs - onset)/(1 - onset)",
        })
    top = pos(0.74, 0.0, 0.02)
    bottom = pos(0.88, 1.0, 0.02)
    fault = {
        "top_xy_m": top,
        "bottom_xy_m": bottom,
        "strike_azimuth_deg": float(np.degrees(np.arctan2(bottom[0] - top[0], bottom[1] - top[1])) % 360.0),
        "creep_rate_mm_per_year": j(5.0, 0.15),
        "creeping_side": "east (positive fault_distance)",
        "profile_width_m": 0.2 * cell,
        "decay_length_m": 0.06 * L,
        "buffer_m": 0.06 * L,
        "profile": "-v*t*(0.5 + arctan(d/w)/pi)*exp(-max(d, 0)/D)",
    }
    uplift = {
        "centre_xy_m": pos(0.22, 0.80),
        "semi_major_m": j(0.14 * L, 0.08),
        "semi_minor_m": j(0.09 * L, 0.08),
        "rotation_deg": float(10.0 + 10.0 * rng.uniform(-1, 1)),
        "asymptote_mm": j(30.0, 0.15),
        "onset_fraction": 0.08,
        "onset_years": 0.08 * t_obs,
        "tau_fraction": 0.22,
        "tau_years": 0.22 * t_obs,
        "footprint": "G = exp(-rho**4), zone where G > 0.25",
        "law": "U_inf*G*(1 - exp(-(t - t_on)/tau)) for t > t_on",
    }
    lake = {"centre_xy_m": pos(0.10, 0.14, 0.01), "semi_major_m": j(0.08 * L, 0.1),
            "semi_minor_m": j(0.05 * L, 0.1), "rotation_deg": float(-20.0 + 10 * rng.uniform(-1, 1)),
            "water_level_m": 62.0}
    forest = {"centre_xy_m": pos(0.55, 0.17, 0.01), "radius_m": j(0.07 * L, 0.1),
              "edge_roughness": 0.18}
    return {"scale_length_m": L, "bowls": bowls, "fault": fault, "uplift": uplift,
            "lake": lake, "forest": forest}


def _ellipse_rho(x, y, centre, a, b, rot):
    xi, eta = _rot(x - centre[0], y - centre[1], rot)
    return np.sqrt((xi / a) ** 2 + (eta / b) ** 2)


# ----------------------------------------------------------------------------------------------
# varied physics (physics="varied"): laws and the draws
# ----------------------------------------------------------------------------------------------
PHYSICS_MODES = ("demo", "varied")
BOWL_LAWS = ("onset", "stop", "speedup", "saturating")
STEP_ZONE = 4
STEP_ZONE_NAME = "Step area (coseismic or unwrapping)"
C_BAND_HALF_WAVELENGTH_MM = 27.73  # Sentinel-1 (5.405 GHz): lambda / 2 = 55.47 mm / 2


def bowl_time_law(t_years: np.ndarray, law: dict, t_obs: float) -> np.ndarray:
    """Time function of a varied-physics bowl, 1 at the last observed epoch ``t_obs``.

    ``law`` is a bowl dict of ``params["physics"]["bowls"]``; its ``"law"`` key picks:

    * ``onset``: ``alpha w + (1 - alpha) w**power``, ``w = max(0, t - t_on) / (t_obs - t_on)``
      (``linear``: alpha = power = 1);
    * ``stop``: rate 1 until ``t_stop``, then ``exp(-(t - t_stop) / tau)`` (residual
      subsidence): ``min(t, t_stop) + tau (1 - exp(-max(0, t - t_stop) / tau))``;
    * ``speedup``: the rate is multiplied by ``factor`` from ``t_break`` on:
      ``t + (factor - 1) max(0, t - t_break)``;
    * ``saturating``: ``1 - exp(-max(0, t - t0) / tau)``;

    each divided by its value at ``t_obs``.
    """
    t = np.asarray(t_years, dtype=np.float64)

    def raw(tt):
        kind = law["law"]
        if kind == "onset":
            return accelerating_law(tt / t_obs, law["onset_years"] / t_obs, law["alpha_linear_share"], law["power"])
        if kind == "stop":
            ts, tau = law["stop_years"], law["tau_years"]
            return np.minimum(tt, ts) + tau * (1.0 - np.exp(-np.maximum(0.0, tt - ts) / tau))
        if kind == "speedup":
            return tt + (law["factor"] - 1.0) * np.maximum(0.0, tt - law["break_years"])
        if kind == "saturating":
            return 1.0 - np.exp(-np.maximum(0.0, tt - law["t0_years"]) / law["tau_years"])
        raise ValueError(f"unknown bowl law {kind!r}")

    return raw(t) / float(raw(np.float64(t_obs)))


def fault_time_law(t_years: np.ndarray, fault: dict) -> np.ndarray:
    """Creep offset (mm) of a varied-physics fault: ``v0 (t + k t^2 / 2) + step H(t - t_event)``."""
    t = np.asarray(t_years, dtype=np.float64)
    out = fault["creep_rate_mm_per_year"] * (t + 0.5 * fault["acceleration_per_year"] * t * t)
    if fault["creep_event_mm"]:
        out = out + fault["creep_event_mm"] * (t >= fault["creep_event_years"])
    return out


def _place(rng, n_try, lo, hi, x0, y0, W, H, rules):
    """First of ``n_try`` random positions (fractions ``lo..hi``) that keeps every distance rule
    ``(distance_fn, minimum)``, else the one that violates them least (deterministic)."""
    best, best_margin = None, -np.inf
    for _ in range(n_try):
        p = [float(x0 + rng.uniform(lo, hi) * W), float(y0 - rng.uniform(lo, hi) * H)]
        margin = min([fn(p) - need for fn, need in rules], default=0.0)
        if margin >= 0.0:
            return p
        if margin > best_margin:
            best, best_margin = p, margin
    return best


def _check_physics(physics) -> str:
    p = str(physics).strip().lower() if physics is not None else "demo"
    if p not in PHYSICS_MODES:
        raise DeformCastError(f"PHYSICS '{physics}' is unknown: give 'demo' (the documented Rhineland scene) "
                              "or 'varied' (physics drawn from the seed).")
    return p


def _varied_physics(rng: np.random.Generator, lay: dict, width: int, height: int, cell: float,
                    x0: float, y0: float, t_obs: float, t_last: float) -> dict:
    """Draw the varied physics from ``rng`` (see the module docstring); JSON-ready."""
    L = lay["scale_length_m"]
    W, H = width * cell, height * cell
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    late_lo = max(0.0, t_obs - 1.0)  # "late": the last year of the record or the future epochs

    # fault: template position moved, its own creep law
    top = [float(x0 + u(0.55, 0.85) * W), float(y0 + 0.02 * H * u(-1, 1))]
    bottom = [float(top[0] + u(-0.05, 0.20) * W), float(y0 - H * (1.0 + 0.02 * u(-1, 1)))]
    fault_law = ("steady", "accelerating", "creep_event")[int(rng.integers(3))]
    fault = dict(lay["fault"])
    fault.update({
        "top_xy_m": top, "bottom_xy_m": bottom,
        "strike_azimuth_deg": float(np.degrees(np.arctan2(bottom[0] - top[0], bottom[1] - top[1])) % 360.0),
        "law": fault_law,
        "creep_rate_mm_per_year": u(1.0, 8.0),
        "acceleration_per_year": u(0.1, 0.6) if fault_law == "accelerating" else 0.0,
        "creep_event_mm": u(2.0, 10.0) if fault_law == "creep_event" else 0.0,
        "creep_event_years": u(0.15, 0.9) * t_obs if fault_law == "creep_event" else None,
        "time_law": "v0*(t + k*t**2/2) + step*H(t - t_event) (v(t) = v0*(1 + k*t))",
        "profile": "-s(t)*(0.5 + arctan(d/w)/pi)*exp(-max(d, 0)/D)",
    })
    tx, ty = top
    dx, dy = bottom[0] - tx, bottom[1] - ty
    nrm = np.hypot(dx, dy)

    def fault_dist(p):
        return abs((p[0] - tx) * (-dy / nrm) + (p[1] - ty) * (dx / nrm))

    def dist_to(q):
        return lambda p: float(np.hypot(p[0] - q[0], p[1] - q[1]))

    lake_c, forest_c = lay["lake"]["centre_xy_m"], lay["forest"]["centre_xy_m"]

    # bowls: 1-3, each its own law (no law twice in a scene)
    n_bowls = int(rng.integers(1, 4))
    laws = [BOWL_LAWS[i] for i in rng.permutation(len(BOWL_LAWS))[:n_bowls]]
    bowls: List[dict] = []
    for i, law in enumerate(laws):
        rules = [(fault_dist, 0.2 * L), (dist_to(lake_c), 0.15 * L), (dist_to(forest_c), 0.12 * L)]
        rules += [(dist_to(b["centre_xy_m"]), 0.4 * L) for b in bowls]
        centre = _place(rng, 64, 0.15, 0.85, x0, y0, W, H, rules)
        d_m = u(0.07, 0.12) * L
        tb = u(1.3, 2.0)
        b = {
            "name": "ABC"[i],
            "centre_xy_m": centre,
            "half_length_m": u(0.06, 0.12) * L,
            "half_width_m": u(0.04, 0.08) * L,
            "rotation_deg": u(-90.0, 90.0),
            "depth_m": d_m,
            "tan_beta": tb,
            "influence_radius_m": d_m / tb,
            "s_max_mm": u(30.0, 200.0),
            "law": law,
            "event_timing": "record",
        }
        if law == "onset":
            b["onset_years"] = u(0.2, 0.8) * t_obs
            if rng.random() < 0.5:
                b.update(style="linear", alpha_linear_share=1.0, power=1.0)
            else:
                b.update(style="accelerating", alpha_linear_share=u(0.0, 0.4), power=u(1.5, 2.5))
            b["event_years"] = b["onset_years"]
            b["time_law"] = ("alpha*w + (1-alpha)*w**power, w = max(0, t - onset_years)/(T_obs - onset_years)")
        elif law == "stop":
            late = bool(rng.random() < 0.6)
            lo, hi = (max(0.4 * t_obs, late_lo), t_last) if late else (0.4 * t_obs, 0.85 * t_obs)
            b.update(stop_years=u(lo, hi), tau_years=u(0.1, 0.5), event_timing="late" if late else "record")
            b["event_years"] = b["stop_years"]
            b["time_law"] = "min(t, stop_years) + tau*(1 - exp(-max(0, t - stop_years)/tau)), / its value at T_obs"
        elif law == "speedup":
            late = bool(rng.random() < 0.6)
            lo, hi = (max(0.6 * t_obs, late_lo), t_last) if late else (0.6 * t_obs, t_obs)
            b.update(break_years=u(lo, hi), factor=u(2.0, 4.0), event_timing="late" if late else "record")
            b["event_years"] = b["break_years"]
            b["time_law"] = "t + (factor - 1)*max(0, t - break_years), / its value at T_obs"
        else:  # saturating
            b.update(t0_years=u(0.0, 0.3) * t_obs, tau_years=u(0.15, 0.6) * t_obs)
            b["event_years"] = b["t0_years"]
            b["asymptote_mm"] = b["s_max_mm"] / float(1.0 - np.exp(-(t_obs - b["t0_years"]) / b["tau_years"]))
            b["time_law"] = "S_inf*(1 - exp(-max(0, t - t0_years)/tau)), S_inf = asymptote_mm"
        b["event_fraction"] = b["event_years"] / t_obs
        b["event_in_last_year_or_future"] = bool(b["event_years"] >= late_lo)
        b["event_in_future"] = bool(b["event_years"] > t_obs)
        bowls.append(b)

    # groundwater-rebound uplift, present in about two thirds of the seeds
    uplift = {"present": bool(rng.random() < 2.0 / 3.0)}
    if uplift["present"]:
        rules = [(fault_dist, 0.2 * L)] + [(dist_to(b["centre_xy_m"]), 0.35 * L) for b in bowls]
        on, tau = u(0.0, 0.6), u(0.1, 0.5)
        uplift.update({
            "centre_xy_m": _place(rng, 64, 0.12, 0.88, x0, y0, W, H, rules),
            "semi_major_m": u(0.10, 0.16) * L,
            "semi_minor_m": u(0.06, 0.10) * L,
            "rotation_deg": u(-90.0, 90.0),
            "asymptote_mm": u(10.0, 40.0),
            "onset_fraction": on, "onset_years": on * t_obs,
            "tau_fraction": tau, "tau_years": tau * t_obs,
            "footprint": "G = exp(-rho**4), zone where G > 0.25",
            "law": "U_inf*G*(1 - exp(-(t - t_on)/tau)) for t > t_on",
        })

    # a step in a sub-area in about half of the seeds
    step = {"present": bool(rng.random() < 0.5)}
    if step["present"]:
        kind = "coseismic" if rng.random() < 0.5 else "unwrapping"
        a = u(0.10, 0.20) * L
        rules = [(dist_to(b["centre_xy_m"]), 0.3 * L) for b in bowls]
        sign = 1.0 if rng.random() < 0.5 else -1.0
        step.update({
            "kind": kind,
            "centre_xy_m": _place(rng, 64, 0.1, 0.9, x0, y0, W, H, rules),
            "semi_major_m": a,
            "semi_minor_m": a * u(0.5, 1.0),
            "rotation_deg": u(-90.0, 90.0),
            "amplitude_mm": sign * (u(5.0, 30.0) if kind == "coseismic" else C_BAND_HALF_WAVELENGTH_MM),
            "step_years": u(0.1, 0.95) * t_obs,
            "footprint": ("exp(-rho**4), zone where > 0.25" if kind == "coseismic"
                          else "1 inside the ellipse (rho <= 1), else 0"),
            "law": "amplitude*footprint*H(t - step_years); part of the truth, kept in all later epochs",
        })
        step["step_fraction"] = step["step_years"] / t_obs

    # seasonal amplitude changing with time, one rate per lithology class
    g_max = min(0.3, 0.75 / t_last)
    seasonal = {
        "law": "amplitude factor 1 + g*t (t years since the first epoch), per lithology class",
        "g_max_per_year": g_max,
        "growth_per_year": {str(c): u(-g_max, g_max) for c in LITHOLOGY},
    }
    noise = {"atmosphere_sigma_mm": u(1.0, 4.0), "white_sigma_mm": u(0.5, 2.5)}
    return {"mode": "varied", "bowls": bowls, "fault": fault, "uplift": uplift, "step": step,
            "seasonal_growth": seasonal, "noise": noise}


def make_scene(seed=0, width=100, height=80, n_epochs=150, n_future=12, step_days=12,
               start="2017-01-06", cell=50.0, epsg=25832, gap_fraction=0.0,
               progress: Optional[Progress] = None, physics: str = "demo") -> Scene:
    """Build the synthetic scene in memory; deterministic for a given seed and arguments.

    See the module docstring for the physics. ``gap_fraction`` (default 0) additionally drops
    that fraction of single pixel-epochs (NaN) from ``observed`` and ``future_observed``.
    ``progress`` reports and checks Cancel between blocks of epochs. ``physics``: ``"demo"``
    (the documented scene, unchanged) or ``"varied"`` (bowls, laws, fault creep, uplift, a step
    area, seasonal change and noise levels drawn from the seed; every draw is recorded in
    ``params["physics"]``).
    """
    progress = progress or Progress()
    physics = _check_physics(physics)
    (seed, width, height, n_epochs, n_future, step_days, d0, cell, epsg,
     gap_fraction) = _check_args(seed, width, height, n_epochs, n_future, step_days, start, cell, epsg,
                                 gap_fraction)
    grid = _scene_grid(epsg, cell, width, height)
    x0, y0 = grid.geotransform[0], grid.geotransform[3]
    shape = (height, width)
    n_all = n_epochs + n_future
    all_dates = d0 + np.arange(n_all) * np.timedelta64(step_days, "D")
    dates, future_dates = all_dates[:n_epochs], all_dates[n_epochs:]
    t = (all_dates - d0).astype(np.float64) / _YEAR  # years since the first epoch
    t_obs = float(t[n_epochs - 1])

    ss = np.random.SeedSequence(seed)
    r_layout, r_lith, r_dem, r_forest, r_holes, r_epoch, r_noise, r_gaps = (
        np.random.default_rng(s) for s in ss.spawn(8))
    lay = _layout(r_layout, width, height, cell, x0, y0, t_obs)
    L = lay["scale_length_m"]
    varied = physics == "varied"
    phys: dict = {"mode": physics}
    if varied:  # a ninth stream: the eight above (and so the demo scene) stay as they are
        r_phys = np.random.default_rng(ss.spawn(1)[0])
        phys = _varied_physics(r_phys, lay, width, height, cell, x0, y0, t_obs, float(t[-1]))
        lay["bowls"], lay["fault"] = phys["bowls"], phys["fault"]
        lay["uplift"] = phys["uplift"] if phys["uplift"]["present"] else None
    x, y = grid.pixel_centres()
    progress.set(0.02)

    # --- fault: signed distance (positive east of the trace) ---------------------------------
    f = lay["fault"]
    tx, ty = f["top_xy_m"]
    dx, dy = f["bottom_xy_m"][0] - tx, f["bottom_xy_m"][1] - ty
    nrm = np.hypot(dx, dy)
    nx, ny = -dy / nrm, dx / nrm  # right-hand normal of a southward trace points east
    fault_d = (x - tx) * nx + (y - ty) * ny
    along = ((x - tx) * dx + (y - ty) * dy) / nrm  # distance along strike from the top point

    # --- spatial maps and their time functions (truth = sum map_k * basis_k(t)) --------------
    maps: List[np.ndarray] = []
    basis: List[np.ndarray] = []
    mining = np.zeros(shape, dtype=bool)
    bowl_k = np.zeros(shape)
    u = t / t_obs
    for b in lay["bowls"]:
        xi, eta = _rot(x - b["centre_xy_m"][0], y - b["centre_xy_m"][1], b["rotation_deg"])
        k = knothe_panel(xi, eta, b["half_length_m"], b["half_width_m"], b["influence_radius_m"])
        b["k_at_centre"] = float(knothe_panel(0.0, 0.0, b["half_length_m"], b["half_width_m"],
                                              b["influence_radius_m"]))
        mining |= (np.abs(xi) <= b["half_length_m"]) & (np.abs(eta) <= b["half_width_m"])
        bowl_k = np.maximum(bowl_k, k)
        maps.append(-b["s_max_mm"] * k)
        if varied:
            h = bowl_time_law(t, b, t_obs)
            basis.append(h - h[0])
        else:
            basis.append(accelerating_law(u, b["onset_fraction"], b["alpha_linear_share"], b["power"]))
    w = f["profile_width_m"]
    profile = (0.5 + np.arctan(fault_d / w) / np.pi) * np.exp(-np.maximum(fault_d, 0.0) / f["decay_length_m"])
    if varied:
        maps.append(-profile)
        basis.append(fault_time_law(t, f))
    else:
        maps.append(-f["creep_rate_mm_per_year"] * profile)
        basis.append(t.copy())
    up = lay["uplift"]
    g = np.zeros(shape)
    if up is not None:
        rho = _ellipse_rho(x, y, up["centre_xy_m"], up["semi_major_m"], up["semi_minor_m"], up["rotation_deg"])
        g = np.exp(-rho ** 4)
        maps.append(up["asymptote_mm"] * g)
        basis.append(rebound_law(t, up["onset_years"], up["tau_years"]))
    step_zone = None
    if varied and phys["step"]["present"]:
        st = phys["step"]
        rho = _ellipse_rho(x, y, st["centre_xy_m"], st["semi_major_m"], st["semi_minor_m"], st["rotation_deg"])
        foot = np.exp(-rho ** 4) if st["kind"] == "coseismic" else (rho <= 1.0).astype(np.float64)
        step_zone = foot > 0.25
        maps.append(st["amplitude_mm"] * foot)
        basis.append((t >= st["step_years"]).astype(np.float64))

    # --- lithology: smooth random field, fault juxtaposition, a floodplain along the fault ---
    lith_field = _smooth_field(r_lith, shape, 0.12 * L / cell) + 0.8 * np.tanh(fault_d / (0.1 * L))
    q1, q2 = np.quantile(lith_field, [0.38, 0.70])
    lithology = np.where(lith_field < q1, 1, np.where(lith_field < q2, 2, 3)).astype(np.int16)
    river_phase = float(r_lith.uniform(0, 2 * np.pi))
    river_offset = -0.10 * width * cell + 0.03 * width * cell * np.sin(
        2 * np.pi * 1.5 * along / (height * cell) + river_phase)
    floodplain = np.abs(fault_d - river_offset) < 0.035 * L
    lithology[floodplain] = 4
    yr = decimal_year(all_dates)
    seas_names = []
    for harmonic, amp_i, peak_i in ((1, 1, 2), (2, 3, 4)):
        om = 2 * np.pi * harmonic * yr
        if varied:  # amplitude factor (1 + g_c t) per class: one map and basis per class
            for c, row in LITHOLOGY.items():
                m = lithology == c
                ph = 2 * np.pi * harmonic * row[peak_i] / _YEAR
                fac = 1.0 + phys["seasonal_growth"]["growth_per_year"][str(c)] * t
                maps.append(m * (row[amp_i] * np.cos(ph)))
                basis.append(fac * np.cos(om) - np.cos(om[0]))
                maps.append(m * (row[amp_i] * np.sin(ph)))
                basis.append(fac * np.sin(om) - np.sin(om[0]))
                seas_names += [f"class {c} h{harmonic}_cos", f"class {c} h{harmonic}_sin"]
            continue
        amp = np.zeros(shape)
        phase = np.zeros(shape)
        for c, row in LITHOLOGY.items():
            m = lithology == c
            amp[m] = row[amp_i]
            phase[m] = 2 * np.pi * harmonic * row[peak_i] / _YEAR
        # A cos(om - ph) = A cos(ph) cos(om) + A sin(ph) sin(om), referenced to the first epoch
        maps.append(amp * np.cos(phase))
        basis.append(np.cos(om) - np.cos(om[0]))
        maps.append(amp * np.sin(phase))
        basis.append(np.sin(om) - np.sin(om[0]))
        seas_names += [f"h{harmonic}_cos", f"h{harmonic}_sin"]

    # --- DEM --------------------------------------------------------------------------------
    uu = (x - x0) / (width * cell)
    vv = (y0 - y) / (height * cell)
    dem = (95.0 + 35.0 * (0.5 * (1 - uu) + 0.5 * vv - 0.5)  # SW ridge (Ville) high, NE low
           + 6.0 * _smooth_field(r_dem, shape, 0.08 * L / cell)
           - 5.0 * (0.5 + np.arctan(fault_d / (2 * cell)) / np.pi)  # scarp: west side higher
           - 4.0 * floodplain)
    lk = lay["lake"]
    lake = _ellipse_rho(x, y, lk["centre_xy_m"], lk["semi_major_m"], lk["semi_minor_m"], lk["rotation_deg"]) <= 1.0
    dem[lake] = lk["water_level_m"]
    fo = lay["forest"]
    forest = (np.hypot(x - fo["centre_xy_m"][0], y - fo["centre_xy_m"][1]) / fo["radius_m"]
              + fo["edge_roughness"] * _smooth_field(r_forest, shape, 0.02 * L / cell)) <= 1.0
    progress.set(0.08)

    # --- truth: one matrix product -----------------------------------------------------------
    M = np.stack([m.astype(np.float32).ravel() for m in maps])  # (K, HW)
    B = np.stack(basis, axis=1).astype(np.float32)  # (T_all, K)
    truth = (B @ M).reshape(n_all, height, width)
    truth[0] = 0.0  # exact zero at the reference epoch (float rounding)
    progress.set(0.15)

    # --- zones --------------------------------------------------------------------------------
    zones = np.zeros(shape, dtype=np.uint8)
    zones[g > 0.25] = 3
    zones[np.abs(fault_d) <= f["buffer_m"]] = 2
    zones[bowl_k > 0.1] = 1
    zone_names = dict(ZONE_NAMES)
    if step_zone is not None:  # on top: every pixel that carries the step
        zones[step_zone] = STEP_ZONE
        zone_names[STEP_ZONE] = STEP_ZONE_NAME

    # --- noise --------------------------------------------------------------------------------
    nz = {
        "atmosphere_sigma_mm": 2.5,
        "atmosphere_beta": 8.0 / 3.0,
        "atmosphere_outer_scale_m": 50000.0,
        "atmosphere_summer_boost": 0.4,
        "atmosphere_lognormal_sigma": 0.35,
        "stratified_coeff_sigma_mm_per_m": 0.01,
        "white_sigma_mm": 1.0,
        "spectrum": "P(k) ~ (k^2 + k0^2)^(-beta/2), k0 = cell / outer_scale cycles per pixel",
        "referencing": "observed = truth + n(t) - n(t0)",
    }
    if varied:
        nz.update(phys["noise"])
    doy = (all_dates - all_dates.astype("datetime64[Y]")).astype(np.float64)
    sig_t = (nz["atmosphere_sigma_mm"] * (1.0 + nz["atmosphere_summer_boost"] * np.cos(2 * np.pi * (doy - 200) / _YEAR))
             * np.exp(nz["atmosphere_lognormal_sigma"] * r_epoch.standard_normal(n_all)))
    k_t = nz["stratified_coeff_sigma_mm_per_m"] * r_epoch.standard_normal(n_all)
    dem_anom = (dem - dem.mean()).astype(np.float32)
    filt = _spectral_filter(shape, nz["atmosphere_beta"], cell / nz["atmosphere_outer_scale_m"])

    observed = np.empty((n_epochs, height, width), dtype=np.float32)
    future_observed = np.empty((n_future, height, width), dtype=np.float32)
    block = max(1, min(32, int(4e6 // (height * width)) or 1))
    n0 = None
    noise_prog = progress.sub(0.15, 0.95)
    for s0 in range(0, n_all, block):
        s1 = min(n_all, s0 + block)
        n = s1 - s0
        fld = powerlaw_noise(r_noise, n, shape, filt=filt)
        fld *= sig_t[s0:s1, None, None].astype(np.float32)
        fld += k_t[s0:s1, None, None].astype(np.float32) * dem_anom
        fld += np.float32(nz["white_sigma_mm"]) * r_noise.standard_normal((n, height, width), dtype=np.float32)
        if n0 is None:
            n0 = fld[0].copy()
        fld -= n0
        fld += truth[s0:s1]
        for i in range(n):
            e = s0 + i
            if e < n_epochs:
                observed[e] = fld[i]
            else:
                future_observed[e - n_epochs] = fld[i]
        noise_prog.set(s1 / n_all)

    # --- decorrelation ------------------------------------------------------------------------
    random_frac = 0.01
    holes = r_holes.random(shape) < random_frac
    dead = lake | forest | holes
    observed[:, dead] = np.nan
    future_observed[:, dead] = np.nan
    observed[0][~dead] = 0.0  # exactly referenced (float rounding of truth + n0 - n0)
    if gap_fraction > 0:
        gaps = r_gaps.random((n_all, height, width)) < gap_fraction
        gaps[0] = False  # the reference epoch is always there
        observed[gaps[:n_epochs]] = np.nan
        future_observed[gaps[n_epochs:]] = np.nan
    progress.set(0.98)

    covariates = {
        "fault_distance": fault_d.astype(np.float32),
        "mining_mask": mining.astype(np.float32),
        "lithology": lithology.astype(np.float32),
        "dem": dem.astype(np.float32),
    }
    params = {
        "generator": "deformcast.algorithms.synthetic",
        "seed": seed,
        "width": width, "height": height, "cell_m": cell, "epsg": epsg,
        "origin_xy_m": [float(x0), float(y0)],
        "n_epochs": n_epochs, "n_future": n_future, "step_days": step_days,
        "start": str(d0), "observed_period_years": t_obs,
        "units": "mm",
        "sign": "positive = uplift (towards the satellite); line of sight taken as vertical",
        "reference": "every series is 0 at the first epoch",
        "layout_note": ("positions are fractions of the extent, sizes fractions of scale_length_m = "
                        "min(width, height) * cell; jittered per seed"),
        "scale_length_m": L,
        "bowls": lay["bowls"],
        "influence_function": ("Knothe: K = 1/4 [erf(sqrt(pi)(a-xi)/r) + erf(sqrt(pi)(a+xi)/r)]"
                               "[erf(sqrt(pi)(b-eta)/r) + erf(sqrt(pi)(b+eta)/r)], r = depth/tan(beta)"),
        "bowl_zone_threshold_k": 0.1,
        "fault": f,
        "uplift": up if up is not None else phys["uplift"],
        "seasonal": {
            "model": "A1 cos(2 pi (year - peak1/365.2425)) + A2 cos(4 pi (year - peak2/365.2425)), referenced",
            "classes": {str(c): {"name": r[0], "annual_amplitude_mm": r[1], "annual_peak_doy": r[2],
                                 "semiannual_amplitude_mm": r[3], "semiannual_peak_doy": r[4]}
                        for c, r in LITHOLOGY.items()},
        },
        "lithology": {
            "method": ("quantiles 0.38/0.70 of a smooth random field (corr. 0.12 L) + 0.8 tanh(d/0.1 L) "
                       "give classes 1-3; class 4 is a meandering floodplain band 0.035 L either side of "
                       "a river 0.10 W west of the fault"),
            "class_fractions": {str(c): float(np.mean(lithology == c)) for c in LITHOLOGY},
        },
        "dem": {"method": ("95 m + 35 m regional slope (SW high) + 6 m smooth relief (corr. 0.08 L) - 5 m "
                           "fault scarp (east down) - 4 m floodplain; lake at water level"),
                "min_m": float(dem.min()), "max_m": float(dem.max())},
        "noise": nz,
        "decorrelation": {
            "lake": lk, "forest": fo, "random_pixel_fraction": random_frac,
            "gap_fraction": gap_fraction,
            "nodata_pixel_fraction": float(dead.mean()),
        },
        "zones": {str(k): v for k, v in zone_names.items()},
        "zone_fractions": {str(k): float(np.mean(zones == k)) for k in zone_names},
        "covariates": {
            "fault_distance": "signed distance to the fault trace, m, positive on the creeping east side",
            "mining_mask": "1 inside the extracted panels, else 0",
            "lithology": "class 1-4 (see seasonal.classes)",
            "dem": "elevation, m",
        },
        "truth_components": ([f"bowl {b['name']}" for b in lay["bowls"]] + ["fault creep"]
                             + (["rebound uplift"] if up is not None else [])
                             + (["step"] if step_zone is not None else [])
                             + [f"seasonal {n}" for n in seas_names]),
        "physics": phys,
    }
    if varied:
        params["seasonal"]["model"] = ("(1 + g_c t) [A1 cos(2 pi (year - peak1/365.2425)) + A2 cos(4 pi (year - "
                                       "peak2/365.2425))], t years since the first epoch, referenced")
        params["seasonal"]["growth_per_year"] = phys["seasonal_growth"]["growth_per_year"]
    progress.set(1.0)
    return Scene(grid=grid, dates=dates, future_dates=future_dates, observed=observed, truth=truth,
                 future_observed=future_observed, covariates=covariates, zones=zones.astype(np.int16),
                 params=params, zone_names=zone_names)


# ----------------------------------------------------------------------------------------------
# writing and reading a scene folder
# ----------------------------------------------------------------------------------------------
SCENE_JSON = "scene.json"


def _covariate_style(name: str, arr: np.ndarray) -> str:
    from . import styles

    if name == "lithology":
        return styles.categorical([(c, r[0], r[5]) for c, r in LITHOLOGY.items()])
    if name == "mining_mask":
        return styles.categorical([(0, "Outside extracted panels", "#f0f0f0"),
                                   (1, "Extracted panel (mining / dewatering)", "#8c510a")])
    if name == "fault_distance":
        m = float(np.nanmax(np.abs(arr))) or 1.0
        return styles.pseudocolor(-m, m, "residual", unit="m")
    lo, hi = styles.robust_range(arr, 1, 99)
    return styles.pseudocolor(lo, hi, "viridis", unit="m")


def write_scene(folder: str, seed=0, progress: Optional[Progress] = None, physics: str = "demo",
                **kw) -> Dict[str, str]:
    """Build the scene and write it into ``folder``; return ``name -> path``.

    Files: ``stack.tif`` (observed), ``truth.tif`` (observed + future epochs, noise-free),
    ``future_observed.tif``, ``zones.tif``, ``covariates/<name>.tif`` (each with its ``.qml``
    style) and ``scene.json`` (parameters, dates, file list), which is written last as the
    completion marker: a folder without it is unfinished. Keys of the returned dict:
    ``stack``, ``truth``, ``future_observed``, ``zones``, the covariate names, ``scene_json``.
    ``physics`` and the other keywords go to :func:`make_scene`.
    """
    from . import styles
    from .raster import iso, write_raster, write_stack

    progress = progress or Progress()
    if not folder or not str(folder).strip():
        raise DeformCastError("OUTPUT_FOLDER is empty; give a folder for the scene files.")
    folder = os.path.abspath(str(folder))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise DeformCastError(f"OUTPUT_FOLDER '{folder}' is a file; give a folder path.")
    try:
        os.makedirs(os.path.join(folder, "covariates"), exist_ok=True)
    except OSError as e:
        raise DeformCastError(f"Cannot create the output folder '{folder}': {e.strerror}. "
                              "Choose a folder you can write to.") from None
    physics = _check_physics(physics)  # refused before anything is touched
    scene = make_scene(seed=seed, progress=progress.sub(0.0, 0.6), physics=physics, **kw)
    marker = os.path.join(folder, SCENE_JSON)
    if os.path.exists(marker):
        os.remove(marker)  # from here on an interrupted rewrite must not look complete
    wp = progress.sub(0.6, 1.0)
    meta = {"DEFORMCAST_SCENE": "synthetic", "SEED": scene.params["seed"], "UNITS": "mm",
            "SIGN": "positive = uplift"}
    if physics != "demo":
        meta["PHYSICS"] = physics
    out: Dict[str, str] = {}
    out["stack"] = write_stack(os.path.join(folder, "stack.tif"), scene.observed, scene.dates, scene.grid,
                               metadata=dict(meta, CONTENT="observed displacement"))
    wp.set(0.35)
    out["truth"] = write_stack(os.path.join(folder, "truth.tif"), scene.truth, scene.all_dates, scene.grid,
                               metadata=dict(meta, CONTENT="noise-free truth, observed and future epochs",
                                             N_OBSERVED=scene.dates.size))
    wp.set(0.7)
    out["future_observed"] = write_stack(os.path.join(folder, "future_observed.tif"), scene.future_observed,
                                         scene.future_dates, scene.grid,
                                         metadata=dict(meta, CONTENT="noisy observations after the stack"))
    wp.set(0.8)
    out["zones"] = write_raster(
        os.path.join(folder, "zones.tif"), scene.zones, scene.grid, ["zone"], "uint8", None,
        styles.categorical([(k, v, ZONE_COLOURS[k]) for k, v in scene.zone_names.items()]),
        metadata=dict(meta, CONTENT="zones: " + "; ".join(f"{k} {v}" for k, v in scene.zone_names.items())))
    for name in COVARIATE_NAMES:
        arr = scene.covariates[name]
        is_class = name in ("lithology", "mining_mask")
        out[name] = write_raster(
            os.path.join(folder, "covariates", f"{name}.tif"), arr, scene.grid, [name],
            "uint8" if is_class else "float32", None, _covariate_style(name, arr),
            metadata=dict(meta, CONTENT=scene.params["covariates"][name]))
        wp.check()
    wp.set(0.95)
    doc = {
        "params": scene.params,
        "dates": [iso(d) for d in scene.dates],
        "future_dates": [iso(d) for d in scene.future_dates],
        "crs": f"EPSG:{scene.params['epsg']}",
        "geotransform": list(scene.grid.geotransform),
        "files": {k: os.path.relpath(v, folder) for k, v in out.items()},
        "covariates": list(COVARIATE_NAMES),
    }
    tmp = marker + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
    os.replace(tmp, marker)
    out["scene_json"] = marker
    wp.set(1.0)
    return out


def read_scene(folder: str) -> Scene:
    """Read a folder written by :func:`write_scene` back into a :class:`Scene`."""
    from .raster import open_stack, read_raster, read_stack

    marker = os.path.join(str(folder), SCENE_JSON)
    if not os.path.isfile(marker):
        raise DeformCastError(f"'{folder}' holds no complete synthetic scene ({SCENE_JSON} is missing); "
                              "run synthetic_scenario again.")
    with open(marker, encoding="utf-8") as fh:
        doc = json.load(fh)
    files = {k: os.path.join(str(folder), v) for k, v in doc["files"].items()}
    info = open_stack(files["stack"])
    observed = read_stack(info)
    truth = read_stack(open_stack(files["truth"]))
    fut = read_stack(open_stack(files["future_observed"]))
    zones = read_raster(files["zones"])[0][0].astype(np.int16)
    cov = {n: read_raster(files[n])[0][0] for n in doc["covariates"]}
    zone_names = {int(k): v for k, v in doc["params"].get("zones", {}).items()} or dict(ZONE_NAMES)
    return Scene(grid=info.grid, dates=info.dates,
                 future_dates=np.array(doc["future_dates"], dtype="datetime64[D]"),
                 observed=observed, truth=truth, future_observed=fut, covariates=cov, zones=zones,
                 params=doc["params"], zone_names=zone_names)
