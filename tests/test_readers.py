"""Readers: every supported format, built from ONE known truth, must arrive at the same stack.

The truth: a 4 x 5 grid of 100 m cells in EPSG:3035 (EGMS's CRS), 8 acquisitions sampled first
every 12 then every 6 days, one interior cell with no data and one pixel with a gap. Point
formats hold one point per cell centre, except one cell with two points whose mean is the truth.
"""
from __future__ import annotations

import csv
import os
import tracemalloc

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from deformcast.algorithms.io.covariates import align_covariates
from deformcast.algorithms.io.egms import read_egms_csv
from deformcast.algorithms.io.gridding import grid_points, points_to_grid
from deformcast.algorithms.io.hdf5 import read_mintpy_h5
from deformcast.algorithms.io.importer import import_timeseries
from deformcast.algorithms.io.points import unit_factor
from deformcast.algorithms.io.sampling import sample_grid_at_points, sample_points_to_csv
from deformcast.algorithms.errors import DeformCastError
from deformcast.algorithms.io.raster import (Grid, RasterWriter, crs_equal, open_stack, read_raster, read_stack,
                                             tile_rows, write_raster)

gdal.UseExceptions()
ogr.UseExceptions()

X0, Y0, CELL, W, H = 4200000.0, 3100000.0, 100.0, 5, 4
DATES = np.datetime64("2020-01-05") + np.array([0, 12, 24, 36, 42, 48, 54, 60])
T = DATES.size
HOLE = (1, 2)      # no point / NaN in every epoch
GAP = (2, 1, 3)    # (row, col, epoch) without a value
PAIR = (0, 0)      # two points, truth +- 1.5 mm


def _srs(epsg):
    s = osr.SpatialReference()
    s.ImportFromEPSG(epsg)
    s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return s


def truth():
    t = (DATES - DATES[0]).astype(int)
    r, c = np.mgrid[0:H, 0:W]
    v = (-0.25 * t[:, None, None] * (1 + r + 0.5 * c)[None] + 2.0 * np.sin(t / 20.0)[:, None, None]
         + (r - c)[None] * 0.75)
    v = np.round(v, 3).astype(np.float32)
    v[:, HOLE[0], HOLE[1]] = np.nan
    v[GAP[2], GAP[0], GAP[1]] = np.nan
    return v


def grid3035():
    return Grid((X0, CELL, 0.0, Y0, 0.0, -CELL), _srs(3035).ExportToWkt(), W, H)


def points():
    """(xy (N,2) EPSG:3035, values (N,T) mm) reproducing the truth on the grid."""
    v = truth()
    xy, vals = [], []
    for r in range(H):
        for c in range(W):
            if (r, c) == HOLE:
                continue
            x, y = X0 + (c + 0.5) * CELL, Y0 - (r + 0.5) * CELL
            s = v[:, r, c]
            if (r, c) == PAIR:
                xy += [(x - 20, y + 20), (x + 20, y - 20)]
                vals += [s - 1.5, s + 1.5]
            else:
                xy.append((x, y))
                vals.append(s)
    return np.array(xy), np.array(vals, dtype=np.float32)


def _fmt(v):
    return "" if not np.isfinite(v) else repr(round(float(v), 4))


def write_egms_csv(path, level="L2", date_fmt="%Y%m%d", lonlat_only=False):
    xy, vals = points()
    ll = np.array(osr.CoordinateTransformation(_srs(3035), _srs(4326)).TransformPoints(xy))[:, :2]
    dnames = [str(d).replace("-", "") for d in DATES]
    if level == "L2":
        head = ["pid", "mp_type", "latitude", "longitude", "easting", "northing", "height", "height_wgs84",
                "line", "pixel", "rmse", "temporal_coherence", "amplitude_dispersion", "incidence_angle",
                "track_angle", "los_east", "los_north", "los_up", "mean_velocity", "mean_velocity_std",
                "acceleration", "acceleration_std", "seasonality", "seasonality_std"]
        if lonlat_only:
            head = [h for h in head if h not in ("easting", "northing")]
    else:
        head = ["pid", "easting", "northing", "height", "rmse", "mean_velocity", "mean_velocity_std",
                "acceleration", "acceleration_std", "seasonality", "seasonality_std"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head + dnames)
        for i, ((x, y), (lon, lat), s) in enumerate(zip(xy, ll, vals)):
            row = {"pid": f"PID{i:05d}", "mp_type": "PS", "latitude": repr(lat), "longitude": repr(lon),
                   "easting": repr(x), "northing": repr(y)}
            w.writerow([row.get(h, "1.5") for h in head] + [_fmt(v) for v in s])
    return path


def write_point_layer(path, driver, field_fmt, units_div, multipoint=False, layer="ps", extra_layer=False):
    xy, vals = points()
    drv = ogr.GetDriverByName(driver)
    if os.path.exists(path):
        drv.DeleteDataSource(path)
    ds = drv.CreateDataSource(path)
    gtype = ogr.wkbMultiPoint if multipoint else ogr.wkbPoint
    if extra_layer:
        other = ds.CreateLayer("other", _srs(3035), ogr.wkbPoint)
        other.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    lyr = ds.CreateLayer(layer, _srs(3035), gtype)
    lyr.CreateField(ogr.FieldDefn("CODE", ogr.OFTString))
    lyr.CreateField(ogr.FieldDefn("VEL", ogr.OFTReal))
    names = [field_fmt.format(str(d).replace("-", "")) for d in DATES]
    for n in names:
        fd = ogr.FieldDefn(n, ogr.OFTReal)
        fd.SetWidth(18)
        fd.SetPrecision(8)
        lyr.CreateField(fd)
    for i, ((x, y), s) in enumerate(zip(xy, vals)):
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("CODE", f"P{i}")
        f.SetField("VEL", -3.0)
        for n, v in zip(names, s):
            if np.isfinite(v):
                f.SetField(n, float(v) / units_div)
            else:
                f.SetFieldNull(n)
        pt = ogr.Geometry(ogr.wkbPoint)
        pt.AddPoint_2D(float(x), float(y))
        if multipoint:
            g = ogr.Geometry(ogr.wkbMultiPoint)
            g.AddGeometry(pt)
            pt = g
        f.SetGeometry(pt)
        lyr.CreateFeature(f)
    ds = None
    return path


