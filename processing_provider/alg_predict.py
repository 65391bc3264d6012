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
the best members to use (1 to the number in the folder), or their folder names (default: all); QUANTILES
percentages of the members' spread at the last forecast epoch (default 10,50,90); END_DATE forecast from
the last acquisition on or before this date instead of the stack's end (a backtest to compare with later
acquisitions; a date after the last acquisition is refused); COVARIATES the covariate rasters used in
training (given to models that do not use them, they are ignored with a warning); GATE (default on) applies the
skill gate that <i>tune</i> stored with the models (rolling-origin evaluation: where the networks do not beat
the best classical forecast, the forecast falls back to it or blends the two; off = the raw ensemble; with
MEMBERS, which the gate was not fitted for, the raw ensemble of those members);
CALIBRATE (default on) replaces the members' spread by one fitted on forecasts from the rolling
validation origins (never the test period, never after the forecast start) with the delivered forecast as
the centre: per forecast step the P10-P90 band covers 80% of the observations there, never narrows with
lead time, and is wider at pixels whose evidence (disagreement of the classical forecasts, residual scatter
of the trajectory fit, the members' disagreement, how fast the forecast moves) predicted larger errors; each
member is one coherent path (its rank persists along the horizon), the median is unchanged, and the
quantiles and the exceedance probabilities of <i>uncertainty</i> become calibrated; CALIBRATION the shape of
the members: <i>dressing</i> (normal) or <i>conformal</i> (the empirical distribution of the validation
errors, split-conformal); the coverage and band width per step of both methods are logged and stored in the
outputs' metadata (DEFORMCAST_CALIBRATION); SEASONAL_NOISE (default off: calibration.DEFAULT_SEASONAL) adds the acquisition noise by
season of each forecast date (a summer troposphere is noisier): the band then covers later observations
more evenly per step, but narrows again after a summer instead of never narrowing; DEVICE auto/cpu/cuda; SCHEDULER the address of a Dask
scheduler (tcp://host:port) whose workers forecast the blocks (optional package dask[distributed]; workers
need DeformCast on their PYTHONPATH and the stack and model folder at the same paths; the calibration is
fitted here first); empty = this machine: a raster of 250 000 pixels or more is forecast in one local process
per core (at most 4; DEFORMCAST_PREDICT_WORKERS=1 keeps it in one). The outputs are the same either way.</p>
<p><b>Warnings</b>: the run warns when the stack differs from the models' training stack in a way
that changes the forecast: another acquisition interval, another cell size for models with the
neighbourhood encoding, or a forecast start inside the period the models were trained and validated
on (a backtest there looks better than the models are).</p>
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
            "CALIBRATE", "Calibrate the ensemble spread on the validation origins", True, optional=True))
        from ..algorithms.maps.calibration import DEFAULT_METHOD, METHODS

        self.add_enum("CALIBRATION", "Calibration method (shape of the members)", list(METHODS), DEFAULT_METHOD,
                      optional=True)
        from ..algorithms.maps.calibration import DEFAULT_SEASONAL

        self.addParameter(QgsProcessingParameterBoolean(
            "SEASONAL_NOISE", "Calibration: acquisition noise by season of the forecast date (the band narrows "
            "again after a summer)", DEFAULT_SEASONAL, optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            "GATE", "Apply the skill gate of the model folder (fall back to / blend with the classical forecast "
            "where validation shows the networks do not help)", True, optional=True))
        self.add_common_params(dates=True, seed=False, device=True)
        self.addParameter(N("BLOCK_ROWS", "Rows per block (0 = automatic, about 64,000 pixels)", N.Integer, 0,
                            optional=True, minValue=0))
        self.addParameter(QgsProcessingParameterString("SCHEDULER", "Dask scheduler address (tcp://host:port; "
                                                       "empty = this process)", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_MEDIAN", "Forecast (ensemble median)"))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_QUANTILES", "Forecast quantiles",
                                                                  optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_MEMBERS", "Ensemble members",
                                                                  optional=True))
        self.advanced("HORIZON", "MEMBERS", "END_DATE", "CALIBRATE", "CALIBRATION", "SEASONAL_NOISE", "GATE", "DATES",
                      "DEVICE", "BLOCK_ROWS", "SCHEDULER")

    def execute(self, parameters, context, feedback, progress):
        from ..algorithms.maps.ensemble import predict_ensemble
        from ..algorithms.errors import DeformCastError

        qtext = self.parameterAsString(parameters, "QUANTILES", context) or "10,50,90"
        try:
            quantiles = [float(q) for q in qtext.replace(";", ",").split(",") if q.strip()]
        except ValueError:
            raise DeformCastError(f"QUANTILES '{qtext}': give percentages separated by commas, e.g. 10,50,90.") from None
        stack = raster_source(self, parameters, "INPUT", context)
        folder = self.parameterAsFile(parameters, "MODEL_FOLDER", context)
        members = self.parameterAsString(parameters, "MEMBERS", context).strip() or None
        dates = self.parameterAsString(parameters, "DATES", context) or None
        end_date = self.parameterAsString(parameters, "END_DATE", context).strip() or None
        covariates = layer_sources(self, parameters, "COVARIATES", context)
        check_inputs(stack, folder, members, dates, end_date, covariates, progress)
        res = predict_ensemble(
            stack, folder,
            output_path(self, parameters, "OUTPUT_MEDIAN", context),
            output_path(self, parameters, "OUTPUT_QUANTILES", context) or None,
            output_path(self, parameters, "OUTPUT_MEMBERS", context) or None,
            horizon=self.parameterAsInt(parameters, "HORIZON", context) or None,
            members=members,
            quantiles=quantiles,
            dates=dates,
            covariates=covariates,
            end_date=end_date,
            block_rows=self.parameterAsInt(parameters, "BLOCK_ROWS", context),
            device=self.enum_value(parameters, "DEVICE", context) or "auto",
            calibrate=self.parameterAsBool(parameters, "CALIBRATE", context),
            calibration=self.enum_value(parameters, "CALIBRATION", context) or None,
            seasonal_noise=(self.parameterAsBool(parameters, "SEASONAL_NOISE", context)
                            if parameters.get("SEASONAL_NOISE") is not None else None),
            gate=self.parameterAsBool(parameters, "GATE", context) if parameters.get("GATE") is not None else True,
            scheduler=(self.parameterAsString(parameters, "SCHEDULER", context) or "").strip() or None,
            progress=progress,
        )
        feedback.pushInfo(f"{len(res['members'])} members, {res['valid_pixels']} pixels forecast from "
                          f"{res['end_date']} to {res['forecast_dates'][-1]} on {res['device']}.")
        return {"OUTPUT_MEDIAN": res["median_path"], "OUTPUT_QUANTILES": res["quantiles_path"],
                "OUTPUT_MEMBERS": res["members_path"]}


