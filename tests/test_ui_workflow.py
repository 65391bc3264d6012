"""The workflow dialog and its runner: validation while typing, the chain of Processing steps,
the background task with progress and Cancel, styled result layers in one group, reports, help.
"""
from __future__ import annotations

import os
import re
import time

import numpy as np
import pytest
from qgis.core import QgsApplication, QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer, QgsVectorLayer

from deformcast.algorithms import styles
from deformcast.algorithms.raster import make_grid, write_raster, write_stack


def _stack(path, n=40, w=6, h=5, dates=True, x0=320000.0):
    g = make_grid(x0, 5650000.0, 100.0, w, h, 25832)
    d = np.datetime64("2020-01-01") + np.arange(n) * 12
    v = np.cumsum(np.random.default_rng(0).normal(-1, 0.3, (n, h, w)), axis=0).astype(np.float32)
    if dates:
        return write_stack(str(path), v, d, g), d
    return write_raster(str(path), v, g), d


def _wait(pred, timeout=300.0):
    t0 = time.time()
    while not pred():
        QgsApplication.processEvents()
        time.sleep(0.02)
        if time.time() - t0 > timeout:
            raise AssertionError("timed out")


def _texts(v, level):
    return " | ".join(m.text for m in v.messages if m.level == level)


def test_validation_messages(qgis_app, tmp_path):
    from deformcast.ui.runner import validate

    stack, dates = _stack(tmp_path / "s.tif")
    out = str(tmp_path / "out")
    ok = validate({"stack": stack, "output_folder": out}, check_algorithms=False)
    assert ok.ok, ok.messages
    assert ok.n_epochs == 40 and "40 epochs, 2020-01-01" in _texts(ok, "info")

    short = validate({"stack": stack, "output_folder": out, "window": 35, "horizon": 3}, check_algorithms=False)
    assert not short.ok and "Too few epochs" in _texts(short, "error") and "WINDOW 35" in _texts(short, "error")

    nod, _ = _stack(tmp_path / "nodates.tif", dates=False)
    v = validate({"stack": nod, "output_folder": out}, check_algorithms=False)
    assert "Cannot find the acquisition date of band 1" in _texts(v, "error")
    listed = ",".join(str(d) for d in dates)
    v = validate({"stack": nod, "dates": listed, "output_folder": out}, check_algorithms=False)
    assert v.ok and v.n_epochs == 40

    same, _ = _stack(tmp_path / "cov_same.tif", n=1)
    other, _ = _stack(tmp_path / "cov_other.tif", n=1, w=9, x0=320050.0)
    far, _ = _stack(tmp_path / "cov_far.tif", n=1, x0=900000.0)
    v = validate({"stack": stack, "output_folder": out, "covariates": [same, other]}, check_algorithms=False)
    assert v.ok and "cov_other.tif' is on another grid" in _texts(v, "warning") and "cov_same" not in _texts(v, "warning")
    v = validate({"stack": stack, "output_folder": out, "covariates": [far]}, check_algorithms=False)
    assert "cov_far.tif' does not overlap the stack" in _texts(v, "error")

    bad = validate({"stack": stack, "output_folder": "", "thresholds": "10,abc", "top_k": 5, "n_trials": 2,
                    "architectures": [], "encodings": ["covariates"]}, check_algorithms=False)
    errs = _texts(bad, "error")
    for frag in ("output folder", "are not numbers", "Top-K (5) cannot exceed", "at least one architecture",
                 "needs covariate rasters"):
        assert frag in errs
    missing = validate({"stack": str(tmp_path / "nope.tif"), "output_folder": out}, check_algorithms=False)
    assert "does not exist" in _texts(missing, "error")
    imp = validate({"source": "import", "import_input": str(tmp_path / "s.tif"), "output_folder": out,
                    "cell_size": 0}, check_algorithms=False)
    assert "give a cell size" in _texts(imp, "error")


