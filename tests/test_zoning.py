"""Zoning: every tier rule on hand-built rasters, polygons with attributes, bad input."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from deformcast.algorithms import zoning as Z
from deformcast.algorithms.errors import DeformCastError
from deformcast.algorithms.raster import make_grid, read_raster, write_raster

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
    outs = {"OUTPUT_TIERS": str(tmp_path / "tiers.tif"), "OUTPUT_ZONES": str(tmp_path / "zones.gpkg"),
            "OUTPUT_REPORT": str(tmp_path / "zoning.html")}
    res = Z.run_zoning(paths["s"], paths["u"], paths["p"], outs, "ambiguity", 1, paths["hz"], paths["fc"],
                       json.dumps({"exceedance_high": 0.5}), min_area=150.0)
    t = read_raster(outs["OUTPUT_TIERS"])[0][0]
    assert np.all(t[1:4, 1:5] == 1) and np.all(t[6:9, 1:3] == 2) and np.all(t[:, 11] == 2) and t[6, 6] == 3
    assert res.tier_pixels == {1: 12, 2: 16, 3: 1, 4: h * w - 29}
    assert res.tier_area_m2[1] == pytest.approx(1200.0)
    assert res.rules["uncertainty_max"] == 0.5
    ds = ogr.Open(outs["OUTPUT_ZONES"])
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
    html = Path(outs["OUTPUT_REPORT"]).read_text()
    assert "Rule table" in html and "exceedance_high" in html and "Area per tier" in html


def test_spread_default_threshold_is_median(tmp_path):
    s = np.full((2, 2), 5.0)
    u = np.array([[1.0, 2.0], [3.0, 10.0]])  # median 2.5
    p = np.full((2, 2), 0.9)
    paths, _ = build(tmp_path, s, u, p)
    out = str(tmp_path / "t.tif")
    res = Z.run_zoning(paths["s"], paths["u"], paths["p"], {"OUTPUT_TIERS": out}, "spread")
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
        Z.run_zoning(paths["s"], paths["u"], paths["p"], {"OUTPUT_ZONES": out}, eight_connected=eight)
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
        Z.run_zoning(paths["s"], other["u"], paths["p"], {})
    with pytest.raises(DeformCastError, match="band 3 does not exist"):
        Z.run_zoning(paths["s"], paths["u"], paths["p"], {}, exceedance_band=3)
    spread, _ = build(tmp_path, s, np.full((3, 3), 7.0), p, name="sp")
    with pytest.raises(DeformCastError, match="Set UNCERTAINTY_TYPE to 'spread'"):
        Z.run_zoning(paths["s"], spread["u"], paths["p"], {}, "ambiguity")
    with pytest.raises(DeformCastError, match="not probabilities"):
        Z.run_zoning(paths["s"], paths["u"], spread["u"], {})
    with pytest.raises(DeformCastError, match="UNCERTAINTY_TYPE"):
        Z.run_zoning(paths["s"], paths["u"], paths["p"], {}, "entropy")
    with pytest.raises(DeformCastError, match="MIN_AREA"):
        Z.run_zoning(paths["s"], paths["u"], paths["p"], {}, min_area=-1)


def test_hotspot_class_raster_refused(tmp_path):
    s = np.full((2, 2), 5.0)
    paths, grid = build(tmp_path, s, np.zeros((2, 2)), np.zeros((2, 2)))
    cls = write_raster(str(tmp_path / "cls.tif"), np.full((2, 2), 7, np.uint8), grid, dtype="uint8", nodata=0,
                       metadata={"DEFORMCAST_KIND": "hotspot_classes"})
    with pytest.raises(DeformCastError, match="OUTPUT_HOTSPOTS"):
        Z.run_zoning(paths["s"], paths["u"], paths["p"], {}, hotspots=cls)


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
        Z.run_zoning(paths["s"], paths["u"], paths["p"], {"OUTPUT_ZONES": out},
                     progress=Progress(is_cancelled=cancelled))
    assert not any(p.name.startswith("zones") for p in tmp_path.iterdir())