def write_mintpy(path, epsg=3035, grid=None, values=None, dates=None):
    import h5py

    grid = grid or grid3035()
    v = truth() if values is None else values
    d = DATES if dates is None else dates
    gt = grid.geotransform
    with h5py.File(path, "w") as f:
        f.create_dataset("timeseries", data=(v / 1000.0).astype(np.float32))
        f.create_dataset("date", data=np.array([str(x).replace("-", "").encode() for x in d]))
        f.create_dataset("bperp", data=np.zeros(len(d), np.float32))
        f.attrs.update({"FILE_TYPE": "timeseries", "UNIT": "m", "X_FIRST": str(gt[0]), "Y_FIRST": str(gt[3]),
                        "X_STEP": str(gt[1]), "Y_STEP": str(gt[5]), "LENGTH": str(grid.height),
                        "WIDTH": str(grid.width), "REF_DATE": str(d[0]).replace("-", "")})
        if epsg:
            f.attrs["EPSG"] = str(epsg)
            f.attrs["X_UNIT"] = "meters"
        else:
            f.attrs["X_UNIT"] = "degrees"
    return path


def grid4326():
    return Grid((6.0, 0.001, 0.0, 51.0, 0.0, -0.001), _srs(4326).ExportToWkt(), W, H)


def write_licsbas(path):
    import h5py

    g = grid4326().geotransform
    with h5py.File(path, "w") as f:
        f.create_dataset("cum", data=truth())
        f.create_dataset("imdates", data=np.array([int(str(x).replace("-", "")) for x in DATES], np.int32))
        f.create_dataset("corner_lat", data=g[3] + g[5] / 2)
        f.create_dataset("corner_lon", data=g[0] + g[1] / 2)
        f.create_dataset("post_lat", data=g[5])
        f.create_dataset("post_lon", data=g[1])
        f.create_dataset("vel", data=np.zeros((H, W), np.float32))
        f.create_dataset("refarea", data=b"2:3/2:3")
    return path


def write_tif(path, names=None, metadata_dates=False, dataset_dates=False, grid=None, values=None):
    grid = grid or grid3035()
    v = truth() if values is None else values
    write_raster(path, v, grid, names, "float32", float("nan"), "<qgis/>")
    if metadata_dates or dataset_dates:
        ds = gdal.Open(path, gdal.GA_Update)
        for i, d in enumerate(DATES):
            if metadata_dates:
                ds.GetRasterBand(i + 1).SetMetadataItem("DATE", str(d))
        if dataset_dates:
            ds.SetMetadataItem("DATES", ",".join(str(d) for d in DATES))
        ds = None
    return path


def check_stack(path, grid=None, tol=1e-4):
    grid = grid or grid3035()
    info = open_stack(path)
    assert np.array_equal(info.dates, DATES)
    assert info.grid.width == grid.width and info.grid.height == grid.height
    assert np.allclose(info.grid.geotransform, grid.geotransform, atol=1e-9 * max(1, abs(grid.geotransform[0])))
    assert crs_equal(info.grid.crs_wkt, grid.crs_wkt)
    v = read_stack(info)
    np.testing.assert_allclose(v, truth(), atol=tol, equal_nan=True)
    assert os.path.exists(os.path.splitext(path)[0] + ".qml")
    ds = gdal.Open(path)
    assert ds.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert np.isnan(ds.GetRasterBand(1).GetNoDataValue())
    assert ds.GetRasterBand(1).GetDescription() == str(DATES[0])


# ----------------------------------------------------------------------------------------
# every format -> the same stack
# ----------------------------------------------------------------------------------------
def _imp(tmp_path, src, name, **kw):
    out = str(tmp_path / f"{name}.tif")
    summary = import_timeseries(str(src), out, **kw)
    assert summary["output"] == out and summary["n_epochs"] == T
    return out, summary


def test_egms_l2_csv(tmp_path):
    src = write_egms_csv(tmp_path / "EGMS_L2a_088_0297_IW2_VV.csv", "L2")
    out, s = _imp(tmp_path, src, "l2", cell_size=100)
    assert s["format"] == "egms_l2" and s["n_points"] == H * W  # 19 cells, one with two points
    check_stack(out)


def test_egms_l3_csv_and_zip(tmp_path):
    src = write_egms_csv(tmp_path / "EGMS_L3_E42N31_100km_U.csv", "L3")
    out, s = _imp(tmp_path, src, "l3", cell_size=100)
    assert s["format"] == "egms_l3"
    check_stack(out)
    import zipfile

    z = tmp_path / "EGMS_L3_E42N31_100km_U.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(src, "EGMS_L3_E42N31_100km_U.csv")
        zf.writestr("readme.txt", "metadata")
    out2, _ = _imp(tmp_path, z, "l3zip", cell_size=100)
    check_stack(out2)