def test_build_steps_chain(qgis_app, tmp_path):
    from deformcast.ui.runner import build_steps

    out = str(tmp_path / "out")
    steps = build_steps({"stack": "/d/s.tif", "output_folder": out, "architectures": ["gru"], "horizon": 4,
                         "encodings": ["temporal", "spatial"], "covariates": ["/d/c.tif"], "thresholds": "5,15"})
    assert [s.alg_id for s in steps] == ["tune", "predict", "uncertainty", "zoning"]
    tune, pred, unc, zon = steps
    assert tune.params["ARCHITECTURE"] == "gru" and tune.params["ENCODING"] == ["temporal", "spatial"]
    assert tune.params["COVARIATES"] == ["/d/c.tif"] and pred.params["COVARIATES"] == ["/d/c.tif"]
    assert pred.params["MODEL_FOLDER"] == tune.params["OUTPUT_FOLDER"]
    assert unc.params["MEMBERS"] == pred.params["OUTPUT_MEMBERS"] and unc.params["INPUT"] == "/d/s.tif"
    assert unc.params["THRESHOLDS"] == "5,15"
    assert zon.params["SUSCEPTIBILITY"] == unc.params["OUTPUT_SUSCEPTIBILITY"]
    assert zon.params["EXCEEDANCE"] == unc.params["OUTPUT_EXCEEDANCE"]
    assert all(os.path.dirname(v).startswith(out) for s in steps for k, v in s.params.items() if k.startswith("OUTPUT"))

    two = build_steps({"source": "import", "import_input": "/d/egms.csv", "cell_size": 50, "output_folder": out,
                       "architectures": ["lstm", "tcn"], "compare": True, "extra": {"tune": {"MAX_SAMPLES": 99}}})
    assert [s.alg_id for s in two] == ["import_timeseries"] + ["tune", "predict", "uncertainty", "zoning"] * 2 + ["compare"]
    assert two[0].params["OUTPUT"] == two[1].params["INPUT"] == os.path.join(out, "stack.tif")
    assert two[1].folder == os.path.join(out, "lstm") and two[5].folder == os.path.join(out, "tcn")
    assert two[1].params["MAX_SAMPLES"] == 99 and two[-1].params["ARCHITECTURES"] == ["lstm", "tcn"]


def test_load_results_styled_group(qgis_new_project, tmp_path):
    from deformcast.ui.runner import ChainResult, Step, load_results

    g = make_grid(320000.0, 5650000.0, 100.0, 4, 3)
    susc = write_raster(str(tmp_path / "susceptibility.tif"), np.ones((3, 4)), g, dtype="uint8", nodata=0,
                        qml=styles.class_style(styles.class_labels(5)))
    exc = write_raster(str(tmp_path / "exceedance.tif"), np.full((3, 4), 0.3), g, qml=styles.probability_style())
    res = ChainResult([(Step("uncertainty", {}, "u", str(tmp_path), "lstm"),
                        {"OUTPUT_SUSCEPTIBILITY": susc, "OUTPUT_EXCEEDANCE": exc, "OUTPUT_REPORT": None})])
    group = load_results(res, "My run")
    assert QgsProject.instance().layerTreeRoot().findGroup("My run") is group
    names = [n.name() for n in group.findLayers()]
    assert names == ["Exceedance probability", "Susceptibility"]
    s = QgsProject.instance().mapLayersByName("Susceptibility")[0]
    assert isinstance(s.renderer(), QgsPalettedRasterRenderer)
    assert [c.label for c in s.renderer().classes()] == styles.class_labels(5)
    e = QgsProject.instance().mapLayersByName("Exceedance probability")[0]
    assert e.renderer().type() == "singlebandpseudocolor"


