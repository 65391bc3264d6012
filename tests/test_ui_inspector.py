"""The time-series inspector: a click on the canvas plots exactly the rasters' values.

Rasters are real GeoTIFFs (EPSG:25832) written with the core writer; the canvas is in
EPSG:4326, so the click goes through a CRS transform. Expected values are read with GDAL at
the known pixel, independently of QGIS's identify used by the inspector.
"""
from __future__ import annotations

import csv

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QEvent, QPoint, Qt

from deformcast.algorithms import styles
from deformcast.algorithms.raster import make_grid, write_raster, write_stack

H, W, T, HOR, M = 6, 7, 20, 3, 4


@pytest.fixture()
def rasters(tmp_path):
    rng = np.random.default_rng(3)
    g = make_grid(320000.0, 5650000.0, 100.0, W, H, 25832)
    dates = np.datetime64("2021-01-01") + np.arange(T) * 12
    stack = np.cumsum(rng.normal(-1.0, 0.5, (T, H, W)), axis=0).astype(np.float32)
    stack[:, 0, 0] = np.nan
    fdates = dates[-1] + (np.arange(HOR) + 1) * 12
    members = rng.normal(-25.0, 3.0, (M * HOR, H, W)).astype(np.float32)
    mnames = [f"member{k} {d}" for k in range(M) for d in fdates]
    median = np.median(members.reshape(M, HOR, H, W), axis=0)
    quant = np.stack([median[-1] - 2, median[-1], median[-1] + 2])
    susc = rng.integers(1, 6, (H, W)).astype(np.float32)
    probs = rng.dirichlet(np.ones(5), (H, W)).transpose(2, 0, 1).astype(np.float32)
    exc = rng.random((2, H, W)).astype(np.float32)
    p = {
        "stack": write_stack(str(tmp_path / "stack.tif"), stack, dates, g),
        "members": write_raster(str(tmp_path / "forecast_members.tif"), members, g, mnames,
                                qml=styles.deformation_style(members[-1])),
        "median": write_raster(str(tmp_path / "forecast_median.tif"), median, g, [str(d) for d in fdates],
                               qml=styles.deformation_style(median[-1])),
        "quantiles": write_raster(str(tmp_path / "forecast_quantiles.tif"), quant, g, ["P10", "P50", "P90"],
                                  qml=styles.deformation_style(quant[1], band=2)),
        "susceptibility": write_raster(str(tmp_path / "susceptibility.tif"), susc, g, ["susceptibility class"],
                                       dtype="uint8", nodata=0, qml=styles.class_style(styles.class_labels(5))),
        "probabilities": write_raster(str(tmp_path / "class_probabilities.tif"), probs, g,
                                      [f"P(class {c + 1})" for c in range(5)], qml=styles.probability_style()),
        "exceedance": write_raster(str(tmp_path / "exceedance.tif"), exc, g, ["P(|d| >= 10 mm)", "P(|d| >= 20 mm)"],
                                   qml=styles.probability_style()),
    }
    return p, g


def _gdal_pixel(path, row, col):
    ds = gdal.Open(path)
    out = []
    for i in range(ds.RasterCount):
        b = ds.GetRasterBand(i + 1)
        v = float(b.ReadAsArray(col, row, 1, 1)[0, 0])
        nod = b.GetNoDataValue()
        out.append(np.nan if (nod is not None and not np.isnan(nod) and v == nod) else v)
    return np.array(out)


def _layers(paths):
    lyrs = {k: QgsRasterLayer(v, k, "gdal") for k, v in paths.items()}
    assert all(lyr.isValid() for lyr in lyrs.values())
    QgsProject.instance().addMapLayers(list(lyrs.values()))
    return lyrs


