"""Processing wrapper: tiered control zones (core: algorithms.decision.zoning)."""
from __future__ import annotations

import json

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
from ..algorithms.decision.sieve import DEFAULT_MMU_M2
from ..algorithms.decision.zoning import UNCERTAINTY_TYPES, run_zoning
from .base import DeformCastAlgorithm, output_path


class ZoningAlgorithm(DeformCastAlgorithm):
    ALG_ID = "zoning"
    DISPLAY_NAME = "Tiered control zones"
    GROUP = "decision"
    REQUIRES = ("numpy", "scipy")
    HELP = """
<p>Turns susceptibility, uncertainty, exceedance probability and (optionally) residual hot spots
into four action tiers: 1 immediate control (high susceptibility, high exceedance probability,
confident), 2 verify &amp; densify monitoring (high susceptibility but uncertain, residual hot
spot, or near a differential-movement discontinuity), 3 enhanced monitoring (some exceedance
probability), 4 routine.</p>
<p><b>SUSCEPTIBILITY</b>, <b>SPREAD</b> or <b>AMBIGUITY</b> (give one; <b>UNCERTAINTY_TYPE</b> says
which is used when both are given), <b>EXCEEDANCE</b> with <b>EXCEEDANCE_BAND</b> (the threshold's
band): outputs of <i>uncertainty</i>. <b>HOTSPOTS</b>: Gi* z-scores of <i>residuals</i>.
<b>FORECAST</b>: deformation over the horizon (last band; uncertainty's OUTPUT_DEFORMATION), for the
zone attributes and the discontinuity rule. <b>RULES</b>: JSON overriding high_class_min,
moderate_class_min, exceedance_high (0.5), exceedance_moderate (0.2), uncertainty_max (ambiguity 0.5 /
median spread), hotspot_z (1.96), step_mm (1), step_z (5), step_link_z (4), discontinuity_buffer_m
(150). <b>MIN_AREA</b>: smallest zone polygon written (m²; smaller zones keep their tier in the raster).</p>
<p><b>MMU</b> (minimum mapping unit, m², default 10000 = 1 ha, about a city block): the decision map is
made of zones, not pixels. Contiguous zones of one tier smaller than the MMU merge into the tier that holds
most of their boundary (a tie goes to the more severe tier); Tier-1 zones are never merged away (a small
confident hazard stays on the map). 0 keeps the pixel-level tiers. The report's rule table gives the zones
before and after and the pixels moved between tiers.</p>
<p><b>Differential movement</b> (<b>DISCONTINUITIES</b>, on by default, needs FORECAST): a sharp step in
the forecast deformation cracks buildings and breaks pipes and roads that cross it even when the
deformation itself is small (e.g. a creeping fault). At every pixel a plane plus a step is fitted in
an oriented 19 x 9 pixel window (30 orientations); the step must be significant against the local
noise (calibrated t &ge; 5 to start a trace, &ge; 4 to continue it), sharper than a smooth cubic
transition (so bowl flanks do not count), at least <b>STEP_MM</b> (default 1 mm: the crack width
beyond "very slight" damage, Burland et al. 1977) and part of a trace of at least 10 linked pixels.
Pixels within <b>DISCONTINUITY_BUFFER</b> (default 150 m: the Alquist-Priolo fault-zone width either
side of major active faults, where site investigation is required before building) of a trace go to
tier 2. <b>KNOWN_FAULTS</b> (optional): distance (m) to mapped faults; traces farther than the
buffer from a mapped fault are dropped. STEP_MM and DISCONTINUITY_BUFFER empty = the RULES value or
the default.</p>
<p>Outputs: tier raster, zone polygons (GeoPackage: tier, area, deformation, exceedance,
uncertainty, largest step on a discontinuity trace, action) and an HTML report with the area per
tier, the rule table and the discontinuity summary; optional <b>OUTPUT_DISCONTINUITY</b> (step in mm,
calibrated statistic, 2 trace / 1 buffer / 0 none).</p>
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
        self.addParameter(QgsProcessingParameterRasterLayer(
            "FORECAST", "Forecast deformation over the horizon (attributes, discontinuities)", optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            "DISCONTINUITIES", "Flag differential-movement discontinuities (needs FORECAST)", True))
        self.addParameter(QgsProcessingParameterNumber(
            "STEP_MM", "Smallest step across a discontinuity (mm; empty = rule table, default 1)",
            QgsProcessingParameterNumber.Double, None, True, 0.0))
        self.addParameter(QgsProcessingParameterNumber(
            "DISCONTINUITY_BUFFER", "Buffer either side of a discontinuity trace (m; empty = rule table, default 150)",
            QgsProcessingParameterNumber.Double, None, True, 0.0))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "KNOWN_FAULTS", "Distance to mapped faults (m; restricts the discontinuities)", optional=True))
        self.addParameter(QgsProcessingParameterString("RULES", "Rule table (JSON; empty = defaults)", "",
                                                       multiLine=True, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "MMU", "Minimum mapping unit (m²): smaller zones merge into their neighbours (0 = off)",
            QgsProcessingParameterNumber.Double, DEFAULT_MMU_M2, True, 0.0))
        self.addParameter(QgsProcessingParameterNumber("MIN_AREA", "Minimum zone polygon area (m²)",
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
        self.addParameter(QgsProcessingParameterRasterDestination(
            "OUTPUT_DISCONTINUITY", "Discontinuities (step mm, statistic, trace/buffer)", optional=True,
            createByDefault=False))
        self.advanced("STEP_MM", "DISCONTINUITY_BUFFER", "KNOWN_FAULTS", "RULES", "MIN_AREA", "EIGHT_CONNECTED")

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
        rules = self._rules(parameters, context)
        res = run_zoning(
            self._path(parameters, "SUSCEPTIBILITY", context), spread if kind == "spread" else amb,
            self._path(parameters, "EXCEEDANCE", context), uncertainty_type=kind,
            exceedance_band=self.parameterAsInt(parameters, "EXCEEDANCE_BAND", context),
            hotspots=self._path(parameters, "HOTSPOTS", context),
            forecast=self._path(parameters, "FORECAST", context),
            rules=rules,
            min_area=self.parameterAsDouble(parameters, "MIN_AREA", context),
            mmu=(self.parameterAsDouble(parameters, "MMU", context) if parameters.get("MMU") not in (None, "")
                 else DEFAULT_MMU_M2),
            eight_connected=self.parameterAsBoolean(parameters, "EIGHT_CONNECTED", context),
            progress=progress,
            discontinuities=self.parameterAsBoolean(parameters, "DISCONTINUITIES", context),
            known_faults=self._path(parameters, "KNOWN_FAULTS", context),
            tiers_path=output_path(self, parameters, "OUTPUT_TIERS", context),
            zones_path=self.parameterAsOutputLayer(parameters, "OUTPUT_ZONES", context),
            report_path=self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context),
            discontinuity_path=(output_path(self, parameters, "OUTPUT_DISCONTINUITY", context)
                                if parameters.get("OUTPUT_DISCONTINUITY") else None))
        out = {"OUTPUT_DISCONTINUITY": res.discontinuity_path, "OUTPUT_TIERS": res.tiers_path,
               "OUTPUT_ZONES": res.zones_path, "OUTPUT_REPORT": res.report_path}
        return {name: p for name, p in out.items() if p}

    def _rules(self, parameters, context):
        """RULES text, with STEP_MM / DISCONTINUITY_BUFFER merged in when they are given."""
        text = self.parameterAsString(parameters, "RULES", context)
        extra = {key: self.parameterAsDouble(parameters, name, context)
                 for name, key in (("STEP_MM", "step_mm"), ("DISCONTINUITY_BUFFER", "discontinuity_buffer_m"))
                 if parameters.get(name) not in (None, "")}
        if not extra:
            return text
        try:
            given = json.loads(text) if text and text.strip() else {}
        except json.JSONDecodeError:
            return text  # the core reports the JSON error
        if not isinstance(given, dict):
            return text
        for key, v in extra.items():
            if key in given and given[key] != v:
                raise DeformCastError(f"{key} is given twice, in RULES ({given[key]}) and as a parameter ({v}); "
                                      "give it once.")
            given[key] = v
        return json.dumps(given)
