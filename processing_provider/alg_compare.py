"""Processing wrapper: ``deformcast:compare`` (repeated TPE vs manual runs, Welch + Benjamini-Hochberg)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .alg_tune import PRUNERS
from .base import ARCHITECTURES, ENCODINGS, DeformCastAlgorithm, layer_sources, raster_source


class CompareAlgorithm(DeformCastAlgorithm):
    ALG_ID = "compare"
    DISPLAY_NAME = "Compare TPE tuning with hand-set defaults (Welch t-test, Benjamini-Hochberg)"
    GROUP = "modelling"
    REQUIRES = ("numpy", "torch", "optuna", "scipy", "statsmodels")
    #: the core keeps its cache in <table>_work/ and the runs in <table>_runs.csv: a temporary name
    #: for the table would lose an interrupted comparison's finished runs
    IN_PLACE_OUTPUTS = ("OUTPUT_TABLE",)
    HELP = """
<p>Answers "does tuning pay, and which architecture is better?" with statistics. For each chosen
architecture (and coding strategy) it makes REPEATS runs with the <b>hand-set default</b>
hyperparameters and REPEATS <b>TPE-tuned</b> runs (N_TRIALS trials each, different seeds), scores
every run on the <b>test period</b> (RMSE in mm; never used for training or tuning), and runs
<b>Welch's t-tests</b> (unequal variances): TPE vs manual per architecture, and between
architectures. All p-values are adjusted together with <b>Benjamini-Hochberg</b> at ALPHA; each test
also reports Hedges' g and the 95% confidence interval of the mean difference.</p>
<p><b>Parameters</b>: INPUT displacement stack; ARCHITECTURES (several); REPEATS runs per method
(at least 2; 5 or more advisable); ALPHA false discovery rate (default 0.05); N_TRIALS per TPE run;
HORIZON; WINDOW input epochs (0 = 12 for the defaults, searched by TPE); ENCODING coding strategy,
or STRATEGIES several strategies to compare separated by semicolons (e.g.
<code>none;temporal;temporal,neighbourhood</code>); SEARCH_SPACE JSON overrides as in <i>tune</i>
(plain values also apply to the default runs); MAX_EPOCHS; PRUNER; COVARIATES; SEED; DEVICE; DATES.
Cost: REPEATS x (1 + N_TRIALS) trainings per architecture and strategy.</p>
<p><b>Outputs</b>: OUTPUT_TABLE CSV of the tests (means, difference, CI, Hedges' g, df, p, BH-adjusted
p, whether it survives FDR control), a runs table <i>&lt;table&gt;_runs.csv</i> beside it, and
OUTPUT_REPORT HTML with box plots, the tests, the classical baselines and one sentence per test.
Finished runs are cached in <i>&lt;table&gt;_work/</i>: running again continues an interrupted
comparison.</p>
"""

    def initAlgorithm(self, config=None):  # noqa: N802
        N = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Displacement stack"))
        self.add_enum("ARCHITECTURES", "Architectures", ARCHITECTURES, ["lstm", "resnet_transformer"], multiple=True)
        self.addParameter(N("REPEATS", "Runs per method and architecture", N.Integer, 5, minValue=2))
        self.addParameter(N("ALPHA", "False discovery rate (Benjamini-Hochberg)", N.Double, 0.05, minValue=0.0001,
                            maxValue=0.5))
        self.addParameter(N("N_TRIALS", "TPE trials per tuned run", N.Integer, 20, minValue=1))
        self.addParameter(N("HORIZON", "Forecast horizon (epochs)", N.Integer, 6, minValue=1))
        self.addParameter(N("WINDOW", "Input window (epochs; 0 = 12 for defaults, searched by TPE)", N.Integer, 0,
                            optional=True, minValue=0))
        self.add_enum("ENCODING", "Spatiotemporal coding", ENCODINGS, ["temporal"], multiple=True, optional=True)
        self.addParameter(QgsProcessingParameterString("STRATEGIES", "Coding strategies to compare (';'-separated; "
                                                       "default: ENCODING)", optional=True))
        self.addParameter(QgsProcessingParameterString("SEARCH_SPACE", "Search space overrides (JSON)",
                                                       multiLine=True, optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers("COVARIATES", "Covariate rasters",
                                                               QgsProcessing.TypeRaster, optional=True))
        self.addParameter(N("MAX_EPOCHS", "Maximum epochs per training", N.Integer, 30, minValue=1))
        self.addParameter(N("MAX_SAMPLES", "Training windows sampled from the stack", N.Integer, 20000,
                            optional=True, minValue=100))
        self.add_enum("PRUNER", "Pruner", PRUNERS, "median")
        self.add_common_params(dates=True, seed=True, device=True)
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_TABLE", "Tests table", "CSV files (*.csv)"))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_REPORT", "Report", "HTML files (*.html)",
                                                                optional=True))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_RUNS", "Runs table (CSV)"))
        self.advanced("ALPHA", "WINDOW", "STRATEGIES", "SEARCH_SPACE", "MAX_SAMPLES", "PRUNER", "DATES", "SEED",
                      "DEVICE")

    def execute(self, parameters, context, feedback, progress):
        from ..algorithms.learn.compare import compare_job

        strategies = self.parameterAsString(parameters, "STRATEGIES", context) or None
        if not strategies:
            strategies = [",".join(self.enum_values(parameters, "ENCODING", context) or ["temporal"])]
        res = compare_job(
            raster_source(self, parameters, "INPUT", context),
            self.enum_values(parameters, "ARCHITECTURES", context),
            self.parameterAsInt(parameters, "HORIZON", context),
            self.parameterAsFileOutput(parameters, "OUTPUT_TABLE", context),
            self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context) or None,
            dates=self.parameterAsString(parameters, "DATES", context) or None,
            covariates=layer_sources(self, parameters, "COVARIATES", context),
            repeats=self.parameterAsInt(parameters, "REPEATS", context),
            alpha=self.parameterAsDouble(parameters, "ALPHA", context),
            n_trials=self.parameterAsInt(parameters, "N_TRIALS", context),
            strategies=strategies,
            window=self.parameterAsInt(parameters, "WINDOW", context) or None,
            search_space=self.parameterAsString(parameters, "SEARCH_SPACE", context) or None,
            max_epochs=self.parameterAsInt(parameters, "MAX_EPOCHS", context),
            max_samples=self.parameterAsInt(parameters, "MAX_SAMPLES", context) or 20000,
            pruner=self.enum_value(parameters, "PRUNER", context) or "median",
            seed=self.parameterAsInt(parameters, "SEED", context),
            device=self.enum_value(parameters, "DEVICE", context) or "auto",
            progress=progress,
        )
        for s in res.sentences:
            feedback.pushInfo(s)
        return {"OUTPUT_TABLE": res.table, "OUTPUT_REPORT": res.report, "OUTPUT_RUNS": res.runs_table}
