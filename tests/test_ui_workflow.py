"""The workflow dialog, a front end to ``deformcast:workflow``: parameters generated from the chain
(defaults identical to the algorithm's, expert ones under Advanced), validation while typing,
choices kept between sessions, the run as a background task with progress and Cancel that writes
the main job's report.html and deformcast.qgz and loads the same layer tree, reports, help.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from qgis.core import QgsApplication, QgsLayerTreeGroup, QgsProject, QgsRasterLayer

from deformcast.algorithms import chain
from deformcast.algorithms.io.raster import make_grid, write_raster, write_stack


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


@pytest.fixture()
def fresh_settings():
    from deformcast.ui import runner

    runner.clear_settings()
    yield
    runner.clear_settings()


def test_validation_messages(qgis_app, tmp_path):
    from deformcast.ui.runner import validate

    stack, dates = _stack(tmp_path / "s.tif")
    out = str(tmp_path / "out")
    base = {"INPUT": stack, "OUTPUT_FOLDER": out, "HORIZON": 3}
    ok = validate(base, check_algorithms=False)
    assert ok.ok, ok.messages
    assert ok.n_epochs == 40 and "40 epochs, 2020-01-01" in _texts(ok, "info")
    assert "Coding strategy (automatic): regime" in _texts(ok, "info")  # too short for 'trajectory'

    short = validate(dict(base, WINDOW=35), check_algorithms=False)
    assert not short.ok and "Too few epochs" in _texts(short, "error") and "WINDOW 35" in _texts(short, "error")
    # the default horizon (a year) does not fit 40 epochs: said before the run, not after
    assert "Too few epochs" in _texts(validate({"INPUT": stack, "OUTPUT_FOLDER": out}, check_algorithms=False),
                                      "error")

    nod, _ = _stack(tmp_path / "nodates.tif", dates=False)
    v = validate(dict(base, INPUT=nod), check_algorithms=False)
    assert "Cannot find the acquisition date of band 1" in _texts(v, "error")
    v = validate(dict(base, INPUT=nod, DATES=",".join(str(d) for d in dates)), check_algorithms=False)
    assert v.ok and v.n_epochs == 40

    # fills read as no data are said before the run; a stack of nothing but constant pixels is refused there
    v0 = np.cumsum(np.random.default_rng(0).normal(-1, 0.3, (40, 5, 6)), axis=0).astype(np.float32)
    v0[:, 0, :] = -9999.0
    g = make_grid(320000.0, 5650000.0, 100.0, 6, 5, 25832)
    filled = write_stack(str(tmp_path / "filled.tif"), v0, dates, g)
    v = validate(dict(base, INPUT=filled), check_algorithms=False)
    assert v.ok and "6 pixel(s) of 'filled.tif'" in _texts(v, "warning") and "-a_nodata -9999" in _texts(v, "warning")
    g4 = make_grid(320000.0, 5650000.0, 100.0, 6, 4, 25832)      # the rows without the fill
    metres = write_stack(str(tmp_path / "metres.tif"), v0[:, 1:] / 1000.0, dates, g4)
    v = validate(dict(base, INPUT=metres), check_algorithms=False)
    assert v.ok and "SetUnitType('m')" in _texts(v, "warning")
    ended = v0[:, 1:].copy()
    ended[-1] = np.nan
    ended = write_stack(str(tmp_path / "ended.tif"), ended, dates, g4)
    v = validate(dict(base, INPUT=ended), check_algorithms=False)
    assert not v.ok and "no value at any pixel" in _texts(v, "error") and f"END_DATE={dates[-2]}" in _texts(v, "error")
    flat = write_stack(str(tmp_path / "flat.tif"), np.zeros_like(v0), dates, g)
    v = validate(dict(base, INPUT=flat), check_algorithms=False)
    assert not v.ok and "holds the same value at every date" in _texts(v, "error")

    same, _ = _stack(tmp_path / "cov_same.tif", n=1)
    other, _ = _stack(tmp_path / "cov_other.tif", n=1, w=9, x0=320050.0)
    far, _ = _stack(tmp_path / "cov_far.tif", n=1, x0=900000.0)
    v = validate(dict(base, COVARIATES=[same, other]), check_algorithms=False)
    assert v.ok and "cov_other.tif' is on another grid" in _texts(v, "warning") and "cov_same" not in _texts(v, "warning")
    v = validate(dict(base, COVARIATES=[far]), check_algorithms=False)
    assert "cov_far.tif' does not overlap the stack" in _texts(v, "error")

    bad = validate(dict(base, OUTPUT_FOLDER="", THRESHOLDS="10,abc", TOP_K=5, N_TRIALS=2,
                        ENCODING=["covariates"], SEARCH_SPACE="{layers"), check_algorithms=False)
    errs = _texts(bad, "error")
    for frag in ("output folder", "are not numbers", "needs covariate rasters", "JSON object"):
        assert frag in errs
    assert "at most the 2 trial(s)" in _texts(bad, "warning")
    demo = validate({"OUTPUT_FOLDER": out}, check_algorithms=False)
    assert demo.ok and "built-in synthetic demo scene" in _texts(demo, "info")
    missing = validate(dict(base, INPUT=str(tmp_path / "nope.tif")), check_algorithms=False)
    assert "does not exist" in _texts(missing, "error")
    imp = validate({"OUTPUT_FOLDER": out}, {"source": "import", "import_input": str(tmp_path / "s.tif"),
                                            "cell_size": 0}, check_algorithms=False)
    assert "give a cell size" in _texts(imp, "error")


def test_build_jobs(qgis_app, tmp_path):
    from deformcast.ui.runner import WORKFLOW_ID, build_jobs

    out = str(tmp_path / "out")
    jobs = build_jobs({"INPUT": "/d/s.tif", "OUTPUT_FOLDER": out, "HORIZON": 4, "COVARIATES": ["/d/c.tif"],
                       "DATES": None, "STEPS": ""})
    assert [j.alg_id for j in jobs] == [WORKFLOW_ID]
    p = jobs[0].params
    assert p["INPUT"] == "/d/s.tif" and p["COVARIATES"] == ["/d/c.tif"] and p["OUTPUT_FOLDER"] == out
    assert "DATES" not in p and "STEPS" not in p  # unset optional parameters are left out
    two = build_jobs({"OUTPUT_FOLDER": out, "DATES": "x.txt"},
                     {"source": "import", "import_input": "/d/egms.csv", "cell_size": 50})
    assert [j.alg_id for j in two] == ["deformcast:import_timeseries", WORKFLOW_ID]
    assert two[0].params["OUTPUT"] == two[1].params["INPUT"] == os.path.join(out, "stack.tif")
    assert two[0].params["CELL_SIZE"] == 50 and "DATES" not in two[1].params


def test_dialog_defaults_are_the_workflow_algorithms(qgis_new_project, qgis_iface, deformcast_provider,
                                                      fresh_settings):
    """Untouched, the dialog hands deformcast:workflow exactly its own defaults; the same
    parameters are advanced in both."""
    from qgis.core import QgsProcessingDestinationParameter, QgsProcessingParameterDefinition

    from deformcast.ui.workflow_dialog import WorkflowDialog

    alg = QgsApplication.processingRegistry().algorithmById("deformcast:workflow")
    defs = [d for d in alg.parameterDefinitions() if not isinstance(d, QgsProcessingDestinationParameter)]
    assert {d.name() for d in alg.parameterDefinitions()} == {p.name for p in chain.PARAMETERS}
    expected = {d.name(): d.defaultValue() for d in defs if d.defaultValue() is not None}
    dlg = WorkflowDialog(qgis_iface, show_reports=False)
    got = dlg.parameters()
    assert got == expected
    # and the measured-best configuration it stands for
    assert got["ARCHITECTURES"] == ["lstm"] and got["HORIZON"] == 30 and got["N_TRIALS"] == 20
    assert got["TOP_K"] == 10 and got["MAX_EPOCHS"] == 20 and got["ENCODING"] == []
    assert got["VALIDATION"] == "space" and got["TARGET"] == "residual" and got["ANCHOR"] == "adaptive"
    adv = {d.name() for d in alg.parameterDefinitions() if d.flags() & QgsProcessingParameterDefinition.FlagAdvanced}
    assert adv == {p.name for p in chain.advanced()} and "ENCODING" in adv and "HORIZON" not in adv
    in_box = {n for n, f in dlg.fields.items() if dlg.advanced.isAncestorOf(f.widget)}
    assert in_box == adv and dlg.advanced.isCollapsed()
    # every choice list is the core's
    for d in defs:
        if hasattr(d, "options"):
            assert list(d.options()) == list(chain.BY_NAME[d.name()].choices)
    dlg.close()


def test_dialog_choices_persist_and_reset(qgis_new_project, qgis_iface, deformcast_provider, fresh_settings,
                                          tmp_path):
    from deformcast.ui.workflow_dialog import WorkflowDialog

    dlg = WorkflowDialog(qgis_iface, show_reports=False)
    dlg.fields["HORIZON"].widget.setValue(12)
    dlg.fields["ENCODING"].boxes["trajectory"].setChecked(True)
    dlg.fields["OUTPUT_FOLDER"].widget.setFilePath(str(tmp_path / "o"))
    dlg.close()  # saved on close (and on Run)
    again = WorkflowDialog(qgis_iface, show_reports=False)
    p = again.parameters()
    assert p["HORIZON"] == 12 and p["ENCODING"] == ["trajectory"] and p["OUTPUT_FOLDER"] == str(tmp_path / "o")
    again.reset_btn.click()
    assert again.parameters() == WorkflowDialog(qgis_iface, show_reports=False, restore=False).parameters()
    assert again.parameters()["HORIZON"] == 30
    again.close()  # closing saves the defaults now
    assert WorkflowDialog(qgis_iface, show_reports=False).parameters()["HORIZON"] == 30


def test_dialog_validates_while_typing(qgis_new_project, qgis_iface, deformcast_provider, fresh_settings, tmp_path):
    from qgis.PyQt.QtTest import QTest

    from deformcast.ui.workflow_dialog import WorkflowDialog

    stack, _ = _stack(tmp_path / "s.tif")
    lyr = QgsRasterLayer(stack, "my stack", "gdal")
    QgsProject.instance().addMapLayer(lyr)
    dlg = WorkflowDialog(qgis_iface, show_reports=False)
    f = dlg.fields
    assert f["INPUT"].layer.currentLayer() is None  # nothing preselected from the project
    assert not dlg.run_btn.isEnabled() and "Choose an output folder" in dlg.message.text()
    assert "built-in synthetic demo scene" in dlg.message.text()
    f["INPUT"].layer.setLayer(lyr)  # picking the layer fills the file
    assert dlg.parameters()["INPUT"] == stack
    other, _ = _stack(tmp_path / "other.tif")
    f["INPUT"].file.setFilePath(other)  # a file chosen by hand clears the layer choice
    assert f["INPUT"].layer.currentLayer() is None and dlg.parameters()["INPUT"] == other
    f["INPUT"].layer.setLayer(lyr)
    f["OUTPUT_FOLDER"].widget.setFilePath(str(tmp_path / "out"))
    f["HORIZON"].widget.setValue(3)
    f["THRESHOLDS"].widget.clear()
    QTest.keyClicks(f["THRESHOLDS"].widget, "5,x")
    _wait(lambda: not dlg._timer.isActive(), 5)
    assert "are not numbers" in dlg.message.text() and not dlg.run_btn.isEnabled()
    QTest.keyClick(f["THRESHOLDS"].widget, "\b")
    QTest.keyClicks(f["THRESHOLDS"].widget, "20")
    _wait(lambda: not dlg._timer.isActive(), 5)
    assert "are not numbers" not in dlg.message.text() and "40 epochs" in dlg.message.text()
    assert dlg.run_btn.isEnabled(), dlg.message.text()
    f["WINDOW"].widget.setValue(35)
    _wait(lambda: not dlg._timer.isActive(), 5)
    assert "Too few epochs" in dlg.message.text() and not dlg.run_btn.isEnabled()
    p = dlg.parameters()
    assert p["THRESHOLDS"] == "5,20" and p["WINDOW"] == 35 and p["INPUT"] == stack
    dlg.set_parameters(dict(p, ARCHITECTURES=["gru", "tcn"], COVARIATES=[other]))
    assert dlg.parameters()["ARCHITECTURES"] == ["gru", "tcn"] and dlg.parameters()["COVARIATES"] == [other]
    assert dlg.parameters()["HORIZON"] == 3
    dlg.close()


def test_help_dialog_shows_algorithm_help(qgis_app, deformcast_provider, qgis_iface, monkeypatch):
    from qgis.gui import QgsBrowserGuiModel

    from deformcast.ui.workflow_dialog import WorkflowDialog

    # Processing's dialogs ask QGIS's interface for its browser model; pytest-qgis's stub has none
    model = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: model, raising=False)

    dlg = WorkflowDialog(None, show_reports=False, restore=False)
    hd = dlg.show_help()
    assert hd.current_id() == "deformcast:workflow"
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
    from deformcast.processing_provider.project import load_run
    from deformcast.ui import gui_entries

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
    tree = chain.resolve_tree({"forecast_median": med, "stack": user_stack})
    group = load_run(QgsProject.instance(), "DeformCast run", tree)
    dlg.resultsLoaded.emit(group, {"DATES": ""})
    assert dock.layers()["median"].source() == med
    assert dock.layers()["stack"].source() == user_stack  # found by its layer name
    deps = entries["Install dependencies…"]()
    assert deps.table.rowCount() >= 4
    for w in (dlg, deps, entries["DeformCast help…"]()):
        w.close()
    dock.pick_btn.setChecked(False)


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    from deformcast.algorithms.data.synthetic import write_scene

    return write_scene(str(tmp_path_factory.mktemp("scene")), seed=5, width=24, height=20, n_epochs=60,
                       n_future=4)


def _tiny_parameters(scene, out):
    return {"INPUT": scene["stack"], "OBSERVED": scene["future_observed"], "ARCHITECTURES": ["gru"],
            "HORIZON": 3, "N_TRIALS": 2, "TOP_K": 2, "MAX_EPOCHS": 2, "MAX_SAMPLES": 500, "THRESHOLDS": "2,5",
            "SEED": 1, "DEVICE": "cpu", "OUTPUT_FOLDER": str(out)}


def _tree(group):
    return [(sub.name(), [n.name() for n in sub.findLayers()]) for sub in group.children()
            if isinstance(sub, QgsLayerTreeGroup)]


@pytest.mark.slow
def test_dialog_job_writes_the_main_jobs_outputs_and_tree(qgis_new_project, qgis_iface, deformcast_provider,
                                                           fresh_settings, tiny_scene, tmp_path):
    from qgis.PyQt import sip
    from qgis.PyQt.QtCore import QCoreApplication, QEvent

    from deformcast.ui.inspector import InspectorDock
    from deformcast.ui.workflow_dialog import WorkflowDialog

    dlg = WorkflowDialog(qgis_iface)
    out = tmp_path / "run"
    dlg.set_parameters(_tiny_parameters(tiny_scene, out))
    assert dlg.validation.ok, dlg.validation.messages
    seen = []
    r = dlg.start()
    assert r is not None and dlg.cancel_btn.isEnabled() and not dlg.run_btn.isEnabled()
    r.progressChanged.connect(seen.append)
    _wait(lambda: dlg.runner is None, 600)
    assert dlg.last_error is None, dlg.log.toPlainText()
    assert dlg.progress.value() == 100 and seen and max(seen) == pytest.approx(100.0)
    # the main job's outputs
    for f in ("report.html", "deformcast.qgz", "workflow.json", "discontinuities.tif"):
        assert (out / f).is_file(), f
    assert dlg.last_results["OUTPUT_REPORT"] == str(out / "report.html")
    # one group named after the run, the same tree as the main job's project
    root = QgsProject.instance().layerTreeRoot()
    group = root.findGroup("DeformCast run")
    assert group is not None and group is dlg.last_group
    assert len([g for g in root.children() if g.name() == "DeformCast run"]) == 1
    proj = QgsProject()
    assert proj.read(str(out / "deformcast.qgz"))
    qgz_group = proj.layerTreeRoot().findGroup("DeformCast run")
    assert _tree(group) == _tree(qgz_group)
    assert [name for name, _ in _tree(group)][:4] == ["Decision", "Uncertainty", "Forecast", "Residuals"]
    assert [n.name() for n in group.findLayers() if n.isVisible()] == ["Control tiers"]
    layers = {n.name(): n.layer() for n in group.findLayers()}
    assert layers["Displacement stack"].renderer().type() == "singlebandpseudocolor"
    assert layers["Control tiers"].renderer().type() == "paletted"
    # the canvas shows the data
    from qgis.core import QgsCoordinateTransform

    canvas = qgis_iface.mapCanvas()
    tiers = layers["Control tiers"]
    to_canvas = QgsCoordinateTransform(tiers.crs(), canvas.mapSettings().destinationCrs(), QgsProject.instance())
    assert canvas.extent().intersects(to_canvas.transformBoundingBox(tiers.extent()))
    # the story opens first in the report viewer
    assert dlg.viewer is not None and dlg.viewer.reports[0].endswith("report.html")
    assert "rolling origins" in dlg.viewer.browser.toPlainText().lower()
    dlg.viewer.close()
    # the inspector finds its layers in the run's group
    dock = InspectorDock(qgis_iface)
    found = dock.auto_assign([n.layer() for n in group.findLayers()])
    assert found["median"].name() == "Forecast (ensemble median)" and found["stack"].name() == "Displacement stack"
    assert found["members"].name() == "Ensemble members"
    # the dock stays open, with a pick, holding the first run's layers while a second run goes on in
    # the background (a parentless dock like this one crashed QGIS now and then: docs/README_ui.md)
    dock.show()
    pick = dock.inspect(canvas.extent().center())
    assert pick is not None and pick.median is not None
    del found, layers, tiers   # no Python handle on layers the second run deletes; ids instead
    first_ids = {n.layerId() for n in group.findLayers()}
    # running again into the same folder replaces the group instead of adding a second one
    r = dlg.start()
    _wait(lambda: dlg.runner is None, 600)
    assert dlg.last_error is None
    assert len([g for g in root.children() if g.name() == "DeformCast run"]) == 1
    # the first run's layers left the project: the dock let go of them, and binds to the new run
    assert not first_ids & set(QgsProject.instance().mapLayers())
    assert dock.layers() == {role: None for role in dock.layers()}
    assert dock.picks and dock.picks[0].median is None
    found = dock.auto_assign()
    assert set(found) >= {"stack", "median", "members"}
    assert {lyr.id() for lyr in found.values()} <= {n.layerId() for n in dlg.last_group.findLayers()}
    assert dock.picks[0].median is not None
    dock.dispose()
    QCoreApplication.sendPostedEvents(dock, QEvent.DeferredDelete)
    assert sip.isdeleted(dock)
    dlg.close()


@pytest.mark.slow
def test_dialog_job_cancel(qgis_new_project, qgis_iface, deformcast_provider, fresh_settings, tiny_scene,
                           tmp_path):
    from deformcast.ui.workflow_dialog import WorkflowDialog

    dlg = WorkflowDialog(qgis_iface, show_reports=False)
    dlg.set_parameters(dict(_tiny_parameters(tiny_scene, tmp_path / "cancelled"), N_TRIALS=50, MAX_EPOCHS=200))
    r = dlg.start()
    _wait(lambda: any("TPE tuning" in s for s in r.log), 120)
    dlg.cancel()
    _wait(lambda: dlg.runner is None, 120)
    assert dlg.last_error and "Cancel" in dlg.last_error
    assert QgsProject.instance().layerTreeRoot().findGroup("DeformCast cancelled") is None
    assert not os.path.exists(tmp_path / "cancelled" / "forecast_median.tif")
    assert not os.path.exists(tmp_path / "cancelled" / "workflow.json")
    assert dlg.run_btn.isEnabled()
    dlg.close()


def test_import_step_runs_as_background_task(qgis_new_project, deformcast_provider, tmp_path):
    """The 'import one first' branch: an EGMS L3 CSV becomes the stack the workflow continues."""
    from deformcast.algorithms.io.raster import open_stack
    from deformcast.ui.runner import WorkflowRunner, build_jobs, validate

    n_t, side = 40, 5
    dates = [str(np.datetime64("2019-01-01") + 6 * k).replace("-", "") for k in range(n_t)]
    xs, ys = np.meshgrid(4200050.0 + 100 * np.arange(side), 3099950.0 - 100 * np.arange(side))
    vals = np.cumsum(np.random.default_rng(1).normal(-0.5, 1, (side * side, n_t)), axis=1)
    csv_path = tmp_path / "egms_l3.csv"
    with open(csv_path, "w", encoding="utf-8") as fh:
        fh.write("pid,easting,northing,height,rmse,mean_velocity," + ",".join(dates) + "\n")
        for i, (x, y) in enumerate(zip(xs.ravel(), ys.ravel())):
            fh.write(f"{i},{x:.2f},{y:.2f},0,1,0," + ",".join(f"{v:.2f}" for v in vals[i]) + "\n")
    params = {"OUTPUT_FOLDER": str(tmp_path / "out"), "HORIZON": 2, "WINDOW": 6}
    extra = {"source": "import", "import_input": str(csv_path), "cell_size": 100}
    v = validate(params, extra)
    assert v.ok, v.messages
    jobs = build_jobs(params, extra)
    assert jobs[0].alg_id == "deformcast:import_timeseries" and jobs[1].params["INPUT"] == jobs[0].params["OUTPUT"]
    runner = WorkflowRunner(jobs[:1])
    progress = []
    runner.progressChanged.connect(progress.append)
    runner.start()
    _wait(lambda: not runner.running, 120)
    assert runner.error is None, runner.log
    stack = runner.results["OUTPUT"]
    assert stack == jobs[0].params["OUTPUT"] and os.path.exists(os.path.splitext(stack)[0] + ".qml")
    info = open_stack(stack)
    assert info.n_epochs == n_t and (info.grid.width, info.grid.height) == (side, side)
    assert progress and max(progress) == pytest.approx(100.0)
    # the workflow accepts it
    assert validate(dict(params, INPUT=stack)).ok


def test_failed_step_reports_the_algorithms_message(qgis_new_project, deformcast_provider, tmp_path):
    from deformcast.ui.runner import Job, WorkflowRunner

    bad = tmp_path / "not_a_stack.tif"
    g = make_grid(320000.0, 5650000.0, 100.0, 3, 3)
    write_raster(str(bad), np.zeros((3, 3, 3), np.float32), g)  # no dates in the bands
    runner = WorkflowRunner([Job("deformcast:uncertainty", {"MEMBERS": str(bad), "INPUT": str(bad),
                                                            "THRESHOLDS": "5",
                                                            "OUTPUT_SUSCEPTIBILITY": str(tmp_path / "s.tif")},
                                 "Uncertainty")])
    runner.start()
    _wait(lambda: not runner.running, 60)
    assert runner.results is None and runner.error.startswith("Uncertainty failed:")
    assert "Traceback" not in runner.error and len(runner.error) > 30
