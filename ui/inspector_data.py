"""What the inspector reads: the result rasters' values at a pixel or over a polygon (no drawing).

* :func:`sample_layer` / :func:`pixel_series` read every band of every chosen raster at one point
  (the point transformed from the canvas CRS into each layer's CRS) with the core's
  ``raster.read_band`` (nodata, band scale/offset and a displacement's length unit applied, as the
  algorithms read them; QGIS's identify for sources GDAL cannot open);
* :func:`area_series` reads the pixels whose centres fall inside a polygon and averages them
  (``nanmean`` per band); the spread across the pixels (P10/P90 of the observed series and of the
  median forecast) is kept beside the mean;
* :func:`fan` turns the members raster into percentiles per lead step (P5, P10, P50, P90, P95);
* :func:`relative_to` changes the reference point: it subtracts a picked pixel's (or area's)
  series, date by date, member by member.

Nothing here changes a raster value beyond these documented operations.
"""
from __future__ import annotations

import contextlib
import math
import re
import warnings
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Tuple

import numpy as np
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsPalettedRasterRenderer,
    QgsPointXY,
    QgsProject,
    QgsRaster,
    QgsRasterLayer,
)

#: the layers the inspector reads, in the order of the dock's combo boxes
ROLES = [
    ("stack", "Observed stack"),
    ("later", "Later observations"),
    ("members", "Ensemble members"),
    ("median", "Forecast median"),
    ("quantiles", "Forecast quantiles"),
    ("susceptibility", "Susceptibility"),
    ("probabilities", "Class probabilities"),
    ("exceedance", "Exceedance probability"),
]
#: roles in mm (a displacement's length unit is converted as the algorithms convert it)
DISPLACEMENT_ROLES = ("stack", "later", "members", "median", "quantiles")
#: the percentiles of the members drawn as fans, outer first
FAN_PERCENTILES = (5, 10, 50, 90, 95)

_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")
_MEMBER = re.compile(r"member\s*_?(\d+)", re.IGNORECASE)
_PCT = re.compile(r"\b[Pp](\d{1,2}(?:\.\d+)?)\b")

Series = Tuple[np.ndarray, np.ndarray]  # dates (datetime64[D]), values


@dataclass
class Sample:
    """The values of all bands of one raster at one point (or averaged over an area)."""

    values: np.ndarray            # float64, NaN where nodata / outside
    names: List[str]              # band descriptions
    row: Optional[int] = None
    col: Optional[int] = None
    class_labels: Dict[int, str] = field(default_factory=dict)
    pixels: Optional[np.ndarray] = None   # (bands, n pixels) for an area
    mode: Optional[float] = None          # the most frequent value of band 1 over an area


def band_names(layer: QgsRasterLayer) -> List[str]:
    """Band descriptions as GDAL reads them (ISO dates, ``member<k> <date>``, ``P10`` ...)."""
    n = layer.bandCount()
    try:
        from osgeo import gdal

        from ..algorithms.io.raster import iso
        from ..algorithms.io.source_dates import band_source_date

        ds = gdal.Open(layer.source())
        if ds is not None:   # a VRT of one file per date: the date in the file's name, as the algorithms read it
            names = []
            for i in range(ds.RasterCount):
                b = ds.GetRasterBand(i + 1)
                d = None if b.GetDescription() else band_source_date(b)
                names.append(b.GetDescription() or (iso(d) if d is not None else ""))
            return names
    except Exception:  # noqa: BLE001 - not a GDAL file: fall back to QGIS's band names
        pass
    return [layer.bandName(i + 1) for i in range(n)]


def _class_labels(layer: QgsRasterLayer) -> Dict[int, str]:
    r = layer.renderer()
    if isinstance(r, QgsPalettedRasterRenderer):
        return {int(c.value): c.label for c in r.classes()}
    return {}


def _open_gdal(layer: QgsRasterLayer):
    """``(dataset, geotransform)`` for a north-up GDAL raster with the layer's bands, else None."""
    try:
        from osgeo import gdal

        ds = gdal.OpenEx(layer.source(), gdal.OF_RASTER)
    except Exception:  # noqa: BLE001 - not a GDAL file: QGIS's identify is used instead
        return None
    if ds is None or ds.RasterCount != layer.bandCount():
        return None
    gt = ds.GetGeoTransform()
    if gt[2] or gt[4] or not gt[1] or not gt[5]:
        return None  # rotated grids: left to QGIS
    return ds, gt