def check_inputs(stack: str, folder: str, members, dates, end_date, covariates, progress=None) -> None:
    """What ``predict_ensemble`` would otherwise take silently: MEMBERS 0 or more than the folder
    holds, an END_DATE after the last acquisition (it would forecast from the last one), COVARIATES
    the models do not use, and a stack unlike the training stack (:func:`modelio.training_differences`).
    Refusals raise DeformCastError; the rest are warnings. The stack is opened first here, so a slow file layout is
    converted here: ``progress`` logs it and its Cancel stops it."""
    import os

    import numpy as np

    from ..algorithms.models import modelio
    from ..algorithms.io import raster
    from ..algorithms.errors import DeformCastError, warn

    if not folder or not os.path.isdir(folder):
        raise DeformCastError(f"The model folder '{folder}' does not exist. Give the OUTPUT_FOLDER of a `tune` or "
                              "`train` run.")
    man = modelio.read_manifest(folder)
    n = len(man["members"])
    if members is not None and str(members).strip().isdigit():
        k = int(str(members).strip())
        if k < 1 or k > n:
            raise DeformCastError(
                f"MEMBERS {k}: the model folder holds {n} member(s); give a count from 1 to {n}, member folder "
                "names separated by commas, or leave MEMBERS empty to use all of them.")
    info = raster.open_stack(stack, dates, progress=None if progress is None else progress.sub(0.0, 0.02))
    e = info.n_epochs - 1
    if end_date is not None:
        d = raster.parse_date(end_date)
        if d is None:
            raise DeformCastError(f"END_DATE '{end_date}' is not a date (YYYY-MM-DD).")
        if d > info.dates[-1]:
            raise DeformCastError(
                f"END_DATE {d} lies after the last acquisition of the stack ({info.dates[-1]}): there is nothing to "
                "forecast from after it. Leave END_DATE empty to forecast from the last acquisition, or give a date "
                "within the stack for a backtest.")
        e = int(np.searchsorted(info.dates, d, side="right")) - 1
    metas = [modelio.read_meta(m["path"]) for m in man["members"]]
    uses_cov = any("covariates" in ((mt.get("data_config") or {}).get("encodings") or mt.get("encodings") or [])
                   for mt in metas)
    if covariates and not uses_cov:
        warn("COVARIATES were given, but the models of this folder were trained without the covariates encoding: "
             "they are not used. Leave COVARIATES empty, or use models trained with ENCODING covariates.")
    if e >= 0:
        for msg in modelio.training_differences(metas, info, e):
            warn(msg)