def test_lonlat_csv_reprojected_to_target_crs(tmp_path):
    src = write_egms_csv(tmp_path / "lonlat.csv", "L2", lonlat_only=True)
    out, s = _imp(tmp_path, src, "ll", cell_size=100, target_crs="EPSG:3035")
    assert s["format"] == "csv" and s["crs"] == "EPSG:3035"
    check_stack(out)
    with pytest.raises(DeformCastError, match="TARGET_CRS"):
        import_timeseries(str(src), str(tmp_path / "deg.tif"), cell_size=100)
    # the same points with "Lat" / "Long" (or "lng") headers: the same stack
    text = src.read_text().splitlines()
    for lon in ("Long", "lng"):
        head = ["Lat" if h == "latitude" else lon if h == "longitude" else h for h in text[0].split(",")]
        alias = tmp_path / f"alias_{lon}.csv"
        alias.write_text("\n".join([",".join(head)] + text[1:]) + "\n")
        out2, _ = _imp(tmp_path, alias, f"ll_{lon}", cell_size=100, target_crs="EPSG:3035")
        np.testing.assert_array_equal(read_raster(out2)[0], read_raster(out)[0])


def test_shapefile_multipoints_d_fields_in_cm(tmp_path):
    src = write_point_layer(str(tmp_path / "ps_points.shp"), "ESRI Shapefile", "D{}", 10.0, multipoint=True)
    ds = ogr.Open(src)
    assert ogr.GT_Flatten(ds.GetLayer(0).GetGeomType()) == ogr.wkbMultiPoint
    ds = None
    out, s = _imp(tmp_path, src, "shp", cell_size=100, units="cm")
    assert s["format"] == "vector"
    check_stack(out)


def test_geopackage_layername_d_underscore_in_m(tmp_path):
    src = write_point_layer(str(tmp_path / "insar.gpkg"), "GPKG", "D_{}", 1000.0, extra_layer=True)
    out, _ = _imp(tmp_path, f"{src}|layername=ps", "gpkg", cell_size=100, units="m")
    check_stack(out)
    out2, _ = _imp(tmp_path, src, "gpkg2", cell_size=100, units="m", layer="ps")
    check_stack(out2)


def test_mintpy_h5(tmp_path):
    src = write_mintpy(str(tmp_path / "geo_timeseries.h5"))
    gs = read_mintpy_h5(src)
    assert gs.kind == "mintpy" and gs.factor == 1000.0
    out, s = _imp(tmp_path, src, "mintpy")
    assert s["format"] == "mintpy"
    check_stack(out)


def test_geographic_group_licsbas_mintpy_tif(tmp_path):
    """LiCSBAS is always EPSG:4326: it, a lat/lon MintPy file and a lat/lon GeoTIFF agree."""
    g = grid4326()
    out, s = _imp(tmp_path, write_licsbas(str(tmp_path / "cum.h5")), "licsbas")
    assert s["format"] == "licsbas"
    check_stack(out, g, tol=1e-5)
    out2, _ = _imp(tmp_path, write_mintpy(str(tmp_path / "ts.h5"), epsg=None, grid=g), "mintpy_ll")
    check_stack(out2, g)
    out3, _ = _imp(tmp_path, write_tif(str(tmp_path / "ll.tif"), [str(d) for d in DATES], grid=g), "tif_ll")
    check_stack(out3, g)


@pytest.mark.parametrize("conv", ["iso", "yyyymmdd", "dyyyymmdd", "band_meta", "dataset_meta",
                                  "dates_file", "dates_list"])
def test_geotiff_date_conventions(tmp_path, conv):
    names = {"iso": [str(d) for d in DATES],
             "yyyymmdd": [str(d).replace("-", "") for d in DATES],
             "dyyyymmdd": ["D" + str(d).replace("-", "") for d in DATES]}.get(conv)
    src = write_tif(str(tmp_path / "in.tif"), names, metadata_dates=conv == "band_meta",
                    dataset_dates=conv == "dataset_meta")
    dates = None
    if conv == "dates_file":
        dates = str(tmp_path / "dates.txt")
        with open(dates, "w") as fh:
            fh.write("# acquisition dates\n" + "\n".join(str(d).replace("-", "") for d in DATES) + "\n")
    elif conv == "dates_list":
        dates = ",".join(str(d) for d in DATES)
    out, s = _imp(tmp_path, src, "out", dates=dates)
    assert s["format"] == "raster"
    check_stack(out)


def test_raster_units_and_vrt(tmp_path):
    src = write_tif(str(tmp_path / "m.tif"), [str(d) for d in DATES], values=truth() / 1000.0)
    out, _ = _imp(tmp_path, src, "m", units="m")
    check_stack(out)
    vrt = str(tmp_path / "stack.vrt")
    gdal.BuildVRT(vrt, [write_tif(str(tmp_path / "mm.tif"), [str(d) for d in DATES])])
    # BuildVRT does not keep band descriptions: the DATES parameter gives them
    out2, _ = _imp(tmp_path, vrt, "vrt", dates=",".join(str(d) for d in DATES))
    check_stack(out2)


