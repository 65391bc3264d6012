"""Readers that turn users' InSAR products into a DeformCast displacement stack (QGIS-free).

Supported inputs (see ``docs/README_data.md`` for the user-facing description):

* **EGMS CSV** (European Ground Motion Service), L2a / L2b (``pid, mp_type, latitude,
  longitude, easting, northing, height, ..., mean_velocity, ..., 20160110, 20160122, ...``) and
  L3 Ortho (``pid, easting, northing, height, rmse, mean_velocity, ..., dates``). Date columns are
  recognised by their name: ``YYYYMMDD``, ``DYYYYMMDD``, ``D_YYYYMMDD`` (or ``YYYY-MM-DD``).
  ``easting/northing`` are EPSG:3035 (ETRS89-LAEA) in every EGMS level and are preferred;
  a file with only ``latitude/longitude`` is read as EPSG:4326. Values are mm. A ``.zip`` holding
  one CSV (as EGMS downloads come) is read without unpacking. Files are **streamed**: read line
  by line in chunks of ``chunk_rows`` rows (default 2000), never whole, so files of hundreds of MB work; memory
  is set by the output grid, not by the number of points.
* **Point layers** through OGR (shapefile, GeoPackage, any OGR source, also a QGIS source string
  ``path|layername=name``): date fields named as above, geometries Point or single-part
  MultiPoint (PS shapefiles often store those); ``UNITS`` says whether the fields hold mm, cm or m.
* **MintPy** ``timeseries.h5`` (geocoded): dataset ``timeseries`` (T, rows, cols) in metres,
  ``date`` (YYYYMMDD bytes), attributes ``X_FIRST/Y_FIRST`` (upper-left corner of the first
  pixel, as MintPy's own GDAL export uses them), ``X_STEP/Y_STEP`` and ``EPSG`` (or ``UTM_ZONE``;
  without either, degrees mean EPSG:4326). Converted to mm.
* **LiCSBAS** ``cum.h5``: ``cum`` (T, rows, cols) in mm, ``imdates`` (YYYYMMDD integers),
  ``corner_lat/corner_lon`` (the *centre* of the upper-left pixel, GAMMA ``dem_par`` convention
  that LiCSBAS inherits), ``post_lat`` (negative) / ``post_lon``; EPSG:4326.
* **Raster stacks** (GeoTIFF, VRT, anything GDAL reads): dates from band descriptions, band
  metadata, dataset metadata or the ``DATES`` parameter (:func:`algorithms.raster.open_stack`).

Points to grid
--------------
Points go onto a north-up grid of ``cell_size`` (units of the output CRS) whose origin is snapped
to a multiple of the cell size, so grids made from different files with the same cell size line
up. A cell's value at an epoch is the **mean of the points in the cell that have a value at that
epoch** (NaN where none has). The paper works on gridded stacks and is silent on point products;
the mean is the unbiased choice for PS/DS points of one deformation regime per cell and keeps the
grid a plain displacement stack that every algorithm understands.

Results back on the points: :func:`sample_grid_at_points` reads any output raster (forecast,
susceptibility, exceedance ...) at the points' coordinates, taking the value of **the cell the
point was averaged into**. We chose sampling rather than per-point prediction because a cell's
forecast already is the forecast for the points that defined it, and it needs no second model run.
:func:`sample_points_to_csv` does this for a whole point file (streamed) and writes a CSV with the
points' ids and coordinates and one column per band (Processing: ``deformcast:sample_at_points``).

Covariates
----------
:func:`align_covariates` warps any number of rasters (any CRS and resolution) onto the stack grid
in memory: nearest neighbour for integer rasters (classes such as lithology or a mining mask, so
no invented class values), bilinear for continuous ones (DEM, distance to a fault). A covariate
that does not overlap the stack is refused, naming the file.
"""
from __future__ import annotations

import csv
import math
import operator
import os
import re
import zipfile
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .errors import DeformCastError, MissingDependency, warn
from .raster import (Grid, RasterWriter, _gdal, check_dates, crs_equal, declared_unit, iso, open_stack,
                     parse_date, parse_dates_param, read_band, read_stack, row_blocks, unit_to_mm, write_stack)

UNITS = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
EGMS_EPSG = 3035
#: at most this many grid cells for a points-to-grid result (refused with a clear message beyond)
MAX_GRID_CELLS = 50_000_000
#: ... and at most this many bytes of sums and counts while gridding (epochs x cells x 6)
MAX_GRID_BYTES = 8e9
_NA_STRINGS = {"", "na", "nan", "null", "none", "-", "n/a"}


# ------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------
def unit_factor(units: str) -> float:
    """mm per unit of the source values (``mm`` 1, ``cm`` 10, ``m`` 1000)."""
    u = str(units or "mm").strip().lower()
    if u not in UNITS:
        raise DeformCastError(f"UNITS: unknown unit '{units}'. Valid values: mm, cm, m.")
    return UNITS[u]


def _osr():
    from osgeo import osr

    osr.UseExceptions()
    return osr


def _ogr():
    from osgeo import ogr

    ogr.UseExceptions()
    return ogr


def srs_from(crs) -> "object":
    """An osr.SpatialReference (x = east / longitude first) from WKT, ``EPSG:n``, an int or PROJ."""
    osr = _osr()
    srs = osr.SpatialReference()
    if isinstance(crs, (int, np.integer)):
        srs.ImportFromEPSG(int(crs))
    else:
        s = str(crs).strip()
        try:
            srs.SetFromUserInput(s)
        except RuntimeError:
            raise DeformCastError(f"'{s[:80]}' is not a coordinate reference system GDAL knows. "
                                  "Give it as EPSG:code (e.g. EPSG:25832) or WKT.") from None
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def crs_wkt_of(crs) -> str:
    return srs_from(crs).ExportToWkt()


def _transformer(src_wkt: str, dst_wkt: Optional[str]):
    """A function (n,2) -> (n,2) from src to dst CRS, or None when they are the same."""
    if not dst_wkt or crs_equal(src_wkt, dst_wkt):
        return None
    osr = _osr()
    ct = osr.CoordinateTransformation(srs_from(src_wkt), srs_from(dst_wkt))

    def tr(xy: np.ndarray) -> np.ndarray:
        if len(xy) == 0:
            return np.empty((0, 2))
        out = np.array(ct.TransformPoints(np.ascontiguousarray(xy[:, :2], dtype=np.float64)))
        return out[:, :2]

    return tr


def date_columns(names: Sequence[str]) -> List[Tuple[int, np.datetime64, str]]:
    """Columns/fields whose name is a date (``YYYYMMDD``, ``DYYYYMMDD``, ``D_YYYYMMDD``, ISO)."""
    out = []
    for i, n in enumerate(names):
        d = parse_date(n)
        if d is not None:
            out.append((i, d, n))
    return out


def _ordered_dates(cols, what: str):
    """Sort date columns by date and refuse duplicates (two fields with the same date)."""
    if not cols:
        raise DeformCastError(
            f"No date columns found in {what}. Time-series columns must be named by their "
            "acquisition date: YYYYMMDD, DYYYYMMDD or D_YYYYMMDD (e.g. 20160110, D20160110), as in "
            "EGMS CSV files and PS exports. Rename the fields, or export the layer with date-named fields.")
    cols = sorted(cols, key=lambda c: c[1])
    dates = np.array([c[1] for c in cols], dtype="datetime64[D]")
    d = np.diff(dates).astype(np.int64)
    if np.any(d == 0):
        k = int(np.flatnonzero(d == 0)[0])
        raise DeformCastError(
            f"{what} has two columns for the date {dates[k]} ('{cols[k][2]}' and '{cols[k + 1][2]}'). "
            "Remove or merge the duplicated column and run again.")
    return cols, dates


