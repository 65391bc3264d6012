"""Physics and I/O of the built-in synthetic scene (pure pytest, no QGIS)."""
import json
import os

import numpy as np
import pytest

from deformcast.algorithms.data import synthetic as syn
from deformcast.algorithms.errors import Cancelled, DeformCastError
from deformcast.algorithms.progress import Progress
from deformcast.algorithms.io.raster import open_stack, read_raster


@pytest.fixture(scope="module")
def scene():
    return syn.make_scene(seed=0)


def _pixel(scene, xy):
    gt = scene.grid.geotransform
    return int((xy[1] - gt[3]) / gt[5]), int((xy[0] - gt[0]) / gt[1])


def _years(scene):
    return (scene.all_dates - scene.all_dates[0]).astype(float) / 365.2425


def _harmonic_fit(scene, series):
    """Least squares: quadratic trend + annual + semi-annual; returns (coef, residual)."""
    yr = syn.decimal_year(scene.all_dates)
    t = _years(scene)
    X = np.column_stack([np.ones_like(t), t, t * t,
                         np.cos(2 * np.pi * yr), np.sin(2 * np.pi * yr),
                         np.cos(4 * np.pi * yr), np.sin(4 * np.pi * yr)])
    coef, *_ = np.linalg.lstsq(X, series, rcond=None)
    return coef, series - X @ coef


def test_shapes_dates_and_types(scene):
    assert scene.observed.shape == (150, 80, 100) and scene.observed.dtype == np.float32
    assert scene.truth.shape == (162, 80, 100) and scene.truth.dtype == np.float32
    assert scene.future_observed.shape == (12, 80, 100)
    assert str(scene.dates[0]) == "2017-01-06"
    steps = np.diff(scene.all_dates).astype(int)
    assert np.all(steps == 12)
    assert scene.future_dates[0] - scene.dates[-1] == np.timedelta64(12, "D")
    assert set(np.unique(scene.zones)) == {0, 1, 2, 3}
    assert set(syn.COVARIATE_NAMES) <= set(scene.covariates)
    for a in scene.covariates.values():
        assert a.shape == (80, 100) and a.dtype == np.float32
    assert set(np.unique(scene.covariates["mining_mask"])) == {0.0, 1.0}
    assert set(np.unique(scene.covariates["lithology"])) == {1.0, 2.0, 3.0, 4.0}
    json.dumps(scene.params)  # JSON-serialisable
    assert scene.grid.cell_size == (50.0, 50.0)
    # the grid lies in the Rhineland in UTM 32N
    gt = scene.grid.geotransform
    assert 300000 < gt[0] < 340000 and 5630000 < gt[3] < 5670000


def test_referenced_to_first_epoch(scene):
    assert np.all(scene.truth[0] == 0.0)
    obs0 = scene.observed[0]
    assert np.all((obs0 == 0.0) | np.isnan(obs0))
    assert np.isfinite(obs0).mean() > 0.9
    # the noise is referenced too: n(t) - n(t0) in every epoch, so all epochs share -n(t0) and
    # their noise fields are positively correlated (independent fields would give ~0)
    ok = np.isfinite(obs0)
    noise = (scene.observed[1:21] - scene.truth[1:21])[:, ok]
    c = np.corrcoef(noise)
    mean_corr = c[np.triu_indices_from(c, 1)].mean()
    assert 0.2 < mean_corr < 0.8


def _truth_from_params(scene):
    """Independent re-implementation of the documented physics from ``scene.params``."""
    from math import erf

    verf = np.vectorize(erf)
    P = scene.params
    x, y = scene.grid.pixel_centres()
    t = _years(scene)[:, None, None]
    u = t / P["observed_period_years"]
    total = np.zeros((t.size,) + x.shape)
    for b in P["bowls"]:
        th = np.radians(b["rotation_deg"])
        dx, dy = x - b["centre_xy_m"][0], y - b["centre_xy_m"][1]
        xi, eta = dx * np.cos(th) + dy * np.sin(th), -dx * np.sin(th) + dy * np.cos(th)
        r, a, bb = b["influence_radius_m"], b["half_length_m"], b["half_width_m"]
        c = np.sqrt(np.pi) / r
        k = 0.25 * (verf(c * (a - xi)) + verf(c * (a + xi))) * (verf(c * (bb - eta)) + verf(c * (bb + eta)))
        w = np.clip((u - b["onset_fraction"]) / (1 - b["onset_fraction"]), 0, None)
        h = b["alpha_linear_share"] * w + (1 - b["alpha_linear_share"]) * w ** b["power"]
        total -= b["s_max_mm"] * k * h
    f = P["fault"]
    d = scene.covariates["fault_distance"].astype(float)
    total -= (f["creep_rate_mm_per_year"] * t * (0.5 + np.arctan(d / f["profile_width_m"]) / np.pi)
              * np.exp(-np.clip(d, 0, None) / f["decay_length_m"]))
    up = P["uplift"]
    th = np.radians(up["rotation_deg"])
    dx, dy = x - up["centre_xy_m"][0], y - up["centre_xy_m"][1]
    xi, eta = dx * np.cos(th) + dy * np.sin(th), -dx * np.sin(th) + dy * np.cos(th)
    rho = np.hypot(xi / up["semi_major_m"], eta / up["semi_minor_m"])
    total += up["asymptote_mm"] * np.exp(-rho ** 4) * (1 - np.exp(-np.clip(t - up["onset_years"], 0, None) / up["tau_years"]))
    lith = scene.covariates["lithology"].astype(int)
    for c in (1, 2, 3, 4):
        m = lith == c
        total[:, m] += _seasonal_expected(scene, c)[:, None]
    return total


