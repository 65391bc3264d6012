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

from .build import make_scene
from .fields import (accelerating_law, decimal_year, erf, knothe_panel, powerlaw_noise, radial_spectrum,
    rebound_law)
from .folder import SCENE_JSON, read_scene, write_scene
from .scene import COVARIATE_NAMES, LITHOLOGY, ZONE_COLOURS, ZONE_NAMES, Scene
from .varied import (BOWL_LAWS, C_BAND_HALF_WAVELENGTH_MM, PHYSICS_MODES, STEP_ZONE, STEP_ZONE_NAME,
    bowl_time_law, fault_time_law)

__all__ = [
    "BOWL_LAWS", "COVARIATE_NAMES", "C_BAND_HALF_WAVELENGTH_MM", "LITHOLOGY", "PHYSICS_MODES", "SCENE_JSON",
    "STEP_ZONE", "STEP_ZONE_NAME", "ZONE_COLOURS", "ZONE_NAMES", "Scene", "accelerating_law", "bowl_time_law",
    "decimal_year", "erf", "fault_time_law", "knothe_panel", "make_scene", "powerlaw_noise", "radial_spectrum",
    "read_scene", "rebound_law", "write_scene",
]