def test_dialog_validates_while_typing(qgis_new_project, qgis_iface, tmp_path):
    from qgis.PyQt.QtTest import QTest

    from deformcast.ui.workflow_dialog import WorkflowDialog

    stack, _ = _stack(tmp_path / "s.tif")
    lyr = QgsRasterLayer(stack, "my stack", "gdal")
    QgsProject.instance().addMapLayer(lyr)
    dlg = WorkflowDialog(qgis_iface, show_reports=False)
    assert not dlg.run_btn.isEnabled() and "Choose a displacement stack" in dlg.message.text()
    dlg.stack_layer.setLayer(lyr)  # picking the layer fills the file
    assert dlg.choices()["stack"] == stack
    other, _ = _stack(tmp_path / "other.tif")
    dlg.stack_file.setFilePath(other)  # a file chosen by hand clears the layer choice
    assert dlg.stack_layer.currentLayer() is None and dlg.choices()["stack"] == other
    dlg.stack_layer.setLayer(lyr)
    assert dlg.choices()["stack"] == stack
    dlg.output.setFilePath(str(tmp_path / "out"))
    dlg.window.setValue(6)
    dlg.thresholds.clear()
    QTest.keyClicks(dlg.thresholds, "5,x")
    _wait(lambda: not dlg._timer.isActive(), 5)
    assert "are not numbers" in dlg.message.text() and not dlg.run_btn.isEnabled()
    QTest.keyClick(dlg.thresholds, "\b")
    QTest.keyClicks(dlg.thresholds, "20")
    _wait(lambda: not dlg._timer.isActive(), 5)
    assert "are not numbers" not in dlg.message.text()
    assert "40 epochs" in dlg.message.text()
    dlg.window.setValue(35)
    _wait(lambda: not dlg._timer.isActive(), 5)
    assert "Too few epochs" in dlg.message.text() and not dlg.run_btn.isEnabled()
    c = dlg.choices()
    assert c["thresholds"] == "5,20" and c["window"] == 35 and c["architectures"] == ["lstm"]
    dlg.set_choices(dict(c, architectures=["gru", "tcn"], encodings=["none"], covariates=[stack]))
    assert dlg.choices()["architectures"] == ["gru", "tcn"] and dlg.covariates() == [stack]
    dlg.close()


def test_help_dialog_shows_algorithm_help(qgis_app, deformcast_provider, qgis_iface, monkeypatch):
    from qgis.gui import QgsBrowserGuiModel

    from deformcast.ui.workflow_dialog import WorkflowDialog

    # Processing's dialogs ask QGIS's interface for its browser model; pytest-qgis's stub has none
    model = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: model, raising=False)

    dlg = WorkflowDialog(None, show_reports=False)
    hd = dlg.show_help()
    ids = [a.id() for a in hd.algs]
    assert "deformcast:synthetic_scenario" in ids
    for a in hd.algs:
        assert a.shortHelpString().strip(), f"{a.id()} has no help text"
    syn = next(a for a in hd.algs if a.id() == "deformcast:synthetic_scenario")
    hd.list.setCurrentRow(ids.index(syn.id()))
    text = hd.browser.toPlainText()
    assert "known physics" in text and "OUTPUT_FOLDER" in text
    alg_dlg = hd.open_algorithm()  # the algorithm's own Processing dialog
    assert alg_dlg is not None and alg_dlg.algorithm().id() == "deformcast:synthetic_scenario"
    alg_dlg.close()
    hd.close()
    dlg.close()


def test_gui_entries(qgis_new_project, qgis_iface, tmp_path):
    from deformcast.ui import gui_entries
    from deformcast.ui.runner import ChainResult, Step, load_results

    class Plugin:
        iface = qgis_iface

    p = Plugin()
    entries = dict(gui_entries(p))
    assert list(entries)[0] == "DeformCast workflow…"
    dlg = entries["DeformCast workflow…"]()
    assert entries["DeformCast workflow…"]() is dlg  # reopened with the same choices
    dock = entries["Time-series inspector"]()
    assert qgis_iface.mapCanvas().mapTool() is dock.tool
    # a finished run hands its layers to the open inspector
    g = make_grid(320000.0, 5650000.0, 100.0, 4, 3)
    med = write_raster(str(tmp_path / "forecast_median.tif"), np.zeros((2, 3, 4)), g, ["2021-01-01", "2021-01-13"])
    user_stack, _ = _stack(tmp_path / "my_series.tif")
    group = load_results(ChainResult([(Step("predict", {}, "p", str(tmp_path)), {"OUTPUT_MEDIAN": med})]),
                         "run", stack_path=user_stack)
    dlg.resultsLoaded.emit(group, {"dates": ""})
    assert dock.layers()["median"].source() == med
    assert dock.layers()["stack"].source() == user_stack  # found by its layer name
    deps = entries["Install dependencies…"]()
    assert deps.table.rowCount() >= 4
    for w in (dlg, deps, entries["DeformCast help…"]()):
        w.close()
    dock.pick_btn.setChecked(False)


REQUIRED_ALGS = ["synthetic_scenario", "tune", "predict", "uncertainty", "zoning"]


