"""A second scene generator, written apart from ``algorithms/data/synthetic``: does the skill carry over?

Every choice of the main job was measured on scenes of one generator (``synthetic``, physics "varied").
Issue 12's first finding was that skill measured on our own scene did not carry over to stacks built
independently. This module builds such stacks with other laws and another noise model, on purpose
unlike ours, and writes them in the same file set (``stack.tif``, ``truth.tif``, ``future_observed.tif``,
``zones.tif``, ``scene.json``) so that ``bench_skill.py --generator independent`` scores them the same way.

What differs from ``synthetic`` (every draw follows the seed; the values are in ``scene.json``):

* **Shapes and laws.** Subsidence bowls are rotated Gaussians, not Knothe panels; their time laws are a
  smooth onset of a constant rate, a stop with exponential decay, a speed-up, a slow-down, or saturation.
  Fault creep has an accelerating rate and episodic slip events (a few mm over a few weeks). Rebound
  follows a logarithmic law after its onset. A step area jumps at a date and relaxes after it.
* **Unmodelled motion.** Every pixel also moves with a smooth regional velocity field and a spatially
  smooth random walk (the ground's motion that no time function describes), which is part of the truth.
* **Seasons.** Amplitude and phase vary smoothly over the scene, and the amplitude drifts over the
  record.
* **Noise.** The troposphere of each date is two Gaussian-filtered random fields (4 and 15 pixels),
  its level log-normal from date to date and higher in summer, with now and then a bad date (3x);
  a stratified delay proportional to a smooth elevation field with an annual cycle; white pixel noise.
* **Referencing as an InSAR stack is.** In space to a 5 x 5 reference area (every date minus its mean
  there, truth and observations alike) and in time to the first date (``observed = truth + n(t) - n(t0)``
  after the spatial reference).
* **Holes.** A lake and 2 % of random pixels are NaN at every date.

Zones: 0 background, 1 mining, 2 fault, 3 uplift, 4 step area (as ``synthetic``).
"""
from __future__ import annotations

from typing import Dict

import numpy as np
from scipy.ndimage import gaussian_filter

LAWS = ("onset", "stop", "speedup", "slowdown", "saturating")


def _smooth(rng, shape, sigma):
    """A unit-sd random field smoothed with a Gaussian of ``sigma`` pixels."""
    f = gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return (f - f.mean()) / (f.std() + 1e-12)


def _bowl_law(rng, t, T_obs):
    """One bowl's subsidence (mm, >= 0) over the years ``t`` and its drawn parameters."""
    law = LAWS[rng.integers(len(LAWS))]
    v = float(rng.uniform(15, 70))                            # mm/yr
    p = {"law": law, "rate_mm_yr": v}
    if law == "onset":
        t_on, tau = float(rng.uniform(0.35, 0.92) * T_obs), 0.08
        p.update(onset_years=t_on)
        s = v * tau * np.logaddexp(0.0, (t - t_on) / tau)
    elif law == "stop":
        t_s, tau = float(rng.uniform(0.4, 0.93) * T_obs), float(rng.uniform(0.1, 0.4))
        p.update(stop_years=t_s, tau_years=tau)
        s = np.where(t < t_s, v * t, v * t_s + v * tau * (1 - np.exp(-(t - t_s) / tau)))
    elif law in ("speedup", "slowdown"):
        t_b = float(rng.uniform(0.45, 0.95) * T_obs)
        k = float(rng.uniform(2, 4)) if law == "speedup" else float(rng.uniform(0.1, 0.5))
        p.update(break_years=t_b, factor=k)
        s = v * t + (k - 1) * v * np.maximum(0.0, t - t_b)
    else:
        tau = float(rng.uniform(0.5, 3.0))
        a = v * tau                                           # initial rate v
        p.update(tau_years=tau, total_mm=a)
        s = a * (1 - np.exp(-t / tau))
    return s, p