def _gdal_pixel(layer: QgsRasterLayer, pt: QgsPointXY, to_mm: bool):
    """``(values, row, col)`` of every band at ``pt`` (layer CRS) read by the core's
    :func:`algorithms.io.raster.read_band`; ``None`` when GDAL cannot open the source;
    ``(None, None, None)`` outside the raster."""
    from ..algorithms.io.raster import read_band

    got = _open_gdal(layer)
    if got is None:
        return None
    ds, (x0, dx, _, y0, _, dy) = got
    col = int(math.floor((pt.x() - x0) / dx))
    row = int(math.floor((pt.y() - y0) / dy))
    if not (0 <= col < ds.RasterXSize and 0 <= row < ds.RasterYSize):
        return None, None, None
    vals = np.array([float(read_band(ds.GetRasterBand(b + 1), col, row, 1, 1, to_mm=to_mm)[0, 0])
                     for b in range(ds.RasterCount)], dtype=np.float64)
    return vals, row, col


def _to_layer(layer: QgsRasterLayer, crs: QgsCoordinateReferenceSystem):
    if crs is not None and crs.isValid() and layer.crs().isValid() and crs != layer.crs():
        return QgsCoordinateTransform(crs, layer.crs(), QgsProject.instance())
    return None


def sample_layer(layer: QgsRasterLayer, point: QgsPointXY, crs: QgsCoordinateReferenceSystem,
                 to_mm: bool = False) -> Sample:
    """All band values of ``layer`` at ``point`` (given in ``crs``); NaN outside or nodata.

    GDAL rasters are read as the algorithms read them (band scale/offset applied; ``to_mm``: a
    displacement stack's length unit converted to mm); other sources through QGIS's identify.
    """
    names = band_names(layer)
    n = layer.bandCount()
    vals = np.full(n, np.nan)
    pt = QgsPointXY(point)
    tr = _to_layer(layer, crs)
    if tr is not None:
        pt = tr.transform(pt)
    got = _gdal_pixel(layer, pt, to_mm)
    if got is not None:
        v, row, col = got
        return Sample(vals if v is None else v, names, row, col, _class_labels(layer))
    ext = layer.extent()
    row = col = None
    if ext.contains(pt):
        prov = layer.dataProvider()
        res = prov.identify(pt, QgsRaster.IdentifyFormat.IdentifyFormatValue).results()
        for b in range(1, n + 1):
            v = res.get(b)
            try:
                vals[b - 1] = float(v) if v is not None else np.nan
            except (TypeError, ValueError):
                vals[b - 1] = np.nan
        col = int(math.floor((pt.x() - ext.xMinimum()) / layer.rasterUnitsPerPixelX()))
        row = int(math.floor((ext.yMaximum() - pt.y()) / layer.rasterUnitsPerPixelY()))
    return Sample(vals, names, row, col, _class_labels(layer))


def area_mask(gt, width: int, height: int, wkt: str, crs_wkt: str = ""):
    """``(row0, col0, mask)``: the window of a north-up grid (geotransform ``gt``) covering the
    polygon ``wkt`` (grid CRS) and a boolean mask of the pixels whose centres fall inside it
    (GDAL's rasterizer without ALL_TOUCHED); ``None`` when it misses the grid."""
    from osgeo import gdal, ogr

    geom = ogr.CreateGeometryFromWkt(wkt)
    if geom is None or geom.IsEmpty():
        return None
    minx, maxx, miny, maxy = geom.GetEnvelope()
    x0, dx, _, y0, _, dy = gt
    cols = sorted(((minx - x0) / dx, (maxx - x0) / dx))
    rows = sorted(((miny - y0) / dy, (maxy - y0) / dy))
    c0, c1 = max(0, int(math.floor(cols[0]))), min(width, int(math.ceil(cols[1])))
    r0, r1 = max(0, int(math.floor(rows[0]))), min(height, int(math.ceil(rows[1])))
    if c1 <= c0 or r1 <= r0:
        return None
    mem = gdal.GetDriverByName("MEM").Create("", c1 - c0, r1 - r0, 1, gdal.GDT_Byte)
    mem.SetGeoTransform((x0 + c0 * dx, dx, 0.0, y0 + r0 * dy, 0.0, dy))
    srs = None
    if crs_wkt:
        from osgeo import osr

        srs = osr.SpatialReference()
        srs.ImportFromWkt(crs_wkt)
        mem.SetProjection(crs_wkt)
    src = ogr.GetDriverByName("Memory").CreateDataSource("area")
    lyr = src.CreateLayer("area", srs=srs, geom_type=ogr.wkbUnknown)
    feat = ogr.Feature(lyr.GetLayerDefn())
    feat.SetGeometry(geom)
    lyr.CreateFeature(feat)
    gdal.RasterizeLayer(mem, [1], lyr, burn_values=[1])
    mask = mem.GetRasterBand(1).ReadAsArray() == 1
    return (r0, c0, mask) if mask.any() else None


