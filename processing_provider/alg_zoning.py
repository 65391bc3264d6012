"""Processing wrapper: tiered control zones (core: algorithms.zoning)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessing,
)

from ..algorithms.errors import DeformCastError
from ..algorithms.zoning import UNCERTAINTY_TYPES, run_zoning
from .base import DeformCastAlgorithm, output_path


class ZoningAlgorithm(DeformCastAlgorithm):
    ALG_ID = "zoning"
    DISPLAY_NAME = "Tiered control zones"
    GROUP = "decision"
    REQUIRES = ("numpy", "scipy")
    HELP = """
<p>Turns susceptibility, uncertainty, exceedance probability and (optionally) residual hot spots
into four action tiers: 1 immediate control (high susceptibility, high exceedance probability,
confident), 2 verify &amp; densify monitoring (high susceptibility but uncertain, or residual hot
spot), 3 enhanced monitoring (moderate class or some exceedance probability), 4 routine.</p>
<p><b>SUSCEPTIBILITY</b>, <b>SPREAD</b> or <b>AMBIGUITY</b> (give one; <b>UNCERTAINTY_TYPE</b> says
which is used when both are given), <b>EXCEEDANCE</b> with <b>EXCEEDANCE_BAND</b> (the threshold's
band): outputs of <i>uncertainty</i>. <b>HOTSPOTS</b>: Gi* z-scores of <i>residuals</i>.
<b>FORECAST</b>: deformation raster for the zone attributes (last band; e.g. uncertainty's
OUTPUT_DEFORMATION). <b>RULES</b>: JSON overriding high_class_min, moderate_class_min,
exceedance_high (0.5), exceedance_moderate (0.2), uncertainty_max (ambiguity 0.5 / median spread),
hotspot_z (1.96). <b>MIN_AREA</b>: smallest zone polygon (m²).</p>
<p>Outputs: tier raster, zone polygons (GeoPackage: tier, area, deformation, exceedance,
uncertainty, action) and an HTML report with the area per tier and the rule table.</p>
"""

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("SUSCEPTIBILITY", "Susceptibility classes"))
        self.addParameter(QgsProcessingParameterRasterLayer("SPREAD", "Ensemble spread", optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer("AMBIGUITY", "Class ambiguity", optional=True))
        self.add_enum("UNCERTAINTY_TYPE", "Uncertainty layer to use", UNCERTAINTY_TYPES, "ambiguity")
        self.addParameter(QgsProcessingParameterRasterLayer("EXCEEDANCE", "Exceedance probability"))
        self.addParameter(QgsProcessingParameterNumber("EXCEEDANCE_BAND", "Exceedance band (threshold)",
                                                       QgsProcessingParameterNumber.Integer, 1, False, 1))
        self.addParameter(QgsProcessingParameterRasterLayer("HOTSPOTS", "Residual hot spots (Gi* z)", optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer("FORECAST", "Forecast deformation (for attributes)",
                                                            optional=True))
        self.addParameter(QgsProcessingParameterString("RULES", "Rule table (JSON; empty = defaults)", "",
                                                       multiLine=True, optional=True))
        self.addParameter(QgsProcessingParameterNumber("MIN_AREA", "Minimum zone area (m²)",
                                                       QgsProcessingParameterNumber.Double, 0.0, False, 0.0))
        self.addParameter(QgsProcessingParameterBoolean("EIGHT_CONNECTED", "Join diagonal neighbours", False))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_TIERS", "Control tiers"))
        # optional outputs the dialog creates by default (qgis_process asks only for mandatory ones)
        self.addParameter(QgsProcessingParameterVectorDestination("OUTPUT_ZONES", "Control zones",
                                                                  QgsProcessing.TypeVectorPolygon, optional=True,
                                                                  createByDefault=True))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_REPORT", "Zoning report",
                                                                "HTML files (*.html)", optional=True,
                                                                createByDefault=True))

    def _path(self, parameters, name, context):
        lyr = self.parameterAsRasterLayer(parameters, name, context) if parameters.get(name) else None
        return lyr.source() if lyr is not None else None

    def execute(self, parameters, context, feedback, progress):
        kind = self.enum_value(parameters, "UNCERTAINTY_TYPE", context)
        spread, amb = self._path(parameters, "SPREAD", context), self._path(parameters, "AMBIGUITY", context)
        if spread and not amb:
            kind = "spread"
        elif amb and not spread:
            kind = "ambiguity"
        elif not spread and not amb:
            raise DeformCastError("Give SPREAD or AMBIGUITY (an uncertainty layer from 'uncertainty').")
        outputs = {"OUTPUT_TIERS": output_path(self, parameters, "OUTPUT_TIERS", context),
                   "OUTPUT_ZONES": self.parameterAsOutputLayer(parameters, "OUTPUT_ZONES", context),
                   "OUTPUT_REPORT": self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context)}
        res = run_zoning(
            self._path(parameters, "SUSCEPTIBILITY", context), spread if kind == "spread" else amb,
            self._path(parameters, "EXCEEDANCE", context), outputs, uncertainty_type=kind,
            exceedance_band=self.parameterAsInt(parameters, "EXCEEDANCE_BAND", context),
            hotspots=self._path(parameters, "HOTSPOTS", context),
            forecast=self._path(parameters, "FORECAST", context),
            rules=self.parameterAsString(parameters, "RULES", context),
            min_area=self.parameterAsDouble(parameters, "MIN_AREA", context),
            eight_connected=self.parameterAsBoolean(parameters, "EIGHT_CONNECTED", context),
            progress=progress)
        return dict(res.outputs)
