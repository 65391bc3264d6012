"""The demo scene's features (``physics="demo"``): two bowls, the fault, the rebound uplift, the lake
and the forest, placed as fractions of the extent and jittered per seed (see the package docstring)."""
from __future__ import annotations

import numpy as np

from .fields import rotate_frame


def demo_layout(rng: np.random.Generator, width: int, height: int, cell: float, x0: float, y0: float,
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


def ellipse_rho(x, y, centre, a, b, rot):
    xi, eta = rotate_frame(x - centre[0], y - centre[1], rot)
    return np.sqrt((xi / a) ** 2 + (eta / b) ** 2)