def sample_area(layer: QgsRasterLayer, geometry: QgsGeometry, crs: QgsCoordinateReferenceSystem,
                to_mm: bool = False) -> Sample:
    """Every band of ``layer`` over the pixels whose centres fall inside ``geometry`` (in ``crs``):
    ``values`` the mean over the pixels (NaN ignored), ``pixels`` the values per pixel."""
    from ..algorithms.errors import DeformCastError
    from ..algorithms.io.raster import read_band

    names = band_names(layer)
    got = _open_gdal(layer)
    if got is None:
        raise DeformCastError(f"The layer '{layer.name()}' is not a north-up GDAL raster: an area average "
                              "needs one (export it as GeoTIFF first).")
    ds, gt = got
    geom = QgsGeometry(geometry)
    tr = _to_layer(layer, crs)
    if tr is not None:
        geom.transform(tr)
    win = area_mask(gt, ds.RasterXSize, ds.RasterYSize, geom.asWkt(), ds.GetProjection())
    if win is None:
        return Sample(np.full(len(names), np.nan), names, None, None, _class_labels(layer),
                      np.empty((len(names), 0)))
    r0, c0, mask = win
    h, w = mask.shape
    pix = np.stack([read_band(ds.GetRasterBand(b + 1), c0, r0, w, h, to_mm=to_mm)[mask]
                    for b in range(ds.RasterCount)]).astype(np.float64)
    with _quiet():
        mean = np.nanmean(pix, axis=1)
    first = pix[0][np.isfinite(pix[0])]
    mode = None
    if first.size:
        vals, counts = np.unique(np.round(first), return_counts=True)
        mode = float(vals[np.argmax(counts)])
    rr, cc = np.nonzero(mask)
    return Sample(mean, names, int(r0 + rr.mean()), int(c0 + cc.mean()), _class_labels(layer), pix, mode)


@contextlib.contextmanager
def _quiet():
    """Silence numpy's 'mean of empty slice' for all-NaN pixels (they read as NaN, as intended)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def sample_layers(layers: Dict[str, Optional[QgsRasterLayer]], point: QgsPointXY,
                  crs: QgsCoordinateReferenceSystem) -> Dict[str, Sample]:
    """``sample_layer`` for every role that has a layer."""
    return {role: sample_layer(lyr, point, crs, to_mm=role in DISPLACEMENT_ROLES)
            for role, lyr in layers.items() if lyr is not None}


def _date(text: str):
    m = _DATE.search(text or "")
    return np.datetime64(m.group(1), "D") if m else None


@dataclass
class PixelSeries:
    """What the inspector plots for one pick, a pixel or an area (values in the rasters' units)."""

    point: Tuple[float, float]
    observed: Optional[Series] = None                           # dates, mm
    members: Dict[int, Series] = field(default_factory=dict)
    median: Optional[Series] = None
    quantiles: Dict[str, Series] = field(default_factory=dict)  # "P10" -> dates, mm (quantiles raster)
    susceptibility_class: Optional[Tuple[float, str]] = None
    class_probabilities: List[Tuple[str, float]] = field(default_factory=list)
    exceedance: List[Tuple[str, float]] = field(default_factory=list)
    pixel: Optional[Tuple[int, int]] = None  # row, col in the stack (or first layer); an area: its centre
    later: Optional[Series] = None           # later observations (dates after the forecast start)
    kind: str = "pixel"                      # "pixel" or "area"
    n_pixels: int = 1
    spread: Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)  # area: P10/P90
    label: str = ""
    reference: str = ""                      # the label of the reference subtracted, if any
    wkt: str = ""                            # an area's polygon (canvas CRS)

    def is_empty(self) -> bool:
        return (self.observed is None and not self.members and self.median is None and self.later is None
                and not self.quantiles and self.susceptibility_class is None and not self.exceedance)

    def where(self) -> str:
        if self.kind == "area":
            return f"area of {self.n_pixels} pixels"
        return f"row {self.pixel[0]}, col {self.pixel[1]}" if self.pixel else "outside the layers"


