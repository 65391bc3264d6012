"""``make_scene``: the synthetic scene in memory (truth as one matrix product, noise in blocks)."""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from ...progress import Progress
from .demo import demo_layout, ellipse_rho
from .fields import (accelerating_law, decimal_year, knothe_panel, powerlaw_noise, rebound_law, rotate_frame,
    smooth_field, spectral_filter)
from .scene import LITHOLOGY, YEAR_DAYS, ZONE_NAMES, Scene, check_args, scene_grid
from .varied import STEP_ZONE, STEP_ZONE_NAME, bowl_time_law, check_physics, fault_time_law, varied_physics


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
    physics = check_physics(physics)
    (seed, width, height, n_epochs, n_future, step_days, d0, cell, epsg,
     gap_fraction) = check_args(seed, width, height, n_epochs, n_future, step_days, start, cell, epsg,
                                 gap_fraction)
    grid = scene_grid(epsg, cell, width, height)
    x0, y0 = grid.geotransform[0], grid.geotransform[3]
    shape = (height, width)
    n_all = n_epochs + n_future
    all_dates = d0 + np.arange(n_all) * np.timedelta64(step_days, "D")
    dates, future_dates = all_dates[:n_epochs], all_dates[n_epochs:]
    t = (all_dates - d0).astype(np.float64) / YEAR_DAYS  # years since the first epoch
    t_obs = float(t[n_epochs - 1])

    ss = np.random.SeedSequence(seed)
    r_layout, r_lith, r_dem, r_forest, r_holes, r_epoch, r_noise, r_gaps = (
        np.random.default_rng(s) for s in ss.spawn(8))
    lay = demo_layout(r_layout, width, height, cell, x0, y0, t_obs)
    L = lay["scale_length_m"]
    varied = physics == "varied"
    phys: dict = {"mode": physics}
    if varied:  # a ninth stream: the eight above (and so the demo scene) stay as they are
        r_phys = np.random.default_rng(ss.spawn(1)[0])
        phys = varied_physics(r_phys, lay, width, height, cell, x0, y0, t_obs, float(t[-1]))
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
        xi, eta = rotate_frame(x - b["centre_xy_m"][0], y - b["centre_xy_m"][1], b["rotation_deg"])
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
        rho = ellipse_rho(x, y, up["centre_xy_m"], up["semi_major_m"], up["semi_minor_m"], up["rotation_deg"])
        g = np.exp(-rho ** 4)
        maps.append(up["asymptote_mm"] * g)
        basis.append(rebound_law(t, up["onset_years"], up["tau_years"]))
    step_zone = None
    if varied and phys["step"]["present"]:
        st = phys["step"]
        rho = ellipse_rho(x, y, st["centre_xy_m"], st["semi_major_m"], st["semi_minor_m"], st["rotation_deg"])
        foot = np.exp(-rho ** 4) if st["kind"] == "coseismic" else (rho <= 1.0).astype(np.float64)
        step_zone = foot > 0.25
        maps.append(st["amplitude_mm"] * foot)
        basis.append((t >= st["step_years"]).astype(np.float64))

    # --- lithology: smooth random field, fault juxtaposition, a floodplain along the fault ---
    lith_field = smooth_field(r_lith, shape, 0.12 * L / cell) + 0.8 * np.tanh(fault_d / (0.1 * L))
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
                ph = 2 * np.pi * harmonic * row[peak_i] / YEAR_DAYS
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
            phase[m] = 2 * np.pi * harmonic * row[peak_i] / YEAR_DAYS
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
           + 6.0 * smooth_field(r_dem, shape, 0.08 * L / cell)
           - 5.0 * (0.5 + np.arctan(fault_d / (2 * cell)) / np.pi)  # scarp: west side higher
           - 4.0 * floodplain)
    lk = lay["lake"]
    lake = ellipse_rho(x, y, lk["centre_xy_m"], lk["semi_major_m"], lk["semi_minor_m"], lk["rotation_deg"]) <= 1.0
    dem[lake] = lk["water_level_m"]
    fo = lay["forest"]
    forest = (np.hypot(x - fo["centre_xy_m"][0], y - fo["centre_xy_m"][1]) / fo["radius_m"]
              + fo["edge_roughness"] * smooth_field(r_forest, shape, 0.02 * L / cell)) <= 1.0
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
    sig_t = (nz["atmosphere_sigma_mm"] * (1.0 + nz["atmosphere_summer_boost"] * np.cos(2 * np.pi * (doy - 200) / YEAR_DAYS))
             * np.exp(nz["atmosphere_lognormal_sigma"] * r_epoch.standard_normal(n_all)))
    k_t = nz["stratified_coeff_sigma_mm_per_m"] * r_epoch.standard_normal(n_all)
    dem_anom = (dem - dem.mean()).astype(np.float32)
    filt = spectral_filter(shape, nz["atmosphere_beta"], cell / nz["atmosphere_outer_scale_m"])

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
        "generator": "deformcast.algorithms.data.synthetic",
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
