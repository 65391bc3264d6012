#!/usr/bin/env python3
"""Screenshots of the DeformCast desktop tools on the built-in demo scene, into docs/*.png.

    .venv/bin/python scripts/screenshots.py [--out docs] [--work /tmp/deformcast-shots]

Runs under a virtual X server: when DISPLAY is not set it starts ``Xvfb`` itself (install it
with ``apt-get install -y xvfb``) and uses Qt's xcb platform, so the widgets are drawn as on a
desktop. Steps: the workflow dialog with its defaults and its Advanced section, a validation
message (a stack too short for the default horizon), then a run of ``deformcast:workflow`` from the
dialog on the built-in demo scene (every default but a small TPE budget) as the background task;
screenshots of the result maps in the run's layer group, the time-series inspector on a pixel of a
subsidence bowl, the report, the help and the dependency dialog, and last the main job's project
(deformcast.qgz) opened as QGIS opens it, on the control tiers.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ensure_display():
    if os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM", "xcb") == "xcb":
        return None
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        sys.exit("Xvfb is not installed: apt-get install -y xvfb (or run with a DISPLAY).")
    disp = ":%d" % (90 + os.getpid() % 9)
    proc = subprocess.Popen([xvfb, disp, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    os.environ["DISPLAY"] = disp
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    return proc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs"))
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "deformcast-shots"))
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the outputs of an earlier run in --work instead of running the chain again")
    ap.add_argument("--only", choices=["processing_help"],
                    help="only this picture (processing_help: the Processing dialog of tune with its help panel; "
                         "no workflow run)")
    args = ap.parse_args()
    xvfb = _ensure_display()
    os.environ.setdefault("QGIS_CUSTOM_CONFIG_PATH", tempfile.mkdtemp(prefix="dc-shots-profile"))
    try:
        return _shoot(args)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)


def _shoot(args):
    from _qgis import start_processing

    app, provider = start_processing(gui=True)  # keep both referenced

    import numpy as np
    from qgis.core import QgsCoordinateReferenceSystem, QgsLayerTreeModel, QgsPointXY, QgsProject, QgsRectangle
    from qgis.gui import QgsLayerTreeMapCanvasBridge, QgsLayerTreeView, QgsMapCanvas
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QColor
    from qgis.PyQt.QtWidgets import QMainWindow, QScrollArea, QSplitter

    from deformcast.ui.deps_dialog import DependencyDialog
    from deformcast.ui.inspector import InspectorDock
    from deformcast.ui.workflow_dialog import HelpDialog, WorkflowDialog

    from deformcast.ui import runner

    os.makedirs(args.out, exist_ok=True)
    out = os.path.join(args.work, "run")
    reuse = args.reuse and os.path.exists(os.path.join(out, "workflow.json"))
    if not reuse:
        shutil.rmtree(args.work, ignore_errors=True)
    shots = []

    def save(widget, name):
        for _ in range(5):
            app.processEvents()
            time.sleep(0.05)
        p = os.path.join(args.out, name)
        widget.grab().save(p, "PNG")
        shots.append(p)
        print("wrote", p)

    # --- a short stack for the validation picture ------------------------------------------
    from deformcast.algorithms.data.synthetic import write_scene

    short = write_scene(os.path.join(args.work, "short"), seed=7, width=32, height=24, n_epochs=60, n_future=4)

    # --- a QGIS-like main window: layer tree + canvas --------------------------------------
    win = QMainWindow()
    win.resize(1400, 820)
    canvas = QgsMapCanvas()
    canvas.setCanvasColor(QColor("white"))
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:25832"))
    root = QgsProject.instance().layerTreeRoot()
    bridge = QgsLayerTreeMapCanvasBridge(root, canvas)  # noqa: F841 - keeps canvas = tree
    view = QgsLayerTreeView()
    model = QgsLayerTreeModel(root, view)  # parented: Python must not delete it under the view
    model.setFlag(QgsLayerTreeModel.AllowNodeChangeVisibility)  # the check boxes, as in QGIS
    model.setFlag(QgsLayerTreeModel.ShowLegendAsTree)
    view.setModel(model)
    split = QSplitter()
    split.addWidget(view)
    split.addWidget(canvas)
    split.setSizes([330, 1070])
    win.setCentralWidget(split)

    class Iface:  # what the dialogs use of QgisInterface
        def mapCanvas(self):
            return canvas

        def mainWindow(self):
            return win

        def messageBar(self):
            class Bar:
                def pushMessage(self, *a, **k):
                    print("message:", a[:2])
            return Bar()

        def addDockWidget(self, area, dock):
            win.addDockWidget(area, dock)

        def activeLayer(self):  # noqa: N802
            return None

        def browserModel(self):  # noqa: N802
            from qgis.gui import QgsBrowserGuiModel

            if not hasattr(self, "_browser"):
                self._browser = QgsBrowserGuiModel()
            return self._browser

    iface = Iface()
    if args.only == "processing_help":
        shoot_processing_help(app, save, iface)
        print("\n".join(["screenshots:"] + shots))
        return 0
    win.show()

    # --- workflow dialog: its defaults, the Advanced section, a validation message, a run ----
    dlg = WorkflowDialog(iface, show_reports=False, restore=False)
    dlg.resize(780, 1000)
    dlg.show()
    dlg.set_parameters({"OUTPUT_FOLDER": out})
    save(dlg, "ui_workflow_dialog.png")
    dlg.advanced.setCollapsed(False)
    scroll = dlg.findChild(QScrollArea)
    app.processEvents()
    scroll.ensureWidgetVisible(dlg.advanced, 0, 0)
    scroll.verticalScrollBar().setValue(scroll.verticalScrollBar().maximum())
    scroll.horizontalScrollBar().setValue(0)
    save(dlg, "ui_workflow_advanced.png")
    dlg.advanced.setCollapsed(True)
    scroll.verticalScrollBar().setValue(0)
    dlg.set_parameters({"INPUT": short["stack"], "OUTPUT_FOLDER": out})
    save(dlg, "ui_workflow_validation.png")
    # the built-in demo scene (INPUT empty) with a small TPE budget, everything else the defaults
    params = {"OUTPUT_FOLDER": out, "N_TRIALS": args.trials, "MAX_EPOCHS": 5, "MAX_SAMPLES": 2000}
    dlg.set_parameters(params)
    if reuse:
        import json

        from deformcast.algorithms import chain
        from deformcast.processing_provider.project import load_run, zoom_canvas

        with open(os.path.join(out, "workflow.json"), encoding="utf-8") as fh:
            summary = json.load(fh)
        group = load_run(QgsProject.instance(), chain.run_name(out), chain.resolve_tree(summary["paths"]))
        zoom_canvas(canvas, group)
    else:
        t0 = time.time()
        job = dlg.start()
        if job is None:
            print("workflow could not start:", dlg.validation.errors)
            return 1
        midway = False
        while dlg.runner is not None:
            app.processEvents()
            time.sleep(0.05)
            if not midway and dlg.progress.value() >= 20:
                save(dlg, "ui_workflow_running.png")
                midway = True
        print(f"workflow in {time.time() - t0:.0f} s; error: {dlg.last_error}")
        if dlg.last_error:
            return 1
        group = dlg.last_group
    dlg.hide()

    layers = {n.name(): n for n in group.findLayers()}

    def only(name):
        for n, node in layers.items():
            node.setItemVisibilityChecked(n == name)
            node.setExpanded(n == name)
        node = layers[name]
        for sub in group.children():
            sub.setExpanded(sub is node.parent())
        node.parent().setItemVisibilityChecked(True)
        canvas.refreshAllLayers()
        t = time.time()
        while canvas.isDrawing() or time.time() - t < 0.8:
            app.processEvents()
            time.sleep(0.05)

    for name, fname in (("Control tiers", "ui_map_tiers.png"), ("Susceptibility", "ui_map_susceptibility.png"),
                        ("Exceedance probability", "ui_map_exceedance.png"),
                        ("Forecast (ensemble median)", "ui_map_forecast_median.png")):
        if name in layers:
            view.setCurrentLayer(layers[name].layer())
            only(name)
            save(win, fname)

    # --- inspector on the pixel with the largest forecast subsidence -----------------------
    only("Susceptibility")
    dock = InspectorDock(iface, canvas, win)
    iface.addDockWidget(Qt.RightDockWidgetArea, dock)
    dock.auto_assign([n.layer() for n in layers.values()])
    from osgeo import gdal

    med = dock.layers()["median"]
    ds = gdal.Open(med.source())
    a = ds.GetRasterBand(med.bandCount()).ReadAsArray().astype(float)
    ds = None
    a[~np.isfinite(a)] = np.inf
    r, c = np.unravel_index(np.argmin(a), a.shape)
    ext = med.extent()
    pt = QgsPointXY(ext.xMinimum() + (c + 0.5) * med.rasterUnitsPerPixelX(),
                    ext.yMaximum() - (r + 0.5) * med.rasterUnitsPerPixelY())
    win.resize(1600, 900)
    dock.pick_btn.setChecked(True)
    dock.inspect(pt)
    save(win, "ui_inspector.png")
    dock.zoom_box.setChecked(True)
    save(dock, "ui_inspector_zoom.png")
    dock.export_png(os.path.join(args.work, "pixel.png"))

    # --- report, help, dependencies --------------------------------------------------------
    from deformcast.ui.workflow_dialog import ReportViewer

    rv = ReportViewer(runner.reports(out))
    rv.resize(1000, 760)
    rv.show()
    save(rv, "ui_report_viewer.png")
    hd = HelpDialog(select="deformcast:workflow")
    hd.resize(1000, 640)
    hd.show()
    save(hd, "ui_help.png")
    shoot_processing_help(app, save, iface)
    dd = DependencyDialog(target=os.path.join(args.work, "dependencies"))
    dd.resize(900, 560)
    dd.show()
    if not dd.selected():
        dd.set_selected(["torch"])  # show the command that would reinstall torch
    save(dd, "ui_dependencies.png")
    # --- the main job's project, opened as QGIS opens it: the canvas takes its saved view --------
    for w in (rv, hd, dd):
        w.close()
    if dock is not None:
        win.removeDockWidget(dock)
    QgsProject.instance().clear()
    canvas.setExtent(QgsRectangle(0, 0, 1, 1))
    win.resize(1400, 820)
    if not QgsProject.instance().read(os.path.join(out, "deformcast.qgz")):
        print("cannot read the project")
        return 1
    t = time.time()
    while canvas.isDrawing() or time.time() - t < 1.0:
        app.processEvents()
        time.sleep(0.05)
    save(win, "ui_project_tiers.png")
    print("\n".join(["screenshots:"] + shots))
    for w in (rv, hd, dd, dlg, win):
        w.close()
    QgsProject.instance().clear()
    return 0


def shoot_processing_help(app, save, iface, alg_id="deformcast:tune"):
    """QGIS's own Processing dialog of ``alg_id``: its parameters (the expert ones folded under
    Advanced) and the help panel (one paragraph per paragraph of HELP, a link to the docs) ->
    docs/ui_processing_help.png."""
    import qgis.utils
    from qgis.core import QgsApplication

    qgis.utils.iface = iface
    import processing.gui.AlgorithmDialog as ad
    import processing.gui.ParametersPanel as pp

    pp.iface = ad.iface = iface   # bound when Processing's GUI modules were imported
    dlg = ad.AlgorithmDialog(QgsApplication.processingRegistry().createAlgorithmById(alg_id))
    dlg.resize(1180, 760)
    dlg.show()
    from qgis.PyQt.QtWidgets import QSplitter

    for split in dlg.findChildren(QSplitter):   # parameters | help: give the help panel room
        if split.count() == 2:
            split.setSizes([640, 540])
    save(dlg, "ui_processing_help.png")
    dlg.close()


if __name__ == "__main__":
    sys.exit(main())