def _all_nodata_error(what: str) -> DeformCastError:
    return DeformCastError(
        f"{what} holds no valid displacement value (every value is nodata/NaN). Check that the "
        "right file or layer was given and that its nodata value is not set to a real value.")


# ------------------------------------------------------------------------------------------
# point sources (streamed in chunks)
# ------------------------------------------------------------------------------------------
@dataclass
class PointSource:
    """Point time series that can be read in chunks: ``for xy, values in src.chunks(): ...``.

    ``xy`` (n, 2) float64 in ``crs_wkt``; ``values`` (n, T) float32 in mm (NaN = no value).
    """

    path: str
    kind: str
    dates: np.ndarray
    crs_wkt: str
    factor: float = 1.0
    columns: List[str] = field(default_factory=list)
    n_skipped: int = 0
    n_points: int = 0
    #: where the first skipped row/feature is and why (for the messages)
    first_skipped: str = ""
    #: columns/fields among the date columns whose name is not a date (ignored epochs)
    undated: List[str] = field(default_factory=list)

    def skipped_message(self) -> str:
        """One sentence on the rows/features dropped for their coordinates ('' when none)."""
        if not self.n_skipped:
            return ""
        what = "row(s)" if isinstance(self, CsvPointSource) else "feature(s)"
        return (f"{self.n_skipped} {what} of '{os.path.basename(self.path)}' were skipped because their "
                f"coordinates are missing or not numbers (first: {self.first_skipped}). Fix or remove them.")

    def undated_message(self) -> str:
        if not self.undated:
            return ""
        what = "column(s)" if isinstance(self, CsvPointSource) else "field(s)"
        return (f"{len(self.undated)} {what} of '{os.path.basename(self.path)}' lie among the date columns but "
                f"their name is not a date ({', '.join(self.undated[:5])}{' ...' if len(self.undated) > 5 else ''}): "
                "their values were NOT imported. Name each by its acquisition date (YYYYMMDD) to use it.")

    def chunks(self, with_values: bool = True, progress=None, with_ids: bool = False) -> Iterator[tuple]:
        """Yield ``(xy, values)`` per chunk (``values`` None if not ``with_values``); with
        ``with_ids`` ``(xy, values, ids)`` where ids are the points' identifiers (CSV ``pid``
        column or row number; layer feature id)."""
        raise DeformCastError(f"{self.kind}: no reader")  # overridden by the concrete sources

    def load(self, progress=None) -> Tuple[np.ndarray, np.ndarray]:
        """All points at once: (xy (N,2), values (N,T)). For small files; large ones stream."""
        xs, vs = [], []
        for xy, v in self.chunks(True, progress):
            xs.append(xy)
            vs.append(v)
        if not xs:
            return np.empty((0, 2)), np.empty((0, self.dates.size), np.float32)
        return np.concatenate(xs), np.concatenate(vs)


class _CountingLines:
    """Iterate decoded lines of a binary stream, counting bytes for progress."""

    def __init__(self, fh):
        self.fh = fh
        self.nbytes = 0
        self.first = True

    def __iter__(self):
        for raw in self.fh:
            self.nbytes += len(raw)
            line = raw.decode("utf-8-sig" if self.first else "utf-8", errors="replace")
            self.first = False
            yield line


@dataclass
class CsvPointSource(PointSource):
    ix: int = -1
    iy: int = -1
    date_idx: List[int] = field(default_factory=list)
    delimiter: str = ","
    chunk_rows: int = 2000
    member: Optional[str] = None
    size: int = 0
    #: numbers are written with a decimal comma (';'-separated CSV from a European locale)
    decimal_comma: bool = False

    def _open(self):
        if self.member is not None:
            zf = zipfile.ZipFile(self.path)
            return zf, zf.open(self.member, "r")
        fh = open(self.path, "rb")
        return None, fh

    def chunks(self, with_values=True, progress=None, with_ids=False):
        T = len(self.date_idx)
        low = [c.lower() for c in self.columns]
        ipid = low.index("pid") if "pid" in low else None
        ids: List[str] = []
        get_vals = operator.itemgetter(*self.date_idx) if T > 1 else (lambda r, i=self.date_idx[0]: (r[i],))
        ix, iy = self.ix, self.iy
        ncol = len(self.columns)
        zf, fh = self._open()
        try:
            lines = _CountingLines(fh)
            reader = csv.reader(iter(lines), delimiter=self.delimiter)
            next(reader, None)  # header
            xy = np.empty((self.chunk_rows, 2), np.float64)
            vals = np.empty((self.chunk_rows, T), np.float32) if with_values else None
            n = 0
            skipped = 0
            first = ""
            dc = self.decimal_comma
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != ncol:
                    raise DeformCastError(
                        f"Line {lineno} of '{os.path.basename(self.path)}' has {len(row)} columns, the "
                        f"header has {ncol}. The file is damaged or not one CSV table; re-export it.")
                if dc:
                    row = [f.replace(",", ".") for f in row]
                try:
                    x, y = float(row[ix]), float(row[iy])
                    if not (math.isfinite(x) and math.isfinite(y)):
                        raise ValueError
                    xy[n, 0], xy[n, 1] = x, y
                except ValueError:
                    skipped += 1
                    if not first:
                        first = (f"line {lineno}, {self.columns[ix]} = '{row[ix]}', "
                                 f"{self.columns[iy]} = '{row[iy]}'")
                    continue
                if with_ids:
                    ids.append(row[ipid] if ipid is not None else str(lineno - 1))
                if with_values:
                    fields = get_vals(row)
                    try:
                        vals[n] = np.array(fields, dtype=np.float64)
                    except ValueError:
                        vals[n] = [_to_float(s) for s in fields]
                n += 1
                if n == self.chunk_rows:
                    yield self._emit(xy, vals, n, ids if with_ids else None)
                    n, ids = 0, []
                    if progress is not None and self.size:
                        progress.set(min(1.0, lines.nbytes / self.size))
            if n:
                yield self._emit(xy, vals, n, ids if with_ids else None)
            self.n_skipped = skipped
            self.first_skipped = first
            if progress is not None:
                progress.set(1.0)
        finally:
            fh.close()
            if zf is not None:
                zf.close()

    def _emit(self, xy, vals, n, ids=None):
        v = None
        if vals is not None:
            v = vals[:n].copy()
            if self.factor != 1.0:
                v *= np.float32(self.factor)
        if ids is not None:
            return xy[:n].copy(), v, list(ids)
        return xy[:n].copy(), v


def _to_float(s: str) -> float:
    t = s.strip()
    if t.lower() in _NA_STRINGS:
        return float("nan")
    try:
        return float(t)
    except ValueError:
        raise DeformCastError(f"'{s}' in a date column is not a number. Date columns must hold "
                              "displacement values (empty for no value).") from None


