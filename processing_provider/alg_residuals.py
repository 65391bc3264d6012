"""Processing wrapper: spatial residual analysis (core: algorithms.maps.residuals)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
)

from ..algorithms.maps.residuals import VALUES, WEIGHTS, run_residuals
from .base import DeformCastAlgorithm, output_path

#: Processing output -> the core's keyword (and result field); the three rasters first
OUTPUTS = (("OUTPUT_RESIDUALS", "residuals_path"), ("OUTPUT_HOTSPOTS", "hotspots_path"),
           ("OUTPUT_HOTSPOT_CLASSES", "hotspot_classes_path"), ("OUTPUT_REPORT", "report_path"))


class ResidualsAlgorithm(DeformCastAlgorithm):
    ALG_ID = "residuals"
    DISPLAY_NAME = "Spatial residual analysis"
    GROUP = "maps"
    REQUIRES = ("numpy", "scipy")
    HELP = """
<p>Compares a forecast with later observations: where and how the forecast errs.</p>
<p><b>FORECAST</b>: one band per forecast date (e.g. OUTPUT_MEDIAN of <i>predict</i>).
<b>OBSERVED</b>: a stack on the same grid holding acquisitions on (some of) those dates; bands are
matched by the dates in their descriptions. <b>ZONES</b> (optional): an integer zone raster on the
same grid or a polygon layer (zone names from <b>ZONE_FIELD</b>). <b>UNCERTAINTY</b> (optional):
uncertainty rasters whose rank correlation with |residual| is reported. <b>VALUE</b>: analyse the
mean |residual| (error magnitude, default) or the mean signed residual. <b>WEIGHTS</b>: queen (8),
rook (4) or distance (<b>DISTANCE</b> map units) neighbours. <b>N_PERMUTATIONS</b>, <b>SEED</b>: the
permutation test of Moran's I.</p>
<p>Outputs: residuals (forecast - observed, one band per matched date), Getis-Ord Gi* z-scores,
hot/cold-spot classes at 90/95/99 %, and an HTML report (Moran's I with p-value, per-zone
statistics, correlations).</p>
"""

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("FORECAST", "Forecast (one band per date)"))
        self.addParameter(QgsProcessingParameterRasterLayer("OBSERVED", "Later observations (stack)"))
        self.addParameter(QgsProcessingParameterMapLayer(
            "ZONES", "Zones (integer raster or polygon layer)", optional=True,
            types=[QgsProcessing.TypeRaster, QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterField("ZONE_FIELD", "Zone name field (polygon zones)",
                                                      parentLayerParameterName="ZONES", optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers("UNCERTAINTY", "Uncertainty layers",
                                                               QgsProcessing.TypeRaster, optional=True))
        self.add_enum("VALUE", "Analysed value", VALUES, "abs_residual")
        self.add_enum("WEIGHTS", "Spatial weights", WEIGHTS, "queen")
        self.addParameter(QgsProcessingParameterNumber("DISTANCE", "Neighbour distance (map units, distance weights)",
                                                       QgsProcessingParameterNumber.Double, 0.0, True, 0.0))
        self.addParameter(QgsProcessingParameterNumber("N_PERMUTATIONS", "Permutations for Moran's I",
                                                       QgsProcessingParameterNumber.Integer, 99, False, 0, 9999))
        self.add_common_params(dates=False, seed=True)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_RESIDUALS", "Residuals"))
        # optional outputs the dialog creates by default (qgis_process asks only for mandatory ones)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_HOTSPOTS", "Hot spots (Gi* z-score)",
                                                                  optional=True, createByDefault=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_HOTSPOT_CLASSES", "Hot/cold-spot classes",
                                                                  optional=True, createByDefault=True))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_REPORT", "Residual report",
                                                                "HTML files (*.html)", optional=True,
                                                                createByDefault=True))
        self.advanced("WEIGHTS", "DISTANCE", "N_PERMUTATIONS", "SEED")

    def execute(self, parameters, context, feedback, progress):
        zones = None
        if parameters.get("ZONES"):
            lyr = self.parameterAsLayer(parameters, "ZONES", context)
            if isinstance(lyr, QgsRasterLayer):
                zones = lyr.source()
            elif lyr is not None:
                zones = self.parameterAsCompatibleSourceLayerPath(parameters, "ZONES", context, ["gpkg", "shp"],
                                                                  "gpkg", feedback)
        res = run_residuals(
            self.parameterAsRasterLayer(parameters, "FORECAST", context).source(),
            self.parameterAsRasterLayer(parameters, "OBSERVED", context).source(),
            zones=zones,
            zone_field=self.parameterAsString(parameters, "ZONE_FIELD", context) or None,
            uncertainty=[lyr.source() for lyr in self.parameterAsLayerList(parameters, "UNCERTAINTY", context)],
            weights=self.enum_value(parameters, "WEIGHTS", context),
            distance=self.parameterAsDouble(parameters, "DISTANCE", context),
            value=self.enum_value(parameters, "VALUE", context),
            n_permutations=self.parameterAsInt(parameters, "N_PERMUTATIONS", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            progress=progress,
            **{field: output_path(self, parameters, name, context) for name, field in OUTPUTS[:3]},
            report_path=self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context))
        out = {name: getattr(res, field) for name, field in OUTPUTS if getattr(res, field)}
        out.update({"MORANS_I": res.morans_i, "MORANS_P": res.morans_p})
        return out
