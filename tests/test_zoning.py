"""Zoning: every tier rule on hand-built rasters, polygons with attributes, bad input."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from deformcast.algorithms.decision import zoning as Z
from deformcast.algorithms.errors import DeformCastError
from deformcast.algorithms.io.raster import make_grid, read_raster, write_raster

RULES = {"high_class_min": 4, "moderate_class_min": 3, "exceedance_high": 0.5, "exceedance_moderate": 0.2,
         "uncertainty_max": 0.5, "hotspot_z": 1.96}


def test_each_tier_rule():
    # columns: one pixel per case
    s = np.array([5, 4, 5, 5, 2, 3, 1, 1, 4, np.nan, 2, 3, 5, 2])
    u = np.array([0.1, 0.5, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, np.nan, 0.1, 0.9, 0.1])
    p = np.array([0.9, 0.5, 0.9, 0.3, 0.0, 0.0, 0.2, 0.1, 0.49, 0.9, 0.9, 0.0, 0.19, 0.25])
    hz = np.array([0, 0, 0, 0, 2.0, 0, 0, 1.9, 0, 3, 0, 1.96, 0, 2.5])
    t = Z.assign_tiers(s, u, p, RULES, hz)
    expected = [
        1,  # high, P >= 0.5, confident
        1,  # boundary values: class 4, P 0.5, u 0.5 all inclusive
        2,  # high but uncertain (and P >= exceedance_moderate)
        3,  # high, confident, P below high -> enhanced monitoring
        4,  # residual hot spot but low class and P small -> routine (atmosphere, not deformation)
        4,  # moderate class alone is relative, no absolute evidence -> routine
        3,  # low class, P >= exceedance_moderate
        4,  # low, P small, z below hotspot_z -> routine
        3,  # high, confident, P just below 0.5
        0,  # no susceptibility -> nodata
        0,  # no uncertainty -> nodata
        2,  # moderate class and residual hot spot (z on the limit) -> verify
        4,  # high but uncertain with P just below exceedance_moderate -> routine
        2,  # low class, P >= exceedance_moderate and hot spot -> verify
    ]
    np.testing.assert_array_equal(t, expected)
    # without hot spots the hot-spot pixel falls back to its other rules
    assert Z.assign_tiers(s, u, p, RULES)[11] == 4 and Z.assign_tiers(s, u, p, RULES)[13] == 3


def test_tier1_beats_hotspot():
    t = Z.assign_tiers(np.array([5.0]), np.array([0.0]), np.array([1.0]), RULES, np.array([5.0]))
    assert t[0] == 1


def test_rules_defaults_and_parsing():
    r = Z.parse_rules("", 5)
    assert r["high_class_min"] == 4 and r["moderate_class_min"] == 3 and r["uncertainty_max"] is None
    assert Z.parse_rules('{"exceedance_high": 0.7}', 5)["exceedance_high"] == 0.7
    assert Z.parse_rules("", 3)["high_class_min"] == 2
    with pytest.raises(DeformCastError, match="not valid JSON"):
        Z.parse_rules("{bad", 5)
    with pytest.raises(DeformCastError, match="unknown key"):
        Z.parse_rules('{"exceed": 0.7}', 5)
    with pytest.raises(DeformCastError, match="between 0 and 1"):
        Z.parse_rules('{"exceedance_high": 7}', 5)


def build(tmp_path, s, u, p, hz=None, fc=None, grid=None, name="z"):
    h, w = s.shape
    grid = grid or make_grid(400000, 5500000, 10.0, w, h)
    paths = {}
    paths["s"] = write_raster(str(tmp_path / f"{name}_s.tif"), np.nan_to_num(s, nan=0), grid, dtype="uint8", nodata=0,
                              metadata={"DEFORMCAST_CLASS_LIMITS": "1,2,3,4"})
    paths["u"] = write_raster(str(tmp_path / f"{name}_u.tif"), u.astype(np.float32), grid)
    paths["p"] = write_raster(str(tmp_path / f"{name}_p.tif"), p.astype(np.float32), grid)
    if hz is not None:
        paths["hz"] = write_raster(str(tmp_path / f"{name}_hz.tif"), hz.astype(np.float32), grid)
    if fc is not None:
        paths["fc"] = write_raster(str(tmp_path / f"{name}_fc.tif"), fc.astype(np.float32), grid)
    return paths, grid


def test_run_zoning_rasters_polygons_report(tmp_path):
    from osgeo import ogr

    h, w = 10, 12
    s = np.ones((h, w))
    u = np.full((h, w), 0.1)
    p = np.zeros((h, w))
    s[1:4, 1:5] = 5
    p[1:4, 1:5] = 0.8          # tier 1 block: 12 pixels
    s[6:9, 1:3] = 5
    u[6:9, 1:3] = 0.9          # tier 2 block (uncertain, exceedance plausible): 6 pixels
    p[6:9, 1:3] = 0.3
    hz = np.zeros((h, w))
    hz[0:10, 11] = 3.0         # tier 2 strip (hot spot, moderate class) on the east edge: 10 pixels
    s[0:10, 11] = 3
    s[6, 6] = 3                # single tier-3 pixel, area 100 m² < MIN_AREA
    p[6, 6] = 0.3
    fc = np.full((h, w), -1.0)
    fc[1:4, 1:5] = -30.0
    fc[2, 2] = -55.0
    fc[3, 4] = 40.0
    paths, grid = build(tmp_path, s, u, p, hz, fc)
    outs = {"tiers_path": str(tmp_path / "tiers.tif"), "zones_path": str(tmp_path / "zones.gpkg"),
            "report_path": str(tmp_path / "zoning.html")}
    res = Z.run_zoning(paths["s"], paths["u"], paths["p"], "ambiguity", 1, paths["hz"], paths["fc"],
                       json.dumps({"exceedance_high": 0.5}), min_area=150.0, mmu=0, **outs)
    assert {k: getattr(res, k) for k in outs} == outs  # the result names every file written
    t = read_raster(outs["tiers_path"])[0][0]
    assert np.all(t[1:4, 1:5] == 1) and np.all(t[6:9, 1:3] == 2) and np.all(t[:, 11] == 2) and t[6, 6] == 3
    assert res.tier_pixels == {1: 12, 2: 16, 3: 1, 4: h * w - 29}
    assert res.tier_area_m2[1] == pytest.approx(1200.0)
    assert res.rules["uncertainty_max"] == 0.5
    ds = ogr.Open(outs["zones_path"])
    lyr = ds.GetLayer(0)
    feats = list(lyr)
    tiers = sorted(f.GetField("tier") for f in feats)
    # tier 1 block, tier 2 block, tier 2 strip, tier 4 background; tier 3 pixel below MIN_AREA
    assert tiers == [1, 2, 2, 4]
    assert res.n_zones_dropped == 1
    t1 = next(f for f in feats if f.GetField("tier") == 1)
    assert t1.GetField("area_m2") == pytest.approx(1200.0)
    assert t1.GetGeometryRef().GetArea() == pytest.approx(1200.0)
    assert t1.GetField("max_abs_def_mm") == pytest.approx(-55.0)
    assert t1.GetField("mean_def_mm") == pytest.approx((10 * -30.0 - 55.0 + 40.0) / 12)
    assert t1.GetField("max_exceed_p") == pytest.approx(0.8)
    assert t1.GetField("mean_uncert") == pytest.approx(0.1)
    assert t1.GetField("tier_name").startswith("Tier 1") and "control" in t1.GetField("action").lower()
    ds = None
    assert os.path.exists(str(tmp_path / "zones.qml")) and "categorizedSymbol" in (tmp_path / "zones.qml").read_text()
    assert "Tier 1" in Path(str(tmp_path / "tiers.qml")).read_text()
    html = Path(outs["report_path"]).read_text()
    assert "Rule table" in html and "exceedance_high" in html and "Area per tier" in html


def test_spread_default_threshold_is_median(tmp_path):
    s = np.full((2, 2), 5.0)
    u = np.array([[1.0, 2.0], [3.0, 10.0]])  # median 2.5
    p = np.full((2, 2), 0.9)
    paths, _ = build(tmp_path, s, u, p)
    out = str(tmp_path / "t.tif")
    res = Z.run_zoning(paths["s"], paths["u"], paths["p"], "spread", mmu=0, tiers_path=out)
    assert res.rules["uncertainty_max"] == pytest.approx(2.5)
    np.testing.assert_array_equal(read_raster(out)[0][0], [[1, 1], [2, 2]])


def test_eight_connectivity_joins_diagonals(tmp_path):
    from osgeo import ogr

    s = np.eye(4) * 4 + 1  # diagonal of class 5 on class 1
    u = np.zeros((4, 4))
    p = np.where(s == 5, 0.9, 0.0)
    paths, _ = build(tmp_path, s, u, p)
    for eight, n_t1 in ((False, 4), (True, 1)):
        out = str(tmp_path / f"z{int(eight)}.gpkg")
        Z.run_zoning(paths["s"], paths["u"], paths["p"], eight_connected=eight, mmu=0, zones_path=out)
        ds = ogr.Open(out)
        assert sum(1 for f in ds.GetLayer(0) if f.GetField("tier") == 1) == n_t1
        ds = None


def test_bad_inputs(tmp_path):
    s = np.full((3, 3), 5.0)
    u = np.zeros((3, 3))
    p = np.zeros((3, 3))
    paths, _ = build(tmp_path, s, u, p)
    other, _ = build(tmp_path, np.ones((4, 3)), np.zeros((4, 3)), np.zeros((4, 3)), name="o")
    with pytest.raises(DeformCastError, match="not on the grid"):
        Z.run_zoning(paths["s"], other["u"], paths["p"])
    with pytest.raises(DeformCastError, match="band 3 does not exist"):
        Z.run_zoning(paths["s"], paths["u"], paths["p"], exceedance_band=3)
    spread, _ = build(tmp_path, s, np.full((3, 3), 7.0), p, name="sp")
    with pytest.raises(DeformCastError, match="Set UNCERTAINTY_TYPE to 'spread'"):
        Z.run_zoning(paths["s"], spread["u"], paths["p"], "ambiguity")
    with pytest.raises(DeformCastError, match="not probabilities"):
        Z.run_zoning(paths["s"], paths["u"], spread["u"])
    with pytest.raises(DeformCastError, match="UNCERTAINTY_TYPE"):
        Z.run_zoning(paths["s"], paths["u"], paths["p"], "entropy")
    with pytest.raises(DeformCastError, match="MIN_AREA"):
        Z.run_zoning(paths["s"], paths["u"], paths["p"], min_area=-1)
    with pytest.raises(DeformCastError, match="MMU"):
        Z.run_zoning(paths["s"], paths["u"], paths["p"], mmu=-1)


def test_hotspot_class_raster_refused(tmp_path):
    s = np.full((2, 2), 5.0)
    paths, grid = build(tmp_path, s, np.zeros((2, 2)), np.zeros((2, 2)))
    cls = write_raster(str(tmp_path / "cls.tif"), np.full((2, 2), 7, np.uint8), grid, dtype="uint8", nodata=0,
                       metadata={"DEFORMCAST_KIND": "hotspot_classes"})
    with pytest.raises(DeformCastError, match="OUTPUT_HOTSPOTS"):
        Z.run_zoning(paths["s"], paths["u"], paths["p"], hotspots=cls)


def test_cancel_leaves_no_zones_file(tmp_path):
    from deformcast.algorithms.errors import Cancelled
    from deformcast.algorithms.progress import Progress

    rng = np.random.default_rng(0)
    s = rng.integers(1, 6, size=(30, 30)).astype(float)
    paths, _ = build(tmp_path, s, rng.random((30, 30)), rng.random((30, 30)))
    calls = {"n": 0}

    def cancelled():
        calls["n"] += 1
        return calls["n"] > 8  # after the tier raster, during the polygons

    out = str(tmp_path / "zones.gpkg")
    with pytest.raises(Cancelled):
        Z.run_zoning(paths["s"], paths["u"], paths["p"], progress=Progress(is_cancelled=cancelled), zones_path=out)
    assert not any(p.name.startswith("zones") for p in tmp_path.iterdir())


# ---- differential movement (discontinuities) ------------------------------------------------
def _direct_step(d, r, c, half_length=Z.STEP_HALF_LENGTH, half_width=Z.STEP_HALF_WIDTH):
    """Independent per-pixel least squares (plane + step) over every orientation: (step, |t| max)."""
    n_or = Z.n_step_orientations(half_length)
    best = (np.nan, 0.0)
    rad = int(np.ceil(np.hypot(half_length + 0.5, half_width + 0.5)))
    for k in range(n_or):
        th = np.pi * k / n_or
        rows, cols, us, vs = [], [], [], []
        nominal = 0
        for dy in range(-rad, rad + 1):
            for dx in range(-rad, rad + 1):
                x, y = dx, -dy
                u, v = x * np.cos(th) + y * np.sin(th), -x * np.sin(th) + y * np.cos(th)
                rr, cc = r + dy, c + dx
                if abs(u) <= half_width + 0.5 and abs(v) <= half_length + 0.5:
                    nominal += u >= 0.5
                    if 0 <= rr < d.shape[0] and 0 <= cc < d.shape[1] and np.isfinite(d[rr, cc]):
                        rows.append(rr), cols.append(cc), us.append(u), vs.append(v)
        us, vs = np.array(us), np.array(vs)
        hh = np.where(np.abs(us) < 0.5, 0.0, 0.5 * np.sign(us))
        if min((hh > 0).sum(), (hh < 0).sum()) < 0.5 * nominal:  # a side with under half its pixels
            continue
        X = np.column_stack([np.ones_like(us), us, vs, hh])
        y = d[rows, cols]
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        res = y - X @ beta
        s2 = max(res @ res / (len(y) - 4), Z.STEP_NOISE_FLOOR_MM ** 2)
        t = beta[3] / np.sqrt(s2 * np.linalg.inv(X.T @ X)[3, 3])
        if abs(t) > abs(best[1]):
            best = (beta[3], t)
    return best


def test_step_statistics_match_direct_least_squares():
    rng = np.random.default_rng(3)
    d = rng.normal(0, 1.5, (40, 45))
    d[:, 20:] -= 4.0
    d[5, 7] = d[30, 30] = np.nan
    sf = Z.step_statistics(d)
    for r, c in ((20, 20), (20, 19), (3, 5), (31, 30), (39, 44), (12, 33), (0, 0)):
        s, t = _direct_step(d, r, c)
        assert sf.t[r, c] == pytest.approx(t, rel=1e-6, abs=1e-9)
        if np.isfinite(s):
            assert sf.step[r, c] == pytest.approx(s, rel=1e-6, abs=1e-9)
        else:  # no orientation with enough pixels on both sides (a corner): not tested
            assert np.isnan(sf.step[r, c]) and sf.orient[r, c] == -1
    assert sf.orient[5, 7] == -1 and sf.t[5, 7] == 0  # a hole is not tested


def _step_scene(shape=(60, 60), step=-4.0, col=30, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.normal(0.0, noise, shape)
    d[:, col:] += step  # east side down by |step| between columns col - 1 and col
    return d


def test_sharp_step_flagged_as_band_of_documented_width():
    cell, buffer_m = 10.0, 50.0
    d = _step_scene()
    grid = make_grid(400000, 5500000, cell, 60, 60)
    sf = Z.step_statistics(d)
    tr = Z.discontinuity_traces(sf, 1.0, 5.0, link_z=4.0)
    rows = slice(10, 50)
    # the trace follows the step: pixels right beside it, along (almost) its whole length
    assert set(np.nonzero(tr.any(axis=0))[0]) <= {29, 30}
    assert tr[rows].any(axis=1).mean() >= 0.9
    assert np.median(sf.step[tr]) == pytest.approx(-4.0, abs=0.5)
    band = Z.discontinuity_band(tr, buffer_m, grid)
    # the step lies at x = 300 m; trace pixel centres are 5 m from it, so every pixel centre within
    # buffer - cell / 2 of the line is flagged and none beyond buffer + cell / 2
    xc = (np.arange(60) + 0.5) * cell
    dist = np.abs(xc - 300.0)
    assert band[rows][:, dist <= buffer_m - cell / 2].all()
    assert not band[:, dist > buffer_m + cell / 2].any()


def test_oblique_step_found_along_its_line():
    h = w = 70
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    # a line through the centre at 60 degrees from east; north-west side 3 mm higher
    nx, ny = np.cos(np.radians(150)), np.sin(np.radians(150))  # normal, y up
    dist = (xx - 35) * nx + (35 - yy) * ny
    d = np.where(dist > 0, 3.0, 0.0) + np.random.default_rng(1).normal(0, 0.8, (h, w))
    sf = Z.step_statistics(d)
    tr = Z.discontinuity_traces(sf, 1.0, 5.0, link_z=4.0)
    assert tr.sum() >= 40
    assert np.all(np.abs(dist[tr]) <= 1.5)
    assert np.median(np.abs(sf.step[tr])) == pytest.approx(3.0, abs=0.5)


def test_smooth_bowl_and_tilt_are_not_discontinuities():
    from deformcast.algorithms.data.synthetic import knothe_panel

    h = w = 100
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    rng = np.random.default_rng(0)
    # Knothe bowls with influence radii of 4-10 pixels (the demo scene: about 6): their flanks and
    # toes are curved over the window, which a plain step test would call steps (these cases did
    # before the sharpness test)
    for s_max, r_px, noise in ((100.0, 6.0, 0.5), (20.0, 4.0, 0.5), (100.0, 10.0, 2.0), (40.0, 6.0, 0.0)):
        bowl = -s_max * knothe_panel(xx - 50, yy - 50, 12.0, 8.0, r_px)
        tilt = 0.3 * xx - 0.2 * yy  # a uniform tilt, 0.3 mm per pixel
        d = bowl + tilt + noise * rng.standard_normal((h, w))
        sf = Z.step_statistics(d)
        assert not Z.discontinuity_traces(sf, 1.0, 5.0, link_z=4.0).any(), (s_max, r_px, noise)


def test_noise_alone_makes_no_discontinuity():
    from scipy import ndimage

    rng = np.random.default_rng(7)
    white = 2.0 * rng.standard_normal((200, 200))
    sf = Z.step_statistics(white)
    # the white-noise reference median of the statistic (documented constant)
    assert np.median(np.abs(sf.t[sf.orient >= 0])) == pytest.approx(Z.STEP_NULL_MEDIAN_T, rel=0.03)
    assert sf.inflation == pytest.approx(1.0, abs=0.03)
    assert Z.discontinuity_traces(sf, 1.0, 5.0, link_z=4.0).mean() <= 1e-3
    # spatially correlated noise inflates t; the calibration takes it back
    corr = ndimage.gaussian_filter(rng.standard_normal((200, 200)), 1.0)
    corr *= 2.0 / corr.std()
    sfc = Z.step_statistics(corr)
    assert sfc.inflation > 1.5
    assert Z.discontinuity_traces(sfc, 1.0, 5.0, link_z=4.0).mean() <= 1e-3
    raw = Z.StepField(sfc.step, sfc.t, sfc.orient, sfc.n_orient, 1.0, sfc.sharp)
    assert Z.discontinuity_traces(raw, 1.0, 5.0, link_z=4.0).mean() > 1e-2  # without it: false traces


def test_step_mm_limit():
    d = _step_scene(step=-4.0, noise=0.3)
    sf = Z.step_statistics(d)
    assert Z.discontinuity_traces(sf, 1.0, 5.0, link_z=4.0).any()
    assert not Z.discontinuity_traces(sf, 4.5, 5.0, link_z=4.0).any()  # significant, but under step_mm


def test_trace_linking_rules():
    def field(z_rows, col=10, shape=(40, 21)):
        t = np.zeros(shape)
        for r, z in z_rows.items():
            t[r, col] = z
        return Z.StepField(np.where(t != 0, 3.0 * np.sign(t), np.nan), t, np.zeros(shape, np.int16), 30)

    long_ = {r: 6.0 for r in range(5, 17)}                   # 12 pixels, all strong
    assert Z.discontinuity_traces(field(long_), 1.0, 5.0, link_z=4.0).sum() == 12
    short = {r: 6.0 for r in range(5, 14)}                    # 9 pixels: below STEP_HALF_LENGTH + 1
    assert not Z.discontinuity_traces(field(short), 1.0, 5.0, link_z=4.0).any()
    weak = {r: 4.5 for r in range(5, 17)}                     # no anchor >= step_z
    assert not Z.discontinuity_traces(field(weak), 1.0, 5.0, link_z=4.0).any()
    weak[10] = 5.5                                            # one anchor carries the whole trace
    assert Z.discontinuity_traces(field(weak), 1.0, 5.0, link_z=4.0).sum() == 12
    gap = dict(long_)
    del gap[10]                                               # a one-pixel gap (a hole) is bridged
    assert Z.discontinuity_traces(field(gap), 1.0, 5.0, link_z=4.0).sum() == 11
    flip = {r: 6.0 * (-1) ** (r // 6) for r in range(0, 24)}  # signs alternate every 6 pixels
    assert not Z.discontinuity_traces(field(flip), 1.0, 5.0, link_z=4.0).any()


def test_discontinuity_rule_in_zoning(tmp_path):
    from osgeo import ogr

    h, w = 60, 60
    s = np.full((h, w), 2.0)          # quiet: low class, nothing exceeds
    u = np.full((h, w), 0.1)
    p = np.zeros((h, w))
    fc = _step_scene()
    paths, grid = build(tmp_path, s, u, p, fc=fc)
    outs = {"tiers_path": str(tmp_path / "t.tif"), "zones_path": str(tmp_path / "z.gpkg"),
            "discontinuity_path": str(tmp_path / "disc.tif"), "report_path": str(tmp_path / "z.html")}
    res = Z.run_zoning(paths["s"], paths["u"], paths["p"], forecast=paths["fc"],
                       rules='{"discontinuity_buffer_m": 50}', **outs)
    assert res.discontinuity_path == outs["discontinuity_path"]
    t = read_raster(outs["tiers_path"])[0][0]
    dist = np.abs((np.arange(w) + 0.5) * 10.0 - 300.0)
    assert np.all(t[10:50][:, dist <= 45.0] == 2) and np.all(t[:, dist > 55.0] == 4)
    assert res.discontinuity["applied"] and res.discontinuity["trace_pixels"] >= 40
    assert res.discontinuity["max_step_mm"] == pytest.approx(-4.0, abs=1.5)
    disc, _, names = read_raster(outs["discontinuity_path"])
    assert disc.shape[0] == 3 and "step" in names[0]
    assert np.array_equal(disc[2] > 0, (t == 2))
    ds = ogr.Open(outs["zones_path"])
    f2 = [f for f in ds.GetLayer(0) if f.GetField("tier") == 2]
    assert len(f2) == 1 and Z.DISCONTINUITY_ACTION in f2[0].GetField("action")
    assert f2[0].GetField("max_step_mm") == pytest.approx(res.discontinuity["max_step_mm"])
    ds = None
    html = Path(outs["report_path"]).read_text()
    assert "Differential movement" in html and "step_mm" in html and "discontinuity_buffer_m" in html
    # switched off, or without FORECAST: no tier 2
    for kw in ({"forecast": paths["fc"], "discontinuities": False}, {}):
        out = str(tmp_path / f"off{len(kw)}.tif")
        r = Z.run_zoning(paths["s"], paths["u"], paths["p"], tiers_path=out, **kw)
        assert not r.discontinuity["applied"] and np.all(read_raster(out)[0][0] == 4)
    # mapped faults: a fault mapped on the step keeps the trace, one mapped 200 m away drops it
    xc = (np.arange(w) + 0.5) * 10.0
    for fault_x, expect in ((300.0, True), (100.0, False)):
        kf = write_raster(str(tmp_path / f"kf{int(fault_x)}.tif"),
                          np.broadcast_to(xc - fault_x, (h, w)).astype(np.float32), grid)
        out = str(tmp_path / f"kf{int(fault_x)}_t.tif")
        Z.run_zoning(paths["s"], paths["u"], paths["p"], forecast=paths["fc"],
                     rules='{"discontinuity_buffer_m": 50}', known_faults=kf, tiers_path=out)
        assert (read_raster(out)[0][0] == 2).any() == expect


def test_discontinuity_rules_parsing():
    r = Z.parse_rules("", 5)
    assert (r["step_mm"], r["step_z"], r["step_link_z"], r["discontinuity_buffer_m"]) == (1.0, 5.0, 4.0, 150.0)
    with pytest.raises(DeformCastError, match="must not exceed"):
        Z.parse_rules('{"step_z": 3, "step_link_z": 4}', 5)
    with pytest.raises(DeformCastError, match=">= 0"):
        Z.parse_rules('{"discontinuity_buffer_m": -1}', 5)
    with pytest.raises(DeformCastError, match="> 0"):
        Z.parse_rules('{"step_z": 0}', 5)


# ---- minimum mapping unit (sieve) ------------------------------------------------------------
def _zone_areas(t, eight=False):
    """(tier, pixels) of every contiguous zone, independently of the sieve's own labelling."""
    from scipy import ndimage

    out = []
    for k in (1, 2, 3, 4):
        lab, n = ndimage.label(t == k, structure=np.ones((3, 3)) if eight else None)
        out += [(k, int(c)) for c in np.bincount(lab.ravel())[1:]]
    return out


