"""Processing wrapper: ``deformcast:workflow`` — the whole chain in one step (the README's main job).

Its parameters, their defaults, choices and advanced flags, and the layer tree of its QGIS project
are declared once in :mod:`algorithms.chain` (which the workflow dialog and the graphical model
generator read too).
"""
from __future__ import annotations

import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputFile,
    QgsProcessingOutputHtml,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..algorithms import chain
from .base import DeformCastAlgorithm, layer_sources, raster_source
from .project import build_project, desktop_canvas, load_run, new_run_id


def parameter_definition(p: "chain.Param"):
    """The Processing parameter of one chain parameter (with its advanced flag and help)."""
    N = QgsProcessingParameterNumber
    if p.kind == "raster":
        d = QgsProcessingParameterRasterLayer(p.name, p.label, p.default, p.optional)
    elif p.kind == "rasters":
        d = QgsProcessingParameterMultipleLayers(p.name, p.label, QgsProcessing.TypeRaster, p.default, p.optional)
    elif p.kind == "enum":
        d = QgsProcessingParameterEnum(p.name, p.label, list(p.choices), p.multiple, p.default, p.optional)
        d.setUsesStaticStrings(True)
    elif p.kind in ("int", "float"):
        kw = {}
        if p.minimum is not None:
            kw["minValue"] = p.minimum
        if p.maximum is not None:
            kw["maxValue"] = p.maximum
        d = N(p.name, p.label, N.Integer if p.kind == "int" else N.Double, p.default, p.optional, **kw)
    elif p.kind == "string":
        d = QgsProcessingParameterString(p.name, p.label, p.default, False, p.optional)
    elif p.kind == "folder":
        d = QgsProcessingParameterFolderDestination(p.name, p.label)
    else:  # pragma: no cover - a chain parameter kind without a widget
        raise ValueError(f"unknown parameter kind {p.kind}")
    if p.advanced:
        d.setFlags(d.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    if p.tip and hasattr(d, "setHelp"):
        d.setHelp(p.tip)
    return d


class WorkflowAlgorithm(DeformCastAlgorithm):
    ALG_ID = "workflow"
    DISPLAY_NAME = "Full workflow (tune, forecast, uncertainty, zoning)"
    GROUP = "decision"
    REQUIRES = ("numpy", "torch", "optuna", "scipy", "statsmodels")
    HELP = """
<p>Runs the whole DeformCast chain into one output folder: TPE tuning of the chosen architecture(s)
-> skill over rolling origins and the skill gate -> backtest on the held-out test period beside the
classical baselines -> ensemble forecast after the last acquisition -> susceptibility, uncertainty
and exceedance maps -> spatial residual analysis (when later observations are given) -> tiered
control zones. Writes one HTML report that tells the story (report.html) and a QGIS project
(deformcast.qgz) that opens on the control tiers; run from the desktop, the same layer group
(named after the output folder: Decision, Uncertainty, Forecast, Residuals, Data) is added to
the open project.</p>
<p><b>Parameters</b> (the defaults are the configuration measured best): INPUT the displacement
stack (leave empty to run on the built-in synthetic demo scene, generated with SEED); DATES when the
bands carry no dates; COVARIATES optional static rasters; OBSERVED optional later observations for
the residual analysis; HORIZON forecast epochs; N_TRIALS TPE trials per architecture; THRESHOLDS
deformation over the horizon (mm) for the exceedance probabilities (the first one drives the
zoning). Advanced: ARCHITECTURES one or more of the registry's architectures (default <i>lstm</i>: as skilled as
<i>resnet_transformer</i> in the delivered forecast and faster, docs/skill.md); TOP_K ensemble size;
MAX_EPOCHS per trial (early stopping ends most trials sooner); WINDOW input epochs (0 = tuned);
ENCODING coding strategies (empty: <i>trajectory</i> + <i>regime</i> where the series has enough
history, else <i>regime</i>); TARGET residual (the correction to a classical forecast) or increment;
ANCHOR the classical forecast corrected (adaptive: a combination fitted on the training windows);
STEPS <i>auto</i> (default: steps detected in the stack), <i>none</i> or known step dates; VALIDATION space (20 % of the pixels in blocks) or time; SEARCH_SPACE JSON
overrides of the tuning ranges (empty: the architecture's compact space, e.g. LSTM hidden size 16-64 and 1-2
layers, that keeps the demo under 10 minutes; <code>{}</code>: the full ranges of the model registry); MAX_SAMPLES training windows;
N_CLASSES susceptibility classes; MIN_AREA smallest zone polygon (m²); MMU minimum mapping unit of the
tier map (m², default 1 ha: smaller zones merge into their surroundings, Tier 1 is never erased); SEED;
DEVICE auto/cpu/cuda.</p>
<p><b>Outputs</b>: OUTPUT_FOLDER with everything, OUTPUT_REPORT (report.html), OUTPUT_PROJECT
(deformcast.qgz), OUTPUT_TIERS and OUTPUT_ZONES (tier raster and zone polygons), OUTPUT_MEDIAN
(forecast).</p>
"""

    def initAlgorithm(self, config=None):  # noqa: N802
        self._enum_options = {}
        for p in chain.PARAMETERS:
            d = parameter_definition(p)
            if p.kind == "enum":
                self._enum_options[p.name] = list(p.choices)
            self.addParameter(d)
        self.addOutput(QgsProcessingOutputHtml("OUTPUT_REPORT", "Report (HTML)"))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_PROJECT", "QGIS project"))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_MEDIAN", "Forecast (ensemble median)"))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_TIERS", "Control tiers"))
        self.addOutput(QgsProcessingOutputVectorLayer("OUTPUT_ZONES", "Control zones"))

    def chain_values(self, parameters, context) -> dict:
        """The parameters as plain values in Processing's form, keyed by the chain's names."""
        values = {}
        for p in chain.PARAMETERS:
            n = p.name
            if p.kind == "raster":
                values[n] = raster_source(self, parameters, n, context) if parameters.get(n) else None
            elif p.kind == "rasters":
                values[n] = layer_sources(self, parameters, n, context)
            elif p.kind == "enum":
                values[n] = self.enum_values(parameters, n, context) if p.multiple else self.enum_value(
                    parameters, n, context)
            elif p.kind == "int":
                values[n] = self.parameterAsInt(parameters, n, context)
            elif p.kind == "float":
                values[n] = self.parameterAsDouble(parameters, n, context)
            elif p.kind == "string":
                values[n] = self.parameterAsString(parameters, n, context)
            elif p.kind == "folder":
                values[n] = self.parameterAsFileOutput(parameters, n, context)
        return values

    def execute(self, parameters, context, feedback, progress):
        from ..algorithms.io.raster import open_stack
        from ..algorithms.workflow import run_workflow

        self._load = None
        values = self.chain_values(parameters, context)
        kw = chain.workflow_kwargs(values)
        folder = kw.pop("output_folder")
        s = run_workflow(folder, progress=progress, **kw)
        p = s["paths"]
        crs = open_stack(p["stack"], kw.get("dates")).grid.crs_wkt
        tree = chain.resolve_tree(p, observed=kw.get("observed_path"), covariates=kw.get("covariates"))
        name = chain.run_name(s["output_folder"])
        rid = new_run_id()   # one id for the saved project and the copy loaded into QGIS (the inspector binds to it)
        project = build_project(os.path.join(s["output_folder"], "deformcast.qgz"), name, tree, crs, run_id=rid)
        feedback.pushInfo(f"Report: {s['report']}")
        feedback.pushInfo(f"QGIS project: {project}")
        self._load = (name, tree, rid)
        self._results = {"OUTPUT_FOLDER": s["output_folder"], "OUTPUT_REPORT": s["report"],
                         "OUTPUT_PROJECT": project, "OUTPUT_MEDIAN": p.get("forecast_median"),
                         "OUTPUT_TIERS": p.get("tiers"), "OUTPUT_ZONES": p.get("zones_polygons")}
        return dict(self._results)

    def postProcessAlgorithm(self, context, feedback):  # noqa: N802
        """In the main thread after a run: from the desktop (a context with a project), the run's
        group goes into the open project, the same tree as deformcast.qgz, and the canvas zooms to it."""
        from qgis.PyQt.QtCore import QCoreApplication, QThread

        load = getattr(self, "_load", None)
        project = context.project() if context is not None else None
        app = QCoreApplication.instance()
        main_thread = app is not None and QThread.currentThread() == app.thread()
        # a child of a model runs (and post-processes) in the model's worker thread: no layer tree there
        if load and project is not None and main_thread:
            name, tree, rid = load
            try:
                load_run(project, name, tree, desktop_canvas(), run_id=rid)
                if feedback is not None:
                    feedback.pushInfo(f"Layers added to the project in the group '{name}'.")
            except Exception as e:  # noqa: BLE001 - the outputs exist; loading them is a convenience
                if feedback is not None:
                    feedback.reportError(f"The results are written but could not be added to the project: {e}")
        return dict(getattr(self, "_results", {}) or {})
