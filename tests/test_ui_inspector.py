"""The time-series inspector: what it draws is exactly the rasters' values (or the documented
percentiles, means and differences of them), for one run only.

Rasters are real GeoTIFFs (EPSG:25832) written with the core writer; the canvas is in
EPSG:4326, so clicks go through a CRS transform. Expected values are read with GDAL at the
known pixels, independently of the inspector's reader; polygon membership is decided
independently with matplotlib's point-in-polygon on the pixel centres.
"""
from __future__ import annotations

import csv

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QEvent, QPoint, Qt

from deformcast.algorithms.io import styles
from deformcast.algorithms.io.raster import make_grid, write_raster, write_stack

H, W, T, HOR, M = 6, 7, 20, 3, 6
WGS = "EPSG:4326"
UTM = "EPSG:25832"


def _write_run(folder, seed=3, members=True, quantiles=True):
    """A run's rasters in ``folder`` (file names as the workflow writes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    g = make_grid(320000.0, 5650000.0, 100.0, W, H, 25832)
    dates = np.datetime64("2021-01-01") + np.arange(T) * 12
    stack = np.cumsum(rng.normal(-1.0, 0.5, (T, H, W)), axis=0).astype(np.float32)
    stack[:, 0, 0] = np.nan
    fdates = dates[-1] + (np.arange(HOR) + 1) * 12
    mem = rng.normal(-25.0, 3.0, (M * HOR, H, W)).astype(np.float32)
    mnames = [f"member{k} {d}" for k in range(M) for d in fdates]
    median = np.median(mem.reshape(M, HOR, H, W), axis=0)
    quant = np.stack([median[-1] - 2, median[-1], median[-1] + 2])
    later = rng.normal(-24.0, 2.0, (HOR + 1, H, W)).astype(np.float32)   # first date = the stack's last
    susc = rng.integers(1, 6, (H, W)).astype(np.float32)
    probs = rng.dirichlet(np.ones(5), (H, W)).transpose(2, 0, 1).astype(np.float32)
    exc = rng.random((2, H, W)).astype(np.float32)
    p = {
        "stack": write_stack(str(folder / "stack.tif"), stack, dates, g),
        "later": write_stack(str(folder / "future_observed.tif"), later, np.concatenate([dates[-1:], fdates]), g),
        "median": write_raster(str(folder / "forecast_median.tif"), median, g, [str(d) for d in fdates],
                               qml=styles.deformation_style(median[-1])),
        "susceptibility": write_raster(str(folder / "susceptibility.tif"), susc, g, ["susceptibility class"],
                                       dtype="uint8", nodata=0, qml=styles.class_style(styles.class_labels(5))),
        "probabilities": write_raster(str(folder / "class_probabilities.tif"), probs, g,
                                      [f"P(class {c + 1})" for c in range(5)], qml=styles.probability_style()),
        "exceedance": write_raster(str(folder / "exceedance.tif"), exc, g, ["P(|d| >= 10 mm)", "P(|d| >= 20 mm)"],
                                   qml=styles.probability_style()),
    }
    if members:
        p["members"] = write_raster(str(folder / "forecast_members.tif"), mem, g, mnames,
                                    qml=styles.deformation_style(mem[-1]))
    if quantiles:
        p["quantiles"] = write_raster(str(folder / "forecast_quantiles.tif"), quant, g, ["P10", "P50", "P90"],
                                      qml=styles.deformation_style(quant[1], band=2))
    return p, g


@pytest.fixture()
def rasters(tmp_path):
    return _write_run(tmp_path)


def _gdal_pixel(path, row, col):
    ds = gdal.Open(path)
    out = []
    for i in range(ds.RasterCount):
        b = ds.GetRasterBand(i + 1)
        v = float(b.ReadAsArray(col, row, 1, 1)[0, 0])
        nod = b.GetNoDataValue()
        out.append(np.nan if (nod is not None and not np.isnan(nod) and v == nod) else v)
    return np.array(out)


def _gdal_all(path):
    ds = gdal.Open(path)
    a = ds.ReadAsArray().astype(np.float64).reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize)
    for i in range(ds.RasterCount):
        nod = ds.GetRasterBand(i + 1).GetNoDataValue()
        if nod is not None and not np.isnan(nod):
            a[i][a[i] == nod] = np.nan
    return a


def _layers(paths):
    lyrs = {k: QgsRasterLayer(v, k, "gdal") for k, v in paths.items()}
    assert all(lyr.isValid() for lyr in lyrs.values())
    QgsProject.instance().addMapLayers(list(lyrs.values()))
    return lyrs


def _to_wgs():
    return QgsCoordinateTransform(QgsCoordinateReferenceSystem(UTM), QgsCoordinateReferenceSystem(WGS),
                                  QgsProject.instance())


def _centre(g, row, col, wgs=True):
    x, y = g.pixel_centres([row], [col])
    pt = QgsPointXY(x[0, 0], y[0, 0])
    return _to_wgs().transform(pt) if wgs else pt


def _canvas(canvas, lyrs):
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem(WGS))
    canvas.setExtent(_to_wgs().transformBoundingBox(lyrs["stack"].extent()))
    canvas.setLayers(list(lyrs.values()))
    canvas.refresh()


def _lines(dock):
    return {ln.get_gid(): ln for ln in dock.figure.axes[0].get_lines() if ln.get_gid()}


def _csv(path):
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _series(rows, pick, series):
    return np.array([float(r["value"]) if r["value"] else np.nan for r in rows
                     if r["pick"] == pick and r["series"] == series])


def _vertex_markers(canvas):
    from qgis.gui import QgsVertexMarker

    return [i for i in canvas.scene().items() if isinstance(i, QgsVertexMarker) and i.isVisible()]


def test_pixel_series_equals_gdal_values(qgis_new_project, rasters):
    from deformcast.ui.inspector import fan, pixel_series

    paths, g = rasters
    lyrs = _layers(paths)
    row, col = 4, 5
    ps = pixel_series(lyrs, _centre(g, row, col), QgsCoordinateReferenceSystem(WGS))
    assert ps.pixel == (row, col)
    np.testing.assert_allclose(ps.observed[1], _gdal_pixel(paths["stack"], row, col), rtol=0, atol=1e-5)
    assert str(ps.observed[0][0]) == "2021-01-01" and len(ps.observed[0]) == T
    mem = _gdal_pixel(paths["members"], row, col).reshape(M, HOR)
    assert sorted(ps.members) == list(range(M))
    for k in range(M):
        np.testing.assert_allclose(ps.members[k][1], mem[k], atol=1e-5)
    # the fans: percentiles across the members at every lead step
    f = fan(ps)
    for p in (5, 10, 50, 90, 95):
        np.testing.assert_allclose(f[p][1], np.percentile(mem, p, axis=0), atol=1e-5)
        assert list(f[p][0]) == list(ps.median[0])
    np.testing.assert_allclose(ps.median[1], _gdal_pixel(paths["median"], row, col), atol=1e-5)
    # later observations: only the dates after the forecast start (the stack's last date dropped)
    assert list(ps.later[0]) == list(ps.median[0])
    np.testing.assert_allclose(ps.later[1], _gdal_pixel(paths["later"], row, col)[1:], atol=1e-5)
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
    utm = QgsCoordinateReferenceSystem(UTM)
    ps0 = pixel_series({"stack": lyrs["stack"]}, _centre(g, 0, 0, wgs=False), utm)
    assert np.isnan(ps0.observed[1]).all()
    out = pixel_series({"stack": lyrs["stack"]}, QgsPointXY(0, 0), utm)
    assert out.pixel is None and np.isnan(out.observed[1]).all()


def test_click_on_canvas_plots_the_rasters_values(qgis_new_project, qgis_iface, qgis_canvas, rasters, tmp_path):
    from qgis.gui import QgsMapMouseEvent

    from deformcast.ui.inspector import InspectorDock

    paths, g = rasters
    lyrs = _layers(paths)
    _canvas(qgis_canvas, lyrs)
    dock = InspectorDock(qgis_iface, qgis_canvas)
    found = dock.auto_assign(list(lyrs.values()))
    assert set(found) == set(paths)  # every role found by file name
    assert dock.missing == []
    dock.pick_btn.setChecked(True)
    assert qgis_canvas.mapTool() is dock.tool
    n_markers = len(_vertex_markers(qgis_canvas))

    row, col = 2, 3
    dev = qgis_canvas.getCoordinateTransform().transform(_centre(g, row, col))
    ev = QgsMapMouseEvent(qgis_canvas, QEvent.MouseButtonRelease, QPoint(int(round(dev.x())), int(round(dev.y()))),
                          Qt.LeftButton, Qt.LeftButton)
    seen = []
    dock.inspected.connect(seen.append)
    dock.tool.canvasReleaseEvent(ev)
    assert seen and seen[0] is dock.series
    assert dock.series.pixel == (row, col)
    # a marker at the picked pixel, in the colour of its curves
    markers = _vertex_markers(qgis_canvas)
    assert len(markers) == n_markers + 1
    lines = _lines(dock)
    assert len(dock.marks.items) == 1 and dock.marks.items[0][0] in markers
    assert dock.marks.items[0][0].color().name() == lines["observed:0"].get_color() == lines["median:0"].get_color()

    # what is drawn is the rasters' values
    obs = _gdal_pixel(paths["stack"], row, col)
    np.testing.assert_allclose(lines["observed:0"].get_ydata(), obs, atol=1e-5)
    np.testing.assert_allclose(lines["later:0"].get_ydata(), _gdal_pixel(paths["later"], row, col)[1:], atol=1e-5)
    mem = _gdal_pixel(paths["members"], row, col).reshape(M, HOR)
    assert not any(k.startswith("member") for k in lines)  # fans, not spaghetti, by default
    gids = {c.get_gid() for c in dock.figure.axes[0].collections}
    assert {"fan P5-P95:0", "fan P10-P90:0"} <= gids
    dock.members_box.setChecked(True)
    lines = _lines(dock)
    for k in range(M):
        np.testing.assert_allclose(lines[f"member{k}:0"].get_ydata(), mem[k], atol=1e-5)
    np.testing.assert_allclose(lines["median:0"].get_ydata(), _gdal_pixel(paths["median"], row, col), atol=1e-5)
    q = _gdal_pixel(paths["quantiles"], row, col)
    np.testing.assert_allclose(lines["P10:0"].get_ydata(), [q[0]], atol=1e-5)
    np.testing.assert_allclose(lines["P90:0"].get_ydata(), [q[2]], atol=1e-5)
    bars = {p.get_gid(): p.get_width() for p in dock.figure.axes[1].patches}
    exc = _gdal_pixel(paths["exceedance"], row, col)
    assert bars["P(|d| >= 10 mm):0"] == pytest.approx(exc[0], abs=1e-6)
    assert bars["P(|d| >= 20 mm):0"] == pytest.approx(exc[1], abs=1e-6)
    probs = _gdal_pixel(paths["probabilities"], row, col)
    assert [bars[f"P(class {c + 1}):0"] for c in range(5)] == pytest.approx(list(probs), abs=1e-6)

    # zoom on the forecast: same data, time axis from a few epochs before the forecast
    ax = dock.figure.axes[0]
    full = ax.get_xlim()
    dock.zoom_box.setChecked(True)
    ax = dock.figure.axes[0]
    assert ax.get_xlim()[0] > full[0] and ax.get_xlim()[1] <= full[1] + 2
    np.testing.assert_allclose(_lines(dock)["median:0"].get_ydata(), _gdal_pixel(paths["median"], row, col), atol=1e-5)
    lo, hi = ax.get_ylim()
    assert lo <= np.nanmin(mem) and hi >= np.nanmax(mem)

    # exports: the PNG, and every value drawn in the CSV
    png = dock.export_png(str(tmp_path / "pixel.png"))
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    rows = _csv(dock.export_csv(str(tmp_path / "pixel.csv")))
    np.testing.assert_allclose(_series(rows, "A", "observed"), obs, rtol=1e-5)
    assert sum(r["series"] == "member" for r in rows) == M * HOR
    for p in (5, 10, 50, 90, 95):
        np.testing.assert_allclose(_series(rows, "A", f"fan P{p}"), np.percentile(mem, p, axis=0), rtol=1e-5)
    np.testing.assert_allclose(_series(rows, "A", "later observed"), _gdal_pixel(paths["later"], row, col)[1:],
                               rtol=1e-5)
    np.testing.assert_allclose(_series(rows, "A", "exceedance probability"), exc, rtol=1e-5)
    dock.pick_btn.setChecked(False)
    assert qgis_canvas.mapTool() is not dock.tool
    dock.clear_picks()
    assert len(_vertex_markers(qgis_canvas)) == n_markers


def test_two_runs_loaded_the_inspector_keeps_one_run(qgis_new_project, qgis_iface, tmp_path):
    """Two runs in the project (the second without members and quantiles): 'Find result layers'
    takes every layer from one run, clears and names the roles that run lacks, never fills them
    from the other run; the run id is stamped into each layer and kept in the .qgz."""
    from deformcast.algorithms import chain
    from deformcast.processing_provider.project import (
        RUN_ID_PROPERTY,
        RUN_KEYWORD,
        build_project,
        load_run,
    )
    from deformcast.ui.inspector import InspectorDock

    keys = {"stack": "stack", "later": "observed", "members": "forecast_members", "median": "forecast_median",
            "quantiles": "forecast_quantiles", "susceptibility": "OUTPUT_SUSCEPTIBILITY",
            "exceedance": "OUTPUT_EXCEEDANCE"}

    def tree(paths):
        return chain.resolve_tree({keys[k]: v for k, v in paths.items() if k in keys and k != "later"},
                                  observed=paths["later"])

    p1, _ = _write_run(tmp_path / "run1", seed=1)
    p2, _ = _write_run(tmp_path / "run2", seed=2, members=False, quantiles=False)
    project = QgsProject.instance()
    g1 = load_run(project, "DeformCast run1", tree(p1))
    g2 = load_run(project, "DeformCast run2", tree(p2))
    ids = {}
    for grp in (g1, g2):
        rid = grp.customProperty(RUN_ID_PROPERTY)
        assert rid
        for n in grp.findLayers():
            assert n.layer().customProperty(RUN_ID_PROPERTY) == rid
            assert n.layer().metadata().keywords()[RUN_KEYWORD] == [grp.name(), rid]
        ids[grp.name()] = rid
    assert ids["DeformCast run1"] != ids["DeformCast run2"]
    # the id survives the project file
    qgz = build_project(str(tmp_path / "p.qgz"), "DeformCast run1", tree(p1), run_id="abc123")
    proj = QgsProject()
    assert proj.read(qgz)
    assert {lyr.customProperty(RUN_ID_PROPERTY) for lyr in proj.mapLayers().values()} == {"abc123"}

    dock = InspectorDock(qgis_iface)
    dock.set_layers(members=QgsRasterLayer(p1["members"], "stale", "gdal"))
    found = dock.auto_assign(run="DeformCast run2")   # the run without members and quantiles
    layers = dock.layers()
    assert {r: lyr.source() for r, lyr in found.items()} == {r: p2[r] for r in keys if r in p2}
    assert layers["members"] is None and layers["quantiles"] is None   # cleared, not taken from run1
    assert {lyr.customProperty(RUN_ID_PROPERTY) for lyr in found.values()} == {ids["DeformCast run2"]}
    assert set(dock.missing) == {"members", "quantiles", "probabilities"}
    assert "ensemble members" in dock.info.text() and "forecast quantiles" in dock.info.text()
    assert "other run" in dock.info.text()
    assert [dock.run_combo.itemText(i) for i in range(dock.run_combo.count())] == ["DeformCast run2",
                                                                                  "DeformCast run1"]
    # without a choice: the run with the most roles; every layer from it
    found = dock.auto_assign()
    assert {lyr.customProperty(RUN_ID_PROPERTY) for lyr in found.values()} == {ids["DeformCast run1"]}
    assert found["members"].source() == p1["members"] and found["stack"].source() == p1["stack"]
    assert dock.run_combo.currentText() == "DeformCast run1"
    # switching runs in the list rebinds every role
    dock.run_combo.activated.emit(dock.run_combo.findText("DeformCast run2"))
    assert dock.layers()["stack"].source() == p2["stack"] and dock.layers()["members"] is None

    # layers added by hand from two output folders (no group, no id): bound by folder
    project.removeAllMapLayers()
    by_hand = [QgsRasterLayer(p, f"{k} {i}", "gdal") for i, ps in enumerate((p1, p2)) for k, p in ps.items()]
    project.addMapLayers(by_hand)
    found = dock.auto_assign(by_hand[::-1])
    assert {lyr.source().split("/")[-2] for lyr in found.values()} == {"run1"}  # the run with members


def test_multi_point_overlay_draws_n_curves_and_n_markers(qgis_new_project, qgis_iface, qgis_canvas, rasters):
    from deformcast.ui.inspector import InspectorDock
    from deformcast.ui.inspector_plot import PALETTE

    paths, g = rasters
    lyrs = _layers(paths)
    _canvas(qgis_canvas, lyrs)
    dock = InspectorDock(qgis_iface, qgis_canvas)
    dock.auto_assign(list(lyrs.values()))
    before = len(_vertex_markers(qgis_canvas))
    pix = [(1, 1), (3, 4), (5, 6)]
    for r, c in pix:
        dock.inspect(_centre(g, r, c))
    assert [p.label for p in dock.picks] == ["A", "B", "C"]
    lines = _lines(dock)
    markers = [m for m, _, _ in dock.marks.items]
    assert len(_vertex_markers(qgis_canvas)) == before + len(pix) and len(markers) == len(pix)
    for i, (r, c) in enumerate(pix):
        np.testing.assert_allclose(lines[f"observed:{i}"].get_ydata(), _gdal_pixel(paths["stack"], r, c), atol=1e-5)
        np.testing.assert_allclose(lines[f"median:{i}"].get_ydata(), _gdal_pixel(paths["median"], r, c), atol=1e-5)
        assert lines[f"observed:{i}"].get_color() == lines[f"median:{i}"].get_color() == PALETTE[i]
        assert markers[i].color().name() == PALETTE[i]
        # the marker sits on the picked pixel
        c_pt = markers[i].center() if hasattr(markers[i], "center") else None
        if c_pt is not None:
            assert c_pt.distance(_centre(g, r, c)) < 1e-9
    assert len({lines[f"observed:{i}"].get_color() for i in range(3)}) == 3
    # without overlay a pick replaces the earlier ones (and their markers)
    dock.overlay_box.setChecked(False)
    dock.inspect(_centre(g, 2, 2))
    assert len(dock.picks) == 1 and len(_vertex_markers(qgis_canvas)) == before + 1
    assert "observed:1" not in _lines(dock)
    dock.clear_picks()
    assert dock.picks == [] and len(_vertex_markers(qgis_canvas)) == before
    assert not _lines(dock)


def test_reference_change_subtracts_the_reference_series(qgis_new_project, qgis_iface, qgis_canvas, rasters,
                                                         tmp_path):
    from deformcast.ui.inspector import InspectorDock

    paths, g = rasters
    lyrs = _layers(paths)
    _canvas(qgis_canvas, lyrs)
    dock = InspectorDock(qgis_iface, qgis_canvas)
    dock.auto_assign(list(lyrs.values()))
    (ra, ca), (rr, cr) = (2, 3), (4, 1)
    dock.inspect(_centre(g, ra, ca))
    dock.ref_btn.setChecked(True)            # the next pick becomes the reference
    ref = dock.inspect(_centre(g, rr, cr))
    assert ref is dock.reference and not dock.ref_btn.isChecked() and len(dock.picks) == 1
    assert dock.marks.reference and dock.marks.reference[0][0].color().name() == "#000000"
    lines = _lines(dock)
    obs = _gdal_pixel(paths["stack"], ra, ca) - _gdal_pixel(paths["stack"], rr, cr)
    np.testing.assert_allclose(lines["observed:0"].get_ydata(), obs, atol=1e-5)
    med = _gdal_pixel(paths["median"], ra, ca) - _gdal_pixel(paths["median"], rr, cr)
    np.testing.assert_allclose(lines["median:0"].get_ydata(), med, atol=1e-5)
    later = _gdal_pixel(paths["later"], ra, ca)[1:] - _gdal_pixel(paths["later"], rr, cr)[1:]
    np.testing.assert_allclose(lines["later:0"].get_ydata(), later, atol=1e-5)
    assert "relative to R" in dock.figure.axes[0].get_ylabel()
    # fans of the relative displacement: member k minus the reference's member k
    dmem = (_gdal_pixel(paths["members"], ra, ca) - _gdal_pixel(paths["members"], rr, cr)).reshape(M, HOR)
    rows = _csv(dock.export_csv(str(tmp_path / "rel.csv")))
    np.testing.assert_allclose(_series(rows, "A", "fan P10"), np.percentile(dmem, 10, axis=0), atol=1e-4)
    np.testing.assert_allclose(_series(rows, "A", "fan P95"), np.percentile(dmem, 95, axis=0), atol=1e-4)
    np.testing.assert_allclose(_series(rows, "A", "observed"), obs, atol=1e-4)
    assert {r["reference"] for r in rows} == {"R"}
    # the reference point itself reads zero; clearing it restores the absolute series
    dock.inspect(_centre(g, rr, cr))
    np.testing.assert_allclose(_lines(dock)["observed:1"].get_ydata(), 0.0, atol=1e-9)
    dock.clear_reference()
    np.testing.assert_allclose(_lines(dock)["observed:0"].get_ydata(), _gdal_pixel(paths["stack"], ra, ca),
                               atol=1e-5)
    assert not dock.marks.reference


def test_polygon_average_equals_numpy_mean_of_its_pixels(qgis_new_project, qgis_iface, qgis_canvas, rasters,
                                                         tmp_path):
    from matplotlib.path import Path
    from qgis.gui import QgsMapMouseEvent

    from deformcast.ui.inspector import InspectorDock

    paths, g = rasters
    lyrs = _layers(paths)
    _canvas(qgis_canvas, lyrs)
    dock = InspectorDock(qgis_iface, qgis_canvas)
    dock.auto_assign(list(lyrs.values()))
    # a triangle (UTM) over part of the grid, nodata pixel (0, 0) inside
    x0, y0 = 320000.0, 5650000.0
    tri = [(x0 - 10, y0 + 10), (x0 + 520, y0 - 60), (x0 + 60, y0 - 480)]
    xs, ys = g.pixel_centres(np.arange(H), np.arange(W))
    inside = Path(tri).contains_points(np.c_[xs.ravel(), ys.ravel()]).reshape(H, W)
    assert 5 < inside.sum() < H * W and inside[0, 0]
    # drawn on the canvas (EPSG:4326) with the polygon tool: three left clicks, one right click
    dock.poly_btn.setChecked(True)
    assert qgis_canvas.mapTool() is dock.poly_tool and not dock.pick_btn.isChecked()
    tr = _to_wgs()
    for i, (x, y) in enumerate(tri + [tri[-1]]):
        dev = qgis_canvas.getCoordinateTransform().transform(tr.transform(QgsPointXY(x, y)))
        dock.poly_tool.canvasReleaseEvent(QgsMapMouseEvent(
            qgis_canvas, QEvent.MouseButtonRelease, QPoint(int(round(dev.x())), int(round(dev.y()))),
            Qt.RightButton if i == 3 else Qt.LeftButton, Qt.NoButton))
    # the clicks snap to screen pixels: compare against the drawn polygon's own membership
    drawn = QgsGeometry.fromWkt(dock.series.wkt)
    drawn.transform(QgsCoordinateTransform(QgsCoordinateReferenceSystem(WGS), QgsCoordinateReferenceSystem(UTM),
                                           QgsProject.instance()))
    ring = [(p.x(), p.y()) for p in drawn.asPolygon()[0]]
    inside = Path(ring).contains_points(np.c_[xs.ravel(), ys.ravel()]).reshape(H, W)
    assert 5 < inside.sum() < H * W and inside[0, 0]
    ps = dock.series
    assert ps.kind == "area" and ps.n_pixels == inside.sum()
    stack = _gdal_all(paths["stack"])
    np.testing.assert_allclose(ps.observed[1], np.nanmean(stack[:, inside], axis=1), atol=1e-5)
    np.testing.assert_allclose(ps.median[1], np.nanmean(_gdal_all(paths["median"])[:, inside], axis=1), atol=1e-5)
    mem = _gdal_all(paths["members"])[:, inside].reshape(M, HOR, -1)
    mem_mean = np.nanmean(mem, axis=2)
    np.testing.assert_allclose(ps.members[2][1], mem_mean[2], atol=1e-5)
    np.testing.assert_allclose(ps.exceedance[0][1], np.nanmean(_gdal_all(paths["exceedance"])[0][inside]), atol=1e-6)
    # the spread across the pixels
    lo, hi = np.nanpercentile(stack[:, inside], [10, 90], axis=1)
    np.testing.assert_allclose(ps.spread["observed"][1], lo, atol=1e-5)
    np.testing.assert_allclose(ps.spread["observed"][2], hi, atol=1e-5)
    assert "spread observed:0" in {c.get_gid() for c in dock.figure.axes[0].collections}
    np.testing.assert_allclose(_lines(dock)["observed:0"].get_ydata(), np.nanmean(stack[:, inside], axis=1), atol=1e-5)
    assert len(dock.marks.items) == 1 and dock.marks.items[0][2] == "area"
    rows = _csv(dock.export_csv(str(tmp_path / "area.csv")))
    np.testing.assert_allclose(_series(rows, "A", "fan P90"), np.percentile(mem_mean, 90, axis=0), atol=1e-4)
    np.testing.assert_allclose(_series(rows, "A", "pixel spread observed P90"), hi, atol=1e-4)
    assert {r["kind"] for r in rows} == {"area"}

    # an area as reference: a pixel relative to the area mean
    dock.inspect_area(QgsGeometry.fromPolygonXY([[QgsPointXY(*p) for p in tri + tri[:1]]]),
                      QgsCoordinateReferenceSystem(UTM), reference=True)
    dock.inspect(_centre(g, 5, 6))
    np.testing.assert_allclose(_lines(dock)["observed:1"].get_ydata(),
                               stack[:, 5, 6] - np.nanmean(stack[:, inside], axis=1), atol=1e-5)
    # a polygon off the rasters says so
    far = QgsGeometry.fromWkt("POLYGON((0 0, 10 0, 10 10, 0 0))")
    assert dock.inspect_area(far, QgsCoordinateReferenceSystem(UTM)) is None
    assert "no pixel centre" in dock.info.text()
    dock.poly_btn.setChecked(False)


def test_dock_is_wide_enough_for_its_title_and_labels(qgis_new_project, qgis_iface, qgis_canvas, rasters):
    from deformcast.ui.inspector import TITLE, InspectorDock

    paths, g = rasters
    lyrs = _layers(paths)
    dock = InspectorDock(qgis_iface, qgis_canvas)
    dock.auto_assign(list(lyrs.values()))
    fm = dock.fontMetrics()
    assert dock.minimumSizeHint().width() >= fm.horizontalAdvance(TITLE) + 60
    dock.resize(dock.minimumSizeHint().width(), 700)
    dock.show()
    dock.inspect(_centre(g, 2, 3))
    dock.inspect(_centre(g, 4, 4))
    fig = dock.figure
    size = dock.plot_canvas.size()
    assert size.width() >= 560
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    box = fig.bbox
    texts = [fig.axes[0].title, fig.axes[1].title] + list(fig.axes[1].get_yticklabels())
    for t in texts:
        e = t.get_window_extent(r)
        assert e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1, t.get_text()
    assert "P(class 5)" in [t.get_text() for t in fig.axes[1].get_yticklabels()]
    dock.close()


def test_stack_without_dates_says_so(qgis_new_project, tmp_path, qgis_iface, qgis_canvas):
    from deformcast.ui.inspector import InspectorDock

    g = make_grid(320000.0, 5650000.0, 100.0, 3, 3)
    p = write_raster(str(tmp_path / "nodates.tif"), np.zeros((4, 3, 3), np.float32), g)
    lyr = QgsRasterLayer(p, "nodates", "gdal")
    QgsProject.instance().addMapLayer(lyr)
    dock = InspectorDock(qgis_iface, qgis_canvas)
    dock.set_layers(stack=lyr)
    x, y = g.pixel_centres([1], [1])
    assert dock.inspect(QgsPointXY(x[0, 0], y[0, 0]), QgsCoordinateReferenceSystem(UTM)) is None
    assert "acquisition date" in dock.info.text()
    dock.dates_param = "2020-01-01,2020-01-13,2020-01-25,2020-02-06"
    ps = dock.inspect(QgsPointXY(x[0, 0], y[0, 0]), QgsCoordinateReferenceSystem(UTM))
    assert len(ps.observed[0]) == 4
    dock.clear_picks()


def test_vrt_of_dated_files_is_inspected_with_their_dates(qgis_new_project, tmp_path, qgis_iface, qgis_canvas):
    """A VRT of one GeoTIFF per date (bands without descriptions): the inspector reads the dates from the file
    names, as the algorithms do, and draws the series without asking for DATES."""
    from deformcast.ui.inspector import InspectorDock

    g = make_grid(320000.0, 5650000.0, 100.0, 3, 3)
    files = [write_raster(str(tmp_path / f"disp_{d}.tif"), np.full((1, 3, 3), -float(k), np.float32), g)
             for k, d in enumerate(["20200101", "20200113", "20200125", "20200206"])]
    vrt = str(tmp_path / "stack.vrt")
    gdal.BuildVRT(vrt, files, separate=True)
    lyr = QgsRasterLayer(vrt, "stack", "gdal")
    QgsProject.instance().addMapLayer(lyr)
    dock = InspectorDock(qgis_iface, qgis_canvas)
    dock.set_layers(stack=lyr)
    x, y = g.pixel_centres([1], [1])
    ps = dock.inspect(QgsPointXY(x[0, 0], y[0, 0]), QgsCoordinateReferenceSystem(UTM))
    assert ps is not None, dock.info.text()
    assert [str(d) for d in ps.observed[0]] == ["2020-01-01", "2020-01-13", "2020-01-25", "2020-02-06"]
    np.testing.assert_allclose(ps.observed[1], [0.0, -1.0, -2.0, -3.0])
    dock.clear_picks()
    dock.close()