def _arrange(s: Dict[str, Sample], layers, point, dates: Optional[str]) -> PixelSeries:
    """Arrange the band values of every role by date / member / percentile."""
    from ..algorithms.io.raster import open_stack

    ps = PixelSeries((point.x(), point.y()))
    for role in ("stack", "members", "median", "quantiles", "later", "susceptibility", "exceedance"):
        if role in s and s[role].row is not None:
            ps.pixel = (s[role].row, s[role].col)
            break
    if "stack" in s:
        info = open_stack(layers["stack"].source(), dates or None)
        ps.observed = (info.dates, s["stack"].values)
    if "later" in s:
        info = open_stack(layers["later"].source())
        d, v = info.dates, s["later"].values
        if ps.observed is not None and len(ps.observed[0]):
            keep = d > ps.observed[0].max()   # only the epochs after the forecast start
            d, v = d[keep], v[keep]
        ps.later = (d, v)
    if "members" in s:
        by_member: Dict[int, List[Tuple[np.datetime64, float]]] = {}
        for name, v in zip(s["members"].names, s["members"].values):
            m, d = _MEMBER.search(name or ""), _date(name)
            if m is None or d is None:
                continue
            by_member.setdefault(int(m.group(1)), []).append((d, v))
        for k, items in by_member.items():
            ps.members[k] = (np.array([d for d, _ in items], dtype="datetime64[D]"), np.array([v for _, v in items]))
    last_date = None
    if "median" in s:
        ds = [_date(n) for n in s["median"].names]
        if all(d is not None for d in ds):
            ps.median = (np.array(ds, dtype="datetime64[D]"), s["median"].values)
            last_date = ds[-1] if ds else None
    if last_date is None and ps.members:
        last_date = max(d[-1] for d, _ in ps.members.values())
    if "quantiles" in s:
        for name, v in zip(s["quantiles"].names, s["quantiles"].values):
            m = _PCT.search(name or "")
            if m is None:
                continue
            d = _date(name) or last_date
            if d is None:
                continue
            key = "P" + m.group(1)
            dd, vv = ps.quantiles.get(key, (np.array([], dtype="datetime64[D]"), np.array([])))
            ps.quantiles[key] = (np.append(dd, np.datetime64(d, "D")), np.append(vv, v))
    if "susceptibility" in s:
        smp = s["susceptibility"]
        v = smp.mode if smp.pixels is not None else smp.values[0]
        if v is not None and np.isfinite(v):
            ps.susceptibility_class = (float(v), smp.class_labels.get(int(round(v)), f"class {int(round(v))}"))
        if len(smp.values) > 1 and "probabilities" not in s:
            ps.class_probabilities = [(n or f"band {i + 2}", float(x))
                                      for i, (n, x) in enumerate(zip(smp.names[1:], smp.values[1:]))]
    if "probabilities" in s:
        p = s["probabilities"]
        ps.class_probabilities = [(n or f"class {i + 1}", float(x)) for i, (n, x) in enumerate(zip(p.names, p.values))]
    if "exceedance" in s:
        e = s["exceedance"]
        ps.exceedance = [(n or f"threshold {i + 1}", float(x)) for i, (n, x) in enumerate(zip(e.names, e.values))]
    return ps


def pixel_series(layers: Dict[str, Optional[QgsRasterLayer]], point: QgsPointXY,
                 crs: QgsCoordinateReferenceSystem, dates: Optional[str] = None) -> PixelSeries:
    """Read every chosen raster at ``point`` (in ``crs``) and arrange the values for plotting.

    ``dates`` is the stack's DATES parameter when its bands carry no dates.
    """
    return _arrange(sample_layers(layers, point, crs), layers, point, dates)


