"""Processing wrapper: susceptibility and uncertainty maps from ensemble members (core: algorithms.maps.uncertainty)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..algorithms.maps.uncertainty import MODES, run_uncertainty
from .base import DeformCastAlgorithm, output_path

#: Processing output, its description, created by default, and the core's keyword (and result field)
RASTER_OUTPUTS = [
    ("OUTPUT_SUSCEPTIBILITY", "Susceptibility classes", True, "susceptibility_path"),
    ("OUTPUT_SPREAD", "Ensemble spread (std, P90-P10)", True, "spread_path"),
    ("OUTPUT_AMBIGUITY", "Class ambiguity (normalised entropy)", True, "ambiguity_path"),
    ("OUTPUT_CONFIDENCE", "Classification confidence", True, "confidence_path"),
    ("OUTPUT_EXCEEDANCE", "Exceedance probability (one band per threshold)", True, "exceedance_path"),
    ("OUTPUT_DEFORMATION", "Ensemble-median deformation over the horizon", True, "deformation_path"),
    ("OUTPUT_CLASS_PROBABILITIES", "Class probabilities (one band per class)", False, "class_probabilities_path"),
]


class UncertaintyAlgorithm(DeformCastAlgorithm):
    ALG_ID = "uncertainty"
    DISPLAY_NAME = "Susceptibility and uncertainty maps"
    GROUP = "maps"
    REQUIRES = ("numpy",)
    HELP = """
<p>Maps what an ensemble forecast says and how sure it is. Deformation over the horizon is each
member's value at the final forecast date minus the stack's value at the last acquisition before
the forecast.</p>
<p><b>MEMBERS</b>: OUTPUT_MEMBERS of <i>predict</i> (bands member-major, described
"member&lt;k&gt; &lt;date&gt;"). <b>INPUT</b>: the displacement stack the forecast continues.
<b>THRESHOLDS</b>: mm over the horizon, comma list. <b>N_CLASSES</b>: susceptibility classes (limits
= quantiles of the median deformation over the valid area) unless <b>CLASS_LIMITS</b> gives them.
<b>MODE</b>: magnitude (|d|), subsidence (-d) or uplift (d); a member exceeds t when that value
&ge; t. <b>EXTREME_QUANTILES</b> (e.g. 90,95,99) adds thresholds at those percentiles of the median.
<b>BLOCK_ROWS</b>: rows per block (0 = automatic, constant memory). <b>SCHEDULER</b>: the address of a
Dask scheduler (tcp://host:port) whose workers compute the blocks (optional package dask[distributed];
workers need DeformCast on their PYTHONPATH and the input files at the same paths); empty = this
process. The outputs are the same either way.</p>
<p>Outputs: susceptibility classes (legend shows the limits), spread (band 1 std, band 2 P90-P10),
ambiguity (0 = all members in one class), confidence (share of members in the median's class),
exceedance probability per threshold (each member dressed with a Gaussian kernel that keeps the members'
mean and spread, so the probability is not a step of 1/members), median deformation, optional class probabilities, and an
HTML report with the limits and histograms.</p>
"""

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("MEMBERS", "Ensemble members (from predict)"))
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Displacement stack the forecast continues"))
        self.addParameter(QgsProcessingParameterString("THRESHOLDS", "Thresholds (mm over the horizon, comma list)",
                                                       "10,20", optional=True))
        self.addParameter(QgsProcessingParameterNumber("N_CLASSES", "Number of susceptibility classes",
                                                       QgsProcessingParameterNumber.Integer, 5, False, 2, 12))
        self.add_enum("MODE", "Deformation sense", MODES, "magnitude")
        self.addParameter(QgsProcessingParameterString("CLASS_LIMITS", "Class limits by hand (mm, comma list)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterString("EXTREME_QUANTILES",
                                                       "Extreme thresholds as percentiles of the median (e.g. 90,95,99)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterNumber("BLOCK_ROWS", "Rows per block (0 = automatic)",
                                                       QgsProcessingParameterNumber.Integer, 0, False, 0))
        self.addParameter(QgsProcessingParameterNumber("HORIZON", "Forecast epochs per member (0 = from band names)",
                                                       QgsProcessingParameterNumber.Integer, 0, True, 0))
        self.addParameter(QgsProcessingParameterString("SCHEDULER", "Dask scheduler address (tcp://host:port; empty "
                                                       "= this process)", optional=True))
        self.add_common_params(dates=True, seed=False)
        for name, desc, default, _ in RASTER_OUTPUTS:
            # only the susceptibility is mandatory (qgis_process asks for every mandatory output);
            # the others are optional outputs the dialog creates by default
            self.addParameter(QgsProcessingParameterRasterDestination(
                name, desc, optional=name != "OUTPUT_SUSCEPTIBILITY", createByDefault=default))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_REPORT", "Uncertainty report",
                                                                "HTML files (*.html)", optional=True,
                                                                createByDefault=True))
        self.advanced("CLASS_LIMITS", "EXTREME_QUANTILES", "BLOCK_ROWS", "HORIZON", "DATES", "SCHEDULER")

    def execute(self, parameters, context, feedback, progress):
        members = self.parameterAsRasterLayer(parameters, "MEMBERS", context).source()
        stack = self.parameterAsRasterLayer(parameters, "INPUT", context).source()
        paths = {field: output_path(self, parameters, name, context) for name, _, _, field in RASTER_OUTPUTS}
        res = run_uncertainty(
            members, stack,
            thresholds=self.parameterAsString(parameters, "THRESHOLDS", context),
            n_classes=self.parameterAsInt(parameters, "N_CLASSES", context),
            mode=self.enum_value(parameters, "MODE", context),
            class_limits=self.parameterAsString(parameters, "CLASS_LIMITS", context),
            extreme_quantiles=self.parameterAsString(parameters, "EXTREME_QUANTILES", context),
            block_rows=self.parameterAsInt(parameters, "BLOCK_ROWS", context),
            horizon=self.parameterAsInt(parameters, "HORIZON", context),
            dates=self.parameterAsString(parameters, "DATES", context) or None,
            scheduler=(self.parameterAsString(parameters, "SCHEDULER", context) or "").strip() or None,
            progress=progress, report_path=self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context),
            **paths)
        written = [(name, getattr(res, field)) for name, _, _, field in RASTER_OUTPUTS]
        return {name: p for name, p in written + [("OUTPUT_REPORT", res.report_path)] if p}
