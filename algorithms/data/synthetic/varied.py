"""Varied physics (``physics="varied"``): the bowl and fault time laws and the draws from the seed
(see the package docstring, *Varied physics*)."""
from __future__ import annotations

from typing import List

import numpy as np

from ...errors import DeformCastError
from ..step_detect import CYCLE_MM
from .fields import accelerating_law
from .scene import LITHOLOGY


PHYSICS_MODES = ("demo", "varied")
BOWL_LAWS = ("onset", "stop", "speedup", "saturating")
STEP_ZONE = 4
STEP_ZONE_NAME = "Step area (coseismic or unwrapping)"
# Sentinel-1 (5.405 GHz): lambda / 2 = 55.47 mm / 2, the detector's phase cycle
C_BAND_HALF_WAVELENGTH_MM = CYCLE_MM


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


def check_physics(physics) -> str:
    p = str(physics).strip().lower() if physics is not None else "demo"
    if p not in PHYSICS_MODES:
        raise DeformCastError(f"PHYSICS '{physics}' is unknown: give 'demo' (the documented Rhineland scene) "
                              "or 'varied' (physics drawn from the seed).")
    return p


def varied_physics(rng: np.random.Generator, lay: dict, width: int, height: int, cell: float,
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
