"""Processing wrapper: ``deformcast:workflow`` — the whole chain in one step (the README's main job)."""
from __future__ import annotations

import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .base import ANCHORS, ARCHITECTURES, ENCODINGS, VALIDATIONS, DeformCastAlgorithm, layer_sources, raster_source
from .project import build_project


class WorkflowAlgorithm(DeformCastAlgorithm):
    ALG_ID = "workflow"
    DISPLAY_NAME = "Full workflow (tune, forecast, uncertainty, zoning)"
    GROUP = "decision"
    REQUIRES = ("numpy", "torch", "optuna", "scipy", "statsmodels")
    HELP = """
<p>Runs the whole DeformCast chain into one output folder: TPE tuning of the chosen architecture(s)
-> backtest of the ensemble on the held-out test period beside the classical baselines -> ensemble
forecast after the last acquisition -> susceptibility, uncertainty and exceedance maps -> spatial
residual analysis (when later observations are given) -> tiered control zones. Writes one HTML
report that tells the story (report.html) and a QGIS project (deformcast.qgz) with every layer
grouped and styled.</p>
<p><b>Parameters</b>: INPUT the displacement stack (leave empty to run on the built-in synthetic
demo scene, generated with SEED); COVARIATES optional static rasters; OBSERVED optional later
observations for the residual analysis; ARCHITECTURES one or more of lstm, gru, tcn, cnn_lstm,
transformer, resnet_transformer; HORIZON forecast epochs; N_TRIALS TPE trials per architecture;
TOP_K ensemble size; MAX_EPOCHS per trial (early stopping ends most trials sooner); ENCODING coding
strategies (empty: <i>trajectory</i>, the per-pixel classical fit as input to networks that learn its
correction, when the series has enough history, else none); VALIDATION space (default: early stopping
on 20 % of the pixels over the epochs before the test period) or time; SEARCH_SPACE
JSON overrides of the tuning ranges (empty: a compact ResNet+Transformer space that keeps the demo
under 10 minutes; <code>{}</code>: the full ranges of the model registry); THRESHOLDS
deformation over the horizon (mm) for the exceedance probabilities (the first one drives the zoning);
N_CLASSES susceptibility classes; MIN_AREA smallest zone polygon (m²); DEVICE auto/cpu/cuda.</p>
<p><b>Outputs</b>: OUTPUT_FOLDER with everything, OUTPUT_REPORT (report.html), OUTPUT_PROJECT
(deformcast.qgz), OUTPUT_TIERS and OUTPUT_ZONES (tier raster and zone polygons), OUTPUT_MEDIAN
(forecast).</p>
"""

    def initAlgorithm(self, config=None):  # noqa: N802
        N = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Displacement stack (empty: built-in demo scene)",
                                                            optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers("COVARIATES", "Covariates", QgsProcessing.TypeRaster,
                                                               optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer("OBSERVED", "Later observations (for residuals)",
                                                            optional=True))
        self.add_enum("ARCHITECTURES", "Architectures", ARCHITECTURES, ["resnet_transformer"], multiple=True)
        self.addParameter(N("HORIZON", "Forecast horizon (epochs; 30 = a year at 12 days)", N.Integer, 30, minValue=1))
        self.addParameter(N("N_TRIALS", "TPE trials per architecture", N.Integer, 20, minValue=1))
        self.addParameter(N("TOP_K", "Ensemble size (best models kept)", N.Integer, 10, minValue=1))
        self.addParameter(N("MAX_EPOCHS", "Maximum epochs per trial", N.Integer, 20, minValue=1))
        self.addParameter(N("WINDOW", "Input window (epochs; 0 = tuned)", N.Integer, 0, optional=True, minValue=0))
        self.add_enum("ENCODING", "Spatiotemporal coding (empty: trajectory + regime where the series allows it)",
                      ENCODINGS, [], multiple=True, optional=True)
        self.add_enum("ANCHOR", "Classical forecast the networks correct", ANCHORS, "adaptive")
        self.addParameter(QgsProcessingParameterString(
            "STEPS", "Known step dates (comma list or a CSV/TXT file of YYYY-MM-DD; added to the classical fits)",
            optional=True))
        self.add_enum("VALIDATION", "Validation (early stopping, TPE objective) windows", VALIDATIONS, "space")
        self.addParameter(QgsProcessingParameterString(
            "SEARCH_SPACE", "Search space overrides (JSON; empty = compact demo space, {} = full space)", "",
            optional=True))
        self.addParameter(QgsProcessingParameterString("THRESHOLDS", "Exceedance thresholds (mm over the horizon)",
                                                       "10,20"))
        self.addParameter(N("N_CLASSES", "Susceptibility classes", N.Integer, 5, minValue=2, maxValue=7))
        self.addParameter(N("MIN_AREA", "Smallest zone polygon (m²)", N.Double, 0.0, minValue=0.0))
        self.add_common_params(dates=True, seed=True, device=True)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_REPORT", "Report (HTML)"))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_PROJECT", "QGIS project"))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_MEDIAN", "Forecast (ensemble median)"))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_TIERS", "Control tiers"))
        self.addOutput(QgsProcessingOutputVectorLayer("OUTPUT_ZONES", "Control zones"))

    def execute(self, parameters, context, feedback, progress):
        from ..algorithms.errors import DeformCastError
        from ..algorithms.uncertainty import parse_number_list
        from ..algorithms.workflow import run_workflow

        folder = self.parameterAsFileOutput(parameters, "OUTPUT_FOLDER", context)
        stack = raster_source(self, parameters, "INPUT", context) if parameters.get("INPUT") else None
        observed = raster_source(self, parameters, "OBSERVED", context) if parameters.get("OBSERVED") else None
        thresholds = parse_number_list(self.parameterAsString(parameters, "THRESHOLDS", context), "THRESHOLDS")
        if not thresholds:
            raise DeformCastError("THRESHOLDS: give at least one threshold in mm, e.g. 10,20.")
        s = run_workflow(
            folder, stack_path=stack, covariates=layer_sources(self, parameters, "COVARIATES", context),
            observed_path=observed, dates=self.parameterAsString(parameters, "DATES", context) or None,
            seed=self.parameterAsInt(parameters, "SEED", context),
            architectures=self.enum_values(parameters, "ARCHITECTURES", context) or ["resnet_transformer"],
            horizon=self.parameterAsInt(parameters, "HORIZON", context),
            n_trials=self.parameterAsInt(parameters, "N_TRIALS", context),
            top_k=self.parameterAsInt(parameters, "TOP_K", context),
            max_epochs=self.parameterAsInt(parameters, "MAX_EPOCHS", context),
            window=self.parameterAsInt(parameters, "WINDOW", context) or None,
            encodings=self.enum_values(parameters, "ENCODING", context) or None,
            validation=self.enum_value(parameters, "VALIDATION", context) or "space",
            baseline=self.enum_value(parameters, "ANCHOR", context) or "adaptive",
            steps=self.parameterAsString(parameters, "STEPS", context) or None,
            search_space=self.parameterAsString(parameters, "SEARCH_SPACE", context).strip() or "compact",
            thresholds=thresholds, n_classes=self.parameterAsInt(parameters, "N_CLASSES", context),
            min_area=self.parameterAsDouble(parameters, "MIN_AREA", context),
            device=self.enum_value(parameters, "DEVICE", context) or "auto", progress=progress)
        p = s["paths"]
        from ..algorithms.raster import open_stack

        crs = open_stack(p["stack"], parameters.get("DATES") or None).grid.crs_wkt
        groups = [
            ("Decision", [(p.get("zones_polygons"), "Control zones"), (p.get("tiers"), "Control tiers")]),
            ("Uncertainty", [(p.get("OUTPUT_EXCEEDANCE"), "Exceedance probability"),
                             (p.get("OUTPUT_CONFIDENCE"), "Classification confidence"),
                             (p.get("OUTPUT_AMBIGUITY"), "Class ambiguity"), (p.get("OUTPUT_SPREAD"), "Ensemble spread"),
                             (p.get("OUTPUT_SUSCEPTIBILITY"), "Susceptibility")]),
            ("Forecast", [(p.get("OUTPUT_DEFORMATION"), "Median deformation over the horizon"),
                          (p.get("forecast_median"), "Forecast (ensemble median)"),
                          (p.get("forecast_quantiles"), "Forecast quantiles"),
                          (p.get("forecast_members"), "Ensemble members")]),
            ("Residuals", [(p.get("OUTPUT_HOTSPOT_CLASSES"), "Residual hot spot classes"),
                           (p.get("OUTPUT_HOTSPOTS"), "Residual hot spots (Gi* z)"),
                           (p.get("OUTPUT_RESIDUALS"), "Residuals")]),
            ("Data", [(p.get("stack"), "Displacement stack"), (p.get("zones"), "Scene zones (truth)"),
                      (p.get("truth"), "Noise-free truth"), (p.get("future_observed"), "Later observations")]),
        ]
        project = build_project(os.path.join(s["output_folder"], "deformcast.qgz"), groups, crs)
        feedback.pushInfo(f"Report: {s['report']}")
        feedback.pushInfo(f"QGIS project: {project}")
        return {"OUTPUT_FOLDER": s["output_folder"], "OUTPUT_REPORT": s["report"], "OUTPUT_PROJECT": project,
                "OUTPUT_MEDIAN": p.get("forecast_median"), "OUTPUT_TIERS": p.get("tiers"),
                "OUTPUT_ZONES": p.get("zones_polygons")}