@pytest.fixture()
def tiny_scene(run_alg, tmp_path_factory):
    from deformcast.ui.runner import registry_has

    missing = [a for a in REQUIRED_ALGS if not registry_has(a)]
    if missing:
        pytest.fail("the workflow needs deformcast:" + ", ".join(missing))
    out = tmp_path_factory.mktemp("scene")
    r = run_alg("synthetic_scenario", {"SEED": 3, "OUTPUT_FOLDER": str(out), "WIDTH": 16, "HEIGHT": 16,
                                       "N_EPOCHS": 36, "N_FUTURE": 2})
    return r["OUTPUT_STACK"]


def _tiny_choices(stack, out):
    return {"stack": stack, "output_folder": str(out), "window": 6, "horizon": 2, "n_trials": 2, "top_k": 2,
            "max_epochs": 2, "thresholds": "2,5", "encodings": ["temporal"],
            "extra": {"tune": {"MAX_SAMPLES": 300}}}


def test_workflow_dialog_runs_chain_and_loads_styled_group(qgis_new_project, qgis_iface, tiny_scene, tmp_path):
    from osgeo import gdal
    from qgis.core import QgsPointXY

    from deformcast.ui.inspector import InspectorDock
    from deformcast.ui.workflow_dialog import WorkflowDialog

    dlg = WorkflowDialog(qgis_iface)
    out = tmp_path / "run"
    dlg.set_choices(_tiny_choices(tiny_scene, out))
    assert dlg.validation.ok, dlg.validation.messages
    seen = []
    task = dlg.start()
    assert task is not None and dlg.cancel_btn.isEnabled() and not dlg.run_btn.isEnabled()
    task.progressChanged.connect(seen.append)
    _wait(lambda: dlg.task is None, 600)
    assert dlg.last_error is None, dlg.log.toPlainText()
    assert dlg.progress.value() == 100 and seen and max(seen) == pytest.approx(100.0)
    assert os.path.exists(out / "workflow.json")

    group = QgsProject.instance().layerTreeRoot().findGroup("DeformCast run")
    assert group is not None and group is dlg.last_group
    layers = {n.name(): n.layer() for n in group.findLayers()}
    for name in ("Control zones", "Control tiers", "Exceedance probability", "Susceptibility",
                 "Forecast median", "Forecast members", "Forecast P10/P50/P90", "Displacement stack"):
        assert name in layers, sorted(layers)
        assert layers[name].isValid()
    assert isinstance(layers["Control zones"], QgsVectorLayer)
    susc = layers["Susceptibility"]
    assert isinstance(susc.renderer(), QgsPalettedRasterRenderer)
    assert [c.label.split(" (")[0] for c in susc.renderer().classes()] == styles.class_labels(5)
    assert isinstance(layers["Control tiers"].renderer(), QgsPalettedRasterRenderer)
    assert layers["Exceedance probability"].renderer().type() == "singlebandpseudocolor"
    assert dlg.viewer is not None and dlg.viewer.combo.count() >= 3
    assert dlg.viewer.current().endswith("zoning_report.html")
    assert "tier" in dlg.viewer.browser.toPlainText().lower()
    with open(dlg.viewer.current(), encoding="utf-8") as fh:
        html = fh.read()
    m = re.search(r"data:image/png;base64,[A-Za-z0-9+/=]+", html)
    if m:  # embedded plots are decoded for the viewer
        from qgis.PyQt.QtCore import QUrl
        from qgis.PyQt.QtGui import QTextDocument

        uri = m.group(0)
        img = dlg.viewer.browser.loadResource(QTextDocument.ImageResource, QUrl(uri))
        assert not img.isNull() and img.width() > 10
    dlg.viewer.close()

    # the inspector on the real outputs shows the rasters' values
    dock = InspectorDock(qgis_iface)
    dock.auto_assign([n.layer() for n in group.findLayers()])
    stack_lyr = dock.layers()["stack"]
    ext = stack_lyr.extent()
    pt = QgsPointXY(ext.xMinimum() + 7.5 * stack_lyr.rasterUnitsPerPixelX(),
                    ext.yMaximum() - 9.5 * stack_lyr.rasterUnitsPerPixelY())
    ps = dock.inspect(pt, stack_lyr.crs())
    assert ps.pixel == (9, 7)
    ds = gdal.Open(dock.layers()["median"].source())
    med = [ds.GetRasterBand(b + 1).ReadAsArray()[9, 7] for b in range(ds.RasterCount)]
    np.testing.assert_allclose(ps.median[1], med, atol=1e-5)
    assert len(ps.members) == 2 and len(ps.exceedance) == 2 and ps.susceptibility_class is not None
    dlg.close()


