"""Point time series (QGIS-free): the streamed :class:`PointSource`, date-named columns, units, and
point layers read through OGR (shapefile, GeoPackage, any OGR source, also a QGIS source string
``path|layername=name``). EGMS CSV files are in :mod:`.egms`.

Point layers: date fields named ``YYYYMMDD``, ``DYYYYMMDD``, ``D_YYYYMMDD`` (or ISO), geometries
Point or single-part MultiPoint (PS shapefiles often store those); ``UNITS`` says whether the fields
hold mm, cm or m.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Iterator, List, Sequence, Tuple

import numpy as np

from ..errors import DeformCastError
from .raster import parse_date
from .crs import ogr_lib

UNITS = {"mm": 1.0, "cm": 10.0, "m": 1000.0}


def unit_factor(units: str) -> float:
    """mm per unit of the source values (``mm`` 1, ``cm`` 10, ``m`` 1000)."""
    u = str(units or "mm").strip().lower()
    if u not in UNITS:
        raise DeformCastError(f"UNITS: unknown unit '{units}'. Valid values: mm, cm, m.")
    return UNITS[u]


def date_columns(names: Sequence[str]) -> List[Tuple[int, np.datetime64, str]]:
    """Columns/fields whose name is a date (``YYYYMMDD``, ``DYYYYMMDD``, ``D_YYYYMMDD``, ISO)."""
    out = []
    for i, n in enumerate(names):
        d = parse_date(n)
        if d is not None:
            out.append((i, d, n))
    return out


def ordered_dates(cols, what: str, required: bool = True):
    """Sort date columns by date and refuse duplicates (two fields with the same date); no date column is refused
    unless ``required`` is False (a file of points only: no columns, no dates)."""
    if not cols and not required:
        return [], np.array([], dtype="datetime64[D]")
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


def _is_number(text: str, decimal_comma: bool = False) -> bool:
    t = text.strip()
    if decimal_comma:
        t = t.replace(",", ".")
    try:
        float(t)
        return True
    except ValueError:
        return False


def undated_columns(names: Sequence[str], date_idx: Sequence[int], sample=None,
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

    #: words for a record and a column in the messages (class attributes, not fields)
    row_word = "feature(s)"
    column_word = "field(s)"

    def skipped_message(self) -> str:
        """One sentence on the rows/features dropped for their coordinates ('' when none)."""
        if not self.n_skipped:
            return ""
        what = self.row_word
        return (f"{self.n_skipped} {what} of '{os.path.basename(self.path)}' were skipped because their "
                f"coordinates are missing or not numbers (first: {self.first_skipped}). Fix or remove them.")

    def undated_message(self) -> str:
        if not self.undated:
            return ""
        what = self.column_word
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

    def _emit(self, xy, vals, n, ids=None):
        """The first ``n`` rows of the chunk buffers as a chunk (values scaled to mm)."""
        v = None
        if vals is not None:
            v = vals[:n].copy()
            if self.factor != 1.0:
                v *= np.float32(self.factor)
        if ids is not None:
            return xy[:n].copy(), v, list(ids)
        return xy[:n].copy(), v


@dataclass
class OgrPointSource(PointSource):
    layer_ref: object = None
    field_idx: List[int] = field(default_factory=list)
    chunk_rows: int = 2000
    n_features: int = 0

    def _layer(self):
        ogr = ogr_lib()
        ds = ogr.Open(self.path)
        lyr = ds.GetLayerByName(self.layer_ref) if isinstance(self.layer_ref, str) else ds.GetLayer(int(self.layer_ref or 0))
        return ds, lyr

    def chunks(self, with_values=True, progress=None, with_ids=False):
        ogr = ogr_lib()
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

def split_source(path: str, layer=None):
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


def read_point_layer(path: str, units: str = "mm", layer=None, chunk_rows: int = 2000,
                     need_dates: bool = True) -> OgrPointSource:
    """Open a point layer (any OGR source) whose date fields hold displacement in ``units``
    (``need_dates=False``: a layer of points only, without date fields, too)."""
    ogr = ogr_lib()
    p, layer = split_source(path, layer)
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
    cols, dates = ordered_dates(dcols, f"layer '{lyr.GetName()}' of '{os.path.basename(p)}'", required=need_dates)
    undated = undated_columns(names, [c[0] for c in dcols])
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
