"""Blind synthetic Sentinel-1 InSAR scene (mining + urban area), written from InSAR practice, not from this project.

A displacement stack (mm, LOS, positive = towards the satellite / uplift) on a 30 m grid, ``n_epochs`` dates
``step_days`` apart from 2017-01-05 and ``n_future`` later dates. Every draw follows
``numpy.random.default_rng(4_407_000 + seed)`` and is recorded in ``params``.

Geometry: Sentinel-1 C band (lambda = 55.47 mm, one fringe = lambda/2 = 27.73 mm), ascending (heading -12 deg) or
descending (-168 deg) pass, right looking, incidence 30-45 deg; 3-D motion is projected on the ground-to-satellite
unit vector (E, N, U).

Truth (ground motion), each term present or not per seed:
  * mining, 1-3 sources. 'bowl' (caving / room-and-pillar): elliptical Gaussian (Knothe influence) bowl, radius
    R 200-600 m, subsidence rate 15-150 mm/yr at full production, optionally saturating (W_max * tanh(S / W_max), W_max 1-3 yr of production).
    'longwall': a rectangular panel (width 120-300 m) extracted along its axis at 0.5-3 m/day up to its length
    (500-2000 m; the face stops there: saturation), subsidence = W_max (40-300 mm) times the Knothe
    erf-integral of the extracted rectangle with influence radius R 150-500 m. Both: production rate = smoothstep
    ramp from the onset (30-250 days: acceleration), optional change by x0.15-2.5 at a drawn date, optional stop;
    first-order Knothe time lag (tau 20-120 days) so motion decays exponentially after a stop. Horizontal motion
    u_h = -b R grad(S) (b 0.25-0.4, towards the bowl centre) enters the LOS. Source 0 changes regime (onset, stop,
    acceleration or slowdown) in the last third of the record with probability 0.8.
  * creeping fault (p 0.7): straight trace, segment half length 30-70 px with smooth tapers, surface creep
    3-20 mm/yr, strike-slip or (groundwater / mining-related) normal sense, offset smoothed over 15-60 m
    (0.5 tanh(d / w) either side); optional creep event of 2-8 mm over 10-60 days (p 0.4).
  * rebound uplift (p 0.7): elliptical Gaussian area, radius 12-35 px, exponential-saturation uplift
    v0 tau (1 - exp(-(t - ts) / tau)), v0 4-25 mm/yr, tau 0.8-4 yr, start 2 yr before to 3 yr into the record;
    aquifer seasonal term 0.5-4 mm peaking at day 60-150.
  * step area (p 0.55): a soft-edged patch (radius 3-7 px) that jumps at one date (collapse -5..-40 mm, load
    settlement -5..-20 mm with consolidation -2..-10 mm over 60-300 days, or heave +3..+15 mm); the date falls
    in the future with probability 0.2.
  * buildings (p 0.75, 3-10 in a town): thermal dilation k (0.05-0.3 mm/degC) x air temperature anomaly at the
    acquisition (annual 7-12 degC amplitude peaking day 200 + weather 2.5 degC per date).
  * background: seasonal field 0-3 mm (soil moisture, peak day drawn), smooth velocity field 0-1.5 mm/yr and a
    planar regional gradient up to 1 mm/yr across the scene.
Noise n(t) per date (added to the truth, all dates including the future):
  * turbulent atmosphere: power-law field, 2-D spectrum k^-beta (beta 7/3-3, ~8/3), on a 2x padded grid, scene
    RMS sigma_t = sigma0 (0.5-4 mm, log-uniform) x lognormal(0.5) x (1 + s cos(season)), s 0.2-0.6 (summer);
  * stratified atmosphere: K_t (h - mean h) on a fractal DEM with 30-250 m relief; K_t = seasonal
    0.005-0.02 mm/m + random 0.002-0.01 mm/m per date;
  * DEM error: B_perp(t) dz / (r sin theta), B_perp ~ N(drift, 40-90 m) clipped to +-150 m, r = 693 km / cos theta;
    dz = N(0, 1-5 m) smooth + building heights 8-40 m (scatterers on roofs, DEM of bare ground);
  * residual orbit / ionosphere ramp: plane with N(0, 0.05-0.5 mm/km) slopes per date;
  * decorrelation: white, sigma = f lambda/(4 pi) sqrt(1 - g^2) / (g sqrt(2 L)), L = 20 looks, f 0.5-2;
    coherence g from a smooth land-cover field (mean 0.4-0.65), town 0.85-0.95, vegetation losing 0-0.15 in summer;
  * unwrapping errors: Poisson(0.5-3) events, at most 6, at a date, an elliptical patch (radius 2-6 px, centred
    preferably at low coherence) shifted by +-27.73 mm, at that date only ('single') or from it on ('persistent').
Validity (NaN): never valid: a lake (lowest 1.5-5 % of the DEM, p 0.7) and the lowest-coherence pixels
(g < min(0.2, 4 % quantile)); at some dates: wet snow (p 0.5 per seed: winter dates with p 0.35, DEM above its
60-85 % quantile) and random drop-outs (rate 0-1 % x 2 (1 - g) per date). Date 0 and the reference are complete.
Referencing: in space to a 5x5 (else 3x3, else 1 px) always-valid, high-coherence window of zone 0 where the truth
moves least; its mean is removed from truth and noise at every date. In time to date 0: every series minus its
date-0 value, truth and noise alike. So observed = truth + n(t) - n(t0) (both spatially referenced).
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()

import numpy as np  # noqa: E402
from scipy.ndimage import uniform_filter  # noqa: E402
from scipy.signal import lfilter  # noqa: E402
from scipy.special import erf  # noqa: E402

LAMBDA = 55.465763          # mm, Sentinel-1 C band
CYCLE = LAMBDA / 2.0        # mm of LOS displacement per 2 pi of phase
PIX = 30.0                  # m


def _powerlaw(rng, shape, beta, n=1):
    """(n, H, W) zero-mean, unit-RMS fields with a 2-D power spectrum ~ k^-beta, made on a 2x padded grid."""
    H, W = shape
    ky, kx = np.fft.fftfreq(2 * H)[:, None], np.fft.rfftfreq(2 * W)[None, :]
    k = np.hypot(kx, ky)
    k[0, 0] = np.inf
    f = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((n, 2 * H, 2 * W))) * k ** (-beta / 2), s=(2 * H, 2 * W))
    f = f[:, :H, :W]
    f -= f.mean(axis=(1, 2), keepdims=True)
    return f / f.std(axis=(1, 2), keepdims=True)


def _smooth(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _ellipse(yy, xx, cy, cx, ry, rx, ang):
    c, s = np.cos(ang), np.sin(ang)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    return (u / rx) ** 2 + (v / ry) ** 2


def _u(rng, a, b):
    return float(rng.uniform(a, b))


def make(seed: int, width: int = 100, height: int = 80, n_epochs: int = 150, n_future: int = 15,
         step_days: int = 12) -> dict:
    rng = np.random.default_rng(4_407_000 + seed)
    H, W, T = height, width, n_epochs + n_future
    all_dates = np.datetime64("2017-01-05", "D") + step_days * np.arange(T)
    td = step_days * np.arange(T, dtype=float)                      # days since date 0
    ty = td / 365.25
    doy = (all_dates - all_dates.astype("datetime64[Y]").astype("datetime64[D]")).astype(float)
    season = lambda peak: np.cos(2 * np.pi * (doy - peak) / 365.25)  # noqa: E731
    rec, end = td[n_epochs - 1], td[-1]
    yy, xx = np.mgrid[0:H, 0:W].astype(float)
    P = {"generator": "benchmarks/blind_scene.py", "physics": "blind", "seed": int(seed), "width": W, "height": H,
         "n_epochs": n_epochs, "n_future": n_future, "step_days": step_days, "units": "mm", "pixel_m": PIX}
    # geometry
    asc = bool(rng.random() < 0.5)
    inc, head = np.radians(_u(rng, 30, 45)), np.radians((-12.0 if asc else -168.0) + _u(rng, -2, 2))
    az = head - np.pi / 2                                            # ground -> satellite, horizontal azimuth
    los = np.array([np.sin(az) * np.sin(inc), np.cos(az) * np.sin(inc), np.cos(inc)])  # E, N, U
    P["geometry"] = {"pass": "ascending" if asc else "descending", "incidence_deg": float(np.degrees(inc)),
                     "heading_deg": float(np.degrees(head)), "los_enu": los.tolist()}
    # DEM, land cover, coherence
    relief = _u(rng, 30, 250)
    dem = 300 + relief * 0.25 * _powerlaw(rng, (H, W), 4.0)[0]
    lake = np.zeros((H, W), bool)
    if rng.random() < 0.7:
        q = _u(rng, 0.015, 0.05)
        lake = dem <= np.quantile(dem, q)
        dem[lake] = dem[lake].max()
        P["lake_fraction"] = q
    g_mean, g_sd, veg_drop = _u(rng, 0.4, 0.65), _u(rng, 0.12, 0.22), _u(rng, 0.0, 0.15)
    cover = _powerlaw(rng, (H, W), 3.5)[0]
    town_c, town_r = (_u(rng, 0.2, 0.8) * H, _u(rng, 0.2, 0.8) * W), _u(rng, 12, 25)
    town = (_ellipse(yy, xx, *town_c, town_r, town_r * 1.3, 0.0) < 1) & ~lake
    coh = np.clip(g_mean + g_sd * cover, 0.05, 0.95)
    coh[town] = np.clip(0.9 + 0.03 * cover[town], 0.85, 0.95)
    P["coherence"] = {"mean": g_mean, "sd": g_sd, "summer_vegetation_drop": veg_drop, "town_centre": list(town_c),
                      "town_radius_px": town_r, "dem_relief_m": relief}
    zones = np.zeros((H, W), np.uint8)
    truth = np.zeros((T, H, W))
    # background: seasonal field, smooth velocity, regional gradient
    a_bg, pk_bg, v_bg = _u(rng, 0, 3), _u(rng, 0, 365), _u(rng, 0, 1.5)
    grad = rng.uniform(-1, 1, 2) / np.array([H, W])
    fld = _powerlaw(rng, (H, W), 3.5, 2)
    amp_field = a_bg * (0.5 + 0.5 * np.clip(fld[0], -1, 1))
    vel = v_bg * fld[1] + grad[0] * yy + grad[1] * xx
    truth += amp_field * season(pk_bg)[:, None, None] + vel * ty[:, None, None]
    P["background"] = {"seasonal_mm": a_bg, "seasonal_peak_doy": pk_bg, "velocity_field_mm_yr": v_bg,
                       "gradient_mm_yr_per_px": grad.tolist()}
    # uplift (rebound)
    if rng.random() < 0.7:
        cy, cx, R, q, ang = _u(rng, 0, H), _u(rng, 0, W), _u(rng, 12, 35), _u(rng, 0.5, 1), _u(rng, 0, np.pi)
        v0, tau, ts, sa, spk = _u(rng, 4, 25), _u(rng, 0.8, 4), _u(rng, -2, 3), _u(rng, 0.5, 4), _u(rng, 60, 150)
        shape = np.exp(-_ellipse(yy, xx, cy, cx, R * q, R, ang))
        u = v0 * tau * (1 - np.exp(-np.clip(ty - ts, 0, None) / tau))
        truth += los[2] * shape * (u + sa * season(spk))[:, None, None]
        zones[shape > 0.3] = 3
        P["uplift"] = {"centre": [cy, cx], "radius_px": R, "aspect": q, "angle": ang, "v0_mm_yr": v0, "tau_yr": tau,
                       "start_yr": ts, "seasonal_mm": sa, "seasonal_peak_doy": spk}
    # creeping fault
    if rng.random() < 0.7:
        cy, cx, phi, Ls = _u(rng, 0.2, 0.8) * H, _u(rng, 0.2, 0.8) * W, _u(rng, 0, np.pi), _u(rng, 30, 70)
        rate, wd, sense = _u(rng, 3, 20), _u(rng, 15, 60), ("strike-slip", "normal")[int(rng.random() < 0.4)]
        sgn = float(rng.choice([-1.0, 1.0]))
        along = (xx - cx) * np.sin(phi) - (yy - cy) * np.cos(phi)     # strike azimuth phi (E, N = -row)
        d = (xx - cx) * np.cos(phi) + (yy - cy) * np.sin(phi)
        vec = np.array([np.sin(phi), np.cos(phi), 0.0]) if sense == "strike-slip" else np.array([0.0, 0.0, -1.0])
        off = sgn * 0.5 * np.tanh(d * PIX / wd) * np.exp(-(along / Ls) ** 6) * float(vec @ los)
        slip = rate * ty
        ev = {}
        if rng.random() < 0.4:
            ev = {"date_day": _u(rng, 0, end), "slip_mm": _u(rng, 2, 8), "duration_days": _u(rng, 10, 60)}
            slip = slip + ev["slip_mm"] * _smooth((td - ev["date_day"]) / ev["duration_days"])
        truth += slip[:, None, None] * off
        zones[(np.abs(d) <= 3) & (np.abs(along) < Ls)] = 2
        P["fault"] = {"centre": [cy, cx], "strike_rad": phi, "half_length_px": Ls, "slip_rate_mm_yr": rate,
                      "width_m": wd, "sense": sense, "sign": sgn, "los_factor": float(vec @ los), "event": ev}
    # mining
    mining = np.zeros((T, H, W))
    P["mining"] = []
    pre = 730                                                        # daily grid from 2 years before date 0
    dd, ix = np.arange(-pre, end + 1.0), td.astype(int) + pre
    for i in range(int(rng.integers(1, 4))):
        kind = "longwall" if rng.random() < 0.5 else "bowl"
        on, ramp, chg, fac, off, late = _u(rng, -0.4, 0.85) * rec, _u(rng, 30, 250), None, 1.0, None, None
        if i == 0 and rng.random() < 0.8:
            late = ("onset", "stop", "accelerate", "slow")[int(rng.integers(4))]
            tl = step_days * float(rng.integers(int(np.ceil(2 * n_epochs / 3)), n_epochs - 2))
            on = tl if late == "onset" else _u(rng, -0.4, 0.45) * rec
            off = tl if late == "stop" else None
            if late in ("accelerate", "slow"):
                chg, fac = tl, _u(rng, 1.5, 2.5) if late == "accelerate" else _u(rng, 0.15, 0.5)
        else:
            if rng.random() < 0.35:
                chg, fac = _u(rng, on, end), _u(rng, 0.2, 2.0)
            if rng.random() < 0.4:
                off = on + _u(rng, 200, 1200)
        r = _smooth((dd - on) / ramp)
        if chg is not None:
            r = r * (1 + (fac - 1) * _smooth((dd - chg) / _u(rng, 12, 60)))
        if off is not None:
            r = r * (dd < off)
        tau, b = _u(rng, 20, 120), _u(rng, 0.25, 0.4)
        a = 1 - np.exp(-1.0 / tau)
        cum = np.cumsum(r)                                           # production-days before the lag
        cy, cx, ang = _u(rng, 0.15, 0.85) * H, _u(rng, 0.15, 0.85) * W, _u(rng, 0, np.pi)
        rec_i = {"kind": kind, "onset_day": on, "ramp_days": ramp, "change_day": chg, "change_factor": fac,
                 "stop_day": off, "late_regime": late, "lag_tau_days": tau, "horizontal_b": b, "centre": [cy, cx],
                 "angle": ang}
        if kind == "bowl":
            R, q, wr = _u(rng, 200, 600), _u(rng, 0.5, 1), float(np.exp(rng.uniform(np.log(15), np.log(150))))
            S = wr * cum / 365.25
            wmax = _u(rng, 1, 3) * wr if late is None and rng.random() < 0.4 else None
            if wmax is not None:
                S = wmax * np.tanh(S / wmax)
            S = lfilter([a], [1, -(1 - a)], S)[ix]
            shape = np.exp(-np.pi * _ellipse(yy, xx, cy, cx, R * q / PIX, R / PIX, ang))
            up = -S[:, None, None] * shape[None]
            rec_i.update(R_m=R, aspect=q, rate_mm_yr=wr, saturation_mm=wmax)
        else:
            R, hw, adv, wmax, Lp = _u(rng, 150, 500), _u(rng, 60, 150), _u(rng, 0.5, 3), _u(rng, 40, 300), \
                _u(rng, 500, 2000)
            if late in ("stop", "accelerate", "slow"):                # the panel outlasts the drawn late change
                Lp = max(Lp, 1.15 * adv * cum[int(chg if chg is not None else off) + pre] * max(fac, 1.0))
            L = lfilter([a], [1, -(1 - a)], np.minimum(adv * cum, Lp))[ix]
            u = ((xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)) * PIX
            v = (-(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)) * PIX
            k = np.sqrt(np.pi) / R
            across = 0.5 * (erf(k * (v + hw)) - erf(k * (v - hw)))
            up = -wmax * 0.5 * (erf(k * u[None]) - erf(k * (u[None] - L[:, None, None]))) * across[None]
            rec_i.update(R_m=R, half_width_m=hw, advance_m_day=adv, W_max_mm=wmax, panel_length_m=Lp)
        gy, gx = np.gradient(up, PIX, axis=(1, 2))
        mining += los[2] * up - b * R * (gx * los[0] - gy * los[1])   # north = -row
        P["mining"].append(rec_i)
    truth += mining                                                  # zone 1: moved > max(3 mm, 10 % of max)
    moved = np.abs(mining[-1] - mining[0])
    zones[moved > max(3.0, 0.1 * moved.max())] = 1
    # step area
    if rng.random() < 0.55:
        cy, cx, R = _u(rng, 0.1, 0.9) * H, _u(rng, 0.1, 0.9) * W, _u(rng, 3, 7)
        kind = ("collapse", "load", "heave")[int(rng.integers(3))]
        ke = int(rng.integers(n_epochs, T)) if rng.random() < 0.2 else int(rng.integers(15, n_epochs))
        jump = {"collapse": -_u(rng, 5, 40), "load": -_u(rng, 5, 20), "heave": _u(rng, 3, 15)}[kind]
        cons, ctau = (-_u(rng, 2, 10), _u(rng, 60, 300)) if kind == "load" else (0.0, 1.0)
        shape = np.exp(-_ellipse(yy, xx, cy, cx, R, R * _u(rng, 0.6, 1.4), _u(rng, 0, np.pi)) ** 2)
        dt = np.clip(td - td[ke], 0, None)
        law = (td >= td[ke]) * (jump + cons * (1 - np.exp(-dt / ctau)))
        truth += los[2] * law[:, None, None] * shape
        zones[shape > 0.3] = 4
        P["step"] = {"kind": kind, "epoch": ke, "jump_mm": jump, "consolidation_mm": cons, "consolidation_days": ctau,
                     "centre": [cy, cx], "radius_px": R}
    # buildings with thermal dilation
    dz = _u(rng, 1, 5) * _powerlaw(rng, (H, W), 2.0)[0]
    temp_amp = _u(rng, 7, 12)
    temp = temp_amp * season(200.0) + rng.normal(0, 2.5, T)
    P["buildings"] = []
    if rng.random() < 0.75:
        for _ in range(int(rng.integers(3, 11))):
            r0 = int(np.clip(town_c[0] + rng.normal(0, town_r / 2), 0, H - 4))
            c0 = int(np.clip(town_c[1] + rng.normal(0, town_r / 2), 0, W - 4))
            h, w, kb, hb = int(rng.integers(1, 5)), int(rng.integers(1, 5)), _u(rng, 0.05, 0.3), _u(rng, 8, 40)
            truth[:, r0:r0 + h, c0:c0 + w] += los[2] * kb * temp[:, None, None]
            dz[r0:r0 + h, c0:c0 + w] += hb
            coh[r0:r0 + h, c0:c0 + w] = 0.95
            zones[r0:r0 + h, c0:c0 + w] = 5
            P["buildings"].append({"row": r0, "col": c0, "rows": h, "cols": w, "k_mm_per_degC": kb, "height_m": hb})
    P["temperature_degC"] = np.round(temp, 3).tolist()
    # validity
    urban = town | (zones == 5)
    coh_t = np.clip(coh[None] - (~urban)[None] * veg_drop * 0.5 * (1 + season(200.0))[:, None, None], 0.05, 0.97)
    never = lake | (coh < min(0.2, float(np.quantile(coh[~lake], 0.04))))
    invalid = np.repeat(never[None], T, axis=0)
    P["snow"] = None
    if rng.random() < 0.5:
        zq, ps = _u(rng, 0.6, 0.85), 0.35
        month = all_dates.astype("datetime64[M]").astype(int) % 12 + 1
        snowy = np.isin(month, (12, 1, 2)) & (rng.random(T) < ps)
        snowy[0] = False
        invalid[snowy] |= (dem > np.quantile(dem, zq))[None]
        P["snow"] = {"dem_quantile": zq, "dates": np.flatnonzero(snowy).tolist()}
    # reference window: zone 0, never masked, high coherence, least truth motion
    motion = np.abs(truth - truth[0]).max(axis=0)
    ok = (zones == 0) & ~invalid.any(axis=0) & (coh >= np.median(coh))
    for n in (5, 3, 1):
        good = uniform_filter(ok.astype(float), n, mode="constant") > 0.999
        if good.any():
            break
    good |= ~good.any() & ~never
    score = np.where(good, uniform_filter(motion, n, mode="nearest"), np.inf)
    rr, rc = np.unravel_index(int(np.argmin(score)), score.shape)
    ref = (slice(max(rr - n // 2, 0), rr + n // 2 + 1), slice(max(rc - n // 2, 0), rc + n // 2 + 1))
    P["reference"] = {"row": int(rr), "col": int(rc), "size_px": n}
    p_drop = _u(rng, 0, 0.01)                                        # drop-outs, likelier at low coherence
    drop = rng.random((T, H, W)) < p_drop * 2 * (1 - coh_t)
    drop[0], drop[:, ref[0], ref[1]] = False, False
    invalid |= drop
    P["dropout_rate"] = p_drop
    # noise
    beta, sig0, sseas = _u(rng, 7 / 3, 3), float(np.exp(rng.uniform(np.log(0.5), np.log(4)))), _u(rng, 0.2, 0.6)
    sig_t = sig0 * np.exp(rng.normal(0, 0.5, T)) * (1 + sseas * season(200.0))
    noise = sig_t[:, None, None] * _powerlaw(rng, (H, W), beta, T)
    ks, kr, kpk = _u(rng, 0.005, 0.02), _u(rng, 0.002, 0.01), _u(rng, 150, 250)
    K = ks * season(kpk) + rng.normal(0, kr, T)
    noise += K[:, None, None] * (dem - dem.mean())[None]
    sB = _u(rng, 40, 90)
    bperp = np.clip(rng.normal(0, sB, T) + np.cumsum(rng.normal(0, 3, T)), -150, 150)
    noise += (bperp / (693e3 / np.cos(inc) * np.sin(inc)))[:, None, None] * dz[None]
    sramp = _u(rng, 0.05, 0.5)
    ramps = rng.normal(0, sramp, (T, 2)) * PIX / 1000.0               # mm per pixel
    noise += ramps[:, 0, None, None] * (yy - H / 2) + ramps[:, 1, None, None] * (xx - W / 2)
    fdec = _u(rng, 0.5, 2)
    sig_dec = fdec * LAMBDA / (4 * np.pi) * np.sqrt(1 - coh_t ** 2) / (coh_t * np.sqrt(40.0))
    noise += sig_dec * rng.standard_normal((T, H, W))
    P["noise"] = {"aps_beta": beta, "aps_sigma0_mm": sig0, "aps_seasonal": sseas,
                  "aps_sigma_mm": np.round(sig_t, 4).tolist(), "strat_seasonal_mm_per_m": ks,
                  "strat_random_mm_per_m": kr, "strat_peak_doy": kpk, "dem_error_sd_m": float(dz[zones != 5].std()),
                  "bperp_sd_m": sB, "bperp_m": np.round(bperp, 2).tolist(), "ramp_mm_per_km": sramp,
                  "decorrelation_factor": fdec, "looks": 20, "decorrelation_rms_mm": float(np.sqrt(np.mean(sig_dec ** 2)))}
    unw = []
    nu = min(int(rng.poisson(_u(rng, 0.5, 3))), 6)
    wts = ((1 - coh) ** 2 * ~never).ravel()
    for _ in range(nu):
        p = int(rng.choice(H * W, p=wts / wts.sum()))
        cy, cx = divmod(p, W)
        ru, ke = _u(rng, 2, 6), int(rng.integers(1, T))
        patch = _ellipse(yy, xx, cy, cx, ru, ru * _u(rng, 0.5, 2), _u(rng, 0, np.pi)) < 1
        patch[ref] = False
        mode, jump = ("single", "persistent")[int(rng.random() < 0.5)], float(rng.choice([-1.0, 1.0])) * CYCLE
        noise[ke:ke + 1 if mode == "single" else T, patch] += jump
        unw.append({"epoch": ke, "centre": [int(cy), int(cx)], "radius_px": ru, "mode": mode, "jump_mm": jump})
    P["unwrapping_errors"] = unw
    # referencing: space (reference window mean), then time (date 0)
    for a in (truth, noise):
        a -= a[:, ref[0], ref[1]].mean(axis=(1, 2))[:, None, None]
        a -= a[0].copy()
    obs = (truth + noise).astype(np.float32)
    obs[invalid] = np.nan
    P["zone_counts"] = {str(z): int((zones == z).sum()) for z in range(6)}
    P["valid_fraction"] = float(1 - invalid[:n_epochs].mean())
    return {"observed": obs[:n_epochs], "truth": truth.astype(np.float32), "future_observed": obs[n_epochs:],
            "zones": zones, "dates": all_dates[:n_epochs], "future_dates": all_dates[n_epochs:],
            "params": json.loads(json.dumps(P, default=float))}


def write(folder: str, seed: int, **kw) -> dict:
    """Write the scene like ``synthetic.write_scene`` (the keys ``bench_skill.py`` reads)."""
    from _common import write_generated

    return write_generated(folder, make(seed, **kw), seed, "blind", 32630, (430000.0, 30.0, 0.0, 4100000.0, 0.0, -30.0))
