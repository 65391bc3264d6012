"""Processing wrappers: ``deformcast:import_timeseries`` (core: algorithms.io.importer.import_timeseries)
and ``deformcast:sample_at_points`` (core: algorithms.io.sampling.sample_points_to_csv)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..algorithms.io.importer import import_timeseries
from ..algorithms.io.sampling import sample_points_to_csv
from .base import DeformCastAlgorithm, output_path, raster_source

_FILTER = ("InSAR time series (*.csv *.zip *.shp *.gpkg *.geojson *.h5 *.he5 *.hdf5 *.tif *.tiff *.vrt);;"
           "EGMS CSV (*.csv *.zip);;Point layers (*.shp *.gpkg *.geojson *.fgb);;"
           "MintPy / LiCSBAS HDF5 (*.h5 *.he5 *.hdf5);;Raster stacks (*.tif *.tiff *.vrt);;All files (*)")


class ImportTimeseries(DeformCastAlgorithm):
    ALG_ID = "import_timeseries"
    DISPLAY_NAME = "Import InSAR time series"
    GROUP = "data"
    REQUIRES = ("numpy",)
    HELP = """
<p>Turns an InSAR product into a DeformCast displacement stack: a GeoTIFF with one band per
acquisition, values in millimetres, band descriptions = ISO dates, NaN = no data, styled.</p>
<p><b>Input</b>: one of
<ul>
<li>EGMS CSV, L2a/L2b or L3 Ortho (also the downloaded .zip holding one CSV); read in chunks, so files of
hundreds of MB work. Coordinates: easting/northing (EPSG:3035). Comma-, semicolon- or tab-separated; a
semicolon file may write decimal commas (<code>4321000,5</code>). Rows whose coordinates are not numbers,
and columns among the date columns whose header is not a date, are reported with their count.</li>
<li>a point layer (shapefile, GeoPackage, any OGR source, or a source string <code>file.gpkg|layername=ps</code>)
with date fields named YYYYMMDD, DYYYYMMDD or D_YYYYMMDD; Points or single-part MultiPoints.</li>
<li>MintPy <code>timeseries.h5</code> (geocoded; metres, converted to mm) or LiCSBAS <code>cum.h5</code> (mm).</li>
<li>a raster stack (GeoTIFF, VRT) with dates in the band descriptions or metadata, or given in DATES. The
bands' scale and offset are applied (an int16 stack stored as mm x 10 with scale 0.1 reads as mm), and a
band unit m or cm is converted to mm (it takes precedence over UNITS).</li>
</ul></p>
<p><b>Cell size</b>: required for points (units of the output CRS, e.g. 100 for 100 m). The points in a cell
are averaged per date; results can be read back on the points (see the README). For gridded inputs a
cell size &gt; 0 resamples the grid (bilinear).</p>
<p><b>Units</b>: unit of the point fields or raster values (mm, cm or m; or their numbers 0, 1, 2). HDF5
files, and rasters whose bands declare a unit, carry their own.</p>
<p><b>Target CRS</b>: optional reprojection of the output.</p>
<p><b>Dates</b>: acquisition dates of a raster stack whose bands do not carry them (text file with one date
per line, or a comma list).</p>
<p><b>Regularise</b>: resample onto a fixed time step (default: the median spacing) by linear interpolation
in time; gaps longer than the maximum gap (default 3 steps) stay empty.</p>
<p><b>Re-reference</b>: subtract each pixel's value at the first epoch, so every series starts at 0 mm
(pixels without a value at the first epoch become empty).</p>
<p><b>Output</b>: the displacement stack GeoTIFF (+ .qml style).</p>
"""

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile(
            "INPUT", "InSAR time series (EGMS CSV, point layer, MintPy/LiCSBAS HDF5, raster stack)",
            QgsProcessingParameterFile.File, fileFilter=_FILTER))
        self.addParameter(QgsProcessingParameterNumber(
            "CELL_SIZE", "Cell size for point data (units of the output CRS; required for points)",
            QgsProcessingParameterNumber.Double, 0.0, minValue=0.0))
        self.add_enum("UNITS", "Units of the point fields / raster values", ["mm", "cm", "m"], "mm")
        self.addParameter(QgsProcessingParameterCrs("TARGET_CRS", "Target CRS (optional)", optional=True))
        self.add_common_params(dates=True, seed=False)
        self.addParameter(QgsProcessingParameterBoolean(
            "REGULARISE", "Regularise onto a fixed time step", False))
        self.addParameter(QgsProcessingParameterNumber(
            "STEP_DAYS", "Regular time step in days (0 = median spacing)",
            QgsProcessingParameterNumber.Integer, 0, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "MAX_GAP_DAYS", "Longest gap bridged by interpolation, days (0 = 3 x step)",
            QgsProcessingParameterNumber.Double, 0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterBoolean(
            "REREFERENCE", "Re-reference every pixel to the first epoch (0 mm)", False))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Displacement stack"))
        self.advanced("STEP_DAYS", "MAX_GAP_DAYS", "DATES")

    def execute(self, parameters, context, feedback, progress):
        src = self.parameterAsFile(parameters, "INPUT", context)
        cell = self.parameterAsDouble(parameters, "CELL_SIZE", context)
        crs = self.parameterAsCrs(parameters, "TARGET_CRS", context)
        target = None
        if crs is not None and crs.isValid():
            target = crs.authid() if crs.authid() else crs.toWkt()
        regularise = self.parameterAsBoolean(parameters, "REGULARISE", context)
        step = self.parameterAsInt(parameters, "STEP_DAYS", context)
        gap = self.parameterAsDouble(parameters, "MAX_GAP_DAYS", context)
        out = output_path(self, parameters, "OUTPUT", context)
        summary = import_timeseries(
            src, out, cell_size=cell if cell > 0 else None,
            units=self.enum_value(parameters, "UNITS", context), target_crs=target,
            dates=self.parameterAsString(parameters, "DATES", context) or None,
            regularise=(step if step > 0 else True) if regularise else False,
            max_gap_days=gap if gap > 0 else None, progress=progress,
            rereference=self.parameterAsBoolean(parameters, "REREFERENCE", context))
        return {"OUTPUT": summary["output"]}


_POINTS_FILTER = ("Point time series (*.csv *.zip *.shp *.gpkg *.geojson *.fgb);;All files (*)")


class SampleAtPoints(DeformCastAlgorithm):
    ALG_ID = "sample_at_points"
    DISPLAY_NAME = "Results back on the points"
    GROUP = "data"
    REQUIRES = ("numpy",)
    HELP = """