def test_sieve_merges_zones_under_the_mmu_and_keeps_tier1():
    from deformcast.algorithms.decision.sieve import sieve_tiers

    t = np.full((12, 14), 4, np.uint8)
    t[1, 1] = 2                   # isolated tier-2 pixel (1 px < 5): merged into the background
    t[1, 4:6] = 3                 # tier-3 pair (2 px): merged
    t[3, 9] = 1                   # isolated tier-1 pixel: never merged (a confident hazard)
    t[6:11, 1:6] = 2              # tier-2 block of 25 px with a 1-pixel tier-4 hole: the hole is filled
    t[8, 3] = 4
    t[2:5, 11:13] = 2             # tier-2 block of 6 px >= the MMU: kept
    t[8, 8] = 3                   # tie: 2 edges on tier 2, 2 on tier 4 -> the more severe tier (2)
    t[7:10, 7] = 2
    t[7:10, 9] = 2                # (two 3-px tier-2 strips, themselves under the MMU)
    t[0, 13] = 0                  # a nodata pixel stays nodata
    area = np.full((12, 1), 100.0)  # 10 m pixels
    out, st = sieve_tiers(t, area, 500.0)
    assert out[1, 1] == 4 and np.all(out[1, 4:6] == 4) and out[3, 9] == 1 and out[8, 3] == 2
    assert np.all(out[2:5, 11:13] == 2) and out[0, 13] == 0
    assert out[8, 8] == 2 and np.all(out[7:10, 7] == 2) and np.all(out[7:10, 9] == 2)  # one 7-px zone now
    assert out[7, 8] == 4 and out[9, 8] == 4
    # no zone under the MMU is left but the tier-1 one
    assert all(k == 1 or n * 100.0 >= 500.0 for k, n in _zone_areas(out))
    assert np.array_equal(out == 1, t == 1)
    assert st.protected_small_zones == 1 and st.isolated_small_zones == 0
    assert st.pixels_changed == int((out != t).sum()) == 5
    assert st.transitions == {"2->4": 1, "3->2": 1, "3->4": 2, "4->2": 1}
    assert st.zones_before == len(_zone_areas(t)) and st.zones_after == len(_zone_areas(out))
    # MMU 0: unchanged
    same, st0 = sieve_tiers(t, area, 0.0)
    assert np.array_equal(same, t) and st0.pixels_changed == 0