def test_truth_has_no_noise_and_observed_does(scene):
    assert np.all(np.isfinite(scene.truth))
    # the truth is exactly the sum of the documented components, rebuilt here from params alone
    np.testing.assert_allclose(scene.truth, _truth_from_params(scene), atol=0.01)
    noise = scene.observed[1:] - scene.truth[1:150]
    sd = np.nanstd(noise)
    assert 1.5 < sd < 8.0
    # noise also reaches the future observations
    assert np.nanstd(scene.future_observed - scene.truth[150:]) > 1.5


def test_bowl_centre_subsides_most_and_accelerates(scene):
    t = _years(scene)
    for b in scene.params["bowls"]:
        r, c = _pixel(scene, b["centre_xy_m"])
        s = scene.truth[:, r, c].astype(float)
        # total subsidence over the observed series: several tens to ~150 mm
        assert -170.0 < s[149] < -40.0
        assert s[149] == pytest.approx(-b["s_max_mm"] * b["k_at_centre"], abs=2.0)
        # the centre is (close to) the deepest point of its bowl
        R = int(3 * b["influence_radius_m"] / scene.grid.cell_size[0])
        win = scene.truth[149, max(0, r - R):r + R + 1, max(0, c - R):c + R + 1]
        assert s[149] <= win.min() + 1.0
        assert scene.zones[r, c] == 1 and scene.covariates["mining_mask"][r, c] == 1
        # accelerating: the rate over the last third exceeds the rate over the middle third,
        # which exceeds the first (seasonal removed by fitting over whole years)
        n = 150
        thirds = [slice(0, n // 3), slice(n // 3, 2 * n // 3), slice(2 * n // 3, n)]
        rates = [np.polyfit(t[sl], s[sl], 1)[0] for sl in thirds]
        assert rates[0] > rates[1] > rates[2]
        assert rates[2] < 1.3 * rates[1]  # clearly faster subsidence at the end
        # and it goes on into the future epochs
        assert s[-1] < s[149] - 5.0


def _seasonal_expected(scene, lith_class):
    """The seasonal term from the documented parameters, independently of the generator."""
    row = scene.params["seasonal"]["classes"][str(lith_class)]
    yr = syn.decimal_year(scene.all_dates)
    s = (row["annual_amplitude_mm"] * np.cos(2 * np.pi * (yr - row["annual_peak_doy"] / 365.2425))
         + row["semiannual_amplitude_mm"] * np.cos(4 * np.pi * (yr - row["semiannual_peak_doy"] / 365.2425)))
    return s - s[0]


def test_bowl_b_switches_on_later(scene):
    b = scene.params["bowls"][1]
    assert b["onset_fraction"] > 0.15
    r, c = _pixel(scene, b["centre_xy_m"])
    t = _years(scene)
    ser = scene.truth[:, r, c] - _seasonal_expected(scene, int(scene.covariates["lithology"][r, c]))
    before = t <= b["onset_years"]
    assert np.abs(ser[before]).max() < 0.5  # nothing but the seasonal signal before the onset
    assert ser[149] < -40.0


def test_knothe_influence_function():
    # a very large panel gives full subsidence at its centre, half at its edge
    assert syn.knothe_panel(0.0, 0.0, 1e5, 1e5, 100.0) == pytest.approx(1.0, abs=1e-6)
    assert syn.knothe_panel(1e5, 0.0, 1e5, 1e5, 100.0) == pytest.approx(0.5, abs=1e-6)
    # beyond about one influence radius outside the edge almost nothing
    assert syn.knothe_panel(1e5 + 100.0, 0.0, 1e5, 1e5, 100.0) < 0.01
    # the erf approximation
    import math
    xs = np.linspace(-3, 3, 61)
    assert np.allclose(syn.erf(xs), [math.erf(v) for v in xs], atol=2e-7)


def test_uplift_approaches_asymptote(scene):
    up = scene.params["uplift"]
    r, c = _pixel(scene, up["centre_xy_m"])
    assert scene.zones[r, c] == 3
    t = _years(scene)
    s = scene.truth[:, r, c].astype(float)
    # yearly means remove the seasonal term: rises, then flattens out
    yearly = [s[(t >= y) & (t < y + 1)].mean() for y in range(5)]
    steps = np.diff(yearly)
    assert np.all(steps > 0)
    assert steps[0] > 3 * steps[-1]
    # without the seasonal term it follows U_inf (1 - exp(-(t - t_on)/tau)) and ends near U_inf
    rest = s - _seasonal_expected(scene, int(scene.covariates["lithology"][r, c]))
    law = up["asymptote_mm"] * syn.rebound_law(t, up["onset_years"], up["tau_years"])
    assert np.abs(rest - law).max() < 0.5
    assert rest[-1] > 0.95 * up["asymptote_mm"] and rest.max() <= up["asymptote_mm"] + 0.1


def test_fault_sharp_gradient_and_creep(scene):
    f = scene.params["fault"]
    d = scene.covariates["fault_distance"]
    cell = scene.grid.cell_size[0]
    lith = scene.covariates["lithology"].astype(int)
    seasonal_last = np.zeros_like(lith, dtype=float)
    for c in (1, 2, 3, 4):
        seasonal_last[lith == c] = _seasonal_expected(scene, c)[149]
    last = scene.truth[149] - seasonal_last  # lithology boundaries would be steps too
    quiet = scene.zones != 1
    east = (d > 0) & (d < cell) & quiet
    west = (d < 0) & (d > -cell) & quiet
    # compare neighbours in the same row on either side of the trace
    jumps = []
    for r in range(scene.grid.height):
        ce = np.where(east[r])[0]
        cw = np.where(west[r])[0]
        if ce.size and cw.size:
            jumps.append(last[r, cw[-1]] - last[r, ce[0]])
    jumps = np.array(jumps)
    assert jumps.size > 10
    t_end = scene.params["observed_period_years"]
    expected = f["creep_rate_mm_per_year"] * t_end  # step across the trace
    assert np.median(jumps) > 0.5 * expected  # the east side went down, within one pixel
    # elsewhere in the quiet background (away from bowls, uplift and fault) neighbours differ
    # by a small fraction of that step
    from scipy.ndimage import distance_transform_edt

    away = distance_transform_edt(scene.zones == 0) * cell > 400.0
    steps = np.abs(np.diff(last, axis=1))[away[:, 1:] & away[:, :-1]]
    assert steps.size > 500
    assert np.percentile(steps, 99) < 0.1 * np.median(jumps)
    # zone 2 is the buffer
    assert np.all(scene.zones[(np.abs(d) <= f["buffer_m"]) & (scene.zones != 1)] == 2)


def test_seasonal_amplitude_differs_by_lithology(scene):
    lith = scene.covariates["lithology"]
    quiet = (scene.zones == 0) & (np.abs(scene.covariates["fault_distance"]) > 0.3 * scene.params["scale_length_m"])
    amps = {}
    for c in (1, 2, 3, 4):
        m = quiet & (lith == c)
        if m.sum() < 5:
            continue
        coef, _ = _harmonic_fit(scene, scene.truth[:, m].astype(float))
        amp = np.hypot(coef[3], coef[4])
        amps[c] = float(np.median(amp))
        expect = scene.params["seasonal"]["classes"][str(c)]["annual_amplitude_mm"]
        assert amps[c] == pytest.approx(expect, rel=0.05)
    assert len(amps) >= 3
    assert max(amps.values()) > 2.5 * min(amps.values())
    # clay peaks in late winter, gravel in summer: phases differ too
    def peak_doy(c):
        m = quiet & (lith == c)
        coef, _ = _harmonic_fit(scene, scene.truth[:, m].astype(float))
        return (np.degrees(np.arctan2(np.median(coef[4]), np.median(coef[3]))) % 360) / 360 * 365.2425
    assert abs(peak_doy(3) - 45) < 5 and abs(peak_doy(1) - 200) < 5


def test_noise_spectrum_is_power_law():
    rng = np.random.default_rng(1)
    beta = 8.0 / 3.0
    fields = syn.powerlaw_noise(rng, 8, (128, 128), beta=beta)
    assert fields.shape == (8, 128, 128)
    assert np.allclose(fields.std(axis=(1, 2)), 1.0, atol=1e-4)
    spectra = [syn.radial_spectrum(f) for f in fields]
    k = spectra[0][0]
    p = np.mean([s[1] for s in spectra], axis=0)
    band = (k > 0.02) & (k < 0.3)
    slope = np.polyfit(np.log(k[band]), np.log(p[band]), 1)[0]
    assert slope == pytest.approx(-beta, abs=0.3)
    # white noise has a flat spectrum: the test above can tell them apart
    w = rng.standard_normal((128, 128))
    kw, pw = syn.radial_spectrum(w)
    assert abs(np.polyfit(np.log(kw[band]), np.log(pw[band]), 1)[0]) < 0.3


def test_scene_noise_is_spatially_correlated(scene):
    # the atmospheric part dominates at long wavelengths: the noise spectrum falls with k
    e = 80
    noise = scene.observed[e] - scene.truth[e] - (scene.observed[0] - scene.truth[0])
    noise = np.where(np.isfinite(noise), noise, np.nanmean(noise))
    k, p = syn.radial_spectrum(noise)
    low = p[(k > 0.02) & (k < 0.06)].mean()
    high = p[k > 0.35].mean()
    assert low > 20 * high


def test_determinism_and_seeds():
    a = syn.make_scene(seed=5, width=40, height=30, n_epochs=40, n_future=4)
    b = syn.make_scene(seed=5, width=40, height=30, n_epochs=40, n_future=4)
    c = syn.make_scene(seed=6, width=40, height=30, n_epochs=40, n_future=4)
    np.testing.assert_array_equal(a.observed, b.observed)
    np.testing.assert_array_equal(a.truth, b.truth)
    np.testing.assert_array_equal(a.future_observed, b.future_observed)
    for n in syn.COVARIATE_NAMES:
        np.testing.assert_array_equal(a.covariates[n], b.covariates[n])
    assert a.params == b.params
    assert not np.allclose(np.nan_to_num(a.observed), np.nan_to_num(c.observed))
    assert not np.allclose(a.truth, c.truth)
    assert not np.array_equal(np.isnan(a.observed[0]), np.isnan(c.observed[0]))


def test_small_scene_still_has_every_feature():
    s = syn.make_scene(seed=2, width=40, height=30, n_epochs=60, n_future=6)
    assert set(np.unique(s.zones)) == {0, 1, 2, 3}
    assert s.truth[59].min() < -40 and s.truth[59].max() > 15


def test_decorrelated_holes_and_gaps():
    s = syn.make_scene(seed=3, width=60, height=50, n_epochs=40, n_future=4)
    dead = np.isnan(s.observed)
    # holes are permanent (regular stack), and the same in the future observations
    assert np.array_equal(dead.all(axis=0), dead.any(axis=0))
    assert np.array_equal(np.isnan(s.future_observed).all(axis=0), dead.all(axis=0))
    frac = dead[0].mean()
    assert 0.015 < frac < 0.15
    # the lake pixels are NaN
    lk = s.params["decorrelation"]["lake"]
    r, c = _pixel(s, lk["centre_xy_m"])
    assert np.all(np.isnan(s.observed[:, r, c]))
    g = syn.make_scene(seed=3, width=60, height=50, n_epochs=40, n_future=4, gap_fraction=0.02)
    gaps = np.isnan(g.observed) & ~dead
    assert 0.01 < gaps[1:].mean() < 0.03 and not gaps[0].any()


@pytest.mark.parametrize("kw,match", [
    ({"n_epochs": 20}, "N_EPOCHS = 20 is out of range"),
    ({"width": 5}, "WIDTH"),
    ({"cell": 0}, "CELL_SIZE"),
    ({"step_days": 0}, "STEP_DAYS"),
    ({"n_future": 0}, "N_FUTURE"),
    ({"start": "soon"}, "not a date"),
    ({"epsg": 4326}, "not a projected CRS"),
    ({"width": 20000, "height": 20000, "n_epochs": 5000}, "memory"),
])
def test_bad_arguments_refused(kw, match):
    with pytest.raises(DeformCastError, match=match):
        syn.make_scene(**kw)


def test_write_scene_round_trip(tmp_path):
    seen = []
    folder = tmp_path / "scene"
    files = syn.write_scene(str(folder), seed=4, width=40, height=30, n_epochs=40, n_future=5,
                            progress=Progress(seen.append))
    assert seen and seen[-1] == pytest.approx(100.0) and all(np.diff(seen) >= -1e-9)
    for key in ("stack", "truth", "future_observed", "zones", "scene_json", *syn.COVARIATE_NAMES):
        assert os.path.isfile(files[key]), key
    for key in ("stack", "truth", "future_observed", "zones", *syn.COVARIATE_NAMES):
        assert os.path.isfile(os.path.splitext(files[key])[0] + ".qml"), key
    assert not [p for p in folder.rglob("*.part*")]
    info = open_stack(files["stack"])
    assert info.n_epochs == 40 and str(info.dates[0]) == "2017-01-06"
    truth_info = open_stack(files["truth"])
    assert truth_info.n_epochs == 45
    doc = json.loads((folder / "scene.json").read_text())
    assert doc["dates"][0] == "2017-01-06" and len(doc["future_dates"]) == 5
    assert doc["crs"] == "EPSG:25832" and doc["params"]["seed"] == 4
    assert set(doc["files"]) >= {"stack", "truth", "lithology"}
    back = syn.read_scene(str(folder))
    ref = syn.make_scene(seed=4, width=40, height=30, n_epochs=40, n_future=5)
    np.testing.assert_array_equal(back.observed, ref.observed)
    np.testing.assert_array_equal(back.truth, ref.truth)
    np.testing.assert_array_equal(back.zones, ref.zones)
    for n in syn.COVARIATE_NAMES:
        np.testing.assert_allclose(back.covariates[n], ref.covariates[n])
    # class rasters carry their class names in the style
    qml = (folder / "covariates" / "lithology.qml").read_text()
    assert "Tertiary clay and silt" in qml
    assert "Groundwater-rebound uplift" in (folder / "zones.qml").read_text()
    arr, grid, names = read_raster(files["zones"])
    assert names == ["zone"] and set(np.unique(arr)) == {0, 1, 2, 3}
    assert grid.same_as(ref.grid)


def test_write_scene_cancel_leaves_no_complete_folder(tmp_path):
    folder = tmp_path / "cancelled"
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        syn.write_scene(str(folder), seed=1, width=40, height=30, n_epochs=40, n_future=4,
                        progress=Progress(is_cancelled=cancelled))
    assert not (folder / "scene.json").exists()
    assert not (folder / "stack.tif").exists()


def test_rewrite_keeps_or_invalidates_marker(tmp_path):
    folder = tmp_path / "again"
    syn.write_scene(str(folder), seed=1, width=40, height=30, n_epochs=40, n_future=4)
    # bad settings are refused before anything is touched: the old scene stays complete
    with pytest.raises(DeformCastError, match="N_EPOCHS"):
        syn.write_scene(str(folder), seed=1, width=40, height=30, n_epochs=10, n_future=4)
    assert syn.read_scene(str(folder)).observed.shape == (40, 30, 40)
    # cancel while the files are being rewritten: the folder no longer looks complete
    seen = []
    with pytest.raises(Cancelled):
        syn.write_scene(str(folder), seed=2, width=40, height=30, n_epochs=40, n_future=4,
                        progress=Progress(seen.append, lambda: bool(seen) and seen[-1] > 65.0))
    assert not (folder / "scene.json").exists()
    with pytest.raises(DeformCastError, match="no complete synthetic scene"):
        syn.read_scene(str(folder))


# ----------------------------------------------------------------------------------------------
# physics="varied": the seed draws the physics
# ----------------------------------------------------------------------------------------------
VARIED = dict(width=40, height=32, n_epochs=120, n_future=30)  # ~3.9 yr observed + ~1 yr future


@pytest.fixture(scope="module")
def varied_scenes():
    return {seed: syn.make_scene(seed=seed, physics="varied", **VARIED) for seed in range(10)}


def _varied_components(scene):
    """The documented varied physics, rebuilt from ``scene.params`` alone: name -> (T, H, W)."""
    from math import erf

    verf = np.vectorize(erf)
    P = scene.params["physics"]
    T_obs = scene.params["observed_period_years"]
    x, y = scene.grid.pixel_centres()
    t = _years(scene)
    tt = t[:, None, None]

    def frame(c, rot):
        th = np.radians(rot)
        dx, dy = x - c[0], y - c[1]
        return dx * np.cos(th) + dy * np.sin(th), -dx * np.sin(th) + dy * np.cos(th)

    def law(b, s):
        if b["law"] == "onset":
            w = np.clip(s - b["onset_years"], 0, None) / (T_obs - b["onset_years"])
            return b["alpha_linear_share"] * w + (1 - b["alpha_linear_share"]) * w ** b["power"]
        if b["law"] == "stop":
            ts, tau = b["stop_years"], b["tau_years"]
            return np.where(s < ts, s, ts + tau * (1 - np.exp(-(s - ts) / tau)))
        if b["law"] == "speedup":
            return np.where(s < b["break_years"], s, b["break_years"] + b["factor"] * (s - b["break_years"]))
        return 1 - np.exp(-np.clip(s - b["t0_years"], 0, None) / b["tau_years"])

    comps = {}
    for b in P["bowls"]:
        xi, eta = frame(b["centre_xy_m"], b["rotation_deg"])
        c = np.sqrt(np.pi) / b["influence_radius_m"]
        a, bb = b["half_length_m"], b["half_width_m"]
        k = 0.25 * (verf(c * (a - xi)) + verf(c * (a + xi))) * (verf(c * (bb - eta)) + verf(c * (bb + eta)))
        h = law(b, t) / law(b, np.array(T_obs))
        comps["bowl " + b["name"]] = -b["s_max_mm"] * k * h[:, None, None]
    f = P["fault"]
    d = scene.covariates["fault_distance"].astype(float)
    creep = f["creep_rate_mm_per_year"] * (t + 0.5 * f["acceleration_per_year"] * t * t)
    if f["law"] == "creep_event":
        creep = creep + f["creep_event_mm"] * (t >= f["creep_event_years"])
    comps["fault"] = -creep[:, None, None] * ((0.5 + np.arctan(d / f["profile_width_m"]) / np.pi)
                                             * np.exp(-np.clip(d, 0, None) / f["decay_length_m"]))
    up = P["uplift"]
    if up["present"]:
        xi, eta = frame(up["centre_xy_m"], up["rotation_deg"])
        g = np.exp(-np.hypot(xi / up["semi_major_m"], eta / up["semi_minor_m"]) ** 4)
        rise = 1 - np.exp(-np.clip(tt - up["onset_years"], 0, None) / up["tau_years"])
        comps["uplift"] = up["asymptote_mm"] * g * rise
    st = P["step"]
    if st["present"]:
        xi, eta = frame(st["centre_xy_m"], st["rotation_deg"])
        rho = np.sqrt((xi / st["semi_major_m"]) ** 2 + (eta / st["semi_minor_m"]) ** 2)
        foot = np.exp(-rho ** 4) if st["kind"] == "coseismic" else (rho <= 1.0).astype(float)
        comps["step"] = st["amplitude_mm"] * foot * (tt >= st["step_years"])
    lith = scene.covariates["lithology"].astype(int)
    seas = np.zeros((t.size,) + x.shape)
    yr = syn.decimal_year(scene.all_dates)
    for c in (1, 2, 3, 4):
        row = scene.params["seasonal"]["classes"][str(c)]
        s = (row["annual_amplitude_mm"] * np.cos(2 * np.pi * (yr - row["annual_peak_doy"] / 365.2425))
             + row["semiannual_amplitude_mm"] * np.cos(4 * np.pi * (yr - row["semiannual_peak_doy"] / 365.2425)))
        g_c = P["seasonal_growth"]["growth_per_year"][str(c)]
        seas[:, lith == c] = ((1 + g_c * t) * s - s[0])[:, None]
    comps["seasonal"] = seas
    return comps


def _bowl_series(scene, comps, b):
    """Truth at the bowl's centre minus every other component: the bowl's own time series."""
    r, c = _pixel(scene, b["centre_xy_m"])
    others = sum(v[:, r, c] for k, v in comps.items() if k != "bowl " + b["name"])
    return scene.truth[:, r, c].astype(float) - others


def _slope(t, s, lo, hi):
    m = (t >= lo) & (t <= hi)
    assert m.sum() >= 5
    return np.polyfit(t[m], s[m], 1)[0]


def test_varied_is_deterministic_per_seed(varied_scenes):
    a = varied_scenes[3]
    b = syn.make_scene(seed=3, physics="varied", **VARIED)
    np.testing.assert_array_equal(a.observed, b.observed)
    np.testing.assert_array_equal(a.truth, b.truth)
    np.testing.assert_array_equal(a.future_observed, b.future_observed)
    np.testing.assert_array_equal(a.zones, b.zones)
    assert a.params == b.params
    json.dumps(a.params)  # JSON-serialisable, with every draw
    assert a.params["physics"]["mode"] == "varied"
    assert a.truth.shape == (150, 32, 40) and np.all(np.isfinite(a.truth))
    # the same seed, demo physics: another scene, and the demo records its mode too
    d = syn.make_scene(seed=3, **VARIED)
    assert d.params["physics"] == {"mode": "demo"}
    assert not np.allclose(a.truth, d.truth)
    np.testing.assert_array_equal(d.truth, syn.make_scene(seed=3, physics="demo", **VARIED).truth)


def test_varied_seeds_differ(varied_scenes):
    phys = [json.dumps(s.params["physics"], sort_keys=True) for s in varied_scenes.values()]
    assert len(set(phys)) == len(phys)
    for s in range(9):
        assert not np.allclose(varied_scenes[s].truth, varied_scenes[s + 1].truth)


def test_varied_draws_cover_every_law_and_stay_in_range(varied_scenes):
    laws, fault_laws, late, uplift, steps, kinds = [], set(), 0, set(), set(), set()
    for s in varied_scenes.values():
        P = s.params["physics"]
        T = s.params["observed_period_years"]
        t_end = float(_years(s)[-1])
        assert 1 <= len(P["bowls"]) <= 3
        assert len({b["law"] for b in P["bowls"]}) == len(P["bowls"])  # no law twice in a scene
        for b in P["bowls"]:
            laws.append(b["law"])
            assert 30.0 <= b["s_max_mm"] <= 200.0
            if b["law"] == "onset":
                assert 0.2 * T <= b["onset_years"] <= 0.8 * T and b["style"] in ("linear", "accelerating")
            elif b["law"] == "stop":
                assert 0.1 <= b["tau_years"] <= 0.5
                if b["event_timing"] == "record":
                    assert 0.4 * T <= b["stop_years"] <= 0.85 * T
                else:
                    assert T - 1.0 <= b["stop_years"] <= t_end
            elif b["law"] == "speedup":
                assert 2.0 <= b["factor"] <= 4.0
                lo = 0.6 * T if b["event_timing"] == "record" else T - 1.0
                assert lo <= b["break_years"] <= (T if b["event_timing"] == "record" else t_end)
            else:
                assert b["asymptote_mm"] >= b["s_max_mm"]
            late += b["event_in_last_year_or_future"]
        fault_laws.add(P["fault"]["law"])
        assert 1.0 <= P["fault"]["creep_rate_mm_per_year"] <= 8.0
        if P["fault"]["law"] == "creep_event":
            assert 2.0 <= P["fault"]["creep_event_mm"] <= 10.0 and 0 < P["fault"]["creep_event_years"] < T
        uplift.add(P["uplift"]["present"])
        steps.add(P["step"]["present"])
        if P["step"]["present"]:
            kinds.add(P["step"]["kind"])
            assert 0 < P["step"]["step_years"] < T
        assert 1.0 <= P["noise"]["atmosphere_sigma_mm"] <= 4.0
        assert 0.5 <= P["noise"]["white_sigma_mm"] <= 2.5
        assert s.params["noise"]["white_sigma_mm"] == P["noise"]["white_sigma_mm"]
        g = P["seasonal_growth"]["growth_per_year"]
        assert all(abs(v) <= min(0.3, 0.75 / t_end) for v in g.values()) and len(set(g.values())) == 4
        # zones: 4 only with a step area, 3 only with an uplift area, each with its name
        zs = set(np.unique(s.zones).tolist())
        assert zs <= {0, 1, 2, 3, 4} and {0, 1, 2} <= zs
        assert (4 in zs) == P["step"]["present"] == (4 in s.zone_names)
        assert P["uplift"]["present"] or 3 not in zs
        assert s.params["zones"] == {str(k): v for k, v in s.zone_names.items()}
    assert set(laws) == set(syn.BOWL_LAWS)  # every kind of bowl law occurs in seeds 0..9
    assert len(fault_laws) >= 2 and uplift == {True, False} and steps == {True, False}
    assert late >= 2  # regime changes near the forecast origin


def test_varied_truth_is_the_sum_of_its_components(varied_scenes):
    for seed in (0, 3, 4, 7):
        s = varied_scenes[seed]
        comps = _varied_components(s)
        assert set(comps) >= {"fault", "seasonal"}
        np.testing.assert_allclose(s.truth, sum(comps.values()), atol=0.02)
        assert np.all(s.truth[0] == 0.0)
        # the step area (if any) jumps by its amplitude at its date, and only there
        st = s.params["physics"]["step"]
        if st["present"]:
            e = int(np.searchsorted(_years(s), st["step_years"]))
            jump = comps["step"][e] - comps["step"][e - 1]
            assert np.abs(jump).max() == pytest.approx(abs(st["amplitude_mm"]), rel=0.02)
            assert np.all(np.abs(jump[s.zones != 4]) < 0.25 * abs(st["amplitude_mm"]))


def _lap(a):
    return a[:, 1:-1, 1:-1] * 4 - a[:, :-2, 1:-1] - a[:, 2:, 1:-1] - a[:, 1:-1, :-2] - a[:, 1:-1, 2:]


def test_varied_noise_has_the_drawn_levels(varied_scenes):
    # referenced noise n(t) - n(t0): per pixel white variance 2 w^2, so its 5-point Laplacian
    # has 40 w^2; the atmosphere (unit std fields) adds c times its variance, c from the filter
    f = syn.powerlaw_noise(np.random.default_rng(1), 64, (32, 40), k0=50.0 / 50000.0)
    c = float(np.mean(_lap(f) ** 2))
    for seed in range(5):
        s = varied_scenes[seed]
        nz = s.params["physics"]["noise"]
        obs0 = s.observed[0]
        assert np.all((obs0 == 0.0) | np.isnan(obs0))
        n = np.concatenate([s.observed[1:] - s.truth[1:120], s.future_observed - s.truth[120:]])
        ok = np.all(np.isfinite(n), axis=0)
        n = np.where(ok, n, 0.0)
        okl = ok[1:-1, 1:-1] & ok[:-2, 1:-1] & ok[2:, 1:-1] & ok[1:-1, :-2] & ok[1:-1, 2:]
        lap2 = float(np.mean(_lap(n)[:, okl] ** 2))
        var = float(np.mean(np.var(n[:, ok], axis=1)))
        white = np.sqrt((lap2 - c * var) / (40.0 - 2.0 * c))
        assert white == pytest.approx(nz["white_sigma_mm"], rel=0.12)
        # atmosphere: var(a_t - a_0) ~ E[sigma_t^2] + sigma_0^2 ~ 2.76 sigma^2 (summer boost and
        # log-normal factor); loose, sigma_0 is a single draw
        atm = np.sqrt((var - 2 * white ** 2) / 2.76)
        assert 0.6 < atm / nz["atmosphere_sigma_mm"] < 1.5


def test_varied_bowl_laws_behave(varied_scenes):
    checked = set()
    for s in varied_scenes.values():
        comps = _varied_components(s)
        t = _years(s)
        t_end = float(t[-1])
        for b in s.params["physics"]["bowls"]:
            ser = _bowl_series(s, comps, b)
            r, c = _pixel(s, b["centre_xy_m"])
            assert s.zones[r, c] in (1, 4) and s.covariates["mining_mask"][r, c] == 1
            # S_max over the record (at full influence K = 1); the pixel centre is off the panel's
            assert ser[119] == pytest.approx(-b["s_max_mm"] * b["k_at_centre"], rel=0.2)
            assert ser[119] == pytest.approx(comps["bowl " + b["name"]][119, r, c], abs=0.02)
            if b["law"] == "stop" and b["stop_years"] + 3 * b["tau_years"] + 0.4 < t_end:
                before = _slope(t, ser, 0.0, b["stop_years"])
                after = _slope(t, ser, b["stop_years"] + 3 * b["tau_years"], t_end)
                assert before < -5.0 and abs(after) < 0.08 * abs(before)
                checked.add("stop")
            elif b["law"] == "speedup" and 0.3 < b["break_years"] < t_end - 0.3:
                before = _slope(t, ser, 0.0, b["break_years"])
                after = _slope(t, ser, b["break_years"] + 0.05, t_end)
                assert after / before == pytest.approx(b["factor"], rel=0.05)
                checked.add("speedup")
            elif b["law"] == "onset":
                assert np.abs(ser[t <= b["onset_years"]]).max() < 0.05  # nothing before the onset
                assert ser[-1] < ser[119] < -20.0  # and it goes on into the future
                checked.add("onset")
            elif b["law"] == "saturating":
                rates = np.diff(ser) / np.diff(t)
                after = t[1:] > b["t0_years"] + 0.1
                assert np.all(np.diff(rates[after]) > -1e-3)  # the rate's magnitude only falls
                assert abs(rates[-1]) < 0.6 * abs(rates[after][0])
                checked.add("saturating")
    assert checked == set(syn.BOWL_LAWS)


def test_varied_stop_bowl_truth_rate_drops():
    """The truth itself (not a component) flattens after extraction stops."""
    for seed in range(10):
        s = syn.make_scene(seed=seed, physics="varied", **VARIED)
        t = _years(s)
        for b in s.params["physics"]["bowls"]:
            if b["law"] == "stop" and b["stop_years"] + 3 * b["tau_years"] + 0.9 < t[-1] and b["stop_years"] > 1.0:
                r, c = _pixel(s, b["centre_xy_m"])
                ser = s.truth[:, r, c].astype(float)
                yr = syn.decimal_year(s.all_dates)

                def rate(lo, hi):  # trend + (modulated) annual and semi-annual terms
                    m = (t >= lo) & (t <= hi)
                    hs = [f(2 * np.pi * k * yr[m]) for k in (1, 2) for f in (np.cos, np.sin)]
                    X = np.column_stack([np.ones(m.sum()), t[m]] + hs + [t[m] * h for h in hs])
                    return np.linalg.lstsq(X, ser[m], rcond=None)[0][1]

                before = rate(0.0, b["stop_years"])
                after = rate(b["stop_years"] + 3 * b["tau_years"], t[-1])
                assert before < -5.0 and abs(after) < 0.25 * abs(before)
                return
    pytest.fail("no stop-law bowl with a long enough record after the stop in seeds 0..9")


def test_bad_physics_refused(tmp_path):
    with pytest.raises(DeformCastError, match="PHYSICS 'wild' is unknown"):
        syn.make_scene(physics="wild", width=40, height=32, n_epochs=40)
    with pytest.raises(DeformCastError, match="PHYSICS"):
        syn.write_scene(str(tmp_path / "x"), physics="wild", width=40, height=32, n_epochs=40)
    assert not (tmp_path / "x" / "scene.json").exists()


def test_write_varied_scene_round_trip(tmp_path):
    seed = next(s for s in range(10)
                if syn.make_scene(seed=s, physics="varied", width=40, height=32, n_epochs=40,
                                  n_future=4).params["physics"]["step"]["present"])
    files = syn.write_scene(str(tmp_path / "v"), seed=seed, physics="varied", width=40, height=32,
                            n_epochs=40, n_future=4)
    back = syn.read_scene(str(tmp_path / "v"))
    ref = syn.make_scene(seed=seed, physics="varied", width=40, height=32, n_epochs=40, n_future=4)
    np.testing.assert_array_equal(back.truth, ref.truth)
    np.testing.assert_array_equal(back.zones, ref.zones)
    assert back.params["physics"] == json.loads(json.dumps(ref.params["physics"]))
    assert back.zone_names == ref.zone_names and back.zone_names[4] == syn.STEP_ZONE_NAME
    assert syn.STEP_ZONE_NAME in (tmp_path / "v" / "zones.qml").read_text()
    arr = read_raster(files["zones"])[0][0]
    assert 4 in np.unique(arr)
