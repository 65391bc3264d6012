"""Processing wrapper: ``deformcast:predict`` (ensemble forecast from a model folder)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .base import DeformCastAlgorithm, layer_sources, output_path, raster_source


class PredictAlgorithm(DeformCastAlgorithm):
    ALG_ID = "predict"
    DISPLAY_NAME = "Ensemble forecast (predict)"
    GROUP = "maps"
    REQUIRES = ("numpy", "torch")
    HELP = """
<p>Forecasts the epochs after the last acquisition of a displacement stack with every model of a
model folder (the top-K models of <i>tune</i>, or one model of <i>train</i>) and takes their
<b>median</b> as the forecast. Works block by block, so memory does not depend on the raster's area.</p>
<p><b>Parameters</b>: INPUT the displacement stack (same grid as in training when the models use
spatial encodings); MODEL_FOLDER the folder written by tune/train (its manifest.json lists the members
in rank order); HORIZON how many epochs to forecast (default: the models' horizon); MEMBERS how many of
the best members to use, or their folder names (default: all); QUANTILES percentages of the
members' spread at the last forecast epoch (default 10,50,90); END_DATE forecast from the last
acquisition on or before this date instead of the stack's end (a backtest to compare with later
acquisitions); COVARIATES the covariate rasters used in training; CALIBRATE (default on) widens or
narrows the members' spread per forecast step so that their P10-P90 band covers 80% of the
observations of the models' validation period (spread inflation; the median is unchanged), which
makes the quantiles and the exceedance probabilities of <i>uncertainty</i> calibrated; DEVICE auto/cpu/cuda.</p>
<p><b>Outputs</b>: OUTPUT_MEDIAN (one band per forecast date, mm, cumulative on the stack's
reference), OUTPUT_QUANTILES (P10/P50/P90 of the last forecast epoch), OUTPUT_MEMBERS (every member's
forecast, bands member-major: <code>member&lt;k&gt; &lt;date&gt;</code>), all styled.</p>
"""

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Displacement stack"))
        self.addParameter(QgsProcessingParameterFile("MODEL_FOLDER", "Model folder (from tune or train)",
                                                     behavior=QgsProcessingParameterFile.Folder))
        N = QgsProcessingParameterNumber
        self.addParameter(N("HORIZON", "Forecast epochs (0 = the models' horizon)", N.Integer, 0, optional=True,
                            minValue=0))
        self.addParameter(QgsProcessingParameterString("MEMBERS", "Members: a count of the best, or folder names "
                                                       "(default: all)", optional=True))
        self.addParameter(QgsProcessingParameterString("QUANTILES", "Quantiles of the last epoch (%)", "10,50,90",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterString("END_DATE", "Forecast from this date (backtest; default: "
                                                       "the last acquisition)", optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers("COVARIATES", "Covariates (as in training)",
                                                               QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            "CALIBRATE", "Calibrate the ensemble spread on the validation period", True, optional=True))
        self.add_common_params(dates=True, seed=False, device=True)
        self.addParameter(N("BLOCK_ROWS", "Rows per block (0 = automatic, about 64,000 pixels)", N.Integer, 0,
                            optional=True, minValue=0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_MEDIAN", "Forecast (ensemble median)"))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_QUANTILES", "Forecast quantiles",
                                                                  optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_MEMBERS", "Ensemble members",
                                                                  optional=True))

    def execute(self, parameters, context, feedback, progress):
        from ..algorithms.ensemble import predict_ensemble
        from ..algorithms.errors import DeformCastError

        qtext = self.parameterAsString(parameters, "QUANTILES", context) or "10,50,90"
        try:
            quantiles = [float(q) for q in qtext.replace(";", ",").split(",") if q.strip()]
        except ValueError:
            raise DeformCastError(f"QUANTILES '{qtext}': give percentages separated by commas, e.g. 10,50,90.") from None
        res = predict_ensemble(
            raster_source(self, parameters, "INPUT", context),
            self.parameterAsFile(parameters, "MODEL_FOLDER", context),
            output_path(self, parameters, "OUTPUT_MEDIAN", context),
            output_path(self, parameters, "OUTPUT_QUANTILES", context) or None,
            output_path(self, parameters, "OUTPUT_MEMBERS", context) or None,
            horizon=self.parameterAsInt(parameters, "HORIZON", context) or None,
            members=self.parameterAsString(parameters, "MEMBERS", context) or None,
            quantiles=quantiles,
            dates=self.parameterAsString(parameters, "DATES", context) or None,
            covariates=layer_sources(self, parameters, "COVARIATES", context),
            end_date=self.parameterAsString(parameters, "END_DATE", context) or None,
            block_rows=self.parameterAsInt(parameters, "BLOCK_ROWS", context),
            device=self.enum_value(parameters, "DEVICE", context) or "auto",
            calibrate=self.parameterAsBool(parameters, "CALIBRATE", context),
            progress=progress,
        )
        feedback.pushInfo(f"{len(res['members'])} members, {res['valid_pixels']} pixels forecast from "
                          f"{res['end_date']} to {res['forecast_dates'][-1]} on {res['device']}.")
        return {k: res[k] for k in ("OUTPUT_MEDIAN", "OUTPUT_QUANTILES", "OUTPUT_MEMBERS")}