def test_sieve_on_speckle_never_downgrades_tier1_and_leaves_no_small_zone():
    from deformcast.algorithms.decision.sieve import sieve_tiers

    rng = np.random.default_rng(3)
    t = rng.choice([1, 2, 3, 4], size=(40, 50), p=[0.05, 0.1, 0.15, 0.7]).astype(np.uint8)
    t[rng.random(t.shape) < 0.03] = 0
    for eight in (False, True):
        for mmu in (300.0, 2000.0):
            out, st = sieve_tiers(t, np.full((40, 1), 100.0), mmu, eight_connected=eight)
            assert np.all(out[t == 1] == 1) and np.array_equal(out == 0, t == 0)  # tier 1 is never downgraded
            small = [(k, n) for k, n in _zone_areas(out, eight) if k != 1 and n * 100.0 < mmu]
            assert len(small) == st.isolated_small_zones, small
            assert st.zones_merged > 100 and st.zones_after <= st.zones_before - st.zones_merged


def test_sieve_bad_mmu():
    from deformcast.algorithms.decision.sieve import sieve_tiers

    with pytest.raises(DeformCastError, match="MMU"):
        sieve_tiers(np.ones((2, 2), np.uint8), 1.0, float("nan"))


def test_run_zoning_applies_the_mmu(tmp_path):
    from osgeo import gdal, ogr

    rng = np.random.default_rng(0)
    h, w = 30, 40
    s = np.ones((h, w))
    u = np.full((h, w), 0.1)
    p = np.where(rng.random((h, w)) < 0.08, 0.3, 0.0)   # speckle of tier-3 pixels on the background
    s[5:15, 5:15] = 5
    p[5:15, 5:15] = 0.9                                   # a 100-px tier-1 bowl
    s[20, 30] = 5
    p[20, 30] = 0.9                                       # a 1-px tier-1 pixel: kept
    paths, grid = build(tmp_path, s, u, p)
    res0 = Z.run_zoning(paths["s"], paths["u"], paths["p"], mmu=0, tiers_path=str(tmp_path / "t0.tif"))
    outs = {"tiers_path": str(tmp_path / "t.tif"), "zones_path": str(tmp_path / "z.gpkg"),
            "report_path": str(tmp_path / "z.html")}
    res = Z.run_zoning(paths["s"], paths["u"], paths["p"], mmu=1000.0, **outs)   # 10 pixels of 100 m²
    t0 = read_raster(str(tmp_path / "t0.tif"))[0][0]
    t = read_raster(outs["tiers_path"])[0][0]
    assert (t0 == 3).sum() > 20 and res.sieve["mmu_m2"] == 1000.0
    assert np.all(t[t0 == 1] == 1) and t[20, 30] == 1
    assert res.sieve["zones_after"] < res.sieve["zones_before"] and res.sieve["pixels_changed"] == int((t != t0).sum())
    assert res.sieve["protected_small_zones"] == 1
    assert res.tier_pixels[3] == int((t == 3).sum()) and res.tier_pixels[3] < res0.tier_pixels[3]
    ds = ogr.Open(outs["zones_path"])
    feats = [(f.GetField("tier"), f.GetField("area_m2")) for f in ds.GetLayer(0)]
    ds = None
    assert len(feats) == res.n_zones == res.sieve["zones_after"]
    assert all(a >= 1000.0 for k, a in feats if k != 1)
    md = gdal.Open(outs["tiers_path"]).GetMetadata()
    assert float(md["DEFORMCAST_MMU_M2"]) == 1000.0 and json.loads(md["DEFORMCAST_SIEVE"]) == res.sieve
    html = Path(outs["report_path"]).read_text()
    assert "mmu_m2" in html and "zones merged" in html


def test_layers_without_a_crs_are_warned_about(tmp_path):
    """Areas (MIN_AREA, MMU, tier areas) of layers without a CRS take the pixel size as metres: said, with the fix."""
    from deformcast.algorithms.errors import DeformCastWarning
    from deformcast.algorithms.io.raster import Grid

    s = np.full((3, 3), 5.0)
    u = np.zeros((3, 3))
    p = np.full((3, 3), 0.9)
    paths, _ = build(tmp_path, s, u, p, grid=Grid((0.0, 1.0, 0.0, 0.0, 0.0, -1.0), "", 3, 3), name="nocrs")
    with pytest.warns(DeformCastWarning, match="no coordinate reference system.*1 x 1 map units"):
        res = Z.run_zoning(paths["s"], paths["u"], paths["p"], mmu=0)
    assert res.tier_area_m2[1] == pytest.approx(9.0)
    paths, _ = build(tmp_path, s, u, p, name="crs")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeformCastWarning)
        Z.run_zoning(paths["s"], paths["u"], paths["p"], mmu=0)