def test_gridded_target_crs_and_cell_size(tmp_path):
    src = write_tif(str(tmp_path / "in.tif"), [str(d) for d in DATES])
    out, s = _imp(tmp_path, src, "utm", target_crs="EPSG:25832")
    info = open_stack(out)
    assert crs_equal(info.grid.crs_wkt, _srs(25832).ExportToWkt())
    assert np.array_equal(info.dates, DATES) and s["crs"] == "EPSG:25832"
    out2, _ = _imp(tmp_path, src, "coarse", cell_size=200)
    info2 = open_stack(out2)
    assert info2.grid.cell_size == (200.0, 200.0)


def test_points_to_grid_in_memory_equals_streaming(tmp_path):
    xy, vals = points()
    g = grid3035()
    stack, grid = points_to_grid(xy, vals, 100, g.crs_wkt)
    assert grid.same_as(g)
    np.testing.assert_allclose(stack, truth(), atol=1e-4, equal_nan=True)
    src = read_egms_csv(write_egms_csv(tmp_path / "a.csv"), chunk_rows=3)
    stack2, grid2 = grid_points(src, 100)
    assert grid2.same_as(g)
    np.testing.assert_allclose(stack2, stack, atol=1e-5, equal_nan=True)
    xy2, vals2 = src.load()
    assert xy2.shape == xy.shape and vals2.shape == vals.shape


def test_results_back_on_points(tmp_path):
    src = write_egms_csv(tmp_path / "pts.csv", "L2")
    out, _ = _imp(tmp_path, src, "grid", cell_size=100)
    xy, vals = points()
    got = sample_grid_at_points(out, xy, grid3035().crs_wkt)
    assert got.shape == (xy.shape[0], T)
    # single points get their own series back; the pair gets the mean of the two
    np.testing.assert_allclose(got[2:], vals[2:], atol=1e-4, equal_nan=True)
    np.testing.assert_allclose(got[0], vals[:2].mean(axis=0), atol=1e-4)
    # the same points given in lon/lat land in the same cells; a point far away gets NaN
    ll = np.array(osr.CoordinateTransformation(_srs(3035), _srs(4326)).TransformPoints(xy))[:, :2]
    got_ll = sample_grid_at_points(out, np.vstack([ll, [[0.0, 0.0]]]), _srs(4326).ExportToWkt())
    np.testing.assert_allclose(got_ll[:-1], got, atol=1e-6, equal_nan=True)
    assert np.all(np.isnan(got_ll[-1]))


