"""Processing wrapper: ``deformcast:tune`` (Optuna TPE search keeping the top-K models)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .base import ANCHORS, ARCHITECTURES, ENCODINGS, VALIDATIONS, DeformCastAlgorithm, layer_sources, raster_source
from ..algorithms.data.dataset import TARGETS
from ..algorithms.models import DEFAULT_ARCHITECTURE
from ..algorithms.learn.tuning.patience import DEFAULT_STUDY_PATIENCE

PRUNERS = ["median", "hyperband", "none"]


class TuneAlgorithm(DeformCastAlgorithm):
    ALG_ID = "tune"
    DISPLAY_NAME = "Tune hyperparameters (Optuna TPE, top-K models)"
    GROUP = "modelling"
    REQUIRES = ("numpy", "torch", "optuna", "scipy")
    HELP = """
<p>Searches the hyperparameters of one architecture with Optuna's <b>TPE</b> sampler and keeps the
<b>TOP_K</b> best models (ranked by <b>validation RMSE</b>; the test period is never used for
tuning) as a model folder for <i>predict</i>. Unpromising trials are stopped early by a pruner fed
with the per-epoch validation loss.</p>
<p><b>Parameters</b>: INPUT displacement stack (mm, one band per date); ARCHITECTURE (default lstm); HORIZON
forecast epochs; N_TRIALS finished trials the study should have (all workers together); TOP_K
models to keep (default 10); TIMEOUT seconds after which this worker starts no new trial (0 = none);
STORAGE an Optuna storage URL (postgresql://user@host/db, mysql+pymysql://user@host/db,
sqlite:///file.db) or a journal file path, empty = <i>study.journal</i> in the study's folder; give a
database URL without its password (QGIS prints every parameter in the run log): the password comes
from the environment variable DEFORMCAST_STORAGE_PASSWORD or a pgpass-style file
(DEFORMCAST_PGPASS, PGPASSFILE or ~/.pgpass; host:port:database:user:password); STUDY_NAME (default
deformcast-&lt;architecture&gt;-h&lt;horizon&gt;-&lt;encoding, or searched&gt;-&lt;data fingerprint&gt;, so
another architecture, horizon, encoding or stack starts a new study beside the others);
SEARCH_SPACE JSON overrides of the ranges, e.g.
<code>{"lr": {"low": 0.0001, "high": 0.003, "log": true}, "layers": 1, "batch_size": [64, 128]}</code>
(a value fixes, a list chooses, an object is a range; "window" and "encoding" may be searched too);
WINDOW input epochs (0 = searched); ENCODING coding strategies (see <i>train</i>; empty = the measured
default, trajectory + regime); TARGET residual (default: the correction to a per-pixel classical
forecast) or increment; ANCHOR that classical forecast (default <i>adaptive</i>, see <i>train</i>); STEPS
<i>auto</i> (default: detected in the stack), <i>none</i> or known step dates (see <i>train</i>); VALIDATION space (default) or time (see <i>train</i>); the defaults of this
algorithm are those of the <i>Full workflow</i> (the configuration measured best, docs/skill.md); COVARIATES rasters for the covariates encoding; MAX_EPOCHS per trial; PRUNER median / hyperband / none; RETRAIN the top-K on
training + validation windows; STUDY_PATIENCE stops the study once the best validation RMSE has not
improved by 0.5 % for that many finished trials (0 = run all N_TRIALS); WARM_START enqueues the shipped
configurations that won before; LOCAL_WORKERS trial processes on this machine (0 = one per core, at most
4; each with one torch thread: about twice the trials per minute of one two-thread process on 2 cores);
THREADS torch CPU threads per worker (0 = one per trial, measured fastest
on a small machine); SEED; DEVICE; DATES.</p>
<p><b>Resume and several workers</b>: run the same command again with the same OUTPUT_FOLDER (and
STUDY_NAME, when one was given) to continue an interrupted or cancelled study (finished trials are
kept); a resume with another stack, grid or configuration is refused with a message naming the fix.
Start the same command in several terminals to work on one study in parallel (each process runs
trials until the study has N_TRIALS finished ones); with a database STORAGE URL, workers may run on
several machines.</p>
<p><b>Outputs</b>: OUTPUT_FOLDER holds one folder per study, <i>studies/&lt;study name&gt;/</i>
(its journal, <i>trials/&lt;n&gt;/</i> models of the top-K trials, <i>manifest.json</i>,
<i>trials.csv</i>, <i>tune_report.html</i>), and at its top <i>manifest.json</i> listing the members of
the study that finished last, in rank order, with the skill gate, and <i>rolling_origins.csv</i> beside
it: the top-K ensemble and every classical forecast scored from many origins before the test period;
where they show that the ensemble does not beat the best classical forecast, <i>predict</i> falls back
to it or blends them, and says so. Give OUTPUT_FOLDER to <i>predict</i> as its model folder.
OUTPUT_REPORT HTML (optimisation history, parameter importances, best parameters, top-K test
metrics beside the classical baselines, wall time; default: the study folder's report).</p>
"""

    def initAlgorithm(self, config=None):  # noqa: N802
        N = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Displacement stack"))
        self.add_enum("ARCHITECTURE", "Architecture", ARCHITECTURES, DEFAULT_ARCHITECTURE)
        self.addParameter(N("HORIZON", "Forecast horizon (epochs; 30 = a year at 12 days)", N.Integer, 30, minValue=1))
        self.addParameter(N("N_TRIALS", "Trials (finished, all workers together)", N.Integer, 20, minValue=1))
        self.addParameter(N("TOP_K", "Models to keep", N.Integer, 10, minValue=1))
        self.addParameter(N("TIMEOUT", "Time limit of this worker (s; 0 = none)", N.Double, 0.0, optional=True,
                            minValue=0.0))
        self.addParameter(QgsProcessingParameterString("STORAGE", "Optuna storage URL or journal file (default: "
                                                       "study.journal in the study's folder under studies/)", optional=True))
        self.addParameter(QgsProcessingParameterString("STUDY_NAME", "Study name", optional=True))
        self.addParameter(QgsProcessingParameterString("SEARCH_SPACE", "Search space overrides (JSON)",
                                                       multiLine=True, optional=True))
        self.addParameter(N("WINDOW", "Input window (epochs; 0 = searched)", N.Integer, 0, optional=True,
                            minValue=0))
        self.add_enum("ENCODING", "Spatiotemporal coding (empty: trajectory + regime where the series allows it)",
                      ENCODINGS, [], multiple=True, optional=True)
        self.add_enum("TARGET", "What the networks learn", TARGETS, "residual")
        self.add_enum("ANCHOR", "Classical forecast the networks correct (residual target)", ANCHORS, "adaptive")
        self.addParameter(QgsProcessingParameterString(
            "STEPS", "Step dates: auto (detected in the stack), none, or known dates (comma list or a CSV/TXT "
            "file of YYYY-MM-DD)", defaultValue="auto", optional=True))
        self.add_enum("VALIDATION", "Validation (early stopping, TPE objective) windows", VALIDATIONS, "space")
        self.addParameter(QgsProcessingParameterMultipleLayers("COVARIATES", "Covariate rasters",
                                                               QgsProcessing.TypeRaster, optional=True))
        self.addParameter(N("MAX_EPOCHS", "Maximum epochs per trial", N.Integer, 20, minValue=1))
        self.addParameter(N("PATIENCE", "Early-stopping patience (epochs)", N.Integer, 6, optional=True,
                            minValue=1))
        self.addParameter(N("MAX_SAMPLES", "Training windows sampled from the stack", N.Integer, 5000,
                            optional=True, minValue=100))
        self.add_enum("PRUNER", "Pruner", PRUNERS, "median")
        self.addParameter(N("STUDY_PATIENCE", "Stop the study after this many trials without a 0.5 % gain (0 = off)",
                            N.Integer, DEFAULT_STUDY_PATIENCE, optional=True, minValue=0))
        self.addParameter(N("LOCAL_WORKERS", "Worker processes on this machine (0 = one per CPU core, at most 4)",
                            N.Integer, 0, optional=True, minValue=0, maxValue=64))
        self.addParameter(QgsProcessingParameterBoolean(
            "WARM_START", "Warm start from configurations that won before (shipped prior)", False, optional=True))
        self.addParameter(N("THREADS", "Torch CPU threads per worker (0 = default)", N.Integer, 0, optional=True,
                            minValue=0))
        self.addParameter(QgsProcessingParameterBoolean("RETRAIN", "Retrain the top-K on training + validation",
                                                        False, optional=True))
        self.add_common_params(dates=True, seed=True, device=True)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Model folder"))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_REPORT", "Report", "HTML files (*.html)",
                                                                optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_TRIALS", "Trials table (CSV)"))
        self.addOutput(QgsProcessingOutputNumber("BEST_VALUE", "Best validation RMSE (mm)"))
        self.advanced("TIMEOUT", "STORAGE", "STUDY_NAME", "SEARCH_SPACE", "WINDOW", "TARGET", "ANCHOR", "STEPS",
                      "VALIDATION", "PATIENCE", "MAX_SAMPLES", "PRUNER", "STUDY_PATIENCE", "LOCAL_WORKERS", "WARM_START", "THREADS", "RETRAIN", "DATES", "SEED",
                      "DEVICE")

    def execute(self, parameters, context, feedback, progress):
        from ..algorithms.learn.tuning import tune_job

        folder = self.parameterAsFileOutput(parameters, "OUTPUT_FOLDER", context)
        report = self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context) or None
        from ..algorithms.workflow import compact_space

        encodings = self.enum_values(parameters, "ENCODING", context) or None   # None: the measured default
        arch = self.enum_value(parameters, "ARCHITECTURE", context)
        space = self.parameterAsString(parameters, "SEARCH_SPACE", context).strip() or (
            compact_space([arch]))
        res = tune_job(
            raster_source(self, parameters, "INPUT", context), folder,
            arch,
            self.parameterAsInt(parameters, "HORIZON", context),
            dates=self.parameterAsString(parameters, "DATES", context) or None,
            covariates=layer_sources(self, parameters, "COVARIATES", context),
            report_path=report,
            n_trials=self.parameterAsInt(parameters, "N_TRIALS", context),
            top_k=self.parameterAsInt(parameters, "TOP_K", context),
            timeout=self.parameterAsDouble(parameters, "TIMEOUT", context) or None,
            storage=self.parameterAsString(parameters, "STORAGE", context) or None,
            study_name=self.parameterAsString(parameters, "STUDY_NAME", context) or None,
            search_space=space,
            window=self.parameterAsInt(parameters, "WINDOW", context) or None,
            encodings=encodings,
            prepare_kwargs={"target": self.enum_value(parameters, "TARGET", context) or "residual",
                            "baseline": self.enum_value(parameters, "ANCHOR", context) or "adaptive",
                            "steps": self.parameterAsString(parameters, "STEPS", context) or None,
                            "validation": self.enum_value(parameters, "VALIDATION", context) or "space"},
            max_epochs=self.parameterAsInt(parameters, "MAX_EPOCHS", context),
            patience=self.parameterAsInt(parameters, "PATIENCE", context) or 6,
            max_samples=self.parameterAsInt(parameters, "MAX_SAMPLES", context) or 5000,
            pruner=self.enum_value(parameters, "PRUNER", context) or "median",
            retrain=self.parameterAsBool(parameters, "RETRAIN", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            device=self.enum_value(parameters, "DEVICE", context) or "auto",
            threads=self.parameterAsInt(parameters, "THREADS", context) or None,
            study_patience=(self.parameterAsInt(parameters, "STUDY_PATIENCE", context)
                            if parameters.get("STUDY_PATIENCE") not in (None, "") else DEFAULT_STUDY_PATIENCE),
            warm_start=self.parameterAsBool(parameters, "WARM_START", context),
            local_workers=self.parameterAsInt(parameters, "LOCAL_WORKERS", context),
            progress=progress,
        )
        feedback.pushInfo(f"Study '{res.study_name}': {res.n_complete} complete, {res.n_pruned} pruned, "
                          f"{res.n_failed} failed trials; best validation RMSE {res.best_value:.4g} mm "
                          f"(trial {res.best_trial}); {len(res.top)} models in {folder}.")
        return {"OUTPUT_FOLDER": folder, "OUTPUT_REPORT": res.report, "OUTPUT_TRIALS": res.trials_csv,
                "BEST_VALUE": res.best_value}
