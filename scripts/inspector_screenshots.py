#!/usr/bin/env python3
"""Screenshots of the time-series inspector (fan chart, multi-point overlay, polygon average,
reference change) into docs/ui_inspector_*.png, rendered offscreen (``widget.grab()``).

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/inspector_screenshots.py [--out docs]

The data are a small synthetic run written with the core's GDAL writers (no training: the
pictures show the tool): a subsidence bowl that accelerates, a seasonal term and noise in the
observed stack; 24 members whose errors are random walks along the horizon around a damped
extrapolation; the later observations drawn from the same truth. Two runs are loaded (the second
a copy without members) to show that the inspector binds to one.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _scene(folder, seed=4, h=40, w=48, t=72, hor=10, m=24):
    import numpy as np

    from deformcast.algorithms.io import styles
    from deformcast.algorithms.io.raster import make_grid, write_raster, write_stack

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    g = make_grid(500000.0, 5700000.0, 50.0, w, h, 25832)
    dates = np.datetime64("2019-01-03") + np.arange(t + hor) * 12
    yy, xx = np.mgrid[0:h, 0:w]
    bowl = np.exp(-(((yy - 16) / 7.0) ** 2 + ((xx - 18) / 9.0) ** 2))
    bowl2 = 0.5 * np.exp(-(((yy - 30) / 4.0) ** 2 + ((xx - 36) / 5.0) ** 2))
    tt = np.arange(t + hor)[:, None, None] / 30.0
    truth = -(bowl * (6 * tt + 2.5 * tt ** 2) + bowl2 * 9 * tt) + 1.5 * np.sin(2 * np.pi * tt * 12 / 30.4 / 12)
    obs = (truth + rng.normal(0, 1.2, truth.shape)).astype(np.float32)
    stack, later = obs[:t], obs[t - 1:]
    fdates = dates[t:]
    # members: the truth's trend extrapolated with an error that grows along the horizon (random walk)
    slope = (truth[t - 1] - truth[t - 13]) / 12.0
    base = truth[t - 1] + slope * np.arange(1, hor + 1)[:, None, None] * 1.05
    steps = rng.normal(0, 1.0, (m, hor, h, w)) * (0.6 + 1.2 * bowl + 1.5 * bowl2)
    members = (base[None] + np.cumsum(steps, axis=1)).astype(np.float32)
    median = np.median(members, axis=0)
    q = np.percentile(members[:, -1], [10, 50, 90], axis=0).astype(np.float32)
    total = median[-1] - stack[-1]
    susc = np.digitize(-total, [1, 2, 3.5, 5]).astype(np.float32) + 1
    exc = np.stack([(members[:, -1] - stack[-1] < -thr).mean(axis=0) for thr in (5, 10)]).astype(np.float32)
    p = {
        "stack": write_stack(os.path.join(folder, "stack.tif"), stack, dates[:t], g),
        "observed": write_stack(os.path.join(folder, "future_observed.tif"), later, dates[t - 1:], g),
        "forecast_members": write_raster(os.path.join(folder, "forecast_members.tif"),
                                         members.reshape(m * hor, h, w), g,
                                         [f"member{k} {d}" for k in range(m) for d in fdates],
                                         qml=styles.deformation_style(members[0, -1])),
        "forecast_median": write_raster(os.path.join(folder, "forecast_median.tif"), median, g,
                                        [str(d) for d in fdates], qml=styles.deformation_style(median[-1])),
        "forecast_quantiles": write_raster(os.path.join(folder, "forecast_quantiles.tif"), q, g,
                                           ["P10", "P50", "P90"], qml=styles.deformation_style(q[1], band=2)),
        "OUTPUT_SUSCEPTIBILITY": write_raster(os.path.join(folder, "susceptibility.tif"), susc, g,
                                              ["susceptibility class"], dtype="uint8", nodata=0,
                                              qml=styles.class_style(styles.class_labels(5))),
        "OUTPUT_EXCEEDANCE": write_raster(os.path.join(folder, "exceedance.tif"), exc, g,
                                          ["P(|d| >= 5 mm)", "P(|d| >= 10 mm)"], qml=styles.probability_style()),
    }
    return p, g


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QGIS_CUSTOM_CONFIG_PATH", tempfile.mkdtemp(prefix="dc-inspector-profile"))
    pkgroot = os.path.join(ROOT, "build", "pkgroot")
    os.makedirs(pkgroot, exist_ok=True)
    if not os.path.exists(os.path.join(pkgroot, "deformcast")):
        os.symlink(ROOT, os.path.join(pkgroot, "deformcast"))
    sys.path.insert(0, pkgroot)

    from qgis.core import QgsApplication

    app = QgsApplication([], True)
    app.initQgis()
    from qgis.core import QgsCoordinateReferenceSystem, QgsGeometry, QgsPointXY, QgsProject
    from qgis.gui import QgsMapCanvas
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QColor
    from qgis.PyQt.QtWidgets import QMainWindow

    from deformcast.algorithms import chain
    from deformcast.processing_provider.project import load_run
    from deformcast.ui.inspector import InspectorDock

    work = tempfile.mkdtemp(prefix="dc-inspector-shots")
    p1, g = _scene(os.path.join(work, "run_a"))
    p2, _ = _scene(os.path.join(work, "run_b"), seed=9)
    os.remove(p2.pop("forecast_members"))
    project = QgsProject.instance()
    load_run(project, "DeformCast run_b", chain.resolve_tree({k: v for k, v in p2.items() if k != "observed"},
                                                            observed=p2["observed"]))
    group = load_run(project, "DeformCast run_a", chain.resolve_tree({k: v for k, v in p1.items() if k != "observed"},
                                                                    observed=p1["observed"]))
    layers = {n.name(): n.layer() for n in group.findLayers()}

    win = QMainWindow()
    win.resize(1500, 820)
    canvas = QgsMapCanvas()
    canvas.setCanvasColor(QColor("white"))
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:25832"))
    med = layers["Forecast (ensemble median)"]
    canvas.setLayers([med])
    ext = med.extent()
    ext.grow(100)
    canvas.setExtent(ext)
    win.setCentralWidget(canvas)
    dock = InspectorDock(None, canvas, win)
    win.addDockWidget(Qt.RightDockWidgetArea, dock)
    win.show()
    dock.auto_assign()
    print(dock.info.text())

    def settle():
        canvas.refresh()
        for _ in range(40):
            app.processEvents()
            time.sleep(0.02)
        canvas.waitWhileRendering()
        app.processEvents()

    def save(widget, name):
        settle()
        path = os.path.join(args.out, name)
        if not widget.grab().save(path, "PNG"):
            raise SystemExit(f"cannot write {path}")
        print("wrote", path)

    def at(row, col):
        x, y = g.pixel_centres([row], [col])
        return QgsPointXY(float(x[0, 0]), float(y[0, 0]))

    dock.zoom_box.setChecked(True)
    dock.inspect(at(16, 18))
    save(win, "ui_inspector_fan.png")
    dock.inspect(at(22, 26))
    dock.inspect(at(30, 36))
    dock.inspect(at(5, 44))
    save(win, "ui_inspector_overlay.png")
    dock.clear_picks()
    poly = QgsGeometry.fromPolygonXY([[at(*rc) for rc in ((9, 10), (9, 26), (23, 27), (24, 12), (9, 10))]])
    dock.inspect_area(poly)
    dock.inspect(at(16, 18))
    save(win, "ui_inspector_polygon.png")
    dock.clear_picks()
    dock.inspect(at(16, 18))
    dock.inspect(at(30, 36))
    dock.inspect(at(5, 44), reference=True)
    save(win, "ui_inspector_reference.png")
    dock.close()
    win.close()
    app.exitQgis()


if __name__ == "__main__":
    main()