# ----------------------------------------------------------------------------------------
# covariates
# ----------------------------------------------------------------------------------------
def test_align_covariates_resampling_by_type(tmp_path):
    g = grid3035()
    # continuous DEM in another CRS (EPSG:25832, 30 m): a plane in 3035 coordinates, bilinear
    ct = osr.CoordinateTransformation(_srs(3035), _srs(25832))
    c = np.array(ct.TransformPoints([(X0 - 300, Y0 + 300), (X0 + 800, Y0 - 700)]))[:, :2]
    ex0, ey1 = c[:, 0].min(), c[:, 1].max()
    dem_grid = Grid((float(ex0), 30.0, 0.0, float(ey1), 0.0, -30.0), _srs(25832).ExportToWkt(),
                    int((c[:, 0].max() - ex0) / 30) + 2, int((ey1 - c[:, 1].min()) / 30) + 2)
    xx, yy = dem_grid.pixel_centres()
    back = np.array(osr.CoordinateTransformation(_srs(25832), _srs(3035)).TransformPoints(
        np.c_[xx.ravel(), yy.ravel()]))[:, :2]
    dem = (100.0 + 0.01 * (back[:, 0] - X0) - 0.02 * (back[:, 1] - Y0)).reshape(xx.shape)
    write_raster(str(tmp_path / "dem.tif"), dem.astype(np.float32), dem_grid, qml="<qgis/>")
    # classes (uint8) at 50 m in 3035, 2 x 2 sub-cells per stack cell, class = 1 + (row + col) % 3
    cls_grid = Grid((X0 - 100, 50.0, 0.0, Y0 + 100, 0.0, -50.0), g.crs_wkt, 2 * W + 4, 2 * H + 4)
    r, cc = np.mgrid[0:cls_grid.height, 0:cls_grid.width]
    cls = (1 + ((r - 2) // 2 + (cc - 2) // 2) % 3).astype(np.uint8)
    write_raster(str(tmp_path / "lithology.tif"), cls, cls_grid, dtype="uint8", nodata=0, qml="<qgis/>")
    # a second file also named dem (other folder) and a two-band raster
    os.makedirs(tmp_path / "b")
    write_raster(str(tmp_path / "b" / "dem.tif"), np.stack([dem, dem + 1]).astype(np.float32), dem_grid,
                 qml="<qgis/>")
    cov = align_covariates([str(tmp_path / "dem.tif"), str(tmp_path / "lithology.tif"),
                                    str(tmp_path / "b" / "dem.tif")], g)
    assert set(cov) == {"dem", "lithology", "dem_2", "dem_b2"}
    assert all(a.shape == (H, W) and a.dtype == np.float32 for a in cov.values())
    x, y = g.pixel_centres()
    np.testing.assert_allclose(cov["dem"], 100 + 0.01 * (x - X0) - 0.02 * (y - Y0), atol=0.05)
    rr, ccc = np.mgrid[0:H, 0:W]
    np.testing.assert_array_equal(cov["lithology"], (1 + (rr + ccc) % 3).astype(np.float32))
    np.testing.assert_allclose(cov["dem_b2"], cov["dem_2"] + 1, atol=1e-4)


def test_covariate_without_overlap_is_refused(tmp_path):
    far = Grid((X0 + 1e6, 100.0, 0.0, Y0, 0.0, -100.0), grid3035().crs_wkt, 3, 3)
    p = write_raster(str(tmp_path / "far_away_mask.tif"), np.ones((3, 3), np.uint8), far, dtype="uint8",
                     qml="<qgis/>")
    with pytest.raises(DeformCastError, match="far_away_mask.tif.*does not overlap"):
        align_covariates([p], grid3035())


# ----------------------------------------------------------------------------------------
# streaming: memory does not grow with the number of rows
# ----------------------------------------------------------------------------------------
def _big_csv(path, n, t=16, side=20, seed=0):
    rng = np.random.default_rng(seed)
    x = X0 + rng.uniform(0, side * CELL, n)
    y = Y0 - rng.uniform(0, side * CELL, n)
    x[:2] = [X0 + 1, X0 + side * CELL - 1]
    y[:2] = [Y0 - 1, Y0 - side * CELL + 1]
    v = np.round(rng.normal(0, 5, (n, t)), 2)
    dates = [str(np.datetime64("2019-01-01") + 6 * k).replace("-", "") for k in range(t)]
    with open(path, "w") as fh:
        fh.write("pid,easting,northing,height,rmse,mean_velocity," + ",".join(dates) + "\n")
        body = np.column_stack([np.arange(n), x, y, np.zeros(n), np.ones(n), v.mean(axis=1), v])
        np.savetxt(fh, body, delimiter=",", fmt=["%d", "%.2f", "%.2f", "%.1f", "%.1f", "%.3f"] + ["%.2f"] * t)
    return path, v


def _peak(src):
    tracemalloc.start()
    stack, grid = grid_points(src, 100)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, stack, grid


def test_csv_streaming_memory_does_not_grow_with_rows(tmp_path):
    small, _ = _big_csv(str(tmp_path / "small.csv"), 5_000)
    big, vbig = _big_csv(str(tmp_path / "big.csv"), 50_000, seed=1)
    assert os.path.getsize(big) > 8 * os.path.getsize(small)
    p_small, _, g1 = _peak(read_egms_csv(small, chunk_rows=2000))
    p_big, stack, g2 = _peak(read_egms_csv(big, chunk_rows=2000))
    assert g1.same_as(g2) and g2.shape == (20, 20)
    # a whole-file reader would need >= 50k x 16 x 4 bytes = 3.2 MB for the values alone
    assert p_big < 1.3 * p_small + 200_000, (p_small, p_big)
    assert p_big < 3_000_000, p_big
    # and the streamed grid is right: overall mean of every point = mean over cells weighted by counts
    assert np.isfinite(stack).all()
    assert abs(float(np.nanmean(stack)) - float(vbig.mean())) < 0.1


# ----------------------------------------------------------------------------------------
# bad input -> messages that name the fix
# ----------------------------------------------------------------------------------------
def test_no_dates_found(tmp_path):
    p = tmp_path / "nodates.csv"
    p.write_text("pid,easting,northing,velocity\n1,4200050,3099950,3.0\n")
    with pytest.raises(DeformCastError, match="No date columns.*YYYYMMDD"):
        import_timeseries(str(p), str(tmp_path / "o.tif"), cell_size=100)
    src = write_tif(str(tmp_path / "plain.tif"))
    with pytest.raises(DeformCastError, match="DATES parameter"):
        import_timeseries(src, str(tmp_path / "o.tif"))
    assert not os.path.exists(tmp_path / "o.tif")


def test_duplicated_and_unsorted_dates(tmp_path):
    names = [str(d) for d in DATES]
    dup = names[:]
    dup[3] = dup[2]
    with pytest.raises(DeformCastError, match="twice"):
        import_timeseries(write_tif(str(tmp_path / "dup.tif"), dup), str(tmp_path / "o.tif"))
    uns = names[:]
    uns[2], uns[5] = uns[5], uns[2]
    with pytest.raises(DeformCastError, match="not in time order"):
        import_timeseries(write_tif(str(tmp_path / "uns.tif"), uns), str(tmp_path / "o.tif"))
    with pytest.raises(DeformCastError, match="not in time order"):
        import_timeseries(write_mintpy(str(tmp_path / "u.h5"), dates=DATES[[0, 2, 1, 3, 4, 5, 6, 7]]),
                                  str(tmp_path / "o.tif"))
    p = tmp_path / "dupcols.csv"
    p.write_text("pid,easting,northing,20200105,D20200105\n1,4200050,3099950,1,2\n")
    with pytest.raises(DeformCastError, match="two columns for the date 2020-01-05"):
        read_egms_csv(str(p))
    assert not os.path.exists(tmp_path / "o.tif")


def test_all_nodata_leaves_no_output(tmp_path):
    src = write_tif(str(tmp_path / "nan.tif"), [str(d) for d in DATES], values=np.full((T, H, W), np.nan, np.float32))
    out = tmp_path / "o.tif"
    with pytest.raises(DeformCastError, match="no valid displacement"):
        import_timeseries(src, str(out))
    assert not os.path.exists(out) and not os.path.exists(str(out) + ".part.tif")


def test_points_without_cell_size(tmp_path):
    src = write_egms_csv(tmp_path / "p.csv", "L3")
    with pytest.raises(DeformCastError, match="CELL_SIZE is required"):
        import_timeseries(str(src), str(tmp_path / "o.tif"))


def test_unknown_format(tmp_path):
    p = tmp_path / "notes.dat"
    p.write_bytes(b"\x00\x01 this is not InSAR data")
    with pytest.raises(DeformCastError, match="Unknown input format"):
        import_timeseries(str(p), str(tmp_path / "o.tif"))
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("velocity", data=np.zeros((2, 2)))
    with pytest.raises(DeformCastError, match="neither a MintPy.*LiCSBAS"):
        import_timeseries(str(tmp_path / "other.h5"), str(tmp_path / "o.tif"))


def test_multipart_and_radar_coded_inputs(tmp_path):
    p = str(tmp_path / "multi.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(p)
    lyr = ds.CreateLayer("m", _srs(3035), ogr.wkbMultiPoint)
    lyr.CreateField(ogr.FieldDefn("D20200105", ogr.OFTReal))
    f = ogr.Feature(lyr.GetLayerDefn())
    f.SetField("D20200105", 1.0)
    f.SetGeometry(ogr.CreateGeometryFromWkt("MULTIPOINT ((4200050 3099950),(4200150 3099950))"))
    lyr.CreateFeature(f)
    ds = None
    with pytest.raises(DeformCastError, match="Multipart to singleparts"):
        import_timeseries(p, str(tmp_path / "o.tif"), cell_size=100)
    import h5py

    h = str(tmp_path / "timeseries.h5")
    with h5py.File(h, "w") as fh:
        fh.create_dataset("timeseries", data=np.zeros((2, 2, 2), np.float32))
        fh.create_dataset("date", data=np.array([b"20200101", b"20200113"]))
    with pytest.raises(DeformCastError, match="geocode"):
        import_timeseries(h, str(tmp_path / "o.tif"))


def test_unknown_units():
    with pytest.raises(DeformCastError, match="mm, cm, m"):
        unit_factor("inch")


def test_regularise_on_import(tmp_path):
    src = write_tif(str(tmp_path / "in.tif"), [str(d) for d in DATES])
    out = str(tmp_path / "reg.tif")
    s = import_timeseries(src, out, regularise=6)
    info = open_stack(out)
    assert np.all(np.diff(info.dates).astype(int) == 6) and info.dates[0] == DATES[0]
    assert s["n_epochs"] == 11  # 60 days / 6 + 1
    v = read_stack(info)
    np.testing.assert_allclose(v[0], truth()[0], equal_nan=True)
    # 2020-01-11 lies halfway between the first two acquisitions
    np.testing.assert_allclose(v[1], (truth()[0] + truth()[1]) / 2, atol=1e-4, equal_nan=True)
    arr, grid, names = read_raster(out)
    assert names[1] == "2020-01-11"
    out2 = str(tmp_path / "reref.tif")
    import_timeseries(src, out2, regularise=6, rereference=True)
    v2 = read_stack(open_stack(out2))
    np.testing.assert_allclose(v2, v - v[0:1], atol=1e-5, equal_nan=True)
    assert np.nanmax(np.abs(v2[0])) == 0.0


def test_cancel_leaves_no_output(tmp_path):
    from deformcast.algorithms.errors import Cancelled
    from deformcast.algorithms.progress import Progress

    src = write_egms_csv(tmp_path / "p.csv", "L2")
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 2

    out = tmp_path / "o.tif"
    with pytest.raises(Cancelled):
        import_timeseries(str(src), str(out), cell_size=100, chunk_rows=4,
                                  progress=Progress(is_cancelled=cancelled))
    assert not os.path.exists(out) and not os.path.exists(str(out) + ".part.tif")
    tif = write_tif(str(tmp_path / "in.tif"), [str(d) for d in DATES])
    with pytest.raises(Cancelled):
        import_timeseries(tif, str(out), progress=Progress(is_cancelled=lambda: True))
    assert not os.path.exists(out) and not os.path.exists(str(out) + ".part.tif")


def test_sample_points_to_csv(tmp_path):
    src = write_point_layer(str(tmp_path / "ps.shp"), "ESRI Shapefile", "D{}", 1.0, multipoint=True)
    stack = str(tmp_path / "grid.tif")
    import_timeseries(src, stack, cell_size=100)
    out = str(tmp_path / "at_points.csv")
    s = sample_points_to_csv(stack, src, out)
    xy, vals = points()
    assert s["n_points"] == xy.shape[0] and s["columns"] == [str(d) for d in DATES]
    with open(out) as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "x", "y"] + [str(d) for d in DATES]
    got = np.array([[float(v) if v else np.nan for v in r[3:]] for r in rows[1:]])
    np.testing.assert_allclose(np.array([[float(r[1]), float(r[2])] for r in rows[1:]]), xy)
    np.testing.assert_allclose(got[2:], vals[2:], atol=1e-3, equal_nan=True)
    np.testing.assert_allclose(got[0], vals[:2].mean(axis=0), atol=1e-3)
    assert [r[0] for r in rows[1:4]] == ["0", "1", "2"]  # feature ids
    # EGMS CSV: the pid column is the id
    csv_src = write_egms_csv(tmp_path / "e.csv", "L3")
    sample_points_to_csv(stack, str(csv_src), out)
    with open(out) as fh:
        assert next(csv.reader(fh)) and next(csv.reader(fh))[0] == "PID00000"
    with pytest.raises(DeformCastError, match="not a point file"):
        sample_points_to_csv(stack, stack, out)


def test_mintpy_crs_from_utm_zone_and_missing_crs(tmp_path):
    import h5py

    p = write_mintpy(str(tmp_path / "utm.h5"), epsg=None)
    with h5py.File(p, "a") as f:
        f.attrs["X_UNIT"] = "meters"
        f.attrs["UTM_ZONE"] = "32N"
    assert crs_equal(read_mintpy_h5(p).grid.crs_wkt, _srs(32632).ExportToWkt())
    with h5py.File(p, "a") as f:
        del f.attrs["UTM_ZONE"]
    with pytest.raises(DeformCastError, match="EPSG"):
        read_mintpy_h5(p)


def test_a_raster_written_in_blocks_gets_tiles_that_the_blocks_fill(tmp_path, monkeypatch):
    """Blocks of 48 rows give 16-row tiles, 64 rows 64-row tiles; the values are those written, and no
    tile is written twice (a file of 256-row tiles written so grew by half in issue 17's benchmark). With DEFLATE,
    whose small tiles compress nearly as well as large ones (ZSTD 1's lose 10 % here, the layout is the same)."""
    monkeypatch.setenv("DEFORMCAST_COMPRESS", "DEFLATE")
    assert [tile_rows(r) for r in (64, 128, 48, 40, 512, 7)] == [64, 128, 16, 16, 256, 16]
    g = Grid((0.0, 10.0, 0.0, 0.0, 0.0, -10.0), "", 200, 160)
    rng = np.random.default_rng(3)
    a = np.round(rng.normal(size=(12, 160, 200)), 1).astype(np.float32)   # compressible, as forecasts are
    sizes = {}
    cache = gdal.GetCacheMax()
    gdal.SetCacheMax(2 ** 20)   # a small cache: a half-filled tile would be flushed and written again
    try:
        _write_blocks(tmp_path, g, a, sizes)
    finally:
        gdal.SetCacheMax(cache)
    assert sizes[48] < 1.1 * sizes[None] and sizes[64] < 1.1 * sizes[None]


def _write_blocks(tmp_path, g, a, sizes):
    for rows in (48, 64, None):
        p = str(tmp_path / f"w{rows}.tif")
        with RasterWriter(p, g, 12, write_rows=rows) as w:
            for r0 in range(0, 160, rows or 160):
                w.write(a[:, r0:r0 + (rows or 160)], r0)
        ds = gdal.Open(p)
        assert ds.GetRasterBand(1).GetBlockSize()[1] == {48: 16, 64: 64, None: 256}[rows]
        assert np.array_equal(ds.ReadAsArray(), a)
        sizes[rows] = os.path.getsize(p)


def test_written_rasters_are_zstd_compressed_unless_the_environment_names_another(tmp_path, monkeypatch):
    """Every raster DeformCast writes is compressed with ZSTD (level 1) where GDAL offers it, else DEFLATE; nodata areas
    shrink; ``DEFORMCAST_COMPRESS=DEFLATE`` (software older than GDAL 2.3) or ``NONE`` give those; the values are
    the same whichever."""
    from deformcast.algorithms.io import raster

    g = Grid((X0, CELL, 0.0, Y0, 0.0, -CELL), _srs(3035).ExportToWkt(), 128, 96)
    a = np.full((3, 96, 128), np.nan, np.float32)
    a[:, :10] = np.random.default_rng(1).normal(0, 3, (3, 10, 128))     # mostly nodata, like gridded points
    offered = "ZSTD" in (gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST") or "")
    sizes = {}
    for env, expect in (("", "ZSTD" if offered else "DEFLATE"), ("DEFLATE", "DEFLATE"), ("NONE", None)):
        monkeypatch.setenv("DEFORMCAST_COMPRESS", env)
        p = str(tmp_path / f"c{env or 'default'}.tif")
        with RasterWriter(p, g, 3) as w:
            w.write(a)
        ds = gdal.Open(p)
        assert ds.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION") == expect
        np.testing.assert_array_equal(ds.ReadAsArray(), a)
        sizes[env] = os.path.getsize(p)
    assert sizes[""] < 0.3 * sizes["NONE"] and sizes["DEFLATE"] < 0.3 * sizes["NONE"]
    assert raster.write_compression()[0] == "COMPRESS=NONE"


def test_import_says_what_a_change_of_cadence_means(tmp_path):
    """A record at 6 days that went on at 12: imported as it is, the log warns and names STEP_DAYS=12;
    regularised at the median (6 days) it notes the interpolated recent epochs; at STEP_DAYS=12 nothing is said."""
    from deformcast.algorithms.progress import Progress

    dates = np.concatenate([np.datetime64("2019-01-01") + np.arange(60) * 6,
                            np.datetime64("2019-01-01") + 59 * 6 + np.arange(1, 41) * 12])
    g = grid3035()
    v = np.random.default_rng(0).normal(0, 1, (dates.size,) + g.shape).astype(np.float32)
    src = str(tmp_path / "mixed.tif")
    write_raster(src, v, g, [str(d) for d in dates], "float32", float("nan"), "<qgis/>")
    logs = {}
    for key, reg in (("as_is", False), ("median", True), ("recent", 12)):
        logs[key] = []
        import_timeseries(src, str(tmp_path / f"{key}.tif"), regularise=reg, progress=Progress(on_log=logs[key].append))
    assert any("6 days apart over the record but 12 days" in m and "STEP_DAYS=12" in m for m in logs["as_is"])
    assert any("regularised at 6 days" in m and "STEP_DAYS=12 keeps" in m for m in logs["median"])
    assert not any("12 days apart" in m or "regularised at" in m for m in logs["recent"])


def test_coordinates_that_cannot_be_in_their_crs_are_refused(tmp_path):
    """'easting'/'northing' in UTM (a CSV not from EGMS) were read as EPSG:3035 and 'lon'/'lat' holding metres as
    degrees: the stack landed far from its place without a word. Both are refused naming the span and the fix;
    the same points in EPSG:3035 and in degrees are read."""
    dates = "20200105,20200117,20200129"
    utm = tmp_path / "utm.csv"
    utm.write_text(f"pid,easting,northing,{dates}\n1,512345.5,5712345.5,0,-1,-2\n2,512545.5,5712345.5,0,-2,-4\n")
    span = r"x 512346 to 512546, y 5712346 to 5712346: outside Europe in that CRS.*GeoPackage"
    with pytest.raises(DeformCastError, match=span):
        import_timeseries(str(utm), str(tmp_path / "utm.tif"), cell_size=100)
    assert not (tmp_path / "utm.tif").exists()
    laea = tmp_path / "laea.csv"
    laea.write_text(f"pid,easting,northing,{dates}\n1,4212345.5,3112345.5,0,-1,-2\n2,4212545.5,3112345.5,0,-2,-4\n")
    import_timeseries(str(laea), str(tmp_path / "laea.tif"), cell_size=100)
    metres = tmp_path / "metres.csv"
    metres.write_text(f"id,lat,lon,{dates}\n1,5712345.5,512345.5,0,-1,-2\n2,5712345.5,512545.5,0,-2,-4\n")
    with pytest.raises(DeformCastError, match=r"beyond 180 / 90 degrees.*projected CRS"):
        import_timeseries(str(metres), str(tmp_path / "m.tif"), cell_size=100, target_crs="EPSG:32632")
    deg = tmp_path / "deg.csv"
    deg.write_text(f"id,lat,lon,{dates}\n1,51.5,9.2,0,-1,-2\n2,51.5,9.201,0,-2,-4\n")
    import_timeseries(str(deg), str(tmp_path / "deg.tif"), cell_size=100, target_crs="EPSG:32632")


def test_a_fill_value_in_point_series_is_dropped_before_cells_are_averaged(tmp_path):
    """-9999 written for missing dates in a point file (a format without NaN): read as no data before the two
    points of each cell are averaged, where the mean (-9999 + 3) / 2 would no longer be recognisable. The
    stack equals that of the same file with empty fields there, and the warning is given once."""
    import warnings

    rng = np.random.default_rng(7)
    n_cells, t = 40, 30
    dates = [str(np.datetime64("2020-01-01") + 12 * k).replace("-", "") for k in range(t)]
    x = 4200050.0 + 100.0 * (np.arange(n_cells) % 8)
    y = 3099950.0 - 100.0 * (np.arange(n_cells) // 8)
    vals = np.round(np.cumsum(rng.normal(-0.5, 1.0, (2 * n_cells, t)), axis=1), 2)
    miss = rng.random(vals.shape) < 0.05

    def write(path, fill):
        with open(path, "w") as fh:
            fh.write("pid,easting,northing," + ",".join(dates) + "\n")
            for i in range(2 * n_cells):      # two points in every cell
                row = [fill if miss[i, k] else f"{vals[i, k]:.2f}" for k in range(t)]
                fh.write(f"{i},{x[i % n_cells] + (i // n_cells) * 10:.1f},{y[i % n_cells]:.1f}," + ",".join(row) + "\n")
        return str(path)

    a = write(tmp_path / "fill.csv", "-9999")
    b = write(tmp_path / "empty.csv", "")
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        import_timeseries(a, str(tmp_path / "a.tif"), cell_size=100)
    said = [str(w.message) for w in got if "far beyond all others" in str(w.message)]
    assert len(said) == 1 and "equal -9999" in said[0] and "first 80 points of 'fill.csv'" in said[0]
    import_timeseries(b, str(tmp_path / "b.tif"), cell_size=100)
    sa, sb = read_raster(str(tmp_path / "a.tif"))[0], read_raster(str(tmp_path / "b.tif"))[0]
    np.testing.assert_array_equal(sa, sb)
    assert np.nanmin(sa) > -1000


def test_point_values_in_metres_are_warned_about_at_import(tmp_path):
    """A CSV whose values are metres, imported with the default UNITS=mm: the import says so and names UNITS=m
    (before, the first word came from the main job, naming a band unit the user never wrote); with UNITS=m the
    values are converted and nothing is said."""
    import warnings

    rng = np.random.default_rng(8)
    t = 40
    dates = [str(np.datetime64("2020-01-01") + 12 * k).replace("-", "") for k in range(t)]
    vals = np.cumsum(rng.normal(-1.0, 2.0, (30, t)), axis=1) / 1000.0      # metres
    p = tmp_path / "metres.csv"
    with open(p, "w") as fh:
        fh.write("pid,easting,northing," + ",".join(dates) + "\n")
        for i in range(30):
            fh.write(f"{i},{4200050 + 100 * (i % 6)},{3099950 - 100 * (i // 6)}," + ",".join(f"{v:.5f}" for v in vals[i]) + "\n")

    def said(**kw):
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            out = import_timeseries(str(p), str(tmp_path / f"m_{len(kw)}.tif"), cell_size=100, **kw)
        return out, [str(w.message) for w in got if "looks like metres" in str(w.message)]

    out, msgs = said()
    assert len(msgs) == 1 and "give UNITS=m" in msgs[0] and out["units_warning"] == msgs[0]
    out, msgs = said(units="m")
    assert msgs == [] and "units_warning" not in out
    assert np.nanmax(np.abs(read_raster(out["output"])[0])) > 20      # converted to mm