<p>Reads any DeformCast raster (displacement stack, forecast, susceptibility, exceedance probability ...)
at the points a stack was imported from, so point-product users get results per point.</p>
<p><b>Raster</b>: the raster to read. <b>Points</b>: the EGMS CSV or point layer given to
<i>Import InSAR time series</i> (streamed; also <code>file.gpkg|layername=ps</code>), or any CSV or point layer
of points alone: ids and coordinates are enough (CSV: <code>easting, northing</code> in EPSG:3035 or
<code>longitude, latitude</code> in EPSG:4326).</p>
<p>Each point gets the value of the grid cell it lies in, i.e. the cell it was averaged into on import.</p>
<p><b>Output</b>: a CSV (a name ending in .csv) with <code>id</code> (EGMS pid, a CSV's id column, or the row
number / feature id), <code>x, y</code>
(the points' own CRS) and one column per raster band, named by the band description (dates for
forecasts); empty = no value.</p>
"""

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Raster to read (stack, forecast, map)"))
        self.addParameter(QgsProcessingParameterFile(
            "POINTS", "Points (EGMS CSV or point layer the stack was imported from)",
            QgsProcessingParameterFile.File, fileFilter=_POINTS_FILTER))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT", "Values at the points (CSV)", "CSV files (*.csv)"))

    def execute(self, parameters, context, feedback, progress):
        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        summary = sample_points_to_csv(raster_source(self, parameters, "INPUT", context),
                                       self.parameterAsFile(parameters, "POINTS", context), out,
                                       progress=progress)
        feedback.pushInfo(f"{summary['n_with_values']} of {summary['n_points']} points have values.")
        return {"OUTPUT": summary["output"]}