def area_series(layers: Dict[str, Optional[QgsRasterLayer]], geometry: QgsGeometry,
                crs: QgsCoordinateReferenceSystem, dates: Optional[str] = None) -> PixelSeries:
    """The mean over the pixels whose centres fall inside ``geometry`` (in ``crs``) of every chosen
    raster (NaN pixels left out per band), arranged as :func:`pixel_series` arranges one pixel.

    Members are averaged member by member, so the fans of an area are the spread of the area's
    mean; ``spread`` holds the P10/P90 across the pixels of the observed series and of the median
    forecast. The susceptibility class is the most frequent class; probabilities are means."""
    from ..algorithms.errors import DeformCastError

    s = {role: sample_area(lyr, geometry, crs, to_mm=role in DISPLACEMENT_ROLES)
         for role, lyr in layers.items() if lyr is not None}
    c = geometry.centroid().asPoint()
    ps = _arrange(s, layers, c, dates)
    ps.kind, ps.wkt = "area", geometry.asWkt()
    ps.n_pixels = max((smp.pixels.shape[1] for smp in s.values() if smp.pixels is not None), default=0)
    if ps.n_pixels == 0:
        raise DeformCastError("The polygon covers no pixel centre of the chosen layers; draw a larger one "
                              "or one over the rasters.")
    with _quiet():
        for role, series in (("stack", ps.observed), ("median", ps.median)):
            if series is None or role not in s:
                continue
            pix = s[role].pixels
            if len(series[0]) == pix.shape[0]:
                lo, hi = np.nanpercentile(pix, [10, 90], axis=1)
                ps.spread["observed" if role == "stack" else "median"] = (series[0], lo, hi)
    return ps


def fan(ps: PixelSeries, percentiles=FAN_PERCENTILES) -> Dict[int, Series]:
    """Percentiles of the members per lead step (numpy's linear interpolation, NaN members left
    out); empty with fewer than two members or members on different dates."""
    if len(ps.members) < 2:
        return {}
    ks = sorted(ps.members)
    d0 = ps.members[ks[0]][0]
    if any(len(ps.members[k][0]) != len(d0) or (ps.members[k][0] != d0).any() for k in ks):
        return {}
    arr = np.stack([ps.members[k][1] for k in ks]).astype(np.float64)
    with _quiet():
        q = np.nanpercentile(arr, list(percentiles), axis=0)
    return {int(p): (d0, q[i]) for i, p in enumerate(percentiles)}


def _minus(a: Optional[Series], b: Optional[Series]) -> Optional[Series]:
    """``a - b`` on ``a``'s dates (NaN where ``b`` has no value that date)."""
    if a is None:
        return None
    if b is None:
        return a[0], np.full(len(a[1]), np.nan)
    lut = {d: v for d, v in zip(np.asarray(b[0], dtype="datetime64[D]").tolist(), b[1])}
    ref = np.array([lut.get(d, np.nan) for d in np.asarray(a[0], dtype="datetime64[D]").tolist()], dtype=float)
    return a[0], np.asarray(a[1], dtype=float) - ref


def relative_to(ps: PixelSeries, ref: PixelSeries) -> PixelSeries:
    """``ps`` with the reference's series subtracted (a change of reference point).

    Observed and later observations: minus the reference's on the same dates. Members: member k
    minus the reference's member k (the same network and error path at both places), so the fans
    are those of the relative displacement; the median: minus the reference's median. Quantiles
    of the quantiles raster and an area's pixel spread: minus the reference's median / observed
    (the reference taken as its central value). Probabilities are left as they are."""
    out = replace(ps, reference=ref.label or "reference")
    out.observed = _minus(ps.observed, ref.observed)
    out.later = _minus(ps.later, ref.later)
    out.median = _minus(ps.median, ref.median)
    out.members = {k: _minus(v, ref.members.get(k, ref.median)) for k, v in ps.members.items()}
    out.quantiles = {q: _minus(v, ref.median) for q, v in ps.quantiles.items()}
    out.spread = {}
    for name, (d, lo, hi) in ps.spread.items():
        base = ref.observed if name == "observed" else ref.median
        out.spread[name] = (d, _minus((d, lo), base)[1], _minus((d, hi), base)[1])
    return out