def make(seed: int, width: int = 100, height: int = 80, n_epochs: int = 150, n_future: int = 15,
         step_days: int = 12, strat: float = 1.0, walk: float = 1.0) -> Dict:
    """The scene's arrays and parameters: ``observed`` (T, H, W), ``truth`` (T + F, H, W),
    ``future_observed`` (F, H, W), ``zones`` (H, W), ``dates``, ``future_dates``, ``params``. ``strat`` and ``walk``
    scale the stratified delay and the ground's random walk (1: as drawn; 0 takes that part out, for diagnoses; the
    draws and so everything else stay the same)."""
    rng = np.random.default_rng(1_000_003 + int(seed))
    H, W, T, F = int(height), int(width), int(n_epochs), int(n_future)
    N = T + F
    start = np.datetime64("2018-06-04")
    all_dates = start + np.arange(N) * int(step_days)
    t = (all_dates - start).astype(np.float64) / 365.25
    T_obs = float(t[T - 1])
    doy = (all_dates - all_dates.astype("datetime64[Y]")).astype(np.float64)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    params: Dict = {"generator": "benchmarks/independent_scene.py", "physics": "independent", "seed": int(seed),
                    "width": W, "height": H, "n_epochs": T, "n_future": F, "step_days": int(step_days),
                    "start": str(start), "units": "mm", "sign": "positive = uplift",
                    "reference": "5 x 5 reference area in space, first date in time"}
    D = np.zeros((N, H, W))
    zones = np.zeros((H, W), np.uint8)
    # unmodelled motion: a smooth velocity field and a smooth random walk
    v_sd, rw_sd = float(rng.uniform(0.5, 2.0)), float(rng.uniform(0.05, 0.25))
    D += (v_sd * _smooth(rng, (H, W), 20))[None] * t[:, None, None]
    inc = np.stack([_smooth(rng, (H, W), 10) for _ in range(N)]) * rw_sd
    inc[0] = 0.0
    D += np.cumsum(inc, axis=0) * float(walk)
    params["background"] = {"velocity_sd_mm_yr": v_sd, "random_walk_sd_mm_per_epoch": rw_sd}
    # seasons: amplitude and phase smooth over the scene, amplitude drifting over the record
    a_max, drift = float(rng.uniform(2.0, 7.0)), float(rng.uniform(-0.6, 0.6))
    amp = a_max * (0.5 + 0.5 * np.tanh(_smooth(rng, (H, W), 15)))
    phase = np.pi * (1 + 0.8 * np.tanh(_smooth(rng, (H, W), 25)))
    D += amp[None] * (1 + drift * (t / T_obs - 0.5))[:, None, None] * np.sin(2 * np.pi * t[:, None, None] + phase[None])
    params["seasons"] = {"amplitude_max_mm": a_max, "amplitude_drift": drift}
    # uplift (rebound): logarithmic after its onset
    if rng.random() < 0.7:
        cy, cx = rng.uniform(0.2, 0.8) * H, rng.uniform(0.2, 0.8) * W
        sg = float(rng.uniform(6, 12))
        S = np.exp(-0.5 * ((yy - cy) ** 2 + (xx - cx) ** 2) / sg ** 2)
        A, tau, t_on = float(rng.uniform(5, 15)), float(rng.uniform(0.2, 1.0)), float(rng.uniform(0, 0.6) * T_obs)
        D += S[None] * (A * np.log1p(np.maximum(0.0, t - t_on) / tau))[:, None, None]
        zones[S > 0.2] = 3
        params["uplift"] = {"centre_px": [cx, cy], "sigma_px": sg, "A_mm": A, "tau_years": tau, "onset_years": t_on}
    # a creeping fault: a line across the scene, the east side creeping down, accelerating, with slip events
    ang = float(rng.uniform(-0.5, 0.5))
    x0 = float(rng.uniform(0.3, 0.7) * W)
    dist = (xx - x0 - (yy - H / 2) * np.tan(ang)) * np.cos(ang)
    prof = 0.5 * (1 + np.tanh(dist / 1.5))
    rate, acc = float(rng.uniform(2, 8)), float(rng.uniform(0.0, 1.5))
    creep = rate * (t + acc * t ** 2 / (2 * T_obs))
    events = []
    for _ in range(int(rng.integers(0, 3))):
        te, size = float(rng.uniform(0.1, 1.0) * T_obs), float(rng.uniform(2, 6))
        creep = creep + size / (1 + np.exp(-(t - te) / 0.03))
        events.append({"years": te, "mm": size})
    D -= prof[None] * creep[:, None, None]
    zones[np.abs(dist) < 5] = 2
    params["fault"] = {"x0_px": x0, "angle_rad": ang, "rate_mm_yr": rate, "acceleration": acc, "events": events}
    # subsidence bowls: rotated Gaussians with drawn time laws
    bowls = []
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0.15, 0.85) * H, rng.uniform(0.15, 0.85) * W
        sx, sy, rot = float(rng.uniform(4, 10)), float(rng.uniform(4, 10)), float(rng.uniform(0, np.pi))
        u = (xx - cx) * np.cos(rot) + (yy - cy) * np.sin(rot)
        w = -(xx - cx) * np.sin(rot) + (yy - cy) * np.cos(rot)
        S = np.exp(-0.5 * ((u / sx) ** 2 + (w / sy) ** 2))
        s, p = _bowl_law(rng, t, T_obs)
        D -= S[None] * s[:, None, None]
        zones[S > 0.1] = 1
        bowls.append(dict(p, centre_px=[cx, cy], sigma_px=[sx, sy]))
    params["bowls"] = bowls
    # a step area: a jump at a date, part of it relaxing afterwards
    if rng.random() < 0.6:
        h0, w0 = int(rng.integers(10, 20)), int(rng.integers(10, 20))
        r0, c0 = int(rng.integers(0, H - h0)), int(rng.integers(0, W - w0))
        size = float(rng.uniform(8, 25)) * (1 if rng.random() < 0.5 else -1)
        ts, tau = float(rng.uniform(0.2, 0.9) * T_obs), float(rng.uniform(0.1, 0.3))
        law = size * (t >= ts) * (1 - 0.3 * (1 - np.exp(-np.maximum(0.0, t - ts) / tau)))
        D[:, r0:r0 + h0, c0:c0 + w0] += law[:, None, None]
        zones[r0:r0 + h0, c0:c0 + w0] = 4
        params["step_area"] = {"rows": [r0, r0 + h0], "cols": [c0, c0 + w0], "mm": size, "years": ts}
    # noise: two-scale troposphere, log-normal level per date, higher in summer, bad dates; stratified; white
    base, white = float(rng.uniform(1.5, 4.0)), float(rng.uniform(0.5, 2.0))
    level = base * np.exp(0.4 * rng.standard_normal(N)) * (1 + 0.4 * np.cos(2 * np.pi * (doy - 210) / 365.25))
    bad = rng.random(N) < 0.02
    level[bad] *= 3.0
    elev = 150 + 80 * _smooth(rng, (H, W), 18)
    k_strat = float(strat) * 0.01 * np.cos(2 * np.pi * (doy - 200) / 365.25) + 0.004 * rng.standard_normal(N)   # mm per m
    noise = np.empty((N, H, W))
    for i in range(N):
        turb = 0.6 * _smooth(rng, (H, W), 4) + 0.8 * _smooth(rng, (H, W), 15)
        noise[i] = level[i] * turb / turb.std() + k_strat[i] * (elev - elev.mean()) + white * rng.standard_normal((H, W))
    params["noise"] = {"troposphere_mm": base, "white_mm": white, "bad_dates": int(bad.sum())}
    obs = D + noise
    # reference: a quiet 5 x 5 area in space, the first date in time
    quiet = np.argwhere((zones == 0)[2:-2, 2:-2]) + 2
    ry, rx = quiet[rng.integers(len(quiet))]
    params["reference_area_px"] = [int(rx), int(ry)]

    def ref(a):
        a = a - a[:, ry - 2:ry + 3, rx - 2:rx + 3].mean(axis=(1, 2))[:, None, None]
        return a - a[:1]

    D, obs = ref(D), ref(obs)
    holes = rng.random((H, W)) < 0.02
    ly, lx = rng.uniform(0.1, 0.9) * H, rng.uniform(0.1, 0.9) * W
    holes |= ((yy - ly) / 4) ** 2 + ((xx - lx) / 7) ** 2 < 1
    holes[ry - 2:ry + 3, rx - 2:rx + 3] = False
    obs[:, holes] = np.nan
    return {"observed": obs[:T].astype(np.float32), "truth": D.astype(np.float32),
            "future_observed": obs[T:].astype(np.float32), "zones": zones, "dates": all_dates[:T],
            "future_dates": all_dates[T:], "params": params}


def write(folder: str, seed: int, **kw) -> Dict[str, str]:
    """Write the scene like ``synthetic.write_scene`` (the keys ``bench_skill.py`` reads)."""
    from _common import write_generated

    return write_generated(folder, make(seed, **kw), seed, "independent", 32633, (500000.0, 40.0, 0.0, 5600000.0, 0.0, -40.0))