def test_pixel_series_equals_gdal_values(qgis_new_project, rasters):
    from deformcast.ui.inspector import pixel_series

    paths, g = rasters
    lyrs = _layers(paths)
    row, col = 4, 5
    x, y = g.pixel_centres([row], [col])
    wgs = QgsCoordinateReferenceSystem("EPSG:4326")
    utm = QgsCoordinateReferenceSystem("EPSG:25832")
    pt = QgsCoordinateTransform(utm, wgs, QgsProject.instance()).transform(QgsPointXY(x[0, 0], y[0, 0]))
    ps = pixel_series(lyrs, pt, wgs)
    assert ps.pixel == (row, col)
    np.testing.assert_allclose(ps.observed[1], _gdal_pixel(paths["stack"], row, col), rtol=0, atol=1e-5)
    assert str(ps.observed[0][0]) == "2021-01-01" and len(ps.observed[0]) == T
    mem = _gdal_pixel(paths["members"], row, col).reshape(M, HOR)
    assert sorted(ps.members) == list(range(M))
    for k in range(M):
        np.testing.assert_allclose(ps.members[k][1], mem[k], atol=1e-5)
    np.testing.assert_allclose(ps.median[1], _gdal_pixel(paths["median"], row, col), atol=1e-5)
    q = _gdal_pixel(paths["quantiles"], row, col)
    np.testing.assert_allclose([ps.quantiles["P10"][1][0], ps.quantiles["P50"][1][0], ps.quantiles["P90"][1][0]],
                               q, atol=1e-5)
    assert ps.quantiles["P90"][0][0] == ps.median[0][-1]  # final-epoch quantiles sit on the last date
    cls = _gdal_pixel(paths["susceptibility"], row, col)[0]
    assert ps.susceptibility_class == (cls, styles.class_labels(5)[int(cls) - 1])
    np.testing.assert_allclose([v for _, v in ps.class_probabilities],
                               _gdal_pixel(paths["probabilities"], row, col), atol=1e-6)
    assert [lab for lab, _ in ps.exceedance] == ["P(|d| >= 10 mm)", "P(|d| >= 20 mm)"]
    np.testing.assert_allclose([v for _, v in ps.exceedance], _gdal_pixel(paths["exceedance"], row, col), atol=1e-6)

    # the nodata pixel reads as NaN, a point outside reads as nothing
    x0, y0 = g.pixel_centres([0], [0])
    ps0 = pixel_series({"stack": lyrs["stack"]}, QgsPointXY(x0[0, 0], y0[0, 0]), utm)
    assert np.isnan(ps0.observed[1]).all()
    out = pixel_series({"stack": lyrs["stack"]}, QgsPointXY(0, 0), utm)
    assert out.pixel is None and np.isnan(out.observed[1]).all()