def test_workflow_cancel(qgis_new_project, qgis_iface, tiny_scene, tmp_path):
    from deformcast.ui.workflow_dialog import WorkflowDialog

    dlg = WorkflowDialog(qgis_iface, show_reports=False)
    c = _tiny_choices(tiny_scene, tmp_path / "cancelled")
    c["max_epochs"] = 200
    c["n_trials"] = 50
    dlg.set_choices(c)
    task = dlg.start()
    _wait(lambda: any("TPE tuning" in s for s in task.log), 60)
    dlg.cancel()
    _wait(lambda: dlg.task is None, 120)
    assert dlg.last_error and "Cancel" in dlg.last_error
    assert QgsProject.instance().layerTreeRoot().findGroup("DeformCast cancelled") is None
    assert not os.path.exists(tmp_path / "cancelled" / "forecast_median.tif")
    assert dlg.run_btn.isEnabled()


def test_import_step_runs_as_background_task(qgis_new_project, deformcast_provider, tmp_path):
    """The 'import one first' branch: an EGMS L3 CSV becomes the stack the chain continues."""
    from deformcast.algorithms.raster import open_stack
    from deformcast.ui.runner import WorkflowTask, build_steps, validate

    n_t, side = 40, 5
    dates = [str(np.datetime64("2019-01-01") + 6 * k).replace("-", "") for k in range(n_t)]
    xs, ys = np.meshgrid(4200050.0 + 100 * np.arange(side), 3099950.0 - 100 * np.arange(side))
    vals = np.cumsum(np.random.default_rng(1).normal(-0.5, 1, (side * side, n_t)), axis=1)
    csv_path = tmp_path / "egms_l3.csv"
    with open(csv_path, "w", encoding="utf-8") as fh:
        fh.write("pid,easting,northing,height,rmse,mean_velocity," + ",".join(dates) + "\n")
        for i, (x, y) in enumerate(zip(xs.ravel(), ys.ravel())):
            fh.write(f"{i},{x:.2f},{y:.2f},0,1,0," + ",".join(f"{v:.2f}" for v in vals[i]) + "\n")
    choices = {"source": "import", "import_input": str(csv_path), "cell_size": 100,
               "output_folder": str(tmp_path / "out"), "window": 6, "horizon": 2}
    v = validate(choices)
    assert v.ok, v.messages
    steps = build_steps(choices)
    assert steps[0].alg_id == "import_timeseries" and steps[1].params["INPUT"] == steps[0].params["OUTPUT"]
    done = []
    task = WorkflowTask(steps[:1], on_finished=done.append)
    progress = []
    task.progressChanged.connect(progress.append)
    QgsApplication.taskManager().addTask(task)
    _wait(lambda: bool(done), 120)
    assert task.error is None, task.log
    stack = task.result.outputs[0][1]["OUTPUT"]
    assert stack == steps[0].params["OUTPUT"] and os.path.exists(os.path.splitext(stack)[0] + ".qml")
    info = open_stack(stack)
    assert info.n_epochs == n_t and (info.grid.width, info.grid.height) == (side, side)
    assert progress and max(progress) == pytest.approx(100.0)
    # the rest of the chain accepts it
    assert validate(dict(choices, source="stack", stack=stack)).ok


def test_failed_step_reports_the_algorithms_message(qgis_new_project, deformcast_provider, tmp_path):
    from deformcast.ui.runner import Step, WorkflowTask

    bad = tmp_path / "not_a_stack.tif"
    g = make_grid(320000.0, 5650000.0, 100.0, 3, 3)
    write_raster(str(bad), np.zeros((3, 3, 3), np.float32), g)  # no dates in the bands
    done = []
    task = WorkflowTask([Step("uncertainty", {"MEMBERS": str(bad), "INPUT": str(bad), "THRESHOLDS": "5"},
                              "Uncertainty", str(tmp_path / "o"))], on_finished=done.append)
    QgsApplication.taskManager().addTask(task)
    _wait(lambda: bool(done), 60)
    assert task.result is None and task.error.startswith("Uncertainty failed:")
    assert "Traceback" not in task.error and len(task.error) > 30
