"""Issue 13, "Processing polish": the help panel, Advanced parameters, display names and groups,
no raster input taken from the active layer, choice lists from the core. Dialogs are built, never
run (fast)."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

#: the expert parameters of tune the issue lists (all folded under Advanced)
TUNE_ADVANCED = {"STORAGE", "STUDY_NAME", "SEARCH_SPACE", "WINDOW", "TARGET", "ANCHOR", "STEPS", "VALIDATION",
                 "PATIENCE", "MAX_SAMPLES", "PRUNER", "THREADS", "RETRAIN", "TIMEOUT", "DEVICE", "SEED", "DATES"}
#: parameters that stay on the first page of each dialog (the common ones)
VISIBLE = {
    "tune": {"INPUT", "ARCHITECTURE", "HORIZON", "N_TRIALS", "TOP_K", "ENCODING", "COVARIATES", "MAX_EPOCHS"},
    "train": {"INPUT", "ARCHITECTURE", "HORIZON", "WINDOW", "ENCODING", "COVARIATES", "MAX_EPOCHS"},
    "predict": {"INPUT", "MODEL_FOLDER", "QUANTILES", "COVARIATES"},
}
#: expert parameters of the other algorithms (a sample: each must be under Advanced)
EXPERT = {
    "train": {"HPARAMS", "TARGET", "ANCHOR", "STEPS", "VALIDATION", "DATES", "SEED", "DEVICE"},
    "predict": {"HORIZON", "MEMBERS", "END_DATE", "CALIBRATE", "DATES", "DEVICE", "BLOCK_ROWS"},
    "compare": {"SEARCH_SPACE", "MAX_SAMPLES", "PRUNER", "DATES", "SEED", "DEVICE"},
    "uncertainty": {"CLASS_LIMITS", "EXTREME_QUANTILES", "BLOCK_ROWS", "HORIZON", "DATES"},
    "residuals": {"WEIGHTS", "DISTANCE", "N_PERMUTATIONS", "SEED"},
    "zoning": {"STEP_MM", "DISCONTINUITY_BUFFER", "KNOWN_FAULTS", "RULES", "MIN_AREA", "EIGHT_CONNECTED"},
    "import_timeseries": {"STEP_DAYS", "MAX_GAP_DAYS", "DATES"},
    "synthetic_scenario": {"N_FUTURE", "STEP_DAYS", "CELL_SIZE"},
    "workflow": {"TOP_K", "MAX_EPOCHS", "SEARCH_SPACE", "SEED", "DEVICE"},
}
MODEL_ID = "deformcast:deformcast_workflow_model"


def _algs(provider):
    return sorted(provider.algorithms(), key=lambda a: a.id())


def _panel_blocks(alg) -> list:
    """The paragraphs QGIS 3.22's Processing help panel shows (its formatHelp: one <p> per line of
    shortHelpString, under an <h2> title), as a QTextDocument lays them out."""
    from qgis.PyQt.QtGui import QTextDocument

    html = "<h2>%s</h2>" % alg.displayName() + "".join(
        "<p>%s</p>" % line for line in alg.shortHelpString().split("\n"))
    doc = QTextDocument()
    doc.setHtml(html)
    blocks, b = [], doc.begin()
    while b.isValid():
        blocks.append(b.text())
        b = b.next()
    return blocks


# ------------------------------------------------------------------------------------------
# (1) help
# ------------------------------------------------------------------------------------------
def test_help_has_one_line_per_paragraph_and_a_docs_link(deformcast_provider):
    for a in _algs(deformcast_provider):
        text = a.shortHelpString()
        lines = text.split("\n")
        assert lines and all(line.strip() for line in lines), f"{a.id()}: empty lines in the help"
        assert "\n\n" not in text
        assert all(line.lstrip().startswith("<") for line in lines), f"{a.id()}: a paragraph split over lines"
        blocks = _panel_blocks(a)
        assert all(b.strip() for b in blocks), f"{a.id()}: the panel shows blank paragraphs: {blocks}"
        # the title and one block per paragraph or list item: no source line became a paragraph of its own
        assert len(blocks) == 1 + len(re.findall(r"<(?:p|li|h[1-6])\b", text, re.I)), (a.id(), blocks)
        assert "Full documentation" in blocks[-1]
        url = a.helpUrl()
        assert url.startswith("file://") and os.path.isfile(url[len("file://"):]), (a.id(), url)
    tune = deformcast_provider.algorithm("tune").shortHelpString()
    assert "studies/&lt;study name&gt;/" in tune and "DEFORMCAST_STORAGE_PASSWORD" in tune and "rolling_origins.csv" in tune
    assert "README_tuning.md" in tune


def test_processing_panel_renders_the_help_without_blank_lines(qgis_new_project, qgis_iface, deformcast_provider,
                                                                monkeypatch):
    """The real dialog: its help panel has no empty paragraph."""
    from qgis.core import QgsApplication
    from qgis.gui import QgsBrowserGuiModel
    from qgis.PyQt.QtWidgets import QTextBrowser

    from processing.gui.AlgorithmDialog import AlgorithmDialog

    model = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: model, raising=False)
    for alg_id in ("deformcast:tune", MODEL_ID):
        dlg = AlgorithmDialog(QgsApplication.processingRegistry().createAlgorithmById(alg_id))
        panel = next(t for t in dlg.findChildren(QTextBrowser) if t.objectName() == "textShortHelp")
        doc = panel.document()
        blocks, b = [], doc.begin()
        while b.isValid():
            blocks.append(b.text())
            b = b.next()
        assert len(blocks) >= 3 and all(x.strip() for x in blocks), blocks
        dlg.close()


# ------------------------------------------------------------------------------------------
# (2) Advanced
# ------------------------------------------------------------------------------------------
def _advanced(alg) -> set:
    from qgis.core import QgsProcessingParameterDefinition as D

    return {p.name() for p in alg.parameterDefinitions() if p.flags() & D.FlagAdvanced}


def test_expert_parameters_are_advanced(deformcast_provider):
    tune = deformcast_provider.algorithm("tune")
    assert TUNE_ADVANCED <= _advanced(tune)
    for alg_id, names in VISIBLE.items():
        a = deformcast_provider.algorithm(alg_id)
        assert not names & _advanced(a), f"{alg_id}: common parameters folded away"
    for alg_id, names in EXPERT.items():
        a = deformcast_provider.algorithm(alg_id)
        missing = names - _advanced(a)
        assert not missing, f"{alg_id}: not under Advanced: {sorted(missing)}"
    # every algorithm with more than a handful of inputs folds some away
    for a in _algs(deformcast_provider):
        inputs = [p for p in a.parameterDefinitions() if not p.isDestination()]
        if len(inputs) > 8 and a.id() != MODEL_ID:
            assert _advanced(a), f"{a.id()}: {len(inputs)} parameters, none under Advanced"


# ------------------------------------------------------------------------------------------
# (3) names and groups
# ------------------------------------------------------------------------------------------
def test_display_names_and_one_group_per_name(deformcast_provider):
    from deformcast.processing_provider.base import GROUPS

    algs = _algs(deformcast_provider)
    names = [a.displayName() for a in algs]
    assert len(set(names)) == len(names), names
    for a in algs:
        assert a.displayName().strip() and a.displayName() != a.name() and a.displayName() != a.id(), a.id()
        assert a.groupId() in GROUPS and a.group() == GROUPS[a.groupId()], (a.id(), a.groupId(), a.group())
    by_name = {}
    for a in algs:
        by_name.setdefault(a.group(), set()).add(a.groupId())
    assert all(len(ids) == 1 for ids in by_name.values()), by_name   # "Decision" once in the toolbox
    model = deformcast_provider.algorithm("deformcast_workflow_model")
    workflow = deformcast_provider.algorithm("workflow")
    assert model is not None and model.id() == MODEL_ID   # the id scripts and tests use is kept
    assert model.displayName() != "deformcast_workflow_model" and "graphical model" in model.displayName()
    assert (model.group(), model.groupId()) == (workflow.group(), workflow.groupId()) == ("Decision", "decision")
    # a fresh instance (what the dialog and processing.run use) keeps name, group and help
    inst = model.create({})
    assert (inst.displayName(), inst.groupId(), inst.id()) == (model.displayName(), "decision", MODEL_ID)
    assert "Full documentation" in inst.shortHelpString()


def test_architectures_come_from_the_model_registry():
    from deformcast.algorithms import chain
    from deformcast.algorithms.models import names
    from deformcast.processing_provider import base

    assert base.ARCHITECTURES == names() and base.DEVICES == list(chain.DEVICES)


# ------------------------------------------------------------------------------------------
# (4) no raster input from the active layer
# ------------------------------------------------------------------------------------------
@pytest.fixture()
def two_rasters(qgis_new_project, qgis_iface, tmp_path, monkeypatch):
    """A project with a stack and a tier map, the tier map active (as after looking at results)."""
    from qgis.core import QgsProject, QgsRasterLayer
    from qgis.gui import QgsBrowserGuiModel

    from deformcast.algorithms.io import raster

    g = raster.make_grid(300000.0, 5650000.0, 50.0, 5, 4)
    dates = np.datetime64("2020-01-01") + np.arange(3) * np.timedelta64(12, "D")
    raster.write_stack(str(tmp_path / "stack.tif"), np.zeros((3, 4, 5), np.float32), dates, g)
    raster.write_raster(str(tmp_path / "tiers.tif"), np.ones((1, 4, 5), np.float32), g)
    stack, tiers = QgsRasterLayer(str(tmp_path / "stack.tif"), "stack"), QgsRasterLayer(str(tmp_path / "tiers.tif"),
                                                                                         "tiers")
    QgsProject.instance().addMapLayers([stack, tiers])
    qgis_iface.setActiveLayer(tiers)
    model = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: model, raising=False)
    assert qgis_iface.activeLayer() is tiers
    return stack, tiers


def _dialog_values(alg_id, names):
    from qgis.core import QgsApplication

    from processing.gui.AlgorithmDialog import AlgorithmDialog

    dlg = AlgorithmDialog(QgsApplication.processingRegistry().createAlgorithmById(alg_id))
    wrappers = dlg.mainWidget().wrappers
    values = {n: wrappers[n].parameterValue() for n in names}
    return dlg, values


def test_raster_inputs_do_not_take_the_active_layer(deformcast_provider, two_rasters):
    from qgis.core import QgsProcessingContext

    stack, tiers = two_rasters
    for alg_id, names in (("deformcast:tune", ["INPUT"]), ("deformcast:predict", ["INPUT"]),
                          ("deformcast:train", ["INPUT"]), ("deformcast:uncertainty", ["MEMBERS", "INPUT"]),
                          ("deformcast:zoning", ["SUSCEPTIBILITY", "EXCEEDANCE"]), (MODEL_ID, ["INPUT"])):
        dlg, values = _dialog_values(alg_id, names)
        assert all(v in (None, "") for v in values.values()), (alg_id, values)
        if alg_id == "deformcast:tune":
            # a layer can still be chosen, and running without one is refused as a missing value
            w = dlg.mainWidget().wrappers["INPUT"]
            w.setParameterValue(stack.id(), QgsProcessingContext())
            assert w.parameterValue() == stack.id()
        dlg.close()
    dlg, values = _dialog_values("deformcast:tune", ["INPUT"])
    with pytest.raises(Exception) as ei:
        dlg.mainWidget().createProcessingParameters()
    assert getattr(ei.value, "parameter", None) is not None and ei.value.parameter.name() == "INPUT"
    dlg.close()
    # where the active layer is the natural input (any raster to read at points), it still is
    dlg, values = _dialog_values("deformcast:sample_at_points", ["INPUT"])
    assert values["INPUT"] == tiers.id()
    dlg.close()


def test_modeler_and_batch_dialogs_still_build(deformcast_provider, two_rasters, qgis_iface, monkeypatch):
    from qgis.core import QgsApplication, QgsProcessingModelAlgorithm
    from qgis.PyQt.QtWidgets import QMainWindow

    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from processing.modeler.ModelerParametersDialog import ModelerParametersDialog

    win = QMainWindow()
    monkeypatch.setattr(qgis_iface, "mainWindow", lambda: win, raising=False)
    alg = QgsApplication.processingRegistry().createAlgorithmById("deformcast:predict")
    md = ModelerParametersDialog(alg, QgsProcessingModelAlgorithm("m", "g"))
    assert md.widget is not None
    md.close()
    bd = BatchAlgorithmDialog(alg)
    bd.close()


def test_raster_outputs_offer_geotiff_alone(deformcast_provider):
    """The save dialog of every raster output offers the one format DeformCast writes (a '.png' chosen there held a
    GeoTIFF before, and its style overwrote the .tif's); the default extension is .tif."""
    assert deformcast_provider.supportedOutputRasterLayerExtensions() == ["tif"]
    seen = 0
    for a in _algs(deformcast_provider):
        for d in a.destinationParameterDefinitions():
            if d.type() == "rasterDestination":
                seen += 1
                assert d.defaultFileExtension() == "tif", (a.id(), d.name())
                assert "*.tif" in d.createFileFilter() and "*.png" not in d.createFileFilter(), (a.id(), d.name())
    assert seen >= 10