def test_click_on_canvas_plots_the_rasters_values(qgis_new_project, qgis_iface, qgis_canvas, rasters, tmp_path):
    from qgis.gui import QgsMapMouseEvent

    from deformcast.ui.inspector import InspectorDock

    paths, g = rasters
    lyrs = _layers(paths)
    wgs = QgsCoordinateReferenceSystem("EPSG:4326")
    qgis_canvas.setDestinationCrs(wgs)
    utm = QgsCoordinateReferenceSystem("EPSG:25832")
    tr = QgsCoordinateTransform(utm, wgs, QgsProject.instance())
    qgis_canvas.setExtent(tr.transformBoundingBox(lyrs["stack"].extent()))
    qgis_canvas.setLayers(list(lyrs.values()))
    qgis_canvas.refresh()

    dock = InspectorDock(qgis_iface, qgis_canvas)
    found = dock.auto_assign(list(lyrs.values()))
    assert set(found) == set(paths)  # every role found by file name
    dock.pick_btn.setChecked(True)
    assert qgis_canvas.mapTool() is dock.tool

    row, col = 2, 3
    x, y = g.pixel_centres([row], [col])
    pt = tr.transform(QgsPointXY(x[0, 0], y[0, 0]))
    dev = qgis_canvas.getCoordinateTransform().transform(pt)
    ev = QgsMapMouseEvent(qgis_canvas, QEvent.MouseButtonRelease, QPoint(int(round(dev.x())), int(round(dev.y()))),
                          Qt.LeftButton, Qt.LeftButton)
    seen = []
    dock.inspected.connect(seen.append)
    dock.tool.canvasReleaseEvent(ev)
    assert seen and seen[0] is dock.series
    assert dock.series.pixel == (row, col)

    # what is drawn is the rasters' values
    ax = dock.figure.axes[0]
    lines = {ln.get_gid(): ln for ln in ax.get_lines() if ln.get_gid()}
    np.testing.assert_allclose(lines["observed"].get_ydata(), _gdal_pixel(paths["stack"], row, col), atol=1e-5)
    mem = _gdal_pixel(paths["members"], row, col).reshape(M, HOR)
    for k in range(M):
        np.testing.assert_allclose(lines[f"member{k}"].get_ydata(), mem[k], atol=1e-5)
    np.testing.assert_allclose(lines["median"].get_ydata(), _gdal_pixel(paths["median"], row, col), atol=1e-5)
    q = _gdal_pixel(paths["quantiles"], row, col)
    np.testing.assert_allclose(lines["P10"].get_ydata(), [q[0]], atol=1e-5)
    np.testing.assert_allclose(lines["P90"].get_ydata(), [q[2]], atol=1e-5)
    bars = {p.get_gid(): p.get_width() for p in dock.figure.axes[1].patches}
    exc = _gdal_pixel(paths["exceedance"], row, col)
    assert bars["P(|d| >= 10 mm)"] == pytest.approx(exc[0], abs=1e-6)
    assert bars["P(|d| >= 20 mm)"] == pytest.approx(exc[1], abs=1e-6)
    probs = _gdal_pixel(paths["probabilities"], row, col)
    assert [bars[f"P(class {c + 1})"] for c in range(5)] == pytest.approx(list(probs), abs=1e-6)

    # zoom on the forecast: same data, time axis from a few epochs before the forecast
    full = ax.get_xlim()
    dock.zoom_box.setChecked(True)
    ax = dock.figure.axes[0]
    assert ax.get_xlim()[0] > full[0] and ax.get_xlim()[1] <= full[1] + 2
    zl = {ln.get_gid(): ln for ln in ax.get_lines() if ln.get_gid()}
    np.testing.assert_allclose(zl["median"].get_ydata(), _gdal_pixel(paths["median"], row, col), atol=1e-5)
    lo, hi = ax.get_ylim()
    assert lo <= np.nanmin(mem) and hi >= np.nanmax(mem)

    # exports
    png = dock.export_png(str(tmp_path / "pixel.png"))
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(dock.export_csv(str(tmp_path / "pixel.csv")), encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    obs = [float(r["value"]) for r in rows if r["series"] == "observed"]
    np.testing.assert_allclose(obs, _gdal_pixel(paths["stack"], row, col), rtol=1e-5)
    assert sum(r["series"] == "member" for r in rows) == M * HOR
    dock.pick_btn.setChecked(False)
    assert qgis_canvas.mapTool() is not dock.tool


def test_stack_without_dates_says_so(qgis_new_project, tmp_path, qgis_iface, qgis_canvas):
    from deformcast.ui.inspector import InspectorDock

    g = make_grid(320000.0, 5650000.0, 100.0, 3, 3)
    p = write_raster(str(tmp_path / "nodates.tif"), np.zeros((4, 3, 3), np.float32), g)
    lyr = QgsRasterLayer(p, "nodates", "gdal")
    QgsProject.instance().addMapLayer(lyr)
    dock = InspectorDock(qgis_iface, qgis_canvas)
    dock.set_layers(stack=lyr)
    x, y = g.pixel_centres([1], [1])
    assert dock.inspect(QgsPointXY(x[0, 0], y[0, 0]), QgsCoordinateReferenceSystem("EPSG:25832")) is None
    assert "acquisition date" in dock.info.text()
    dock.dates_param = "2020-01-01,2020-01-13,2020-01-25,2020-02-06"
    ps = dock.inspect(QgsPointXY(x[0, 0], y[0, 0]), QgsCoordinateReferenceSystem("EPSG:25832"))
    assert len(ps.observed[0]) == 4
