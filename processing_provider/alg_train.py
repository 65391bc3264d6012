"""Processing wrapper: ``deformcast:train`` (one model, hyperparameters given by hand)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessing,
)

from ..algorithms.data.dataset import TARGETS
from ..algorithms.models import DEFAULT_ARCHITECTURE
from ..algorithms.learn.train_job import run_training_job
from .base import (ANCHORS, ARCHITECTURES, ENCODINGS, VALIDATIONS, DeformCastAlgorithm, layer_sources, output_path,
                   raster_source)


class TrainAlgorithm(DeformCastAlgorithm):
    ALG_ID = "train"
    DISPLAY_NAME = "Train a forecasting model"
    GROUP = "modelling"
    REQUIRES = ("numpy", "torch")
    HELP = """
<p>Trains one deep-learning model that forecasts the next HORIZON epochs of every pixel of a
displacement stack from its last WINDOW epochs, with hyperparameters set by hand (use
<i>tune</i> to search them), and evaluates it on a held-out test period beside the classical
baselines (persistence, linear velocity, MintPy-style trajectory, each also on a recent window,
and their ensemble).</p>
<p><b>Parameters</b>: INPUT displacement stack (mm, one band per date, band description = date);
ARCHITECTURE lstm (default: as skilled as resnet_transformer, the paper's best, in our measurements, and
faster), gru, tcn, cnn_lstm, transformer or resnet_transformer;
HORIZON epochs forecast at once; WINDOW input epochs; ENCODING spatiotemporal coding strategies
(none, temporal, spatial, neighbourhood, covariates, trajectory, regime; several allowed; empty =
the measured default, <i>trajectory</i> + <i>regime</i> where the series allows it; <i>trajectory</i>
gives the network the per-pixel classical fit — velocity, acceleration and seasonal terms with their
t-values, what each term adds over the horizon, the residual scatter — and needs 1.9 years of
history before a window ends; <i>regime</i> gives it every classical forecast of the adaptive family
relative to the last value and the evidence of a change of regime); COVARIATES rasters for the
covariates encoding (any CRS/resolution, aligned automatically); HPARAMS a JSON object overriding
the defaults, e.g. <code>{"lr": 0.001, "d_model": 64}</code> (unknown keys are refused with the
valid list); MAX_EPOCHS (training stops earlier when the validation loss stops improving); SEED
(same seed, same CPU model); TARGET what the network learns: <i>residual</i> (default: the correction to a
classical forecast fitted per pixel on the history before each forecast, so the network starts from
the best classical forecast) or <i>increment</i> (the change from the last input epoch); ANCHOR the
classical forecast of the residual target: <i>adaptive</i> (default: a combination of persistence,
smoothed persistence, linear and trajectory fits over several windows, weighted by least squares on
the recent training windows) or one baseline; STEPS <i>auto</i> (default: steps found in the stack, a date where a spatially coherent patch of pixels
jumps), <i>none</i>, or known step dates (comma list or a CSV/TXT file of YYYY-MM-DD: equipment changes,
earthquakes); each date enters the classical fits of the pixels whose history shows the step; VALIDATION <i>space</i>
(default: on 20 % of the pixels, in blocks, over the same epochs as training, so that training
windows may reach up to the test period) or <i>time</i> (on the period before the test period; the
test period stays unseen either way);
the network's correction is weighted per horizon step by least squares on the validation windows
(0 = the classical forecast alone, 1 = the full correction); DEVICE auto/cpu/cuda; DATES when the bands carry no dates; TRUTH an
optional noise-free stack of the same scene (e.g. the synthetic scene's truth.tif) to score
against as well; ZONES an optional zone raster (integer labels, 0 = none) for per-zone scores.</p>
<p>The last ~10 % of the epochs (at least HORIZON) are the test period and the ~10 % before them
validation; neither is used for training or normalisation, and the test period is not used for
early stopping either.</p>
<p><b>Outputs</b>: OUTPUT_FOLDER the model folder (model sub-folder with weights + model.json,
metrics.csv, history.csv, manifest.json; <i>predict</i> reads it); OUTPUT_REPORT HTML report
(scores of the model and the baselines on the same pixels and epochs, per horizon step, loss
curves); OUTPUT_FORECAST forecast of the test period (one band per test date, mm); OUTPUT_RESIDUALS
forecast minus observed on the test period (diverging colours centred on 0).</p>
"""

    def initAlgorithm(self, config=None):  # noqa: N802
        Num = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Displacement stack"))
        self.add_enum("ARCHITECTURE", "Architecture", ARCHITECTURES, DEFAULT_ARCHITECTURE)
        self.addParameter(Num("HORIZON", "Forecast horizon (epochs; 30 = a year at 12 days)", Num.Integer, 30,
                              minValue=1))
        self.addParameter(Num("WINDOW", "Input window (epochs)", Num.Integer, 12, minValue=2))
        self.add_enum("ENCODING", "Spatiotemporal coding (empty: trajectory + regime where the series allows it)",
                      ENCODINGS, [], multiple=True, optional=True)
        self.addParameter(QgsProcessingParameterMultipleLayers("COVARIATES", "Covariate rasters",
                                                               QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterString("HPARAMS", "Hyperparameters (JSON, overrides the defaults)",
                                                       optional=True, multiLine=True))
        self.addParameter(Num("MAX_EPOCHS", "Maximum epochs", Num.Integer, 40, minValue=1))
        self.add_enum("TARGET", "What the network learns", TARGETS, "residual")
        self.add_enum("ANCHOR", "Classical forecast the network corrects (residual target)", ANCHORS, "adaptive")
        self.addParameter(QgsProcessingParameterString(
            "STEPS", "Step dates: auto (detected in the stack), none, or known dates (comma list or a CSV/TXT "
            "file of YYYY-MM-DD)", defaultValue="auto", optional=True))
        self.add_enum("VALIDATION", "Validation (early stopping) windows", VALIDATIONS, "space")
        self.add_common_params(dates=True, seed=True, device=True)
        for name, label in (("TRUTH", "Noise-free truth stack (optional, for scoring)"),
                            ("ZONES", "Zone raster (optional, per-zone scores)")):
            p = QgsProcessingParameterRasterLayer(name, label, optional=True)
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(p)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Model folder"))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_REPORT", "Training report",
                                                                "HTML files (*.html)"))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_FORECAST", "Test-period forecast"))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_RESIDUALS", "Test-period residuals"))
        self.advanced("HPARAMS", "TARGET", "ANCHOR", "STEPS", "VALIDATION", "DATES", "SEED", "DEVICE")

    def execute(self, parameters, context, feedback, progress):
        truth = raster_source(self, parameters, "TRUTH", context) if parameters.get("TRUTH") else None
        zones = raster_source(self, parameters, "ZONES", context) if parameters.get("ZONES") else None
        out = run_training_job(
            raster_source(self, parameters, "INPUT", context),
            self.parameterAsFileOutput(parameters, "OUTPUT_FOLDER", context),
            architecture=self.enum_value(parameters, "ARCHITECTURE", context),
            horizon=self.parameterAsInt(parameters, "HORIZON", context),
            window=self.parameterAsInt(parameters, "WINDOW", context),
            encodings=self.enum_values(parameters, "ENCODING", context) or None,
            covariate_paths=layer_sources(self, parameters, "COVARIATES", context),
            hparams=self.parameterAsString(parameters, "HPARAMS", context),
            max_epochs=self.parameterAsInt(parameters, "MAX_EPOCHS", context),
            target=self.enum_value(parameters, "TARGET", context) or "residual",
            validation=self.enum_value(parameters, "VALIDATION", context) or "space",
            baseline=self.enum_value(parameters, "ANCHOR", context) or "adaptive",
            steps=self.parameterAsString(parameters, "STEPS", context) or None,
            seed=self.parameterAsInt(parameters, "SEED", context),
            device=self.enum_value(parameters, "DEVICE", context) or "auto",
            dates=self.parameterAsString(parameters, "DATES", context) or None,
            forecast_path=output_path(self, parameters, "OUTPUT_FORECAST", context),
            residuals_path=output_path(self, parameters, "OUTPUT_RESIDUALS", context),
            report_path=self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context),
            truth_path=truth, zones_path=zones, progress=progress)
        return {"OUTPUT_FOLDER": out.folder, "OUTPUT_REPORT": out.report_path, "OUTPUT_FORECAST": out.forecast_path,
                "OUTPUT_RESIDUALS": out.residuals_path}