def _csv_member(path: str) -> Tuple[Optional[str], int]:
    if not path.lower().endswith(".zip"):
        return None, os.path.getsize(path)
    with zipfile.ZipFile(path) as zf:
        members = [i for i in zf.infolist() if i.filename.lower().endswith(".csv")]
        if len(members) != 1:
            raise DeformCastError(
                f"'{os.path.basename(path)}' holds {len(members)} CSV files; DeformCast reads a zip "
                "with exactly one CSV (as EGMS downloads come). Unpack it and give the CSV itself.")
        return members[0].filename, members[0].file_size


def read_egms_csv(path: str, progress=None, chunk_rows: int = 2000, units: str = "mm") -> CsvPointSource:
    """Open an EGMS L2a/L2b/L3 CSV (or a zip holding one) for streaming.

    Reads only the header here; the rows are read chunk by chunk by ``.chunks()`` (and by
    :func:`grid_points`). Coordinates: ``easting/northing`` (EPSG:3035) when present, else
    ``longitude/latitude`` (EPSG:4326). Values in ``units`` (EGMS: mm) are converted to mm.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DeformCastError(f"The file '{path}' does not exist.")
    member, size = _csv_member(path)

    def first_lines(fh, n=21):
        out = []
        for _ in range(n):
            ln = fh.readline()
            if not ln:
                break
            out.append(ln.decode("utf-8-sig" if not out else "utf-8", errors="replace"))
        return out

    if member is not None:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            lines = first_lines(fh)
    else:
        with open(path, "rb") as fh:
            lines = first_lines(fh)
    head = lines[0] if lines else ""
    delim = ","
    if head.count(";") > head.count(","):
        delim = ";"
    elif head.count("\t") > head.count(","):
        delim = "\t"
    names = next(csv.reader([head], delimiter=delim), [])
    names = [n.strip().strip('"') for n in names]
    low = [n.lower() for n in names]
    sample = [r for r in csv.reader(lines[1:], delimiter=delim) if r]
    # ';'-separated files from European locales write decimal commas ("4321000,5")
    decimal_comma = delim != "," and any(_DECIMAL_COMMA.match(f.strip()) for r in sample for f in r)
    dcols = date_columns(names)
    cols, dates = _ordered_dates(dcols, f"'{os.path.basename(path)}'")
    undated = _undated_columns(names, [c[0] for c in dcols], sample, decimal_comma)
    if "easting" in low and "northing" in low:
        ix, iy, crs = low.index("easting"), low.index("northing"), crs_wkt_of(EGMS_EPSG)
    elif "longitude" in low and "latitude" in low:
        ix, iy, crs = low.index("longitude"), low.index("latitude"), crs_wkt_of(4326)
    elif "lon" in low and "lat" in low:
        ix, iy, crs = low.index("lon"), low.index("lat"), crs_wkt_of(4326)
    else:
        raise DeformCastError(
            f"'{os.path.basename(path)}' has no coordinate columns. An EGMS CSV has 'easting' and "
            "'northing' (EPSG:3035) and/or 'latitude' and 'longitude' (EPSG:4326); add them, or load "
            "the points as a layer in QGIS and give that layer instead.")
    if "easting" in low and "latitude" not in low:
        kind = "egms_l3"
    elif "easting" in low and "latitude" in low:
        kind = "egms_l2"
    else:
        kind = "csv"
    return CsvPointSource(path=path, kind=kind, dates=dates, crs_wkt=crs, factor=unit_factor(units),
                          columns=names, ix=ix, iy=iy, date_idx=[c[0] for c in cols], delimiter=delim,
                          chunk_rows=max(1, int(chunk_rows)), member=member, size=size,
                          decimal_comma=decimal_comma, undated=undated)


_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+$")


def _is_number(text: str, decimal_comma: bool = False) -> bool:
    t = text.strip()
    if decimal_comma:
        t = t.replace(",", ".")
    try:
        float(t)
        return True
    except ValueError:
        return False


def _undated_columns(names: Sequence[str], date_idx: Sequence[int], sample=None,
                     decimal_comma: bool = False) -> List[str]:
    """Columns that look like epochs without a date in their name: any column between the first
    and the last date column whose name is not a date, and blank-named columns after the last one
    that hold numbers (a trailing delimiter gives an empty column, which is not counted)."""
    if not date_idx:
        return []
    lo, hi = min(date_idx), max(date_idx)
    dated = set(date_idx)
    out = []
    for i, n in enumerate(names):
        if i in dated or i < lo:
            continue
        if i > hi:
            if n.strip() or not sample or not any(
                    len(r) > i and r[i].strip() and _is_number(r[i], decimal_comma) for r in sample):
                continue
        out.append(f"column {i + 1} " + (f"'{n}'" if n.strip() else "(blank name)"))
    return out


@dataclass
class OgrPointSource(PointSource):
    layer_ref: object = None
    field_idx: List[int] = field(default_factory=list)
    chunk_rows: int = 2000
    n_features: int = 0

    def _layer(self):
        ogr = _ogr()
        ds = ogr.Open(self.path)
        lyr = ds.GetLayerByName(self.layer_ref) if isinstance(self.layer_ref, str) else ds.GetLayer(int(self.layer_ref or 0))
        return ds, lyr

    def chunks(self, with_values=True, progress=None, with_ids=False):
        ogr = _ogr()
        ids: List[str] = []
        ds, lyr = self._layer()
        T = len(self.field_idx)
        xy = np.empty((self.chunk_rows, 2), np.float64)
        vals = np.empty((self.chunk_rows, T), np.float32) if with_values else None
        n = done = skipped = 0
        first = ""
        lyr.ResetReading()
        for f in lyr:
            done += 1
            g = f.GetGeometryRef()
            if g is None or g.IsEmpty():
                skipped += 1
                if not first:
                    first = f"feature {f.GetFID()} has no geometry"
                continue
            gt = ogr.GT_Flatten(g.GetGeometryType())
            if gt == ogr.wkbMultiPoint:
                if g.GetGeometryCount() != 1:
                    raise DeformCastError(
                        f"Feature {f.GetFID()} of '{os.path.basename(self.path)}' is a MultiPoint with "
                        f"{g.GetGeometryCount()} points; a time series needs one location. Run "
                        "'Multipart to singleparts' on the layer first.")
                g = g.GetGeometryRef(0)
            elif gt != ogr.wkbPoint:
                raise DeformCastError(
                    f"'{os.path.basename(self.path)}' holds {ogr.GeometryTypeToName(gt)} geometries; "
                    "time-series points must be Points. Run 'Centroids' on the layer first.")
            x, y = g.GetX(), g.GetY()
            if not (math.isfinite(x) and math.isfinite(y)):
                skipped += 1
                if not first:
                    first = f"feature {f.GetFID()} at ({x}, {y})"
                continue
            xy[n, 0], xy[n, 1] = x, y
            if with_ids:
                ids.append(str(f.GetFID()))
            if with_values:
                row = vals[n]
                for k, i in enumerate(self.field_idx):
                    row[k] = f.GetFieldAsDouble(i) if f.IsFieldSetAndNotNull(i) else np.nan
            n += 1
            if n == self.chunk_rows:
                yield self._emit(xy, vals, n, ids if with_ids else None)
                n, ids = 0, []
                if progress is not None and self.n_features:
                    progress.set(done / self.n_features)
        if n:
            yield self._emit(xy, vals, n, ids if with_ids else None)
        self.n_skipped = skipped
        self.first_skipped = first
        del lyr, ds   # release the layer, then its data source (OGR), before the caller goes on
        if progress is not None:
            progress.set(1.0)

    _emit = CsvPointSource._emit


def _split_source(path: str, layer=None):
    """``path|layername=x`` / ``path|layerid=n`` (QGIS source strings) -> (path, layer)."""
    parts = str(path).split("|")
    p = parts[0]
    for opt in parts[1:]:
        k, _, v = opt.partition("=")
        if k == "layername" and layer is None:
            layer = v
        elif k == "layerid" and layer is None:
            layer = int(v)
    return p, layer


def read_point_layer(path: str, units: str = "mm", layer=None, chunk_rows: int = 2000) -> OgrPointSource:
    """Open a point layer (any OGR source) whose date fields hold displacement in ``units``."""
    ogr = _ogr()
    p, layer = _split_source(path, layer)
    if not os.path.exists(p) and not p.startswith("/vsi"):
        raise DeformCastError(f"The file '{p}' does not exist.")
    try:
        ds = ogr.Open(p)
    except RuntimeError as e:
        raise DeformCastError(f"OGR cannot open '{p}' as a vector layer: {e}") from None
    if ds is None or ds.GetLayerCount() == 0:
        raise DeformCastError(f"'{os.path.basename(p)}' holds no vector layer.")
    if layer is None:
        lyr = ds.GetLayer(0)
    elif isinstance(layer, str) and not layer.isdigit():
        lyr = ds.GetLayerByName(layer)
        if lyr is None:
            names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
            raise DeformCastError(f"'{os.path.basename(p)}' has no layer '{layer}'. Layers: {', '.join(names)}.")
    else:
        lyr = ds.GetLayer(int(layer))
    defn = lyr.GetLayerDefn()
    names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    dcols = date_columns(names)
    cols, dates = _ordered_dates(dcols, f"layer '{lyr.GetName()}' of '{os.path.basename(p)}'")
    undated = _undated_columns(names, [c[0] for c in dcols])
    srs = lyr.GetSpatialRef()
    if srs is None:
        raise DeformCastError(f"Layer '{lyr.GetName()}' of '{os.path.basename(p)}' has no CRS. Assign "
                              "its CRS (Processing 'Assign projection' or a .prj file) and run again.")
    src = OgrPointSource(path=p, kind="vector", dates=dates, crs_wkt=srs.ExportToWkt(),
                         factor=unit_factor(units), columns=names, layer_ref=lyr.GetName(),
                         field_idx=[c[0] for c in cols], chunk_rows=max(1, int(chunk_rows)),
                         n_features=int(lyr.GetFeatureCount()), undated=undated)
    ds = None
    return src


# ------------------------------------------------------------------------------------------
# points <-> grid
# ------------------------------------------------------------------------------------------
def _snap_grid(bounds, cell: float, crs_wkt: str) -> Grid:
    """North-up grid covering ``bounds`` with its origin on multiples of ``cell``."""
    xmin, ymin, xmax, ymax = bounds
    x0 = math.floor(xmin / cell) * cell
    y0 = math.ceil(ymax / cell) * cell
    w = int(math.floor((xmax - x0) / cell)) + 1
    h = int(math.floor((y0 - ymin) / cell)) + 1
    return Grid((float(x0), float(cell), 0.0, float(y0), 0.0, -float(cell)), crs_wkt, w, h)


class _Accumulator:
    """Sums and counts per cell and epoch (mean of the points in a cell)."""

    def __init__(self, grid: Grid, T: int):
        cells = grid.width * grid.height
        if cells > MAX_GRID_CELLS or cells * T * 6 > MAX_GRID_BYTES:
            raise DeformCastError(
                f"CELL_SIZE {grid.cell_size[0]:g} gives a grid of {grid.width} x {grid.height} cells x {T} "
                "epochs, too large to build. Give a larger CELL_SIZE (e.g. 100 m for EGMS L2, the EGMS "
                "L3 Ortho spacing) or clip the points to the area of interest.")
        self.grid = grid
        self.sums = np.zeros((T, cells), np.float32)
        self.counts = np.zeros((T, cells), np.uint16)

    def add(self, xy: np.ndarray, values: np.ndarray):
        gt = self.grid.geotransform
        with np.errstate(invalid="ignore"):
            colf = np.floor((xy[:, 0] - gt[0]) / gt[1])
            rowf = np.floor((xy[:, 1] - gt[3]) / gt[5])
        inside = (np.isfinite(colf) & np.isfinite(rowf) & (colf >= 0) & (colf < self.grid.width)
                  & (rowf >= 0) & (rowf < self.grid.height))
        if not np.any(inside):
            return
        c = (rowf[inside] * self.grid.width + colf[inside]).astype(np.int64)
        v = values[inside]
        order = np.argsort(c, kind="stable")
        cs = c[order]
        vs = v[order]
        valid = np.isfinite(vs)
        starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
        agg = np.add.reduceat(np.where(valid, vs, 0.0).astype(np.float64), starts, axis=0)
        cnt = np.add.reduceat(valid.astype(np.int32), starts, axis=0)
        uniq = cs[starts]
        self.sums[:, uniq] += agg.T.astype(np.float32)
        self.counts[:, uniq] = np.minimum(self.counts[:, uniq] + cnt.T, 65535).astype(np.uint16)

    def result(self) -> np.ndarray:
        T = self.sums.shape[0]
        out = self.sums  # reuse the memory
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(out, self.counts, out=out, where=self.counts > 0)
        out[self.counts == 0] = np.nan
        self.counts = None
        return out.reshape(T, self.grid.height, self.grid.width)


def _check_cell_size(cell_size, crs_wkt: str):
    if cell_size is None or not float(cell_size) > 0:
        raise DeformCastError(
            "CELL_SIZE is required for point data: give the grid cell size in units of the output CRS "
            "(e.g. 100 for 100 m; EGMS L3 Ortho uses 100 m). Points in a cell are averaged.")
    srs = srs_from(crs_wkt)
    if srs.IsGeographic() and float(cell_size) > 1.0:
        raise DeformCastError(
            f"CELL_SIZE {float(cell_size):g} is in degrees here, because the points are in a geographic "
            "CRS. Give TARGET_CRS as a projected CRS in metres (e.g. EPSG:3035 or a UTM zone) or a cell "
            "size in degrees.")
    return float(cell_size)


def points_to_grid(xy: np.ndarray, values: np.ndarray, cell_size: float, crs_wkt: str,
                   target_crs=None) -> Tuple[np.ndarray, Grid]:
    """Points (N, 2) with series (N, T) -> (stack (T, H, W) float32, Grid).

    Optionally reprojects the points to ``target_crs`` first. Cell value = mean of the points in
    the cell that have a value at that epoch; the grid origin is snapped to multiples of
    ``cell_size`` and the extent covers all points.
    """
    xy = np.asarray(xy, dtype=np.float64)
    values = np.asarray(values, dtype=np.float32)
    if xy.ndim != 2 or xy.shape[0] != values.shape[0]:
        raise DeformCastError("points_to_grid: xy must be (N, 2) and values (N, T) with the same N.")
    out_wkt = crs_wkt_of(target_crs) if target_crs else crs_wkt
    tr = _transformer(crs_wkt, out_wkt)
    if tr is not None:
        xy = tr(xy)
    cell = _check_cell_size(cell_size, out_wkt)
    if xy.shape[0] == 0:
        raise DeformCastError("There are no points to grid.")
    grid = _snap_grid((xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()), cell, out_wkt)
    acc = _Accumulator(grid, values.shape[1])
    acc.add(xy, values)
    return acc.result(), grid


def grid_points(source: PointSource, cell_size: float, target_crs=None, progress=None) -> Tuple[np.ndarray, Grid]:
    """Streaming :func:`points_to_grid` for a :class:`PointSource` (two passes over the file).

    Pass 1 reads only coordinates to find the extent; pass 2 adds each chunk of series into the
    grid. Memory depends on the grid (T x H x W x 6 bytes) and the chunk size, not on the number
    of points.
    """
    from .progress import Progress

    progress = progress or Progress()
    out_wkt = crs_wkt_of(target_crs) if target_crs else source.crs_wkt
    cell = _check_cell_size(cell_size, out_wkt)
    tr = _transformer(source.crs_wkt, out_wkt)
    lo = np.array([np.inf, np.inf])
    hi = np.array([-np.inf, -np.inf])
    n_points = 0
    for xy, _ in source.chunks(False, progress.sub(0.0, 0.3)):
        if tr is not None:
            xy = tr(xy)
        ok = np.all(np.isfinite(xy), axis=1)
        xy = xy[ok]
        if xy.size:
            lo = np.minimum(lo, xy.min(axis=0))
            hi = np.maximum(hi, xy.max(axis=0))
            n_points += xy.shape[0]
    if n_points == 0:
        why = source.skipped_message()
        raise DeformCastError(f"'{os.path.basename(source.path)}' holds no points with coordinates."
                              + (f" {why}" if why else " Check that the file has rows below its header."))
    grid = _snap_grid((lo[0], lo[1], hi[0], hi[1]), cell, out_wkt)
    acc = _Accumulator(grid, source.dates.size)
    for xy, v in source.chunks(True, progress.sub(0.3, 0.95)):
        if tr is not None:
            xy = tr(xy)
        acc.add(xy, v)
    stack = acc.result()
    progress.set(1.0)
    source.n_points = n_points
    return stack, grid


class _Sampler:
    """Values of a raster at map coordinates; the raster is read once, band by band."""

    def __init__(self, raster_path: str, bands: Optional[Sequence[int]] = None):
        gdal = _gdal()
        if not os.path.exists(str(raster_path)):
            raise DeformCastError(f"The raster '{raster_path}' does not exist.")
        ds = gdal.Open(str(raster_path))
        self.gt = ds.GetGeoTransform()
        self.wkt = ds.GetProjection()
        self.W, self.H = ds.RasterXSize, ds.RasterYSize
        idx = list(range(ds.RasterCount)) if bands is None else list(bands)
        self.names = []
        self.data = np.empty((len(idx), self.H, self.W), np.float32)
        for k, b in enumerate(idx):
            band = ds.GetRasterBand(int(b) + 1)
            self.data[k] = read_band(band)  # nodata as NaN, scale/offset applied
            self.names.append(band.GetDescription() or f"band_{int(b) + 1}")
        ds = None

    def sample(self, xy: np.ndarray, crs_wkt: str) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        tr = _transformer(crs_wkt, self.wkt) if self.wkt and crs_wkt else None
        if tr is not None:
            xy = tr(xy)
        gt = self.gt
        with np.errstate(invalid="ignore"):
            col = np.floor((xy[:, 0] - gt[0]) / gt[1])
            row = np.floor((xy[:, 1] - gt[3]) / gt[5])
        inside = np.isfinite(col) & np.isfinite(row) & (col >= 0) & (col < self.W) & (row >= 0) & (row < self.H)
        out = np.full((xy.shape[0], self.data.shape[0]), np.nan, np.float32)
        r, c = row[inside].astype(np.int64), col[inside].astype(np.int64)
        out[inside] = self.data[:, r, c].T
        return out


def sample_grid_at_points(raster_path: str, xy: np.ndarray, crs_wkt: str, bands: Optional[Sequence[int]] = None) -> np.ndarray:
    """Values of a raster at points: (N, B) float32, NaN outside the raster or on nodata.

    Each point gets the value of the cell that contains it, i.e. the cell it was averaged into
    by :func:`points_to_grid` (same CRS transformation, same cell rule).
    """
    return _Sampler(raster_path, bands).sample(xy, crs_wkt)


def sample_points_to_csv(raster_path: str, points_input: str, output_csv: str, layer=None,
                         progress=None) -> dict:
    """Results back on the user's points: a CSV with ``id, x, y`` and one column per raster band.

    ``points_input`` is the point file the stack was imported from (EGMS CSV or any point layer);
    it is streamed. ``id`` is the CSV's ``pid`` (or the row number) or the layer's feature id;
    ``x, y`` are in the points' own CRS; band columns are named by the band descriptions (dates
    for forecasts) and hold the value of the cell containing the point (empty = no value).
    Written to ``<output>.part`` and renamed when complete.
    """
    from .progress import Progress

    progress = progress or Progress()
    fmt = detect_format(str(points_input))
    if fmt == "csv":
        src = read_egms_csv(str(points_input))
    elif fmt == "vector":
        src = read_point_layer(str(points_input), layer=layer)
    else:
        raise DeformCastError(f"'{os.path.basename(str(points_input))}' is not a point file (EGMS CSV or a "
                              "point layer); give the points the stack was imported from.")
    sampler = _Sampler(raster_path)
    output_csv = str(output_csv)
    os.makedirs(os.path.dirname(os.path.abspath(output_csv)), exist_ok=True)
    tmp = output_csv + ".part"
    n = n_valid = 0
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "x", "y"] + sampler.names)
            for xy, _, ids in src.chunks(False, progress, with_ids=True):
                vals = sampler.sample(xy, src.crs_wkt)
                n += len(ids)
                n_valid += int(np.count_nonzero(np.isfinite(vals).any(axis=1)))
                for i, (x, y), row in zip(ids, xy, vals):
                    w.writerow([i, repr(float(x)), repr(float(y))]
                               + ["" if not np.isfinite(v) else f"{v:.3f}" for v in row])
        os.replace(tmp, output_csv)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {"output": output_csv, "n_points": n, "n_with_values": n_valid, "columns": sampler.names}


# ------------------------------------------------------------------------------------------
# HDF5 products (MintPy, LiCSBAS)
# ------------------------------------------------------------------------------------------
def _h5py():
    try:
        import h5py  # noqa: F401
    except ImportError:
        raise MissingDependency(
            "Reading MintPy/LiCSBAS HDF5 files needs the Python package h5py. On Debian/Ubuntu install "
            "it with 'sudo apt install python3-h5py' (use the system package: a pip-installed h5py "
            "brings its own HDF5 library, which clashes with the one QGIS loads).") from None
    return h5py


@dataclass
class GriddedSeries:
    """A gridded time series on disk read in row blocks: ``read(r0, r1)`` -> (T, h, W) mm."""

    path: str
    kind: str
    dates: np.ndarray
    grid: Grid
    dataset: str
    factor: float = 1.0

    def read(self, r0: int = 0, r1: Optional[int] = None) -> np.ndarray:
        h5py = _h5py()
        r1 = self.grid.height if r1 is None else r1
        with h5py.File(self.path, "r") as f:
            a = np.asarray(f[self.dataset][:, r0:r1, :], dtype=np.float32)
        if self.factor != 1.0:
            a *= np.float32(self.factor)
        return a

    def load(self) -> np.ndarray:
        return self.read()


def _attr(attrs, key, default=None):
    if key not in attrs:
        return default
    v = attrs[key]
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.ndarray):
        v = v.item() if v.size == 1 else v
        if isinstance(v, bytes):
            v = v.decode()
    return v


def _h5_dates(raw, what: str) -> np.ndarray:
    out = []
    for r in np.asarray(raw).ravel():
        s = r.decode() if isinstance(r, (bytes, np.bytes_)) else str(int(r)) if np.issubdtype(type(r), np.integer) else str(r)
        d = parse_date(s)
        if d is None:
            raise DeformCastError(f"{what}: '{s}' is not a YYYYMMDD date.")
        out.append(d)
    return check_dates(np.array(out, dtype="datetime64[D]"), what)


def read_mintpy_h5(path: str) -> GriddedSeries:
    """A geocoded MintPy ``timeseries.h5`` (metres) as a :class:`GriddedSeries` in mm."""
    h5py = _h5py()
    name = os.path.basename(str(path))
    with h5py.File(str(path), "r") as f:
        if "timeseries" not in f:
            raise DeformCastError(f"'{name}' has no 'timeseries' dataset; it is not a MintPy time-series file.")
        ds = f["timeseries"]
        T, H, W = ds.shape
        at = dict(f.attrs)
        at.update({k: v for k, v in ds.attrs.items() if k not in at})
        if "date" not in f:
            raise DeformCastError(f"'{name}' has no 'date' dataset; re-run MintPy's timeseries step.")
        dates = _h5_dates(f["date"][()], f"'{name}'")
    if dates.size != T:
        raise DeformCastError(f"'{name}': {dates.size} dates for {T} epochs; the file is inconsistent.")
    if _attr(at, "X_FIRST") is None or _attr(at, "Y_FIRST") is None:
        raise DeformCastError(
            f"'{name}' is in radar coordinates (no X_FIRST/Y_FIRST attributes). Geocode it first with "
            "MintPy: 'geocode.py timeseries.h5' and give the geo_timeseries.h5.")
    x0, y0 = float(_attr(at, "X_FIRST")), float(_attr(at, "Y_FIRST"))
    dx, dy = float(_attr(at, "X_STEP")), float(_attr(at, "Y_STEP"))
    epsg = _attr(at, "EPSG")
    utm = _attr(at, "UTM_ZONE")
    xunit = str(_attr(at, "X_UNIT", "degrees")).lower()
    if epsg not in (None, "", "None"):
        crs = crs_wkt_of(int(float(epsg)))
    elif utm:
        m = re.match(r"(\d+)\s*([NS]?)", str(utm).upper())
        crs = crs_wkt_of((32700 if m.group(2) == "S" else 32600) + int(m.group(1)))
    elif xunit.startswith("deg"):
        crs = crs_wkt_of(4326)
    else:
        raise DeformCastError(
            f"'{name}' gives no EPSG (or UTM_ZONE) attribute and its X_UNIT is '{xunit}'. Add the EPSG "
            "attribute to the file (e.g. MintPy's 'info.py'/'add_attribute.py timeseries.h5 EPSG=32632').")
    unit = str(_attr(at, "UNIT", "m")).lower()
    factor = {"m": 1000.0, "cm": 10.0, "mm": 1.0}.get(unit, 1000.0)
    grid = Grid((x0, dx, 0.0, y0, 0.0, dy), crs, int(W), int(H))
    return GriddedSeries(str(path), "mintpy", dates, grid, "timeseries", factor)


def read_licsbas_h5(path: str) -> GriddedSeries:
    """A LiCSBAS ``cum.h5`` (mm, EPSG:4326) as a :class:`GriddedSeries`."""
    h5py = _h5py()
    name = os.path.basename(str(path))
    with h5py.File(str(path), "r") as f:
        for k in ("cum", "imdates", "corner_lat", "corner_lon", "post_lat", "post_lon"):
            if k not in f:
                raise DeformCastError(f"'{name}' has no '{k}' dataset; it is not a LiCSBAS cum.h5 file "
                                      "(give cum.h5 or cum_filt.h5 from LiCSBAS step 13/16).")
        T, H, W = f["cum"].shape
        dates = _h5_dates(f["imdates"][()], f"'{name}'")
        lat1, lon1 = float(f["corner_lat"][()]), float(f["corner_lon"][()])
        dlat, dlon = float(f["post_lat"][()]), float(f["post_lon"][()])
    if dates.size != T:
        raise DeformCastError(f"'{name}': {dates.size} dates for {T} epochs; the file is inconsistent.")
    # corner_lat/lon are the centre of the upper-left pixel -> GDAL corner = centre - half a step
    grid = Grid((lon1 - dlon / 2.0, dlon, 0.0, lat1 - dlat / 2.0, 0.0, dlat), crs_wkt_of(4326), int(W), int(H))
    return GriddedSeries(str(path), "licsbas", dates, grid, "cum", 1.0)


def _h5_kind(path: str) -> str:
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            keys = list(f.keys())
    except OSError as e:
        raise DeformCastError(f"'{os.path.basename(path)}' is not a readable HDF5 file: {e}") from None
    if "timeseries" in keys:
        return "mintpy"
    if "cum" in keys:
        return "licsbas"
    raise DeformCastError(
        f"'{os.path.basename(path)}' is HDF5 but neither a MintPy time series (dataset 'timeseries') nor a "
        f"LiCSBAS cum.h5 (dataset 'cum'); it holds: {', '.join(keys[:12]) or 'nothing'}.")


# ------------------------------------------------------------------------------------------
# covariates
# ------------------------------------------------------------------------------------------
def _is_integer_band(band) -> bool:
    gdal = _gdal()
    ints = {gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_UInt32, gdal.GDT_Int32}
    for extra in ("GDT_Int8", "GDT_Int64", "GDT_UInt64"):
        if hasattr(gdal, extra):
            ints.add(getattr(gdal, extra))
    return band.DataType in ints


def _footprint(ds, dst_wkt: str):
    gt = ds.GetGeoTransform()
    W, H = ds.RasterXSize, ds.RasterYSize
    cols = np.array([0, W / 2, W, 0, W, 0, W / 2, W], float)
    rows = np.array([0, 0, 0, H / 2, H / 2, H, H, H], float)
    x = gt[0] + cols * gt[1] + rows * gt[2]
    y = gt[3] + cols * gt[4] + rows * gt[5]
    xy = np.c_[x, y]
    src = ds.GetProjection()
    tr = _transformer(src, dst_wkt) if src and dst_wkt else None
    if tr is not None:
        try:
            xy = tr(xy)
        except RuntimeError:
            return None
    return xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()


def grid_bounds(grid: Grid):
    gt = grid.geotransform
    xs = [gt[0], gt[0] + grid.width * gt[1]]
    ys = [gt[3], gt[3] + grid.height * gt[5]]
    return min(xs), min(ys), max(xs), max(ys)


def align_covariates(paths: Sequence[str], grid: Grid, progress=None) -> Dict[str, np.ndarray]:
    """Warp covariate rasters onto ``grid``: ``{name: (H, W) float32}`` (NaN = nodata).

    ``name`` is the file name without extension (``_2``, ``_3`` ... when two files share a name;
    ``name_b2`` ... for the further bands of a multiband file). Integer rasters (classes, masks)
    are resampled with nearest neighbour, floating-point ones bilinearly. Any CRS and resolution.
    """
    gdal = _gdal()
    out: Dict[str, np.ndarray] = {}
    paths = [p for p in (paths or []) if p]
    gb = grid_bounds(grid)
    for k, p in enumerate(paths):
        p = str(p)
        base = os.path.splitext(os.path.basename(p.split("|")[0]))[0]
        if not os.path.exists(p) and not p.startswith("/vsi"):
            raise DeformCastError(f"The covariate '{p}' does not exist.")
        try:
            src = gdal.Open(p)
        except RuntimeError as e:
            raise DeformCastError(f"GDAL cannot open the covariate '{p}': {e}") from None
        if not src.GetProjection() and grid.crs_wkt:
            raise DeformCastError(f"The covariate '{os.path.basename(p)}' has no CRS. Assign its CRS "
                                  "(Raster > Projections > Assign Projection) and run again.")
        fp = _footprint(src, grid.crs_wkt)
        if fp is None or fp[0] >= gb[2] or fp[2] <= gb[0] or fp[1] >= gb[3] or fp[3] <= gb[1]:
            raise DeformCastError(
                f"The covariate '{os.path.basename(p)}' does not overlap the displacement stack (covariate "
                f"extent {_fmt_bounds(fp)}, stack extent {_fmt_bounds(gb)} in the stack's CRS). Give a "
                "covariate that covers the stack's area, or check that its CRS is set correctly.")
        for b in range(1, src.RasterCount + 1):
            band = src.GetRasterBand(b)
            nearest = _is_integer_band(band)
            nod = band.GetNoDataValue()
            one = gdal.Translate("", src, format="VRT", bandList=[b]) if src.RasterCount > 1 else src
            w = gdal.Warp("", one, format="MEM", dstSRS=grid.crs_wkt or None,
                          outputBounds=gb, width=grid.width, height=grid.height,
                          resampleAlg="near" if nearest else "bilinear",
                          srcNodata=nod, dstNodata=float("nan"), outputType=gdal.GDT_Float32)
            arr = w.GetRasterBand(1).ReadAsArray().astype(np.float32)
            w = None
            # the warp moves stored values: apply the source band's scale and offset afterwards
            # (a linear map, so it commutes with nearest/bilinear resampling)
            sc, off = band.GetScale(), band.GetOffset()
            if sc is not None and sc != 1.0:
                arr *= np.float32(sc)
            if off is not None and off != 0.0:
                arr += np.float32(off)
            if not np.any(np.isfinite(arr)):
                raise DeformCastError(
                    f"The covariate '{os.path.basename(p)}' (band {b}) holds only nodata over the displacement "
                    "stack. Give a covariate with values over the stack's area.")
            name = base if b == 1 else f"{base}_b{b}"
            n0, i = name, 2
            while name in out:
                name = f"{n0}_{i}"
                i += 1
            out[name] = arr
        src = None
        if progress is not None:
            progress.set((k + 1) / len(paths))
    return out


def unused_covariates_message(names, encodings) -> str:
    """The warning for COVARIATES that no coding strategy uses ('' when they are used or absent):
    ``encodings`` are the strategies (each a name or a comma list) a run trains with."""
    names = sorted(names or [])
    used = any("covariates" in str(e).replace("+", ",").split(",") for e in (encodings or []))
    if not names or used:
        return ""
    return (f"COVARIATES ({', '.join(names)}) were given but no coding strategy of this run uses them (ENCODING has "
            "no 'covariates'), so the models do NOT see them. Add 'covariates' to ENCODING (or to the SEARCH_SPACE "
            "encoding choices) to use them, or leave COVARIATES empty.")


def _fmt_bounds(b) -> str:
    if b is None:
        return "(not transformable)"
    return "[" + ", ".join(f"{v:.6g}" for v in b) + "]"


# ------------------------------------------------------------------------------------------
# import_timeseries: any supported input -> contract stack GeoTIFF
# ------------------------------------------------------------------------------------------
def detect_format(path: str) -> str:
    """``csv`` | ``vector`` | ``mintpy`` | ``licsbas`` | ``raster`` for an input path."""
    p, layer = _split_source(path)
    low = p.lower()
    if layer is not None:
        return "vector"
    if not os.path.exists(p) and not p.startswith("/vsi"):
        raise DeformCastError(f"The input '{p}' does not exist.")
    if low.endswith((".csv", ".txt")) or (low.endswith(".zip") and _zip_has_csv(p)):
        return "csv"
    if low.endswith((".h5", ".he5", ".hdf5", ".hdf")):
        return _h5_kind(p)
    gdal = _gdal()
    try:
        with open(p, "rb") as fh:
            if fh.read(8) == b"\x89HDF\r\n\x1a\n":
                return _h5_kind(p)
    except (IsADirectoryError, PermissionError):
        pass
    try:
        ds = gdal.OpenEx(p, gdal.OF_RASTER)
        if ds is not None and ds.RasterCount > 0:
            return "raster"
    except RuntimeError:
        pass
    try:
        ds = gdal.OpenEx(p, gdal.OF_VECTOR)
        if ds is not None and ds.GetLayerCount() > 0:
            return "vector"
    except RuntimeError:
        pass
    raise DeformCastError(
        f"Unknown input format: '{os.path.basename(p)}' is none of EGMS CSV (.csv/.zip), a point layer "
        "(shapefile, GeoPackage, ...), MintPy timeseries.h5, LiCSBAS cum.h5 or a raster stack (GeoTIFF, VRT). "
        "Convert it to one of these.")


def _zip_has_csv(p: str) -> bool:
    try:
        with zipfile.ZipFile(p) as zf:
            return any(n.lower().endswith(".csv") for n in zf.namelist())
    except zipfile.BadZipFile:
        return False


def _regularise_opts(regularise, dates):
    """``regularise``: False/None, True (median step) or a step in days."""
    from .series import median_step_days, regular_dates

    if not regularise:
        return None
    step = median_step_days(dates) if regularise is True else int(regularise)
    return step, regular_dates(dates, step)


def _write_gridded(output_path: str, grid: Grid, dates: np.ndarray, read_block: Callable[[int, int], np.ndarray],
                   progress, what: str, regularise=None, max_gap_days=None, block_rows: Optional[int] = None,
                   metadata: Optional[dict] = None, rereference: bool = False) -> Tuple[np.ndarray, float]:
    """Block-wise: read rows, optionally regularise, write the contract stack. Refuses all-nodata."""
    from .series import regularise as _reg
    from .series import rereference as _reref
    from .styles import deformation_style

    reg = _regularise_opts(regularise, dates)
    out_dates = dates if reg is None else reg[1]
    T = dates.size
    if block_rows is None:
        block_rows = max(1, int(32e6 // max(1, T * grid.width * 4)))
    last = np.full(grid.shape, np.nan, np.float32)
    n_valid = 0
    with RasterWriter(output_path, grid, out_dates.size, [iso(d) for d in out_dates], "float32",
                      float("nan"), None, metadata) as w:
        for r0, r1 in row_blocks(grid.height, block_rows):
            block = read_block(r0, r1)
            if reg is not None:
                block, _ = _reg(block, dates, step_days=reg[0], max_gap_days=max_gap_days)
            if rereference:
                block = _reref(block, 0)
            n_valid += int(np.count_nonzero(np.isfinite(block)))
            last[r0:r1] = block[-1]
            w.write(block, r0)
            progress.set(r1 / grid.height)
        if n_valid == 0:
            raise _all_nodata_error(what)
        w.qml = deformation_style(last, band=int(out_dates.size))
    return out_dates, n_valid / float(out_dates.size * grid.width * grid.height)


def _warp_file(src_path: str, output_path: str, target_crs, cell_size, dates, progress, metadata=None):
    """Reproject/resample a written stack onto ``target_crs``/``cell_size`` (bilinear)."""
    gdal = _gdal()
    kw = dict(format="MEM", resampleAlg="bilinear", srcNodata=float("nan"), dstNodata=float("nan"),
              outputType=gdal.GDT_Float32)
    if target_crs:
        kw["dstSRS"] = crs_wkt_of(target_crs)
    if cell_size and float(cell_size) > 0:
        kw["xRes"] = kw["yRes"] = float(cell_size)
        kw["targetAlignedPixels"] = True
    w = gdal.Warp("", src_path, **kw)
    grid = Grid(tuple(w.GetGeoTransform()), w.GetProjection(), w.RasterXSize, w.RasterYSize)
    arr = w.ReadAsArray().astype(np.float32).reshape(-1, grid.height, grid.width)
    w = None
    if not np.any(np.isfinite(arr)):
        raise _all_nodata_error("The reprojected stack")
    write_stack(output_path, arr, dates, grid, metadata=metadata)
    progress.set(1.0)
    return grid, float(np.mean(np.isfinite(arr)))


def import_timeseries(input_path: str, output_path: str, cell_size: Optional[float] = None, units: str = "mm",
                      target_crs=None, dates=None, layer=None, regularise=False, max_gap_days=None,
                      progress=None, chunk_rows: int = 2000, rereference: bool = False) -> dict:
    """Any supported InSAR product -> a contract displacement stack GeoTIFF (mm, ISO dates, NaN).

    ``cell_size`` is required for point inputs (CSV, point layers) and optional for gridded ones
    (then they are resampled to it). ``units`` applies to point fields and raster stacks; HDF5
    products carry their own (MintPy metres, LiCSBAS mm). ``target_crs`` reprojects (points exactly,
    grids bilinearly). ``dates`` (the DATES parameter) gives the dates of a raster stack.
    ``regularise``: False, True (median step) or a step in days (see :mod:`algorithms.series`).
    ``rereference``: refer every pixel to its first (regularised) epoch, which becomes 0 mm.
    Returns a summary dict (output, format, dates, grid size, CRS, valid fraction ...).
    """
    from .progress import Progress

    progress = progress or Progress()
    output_path = str(output_path)
    fmt = detect_format(str(input_path))
    summary = {"input": str(input_path), "format": fmt}
    meta = {"DEFORMCAST_SOURCE": os.path.basename(_split_source(str(input_path))[0]),
            "DEFORMCAST_SOURCE_FORMAT": fmt, "UNITS": "mm"}
    if fmt in ("csv", "vector"):
        if fmt == "csv":
            src = read_egms_csv(input_path, chunk_rows=chunk_rows, units=units)
        else:
            src = read_point_layer(input_path, units=units, layer=layer, chunk_rows=chunk_rows)
        summary["format"] = src.kind
        meta["DEFORMCAST_SOURCE_FORMAT"] = src.kind
        if dates is not None and str(dates).strip():
            progress.log("DATES is ignored for point data: the dates come from the field names.")
        if src.undated:
            warn(src.undated_message())
        stack, grid = grid_points(src, cell_size, target_crs, progress.sub(0.0, 0.8))
        summary["n_points"] = int(src.n_points)
        summary["n_skipped"] = int(src.n_skipped)
        summary["undated_columns"] = list(src.undated)
        if src.n_skipped:
            warn(src.skipped_message())
        progress.log(f"{src.n_points} points with coordinates" + (
            f", {src.n_skipped} skipped" if src.n_skipped else "") + (
            "; decimal commas read as decimal points" if getattr(src, "decimal_comma", False) else "") + ".")
        out_dates, frac = _write_gridded(output_path, grid, src.dates, lambda a, b: stack[:, a:b],
                                         progress.sub(0.8, 1.0), f"'{os.path.basename(src.path)}'",
                                         regularise, max_gap_days, metadata=meta, rereference=rereference)
    else:
        if fmt == "raster":
            info = open_stack(str(input_path), dates)
            f = unit_factor(units)
            declared = declared_unit(info.path)
            if declared and unit_to_mm(declared) is not None:
                # read_stack converts a declared length unit to mm: UNITS must not scale again
                if unit_to_mm(declared) != f and f != 1.0:
                    warn(f"The bands of '{os.path.basename(str(input_path))}' declare their unit ({declared}); it "
                         f"is used, and UNITS={units} is not applied. Set the band unit right (or remove it) if "
                         "the file is wrong.")
                else:
                    progress.log(f"The bands declare their unit ({declared}): converted to mm.")
                f = 1.0
            grid, src_dates = info.grid, info.dates

            def read_block(a, b, info=info, f=f):
                blk = read_stack(info, (a, b))
                if f != 1.0:
                    blk *= np.float32(f)
                return blk
        else:
            gs = read_mintpy_h5(str(input_path)) if fmt == "mintpy" else read_licsbas_h5(str(input_path))
            grid, src_dates = gs.grid, gs.dates
            explicit = parse_dates_param(dates)
            if explicit is not None:
                if explicit.size != src_dates.size:
                    raise DeformCastError(f"DATES lists {explicit.size} dates but the file has {src_dates.size} "
                                          "epochs. Give one date per epoch, or leave DATES empty.")
                src_dates = check_dates(explicit, "DATES")
            read_block = gs.read
        what = f"'{os.path.basename(str(input_path))}'"
        warp = bool(target_crs) or (cell_size is not None and float(cell_size) > 0)
        if warp:
            tmp = output_path + ".src.tif"
            try:
                out_dates, _ = _write_gridded(tmp, grid, src_dates, read_block, progress.sub(0.0, 0.6), what,
                                              regularise, max_gap_days, metadata=meta, rereference=rereference)
                grid, frac = _warp_file(tmp, output_path, target_crs, cell_size, out_dates,
                                        progress.sub(0.6, 1.0), meta)
            finally:
                for q in (tmp, os.path.splitext(tmp)[0] + ".qml"):
                    if os.path.exists(q):
                        os.remove(q)
        else:
            out_dates, frac = _write_gridded(output_path, grid, src_dates, read_block, progress, what,
                                             regularise, max_gap_days, metadata=meta, rereference=rereference)
    srs = srs_from(grid.crs_wkt) if grid.crs_wkt else None
    summary.update({
        "output": output_path,
        "dates": [iso(d) for d in out_dates],
        "n_epochs": int(out_dates.size),
        "width": grid.width, "height": grid.height,
        "geotransform": list(grid.geotransform),
        "crs": (srs.GetAuthorityName(None) + ":" + srs.GetAuthorityCode(None))
        if srs is not None and srs.GetAuthorityCode(None) else (grid.crs_wkt[:60] if grid.crs_wkt else ""),
        "valid_fraction": float(frac),
    })
    progress.log(f"Imported {summary['format']}: {grid.width} x {grid.height} cells, {out_dates.size} epochs "
                 f"({summary['dates'][0]} .. {summary['dates'][-1]}), {100 * frac:.1f}% valid.")
    return summary
