"""Residual analysis: Moran's I and Gi* against direct formulas, zones, collinearity, bad input."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from deformcast.algorithms.maps import residuals as R
from deformcast.algorithms.errors import DeformCastError
from deformcast.algorithms.io.raster import make_grid, read_raster, write_raster, write_stack


def dense_weights(valid, offsets):
    h, w = valid.shape
    pix = [(r, c) for r in range(h) for c in range(w) if valid[r, c]]
    pos = {p: k for k, p in enumerate(pix)}
    Wd = np.zeros((len(pix), len(pix)))
    for (r, c), k in pos.items():
        for dr, dc in offsets:
            q = (r + dr, c + dc)
            if q in pos:
                Wd[k, pos[q]] = 1.0
    return Wd


def test_checkerboard_rook_is_minus_one():
    cb = (np.indices((6, 6)).sum(0) % 2).astype(float)
    W = R.grid_weights(np.ones((6, 6), bool), R.neighbour_offsets("rook"))
    assert R.morans_i(cb.ravel(), W) == pytest.approx(-1.0)
    # queen on a checkerboard: diagonal neighbours are alike -> not -1
    Wq = R.grid_weights(np.ones((6, 6), bool), R.neighbour_offsets("queen"))
    assert R.morans_i(cb.ravel(), Wq) > -1.0


@pytest.mark.parametrize("kind", ["rook", "queen", "distance"])
def test_weights_and_morans_i_match_dense_formula(kind):
    rng = np.random.default_rng(3)
    valid = rng.random((7, 9)) > 0.2
    offs = R.neighbour_offsets(kind, 2.3, (1.0, 1.0))
    W = R.grid_weights(valid, offs)
    Wd = dense_weights(valid, offs)
    np.testing.assert_array_equal(W.toarray(), Wd)
    x = rng.normal(size=int(valid.sum()))
    z = x - x.mean()
    expected = x.size / Wd.sum() * (z @ Wd @ z) / (z @ z)
    assert R.morans_i(x, W) == pytest.approx(expected)


def test_distance_offsets_respect_cell_size():
    offs = R.neighbour_offsets("distance", 25.0, (20.0, 10.0))
    assert (0, 1) in offs and (2, 0) in offs and (1, 1) in offs and (0, 2) not in offs and (3, 0) not in offs
    with pytest.raises(DeformCastError, match="DISTANCE"):
        R.neighbour_offsets("distance", 5.0, (20.0, 20.0))


def test_permutation_p_value():
    # a smooth field: strong positive autocorrelation -> smallest possible p
    y, x = np.mgrid[0:12, 0:12]
    f = (x + y).astype(float).ravel()
    W = R.grid_weights(np.ones((12, 12), bool), R.neighbour_offsets("queen"))
    i, p, sims = R.morans_i_permutation(f, W, 99, seed=1)
    assert i > 0.8 and p == pytest.approx(1 / 100) and sims.size == 99
    i2, p2, _ = R.morans_i_permutation(f, W, 99, seed=1)
    assert (i2, p2) == (i, p)
    # white noise: not significant, mean of sims near E[I]
    rng = np.random.default_rng(0)
    _, pn, simsn = R.morans_i_permutation(rng.normal(size=144), W, 199, seed=2)
    assert pn > 0.05 and abs(simsn.mean() + 1 / 143) < 0.02


def test_gi_star_matches_direct_formula():
    rng = np.random.default_rng(5)
    valid = np.ones((5, 4), bool)
    valid[2, 1] = False
    x = rng.normal(size=int(valid.sum()))
    offs = R.neighbour_offsets("queen")
    Wd = dense_weights(valid, offs) + np.eye(x.size)
    n = x.size
    xbar = x.mean()
    s = math.sqrt((x ** 2).mean() - xbar ** 2)
    expected = []
    for i in range(n):
        w = Wd[i]
        expected.append((w @ x - xbar * w.sum()) / (s * math.sqrt((n * (w ** 2).sum() - w.sum() ** 2) / (n - 1))))
    np.testing.assert_allclose(R.getis_ord_gi_star(x, R.grid_weights(valid, offs)), expected, rtol=1e-10)


def test_hotspot_classes_at_critical_values():
    z = np.array([-3.0, -2.0, -1.7, 0.0, 1.65, 1.97, 2.6])
    np.testing.assert_array_equal(R.hotspot_classes(z), [1, 2, 3, 4, 5, 6, 7])


DATES = np.array(["2021-01-01", "2021-01-13", "2021-01-25"], dtype="datetime64[D]")


def make_pair(tmp_path, fc, ob, fc_dates=DATES[1:], ob_dates=DATES, name="x"):
    h, w = fc.shape[1:]
    grid = make_grid(600000, 5000000, 10.0, w, h)
    fp, op = str(tmp_path / f"{name}_fc.tif"), str(tmp_path / f"{name}_ob.tif")
    write_stack(fp, fc, fc_dates, grid)
    write_stack(op, ob, ob_dates, grid)
    return fp, op, grid


def test_run_residuals_end_to_end(tmp_path):
    rng = np.random.default_rng(7)
    h, w = 12, 10
    ob = rng.normal(0, 1, size=(3, h, w)).astype(np.float32)
    fc = ob[1:].copy()
    fc[:, 2:6, 2:6] += 8.0  # a block of large errors -> hot spot
    fc[0, 0, 0] = np.nan
    fp, op, grid = make_pair(tmp_path, fc, ob)
    # zones: raster with zone 1 on the error block, and a polygon layer
    z = np.zeros((h, w), np.float32)
    z[2:6, 2:6] = 1
    z[8:, :] = 2
    zp = str(tmp_path / "zones.tif")
    write_raster(zp, z, grid, dtype="uint8", nodata=255)
    # an uncertainty layer equal to the error magnitude (+ noise): positive rank correlation
    u = np.abs(fc[0] - ob[1]) + rng.uniform(0, 0.1, size=(h, w))
    up = str(tmp_path / "unc.tif")
    write_raster(up, u.astype(np.float32), grid, ["spread"])
    outs = {"residuals_path": str(tmp_path / "res.tif"), "hotspots_path": str(tmp_path / "gi.tif"),
            "hotspot_classes_path": str(tmp_path / "gic.tif"), "report_path": str(tmp_path / "r.html")}
    res = R.run_residuals(fp, op, zones=zp, uncertainty=[up], n_permutations=49, seed=3, **outs)
    assert {k: getattr(res, k) for k in outs} == outs  # the result names every file written
    assert res.dates == ["2021-01-13", "2021-01-25"]
    r, _, names = read_raster(res.residuals_path)
    assert names == ["2021-01-13", "2021-01-25"]
    np.testing.assert_allclose(r, fc - ob[1:], atol=1e-5)
    assert np.isnan(r[0, 0, 0]) and np.isfinite(r[1, 0, 0])
    assert res.morans_i > 0.3 and res.morans_p == pytest.approx(1 / 50)
    gi = read_raster(res.hotspots_path)[0][0]
    cls = read_raster(res.hotspot_classes_path)[0][0]
    assert np.all(cls[3:5, 3:5] == 7) and gi[3, 3] > 2.576
    assert np.nanmean(cls[9:, :]) < 5
    zone1 = next(row for row in res.zone_rows if row[0] == "zone 1")
    assert zone1[1] == 16 and zone1[2] == pytest.approx(float(np.mean(fc[:, 2:6, 2:6] - ob[1:, 2:6, 2:6])), rel=1e-6)
    outside = next(row for row in res.zone_rows if row[0] == "outside every zone")
    assert outside[1] == h * w - 16 - 4 * w
    assert res.correlations[0][3] > 0.5
    for p in (res.residuals_path, res.hotspots_path, res.hotspot_classes_path):
        assert os.path.exists(os.path.splitext(p)[0] + ".qml")
    assert "Hot spot 99 %" in Path(os.path.splitext(res.hotspot_classes_path)[0] + ".qml").read_text()
    html = Path(res.report_path).read_text()
    assert "Moran" in html and "zone 1" in html and "Spearman" in html


def test_zones_from_polygons(tmp_path):
    from osgeo import ogr, osr

    h, w = 6, 6
    ob = np.zeros((3, h, w), np.float32)
    fc = np.ones((2, h, w), np.float32)
    fc[:, :3, :3] = 5.0
    fp, op, grid = make_pair(tmp_path, fc, ob)
    gpkg = str(tmp_path / "z.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(gpkg)
    srs = osr.SpatialReference()
    srs.ImportFromWkt(grid.crs_wkt)
    lyr = ds.CreateLayer("faults", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    f = ogr.Feature(lyr.GetLayerDefn())
    f.SetField("name", "fault buffer")
    x0, y0 = grid.geotransform[0], grid.geotransform[3]
    f.SetGeometry(ogr.CreateGeometryFromWkt(
        f"POLYGON(({x0} {y0},{x0 + 30} {y0},{x0 + 30} {y0 - 30},{x0} {y0 - 30},{x0} {y0}))"))
    lyr.CreateFeature(f)
    ds = None
    res = R.run_residuals(fp, op, zones=gpkg, zone_field="name", n_permutations=0)
    row = next(r for r in res.zone_rows if "fault buffer" in r[0])
    assert row[1] == 9 and row[2] == pytest.approx(5.0) and row[4] == pytest.approx(5.0)
    with pytest.raises(DeformCastError, match="ZONE_FIELD"):
        R.run_residuals(fp, op, zones=gpkg, zone_field="nope", n_permutations=0)


def test_bad_inputs(tmp_path):
    ob = np.zeros((3, 4, 4), np.float32)
    fc = np.zeros((2, 4, 4), np.float32)
    later = np.array(["2022-01-01", "2022-02-01"], dtype="datetime64[D]")
    fp, op, grid = make_pair(tmp_path, fc, ob, fc_dates=later)
    with pytest.raises(DeformCastError, match="No forecast date is also an observation date"):
        R.run_residuals(fp, op, residuals_path=str(tmp_path / "never.tif"))
    assert not (tmp_path / "never.tif").exists()
    fp2, _, _ = make_pair(tmp_path, np.zeros((2, 5, 4), np.float32), np.zeros((3, 5, 4), np.float32), name="mis")
    with pytest.raises(DeformCastError, match="same grid"):
        R.run_residuals(fp2, op)
    fp3, op3, _ = make_pair(tmp_path, fc, ob, name="ok")
    with pytest.raises(DeformCastError, match="WEIGHTS"):
        R.run_residuals(fp3, op3, weights="hexagon")
    zbad = str(tmp_path / "zbad.tif")
    write_raster(zbad, np.zeros((3, 3), np.float32), make_grid(0, 0, 1, 3, 3))
    with pytest.raises(DeformCastError, match="ZONES raster is not on the grid"):
        R.run_residuals(fp3, op3, zones=zbad, n_permutations=0)
    nodate = str(tmp_path / "nodate.tif")
    write_raster(nodate, fc, grid)
    with pytest.raises(DeformCastError, match="carries a date"):
        R.run_residuals(nodate, op3)
