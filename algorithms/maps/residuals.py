"""Spatial analysis of forecast residuals against later observations.

Liu et al. (2026) find that forecast errors are not spatially random: they cluster (e.g. along
fault zones) and the uncertainty layers are spatially collinear with the error magnitude. This
module measures both on a raster grid.

* **Residual** = forecast - observed, for every forecast date that also is an observation date
  (bands matched by the dates in their descriptions; unmatched dates are ignored, no date
  overlap is refused). Both rasters must be on the same grid.
* **Analysed variable** (``VALUE``): per pixel the mean over the matched dates of the residual
  (``residual``: a signed bias map) or of ``|residual|`` (``abs_residual``, the default: the error
  magnitude, which is what "where does the model fail" and the zoning step need).
* **Spatial weights** on the grid, between valid pixels only (nodata pixels are dropped, they
  are not zeros): ``queen`` (8 neighbours), ``rook`` (4 neighbours) or ``distance`` (every pixel
  whose centre lies within ``DISTANCE`` map units), binary, built with ``scipy.sparse`` from one
  vectorised shift of the pixel-index grid per neighbour offset (no Python loop per pixel).
* **Global Moran's I** (row-standardisation is not applied; binary weights):
  ``I = n / S0 * (z' W z) / (z' z)``, ``z = x - mean(x)``, ``S0`` = sum of weights. Its pseudo
  p-value comes from ``N_PERMUTATIONS`` random permutations of the values over the valid pixels
  (seeded), two-sided in the way of PySAL: ``p = (1 + min(#{I_perm >= I}, #{I_perm <= I})) /
  (N + 1)``. The expectation under no autocorrelation ``-1/(n-1)`` is reported too.
* **Local hot spots**: Getis-Ord Gi* (the pixel itself is included, ``w_ii = 1``)::

      Gi* = (sum_j w_ij x_j - xbar * sum_j w_ij) /
            (S * sqrt((n * sum_j w_ij^2 - (sum_j w_ij)^2) / (n - 1)))

  with ``xbar`` and ``S = sqrt(mean(x^2) - xbar^2)`` over all valid pixels. Gi* is a z-score.
  Classes at the usual two-sided normal critical values: |z| >= 1.645 (90 %), 1.960 (95 %),
  2.576 (99 %): 1 cold 99 %, 2 cold 95 %, 3 cold 90 %, 4 not significant, 5 hot 90 %,
  6 hot 95 %, 7 hot 99 %. No correction for multiple testing is applied (as in common GIS hot
  spot tools); read the classes as a map of where errors concentrate, not as a per-pixel test.
* **Per-zone statistics**: zones from an integer raster (0 / nodata = outside every zone) or a
  polygon layer rasterised onto the grid (pixel centre inside the polygon; zone id from
  ``ZONE_FIELD`` or the feature id + 1). Pooled over matched dates: pixels, bias, MAE, RMSE,
  P90 of |residual| (per-pixel means).
* **Spatial collinearity**: Spearman rank correlation between each band of each uncertainty
  raster and the mean |residual|, over pixels where both are valid.

Memory: residual analysis needs the whole map at once (global statistics and neighbours), so
it holds a few float64 arrays of the grid plus the sparse weights (about 100 bytes per valid
pixel with queen weights); the residual raster itself is written date by date.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DeformCastError, warn
from ..progress import Progress, silent
from ..io.raster import Grid, RasterWriter, band_date, crs_equal, iso, open_raster, read_band
from ..io import styles

WEIGHTS = ["queen", "rook", "distance"]
VALUES = ["abs_residual", "residual"]
HOTSPOT_CLASSES = [
    (1, "Cold spot 99 %", "#2166ac"), (2, "Cold spot 95 %", "#67a9cf"), (3, "Cold spot 90 %", "#d1e5f0"),
    (4, "Not significant", "#f7f7f7"),
    (5, "Hot spot 90 %", "#fddbc7"), (6, "Hot spot 95 %", "#ef8a62"), (7, "Hot spot 99 %", "#b2182b"),
]
Z_CRIT = (1.6448536269514722, 1.959963984540054, 2.5758293035489004)


# --------------------------------------------------------------------------------------------
# weights and statistics
# --------------------------------------------------------------------------------------------
def neighbour_offsets(kind: str, distance: float = 0.0, cell: Tuple[float, float] = (1.0, 1.0)) -> List[Tuple[int, int]]:
    if kind == "rook":
        return [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if kind == "queen":
        return [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
    if kind == "distance":
        cx, cy = cell
        if not distance or distance < min(cx, cy):
            raise DeformCastError(
                f"DISTANCE ({distance:g}) is smaller than one cell ({min(cx, cy):g} map units): no pixel "
                "would have a neighbour. Give a distance of at least one cell.")
        rr = int(math.floor(distance / cy))
        rc = int(math.floor(distance / cx))
        if (2 * rr + 1) * (2 * rc + 1) > 2000:
            raise DeformCastError(f"DISTANCE ({distance:g}) spans more than 2000 cells; use a smaller distance.")
        return [(dr, dc) for dr in range(-rr, rr + 1) for dc in range(-rc, rc + 1)
                if (dr, dc) != (0, 0) and (dr * cy) ** 2 + (dc * cx) ** 2 <= distance ** 2 + 1e-9]
    raise DeformCastError(f"WEIGHTS: unknown value '{kind}'. Valid values: {', '.join(WEIGHTS)}.")


def grid_weights(valid: np.ndarray, offsets: Sequence[Tuple[int, int]]):
    """Binary sparse weights (CSR, n x n) between the valid pixels of a (H, W) mask.

    Valid pixels are numbered in row-major order. One vectorised shift per offset.
    """
    import scipy.sparse as sp

    valid = np.asarray(valid, bool)
    h, w = valid.shape
    idx = np.full((h, w), -1, dtype=np.int64)
    n = int(valid.sum())
    idx[valid] = np.arange(n)
    rows, cols = [], []
    for dr, dc in offsets:
        a = idx[max(0, -dr):h - max(0, dr), max(0, -dc):w - max(0, dc)]
        b = idx[max(0, dr):h - max(0, -dr), max(0, dc):w - max(0, -dc)]
        ok = (a >= 0) & (b >= 0)
        rows.append(a[ok])
        cols.append(b[ok])
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    return sp.csr_matrix((np.ones(r.size, dtype=np.float64), (r, c)), shape=(n, n))


def morans_i(x: np.ndarray, W) -> float:
    x = np.asarray(x, dtype=np.float64)
    z = x - x.mean()
    s0 = W.sum()
    zz = float(z @ z)
    if s0 == 0 or zz == 0:
        return float("nan")
    return float(x.size / s0 * (z @ (W @ z)) / zz)


def morans_i_permutation(x: np.ndarray, W, n_perm: int = 99, seed: int = 42,
                         progress: Optional[Progress] = None) -> Tuple[float, float, np.ndarray]:
    """Moran's I, its two-sided permutation pseudo p-value, and the permutation distribution."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    i_obs = morans_i(x, W)
    if not np.isfinite(i_obs) or n_perm < 1:
        return i_obs, float("nan"), np.zeros(0)
    z = x - x.mean()
    s0 = W.sum()
    zz = float(z @ z)
    rng = np.random.default_rng(seed)
    batch = max(1, min(n_perm, int(1.6e7 // max(1, n))))  # two (n, batch) float64 arrays of ~128 MB at most
    sims = []
    done = 0
    while done < n_perm:
        k = min(batch, n_perm - done)
        Z = np.stack([z[rng.permutation(n)] for _ in range(k)], axis=1)
        sims.append(n / s0 * np.einsum("ij,ij->j", Z, W @ Z) / zz)
        done += k
        if progress is not None:
            progress.set(done / n_perm)
    sims = np.concatenate(sims)
    larger = int((sims >= i_obs).sum())
    smaller = int((sims <= i_obs).sum())
    p = (1 + min(larger, smaller)) / (n_perm + 1)
    return i_obs, float(min(1.0, p)), sims


def getis_ord_gi_star(x: np.ndarray, W) -> np.ndarray:
    """Gi* z-scores for values ``x`` (n,) and weights ``W`` without self-links (self added here)."""
    import scipy.sparse as sp

    x = np.asarray(x, dtype=np.float64)
    n = x.size
    Ws = (W + sp.identity(n, format="csr", dtype=np.float64)).tocsr()
    xbar = x.mean()
    s = math.sqrt(max(float((x * x).mean() - xbar * xbar), 0.0))
    wsum = np.asarray(Ws.sum(axis=1)).ravel()
    w2 = np.asarray(Ws.multiply(Ws).sum(axis=1)).ravel()
    num = Ws @ x - xbar * wsum
    den = s * np.sqrt(np.maximum(n * w2 - wsum ** 2, 0.0) / max(n - 1, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(den > 0, num / den, 0.0)
    return g


def hotspot_classes(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    out = np.full(z.shape, 4, dtype=np.uint8)
    for k, zc in enumerate(Z_CRIT):  # 90, 95, 99
        out[z >= zc] = 5 + k
        out[z <= -zc] = 3 - k
    return out


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def _open(path: str, what: str):
    return open_raster(path, what)


def _band_dates(ds, what: str, path: str) -> List[Optional[np.datetime64]]:
    out = []
    for i in range(ds.RasterCount):
        out.append(band_date(ds.GetRasterBand(i + 1)))   # description, DATE metadata or a VRT source's name
    if all(d is None for d in out):
        raise DeformCastError(
            f"No band of {what} '{os.path.basename(str(path))}' carries a date in its description. "
            "Bands are matched by date: set each band's description to its date (YYYY-MM-DD), as "
            "'predict' and 'import_timeseries' do.")
    return out


def _read(ds, i0: int, to_mm: bool = False) -> np.ndarray:
    """One band as float64 with NaN nodata, band scale/offset applied (:func:`raster.read_band`);
    ``to_mm``: a displacement band, its declared length unit (m, cm) converted to mm too."""
    return read_band(ds.GetRasterBand(i0 + 1), to_mm=to_mm).astype(np.float64)


def _observed_reader(ods, path: str, grid: Grid):
    """``read(band) -> (H, W)`` of the observations as :func:`_read` reads them, with what :mod:`io.fill` finds
    (pixels with one value at every date, fill values where the file declares no nodata) read as no data, as
    every stack the algorithms read; said once (:func:`errors.warn`)."""
    from ..io import fill

    def rows(r, bands):
        r0, r1 = int(r[0]), int(r[1])
        return np.stack([read_band(ods.GetRasterBand(int(b) + 1), 0, r0, grid.width, r1 - r0, to_mm=True)
                         for b in bands])

    sc = fill.scan(rows, ods.RasterCount, grid.height, key=fill.file_key(path))
    f = fill.found(sc, os.path.basename(str(path)))
    if f.note:
        warn(f.note)

    def read(j: int) -> np.ndarray:
        return fill.blank(_read(ods, j, True), f.mask, f.values)

    return read


def _grid_problem(a: Grid, b: Grid) -> str:
    if (a.width, a.height) != (b.width, b.height):
        return f"{a.width} x {a.height} vs {b.width} x {b.height} pixels"
    if not crs_equal(a.crs_wkt, b.crs_wkt):
        return "different CRS"
    return "different geotransform (extent or cell size)"


def match_dates(fc_dates, ob_dates) -> List[Tuple[int, int, np.datetime64]]:
    pairs = []
    ob_index = {}
    for j, d in enumerate(ob_dates):
        if d is not None and d not in ob_index:
            ob_index[d] = j
    for i, d in enumerate(fc_dates):
        if d is not None and d in ob_index:
            pairs.append((i, ob_index[d], d))
    return pairs


def zones_array(zones: Optional[str], grid: Grid, zone_field: Optional[str] = None) -> Tuple[Optional[np.ndarray], Dict[int, str]]:
    """An integer zone id per pixel (0 = none) from a raster or a polygon layer; names by id."""
    if not zones:
        return None, {}
    from osgeo import gdal, ogr

    gdal.UseExceptions()
    path = str(zones)
    layer_name = None
    if "|layername=" in path:
        path, layer_name = path.split("|layername=", 1)
        layer_name = layer_name.split("|")[0]
    path = path.split("|")[0]
    if not os.path.exists(path):
        raise DeformCastError(f"ZONES '{zones}' does not exist.")
    rds = None
    try:
        rds = gdal.OpenEx(path, gdal.OF_RASTER)
    except RuntimeError:
        rds = None
    if rds is not None and rds.RasterCount >= 1:
        g = Grid(tuple(rds.GetGeoTransform()), rds.GetProjection() or "", rds.RasterXSize, rds.RasterYSize)
        if not g.same_as(grid):
            raise DeformCastError(f"The ZONES raster is not on the grid of FORECAST ({_grid_problem(g, grid)}). "
                                  "Resample it to the forecast grid (e.g. GDAL Warp with the same extent and "
                                  "cell size), or give the zones as polygons.")
        a = _read(rds, 0)
        from ..decision.zone_names import check_zone_codes, raster_zone_names

        check_zone_codes(rds, a, path)
        z = np.where(np.isfinite(a), np.round(a), 0).astype(np.int64)
        z[z < 0] = 0

        named = raster_zone_names(rds, path)
        names = {int(k): named.get(int(k), f"zone {int(k)}") for k in np.unique(z) if k > 0}
        if named.get(0):  # the raster names its 0 (e.g. the scene's quiet background): the rest's row
            names[0] = named[0]
        return z, names
    try:
        vds = gdal.OpenEx(path, gdal.OF_VECTOR)
    except RuntimeError:
        vds = None
    if vds is None:
        raise DeformCastError(f"ZONES '{zones}' is neither a raster nor a polygon layer GDAL/OGR can open.")
    lyr = vds.GetLayerByName(layer_name) if layer_name else vds.GetLayer(0)
    if lyr is None:
        raise DeformCastError(f"ZONES: layer '{layer_name}' not found in '{path}'.")
    defn = lyr.GetLayerDefn()
    fnames = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    if zone_field and zone_field not in fnames:
        raise DeformCastError(f"ZONE_FIELD '{zone_field}' is not a field of the zones layer. Fields: "
                              + ", ".join(fnames) + ".")
    # copy into a memory layer with an integer burn id, in the grid's CRS
    from osgeo import osr

    mem = ogr.GetDriverByName("Memory").CreateDataSource("zones")
    dst_srs = osr.SpatialReference()
    if grid.crs_wkt:
        dst_srs.ImportFromWkt(grid.crs_wkt)
        dst_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    src_srs = lyr.GetSpatialRef()
    ct = None
    if src_srs is not None and grid.crs_wkt:
        src_srs = src_srs.Clone()
        src_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        if not src_srs.IsSame(dst_srs):
            ct = osr.CoordinateTransformation(src_srs, dst_srs)
    ml = mem.CreateLayer("z", dst_srs if grid.crs_wkt else None, ogr.wkbMultiPolygon)
    ml.CreateField(ogr.FieldDefn("zid", ogr.OFTInteger))
    names: Dict[int, str] = {}
    by_value: Dict[str, int] = {}
    lyr.ResetReading()
    for k, f in enumerate(lyr):
        geom = f.GetGeometryRef()
        if geom is None:
            continue
        if zone_field:
            val = f.GetField(zone_field)
            if isinstance(val, int) and val > 0:
                zid = int(val)
            else:
                key = str(val)
                zid = by_value.setdefault(key, len(by_value) + 1)
            names[zid] = f"{zone_field}={val}"
        else:
            zid = int(f.GetFID()) + 1 if f.GetFID() >= 0 else k + 1
            names[zid] = f"feature {zid - 1}"
        g = geom.Clone()
        if ct is not None:
            g.Transform(ct)
        of = ogr.Feature(ml.GetLayerDefn())
        of.SetField("zid", zid)
        of.SetGeometry(g)
        ml.CreateFeature(of)
    drv = gdal.GetDriverByName("MEM")
    rds = drv.Create("", grid.width, grid.height, 1, gdal.GDT_Int32)
    rds.SetGeoTransform(grid.geotransform)
    if grid.crs_wkt:
        rds.SetProjection(grid.crs_wkt)
    rds.GetRasterBand(1).Fill(0)
    gdal.RasterizeLayer(rds, [1], ml, options=["ATTRIBUTE=zid"])
    z = rds.GetRasterBand(1).ReadAsArray().astype(np.int64)
    return z, names


def zone_statistics(zones: np.ndarray, sums: Dict[str, np.ndarray], per_pixel_abs: np.ndarray,
                    names: Dict[int, str]) -> List[list]:
    """Rows [zone, pixels, bias, MAE, RMSE, P90 |res|] pooled over dates, from per-pixel sums."""
    cnt, s1, sa, s2 = sums["count"], sums["sum"], sums["abs"], sums["sq"]
    ok = cnt > 0
    zid = np.where(ok, zones, 0).ravel()
    nz = int(zid.max()) + 1 if zid.size else 1
    n_pix = np.bincount(zid, weights=ok.ravel().astype(float), minlength=nz)
    c = np.bincount(zid, weights=cnt.ravel(), minlength=nz)
    b1 = np.bincount(zid, weights=s1.ravel(), minlength=nz)
    ba = np.bincount(zid, weights=sa.ravel(), minlength=nz)
    b2 = np.bincount(zid, weights=s2.ravel(), minlength=nz)
    rows = []
    flat_abs = per_pixel_abs.ravel()
    for k in sorted(set(int(v) for v in np.unique(zid) if v > 0) | set(k for k in names if k > 0)):
        if k >= nz or c[k] == 0:
            rows.append([names.get(k, f"zone {k}"), 0, float("nan"), float("nan"), float("nan"), float("nan")])
            continue
        p90 = float(np.percentile(flat_abs[(zid == k)], 90))
        rows.append([names.get(k, f"zone {k}"), int(n_pix[k]), b1[k] / c[k], ba[k] / c[k],
                     math.sqrt(b2[k] / c[k]), p90])
    if c[0] > 0:
        m = zid == 0
        rows.append([names.get(0, "outside every zone"), int(n_pix[0]), b1[0] / c[0], ba[0] / c[0], math.sqrt(b2[0] / c[0]),
                     float(np.percentile(flat_abs[m & ok.ravel()], 90)) if (m & ok.ravel()).any() else float("nan")])
    return rows


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------
@dataclass
class ResidualResult:
    """Moran's I, hot-spot counts, zone and correlation tables, and the paths of what was written
    (None = not written)."""
    dates: List[str]
    morans_i: float
    morans_p: float
    morans_expected: float
    per_date_i: List[float]
    n_valid: int
    hotspot_counts: Dict[int, int] = field(default_factory=dict)
    zone_rows: List[list] = field(default_factory=list)
    correlations: List[list] = field(default_factory=list)
    residuals_path: Optional[str] = None
    hotspots_path: Optional[str] = None
    hotspot_classes_path: Optional[str] = None
    report_path: Optional[str] = None


def run_residuals(forecast: str, observed: str, zones: Optional[str] = None,
                  zone_field: Optional[str] = None, uncertainty: Optional[Sequence[str]] = None,
                  weights: str = "queen", distance: float = 0.0, value: str = "abs_residual",
                  n_permutations: int = 99, seed: int = 42,
                  progress: Optional[Progress] = None, *, residuals_path: Optional[str] = None,
                  hotspots_path: Optional[str] = None, hotspot_classes_path: Optional[str] = None,
                  report_path: Optional[str] = None) -> ResidualResult:
    """Residual maps, hot spots, Moran's I, zone statistics and collinearity; see the module doc.

    ``*_path``: where to write the residual raster (one band per matched date), the Gi* z-scores,
    the hot/cold-spot classes and the HTML report (None/'' = not written); the result carries the
    paths written.
    """
    progress = progress or silent()
    if weights not in WEIGHTS:
        raise DeformCastError(f"WEIGHTS: unknown value '{weights}'. Valid values: {', '.join(WEIGHTS)}.")
    if value not in VALUES:
        raise DeformCastError(f"VALUE: unknown value '{value}'. Valid values: {', '.join(VALUES)}.")
    n_permutations = int(n_permutations)
    if n_permutations < 0:
        raise DeformCastError("N_PERMUTATIONS must be >= 0.")
    fds, grid = _open(forecast, "FORECAST")
    ods, ogrid = _open(observed, "OBSERVED")
    if not grid.same_as(ogrid):
        raise DeformCastError(f"FORECAST and OBSERVED are not on the same grid ({_grid_problem(grid, ogrid)}). "
                              "Give observations on the forecast grid (the stack 'predict' was run on, "
                              "extended with later acquisitions).")
    fd = _band_dates(fds, "FORECAST", forecast)
    od = _band_dates(ods, "OBSERVED", observed)
    read_obs = _observed_reader(ods, observed, grid)
    pairs = match_dates(fd, od)
    if not pairs:
        fl = ", ".join(iso(d) for d in fd if d is not None)
        ol = [iso(d) for d in od if d is not None]
        raise DeformCastError(
            f"No forecast date is also an observation date. FORECAST dates: {fl}; OBSERVED dates: "
            f"{ol[0]} .. {ol[-1]} ({len(ol)} bands). Give observations acquired on the forecast dates "
            "(e.g. run 'predict' as a backtest from an earlier date, or a stack that continues past "
            "the forecast).")
    H, W = grid.height, grid.width
    sums = {k: np.zeros((H, W)) for k in ("count", "sum", "abs", "sq")}
    per_date_vals = []
    p_read = progress.sub(0.0, 0.3)
    writer = None
    if residuals_path:
        # style range from the first matched date (a cheap, representative sample)
        r0 = _read(fds, pairs[0][0], True) - read_obs(pairs[0][1])
        writer = RasterWriter(residuals_path, grid, len(pairs), [iso(d) for *_, d in pairs],
                              "float32", None, styles.residual_style(r0),
                              {"DEFORMCAST_KIND": "residuals (forecast - observed, mm)"})
    try:
        for k, (i, j, d) in enumerate(pairs):
            r = _read(fds, i, True) - read_obs(j)
            ok = np.isfinite(r)
            sums["count"] += ok
            rz = np.where(ok, r, 0.0)
            sums["sum"] += rz
            sums["abs"] += np.abs(rz)
            sums["sq"] += rz * rz
            per_date_vals.append(r.astype(np.float32))
            if writer is not None:
                writer.ds.GetRasterBand(k + 1).WriteArray(r.astype(np.float32), 0, 0)
            p_read.set((k + 1) / len(pairs))
        valid = sums["count"] > 0
        if not valid.any():
            raise DeformCastError("FORECAST and OBSERVED have no valid pixel in common on the matched dates.")
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_res = np.where(valid, sums["sum"] / np.maximum(sums["count"], 1), np.nan)
            mean_abs = np.where(valid, sums["abs"] / np.maximum(sums["count"], 1), np.nan)
        x_map = mean_abs if value == "abs_residual" else mean_res
        progress.log(f"Residuals: {len(pairs)} matched dates, {int(valid.sum())} valid pixels.")
        # ---- weights, Moran's I, Gi* --------------------------------------------------------
        offs = neighbour_offsets(weights, distance, grid.cell_size)
        Wm = grid_weights(valid, offs)
        progress.set(0.35)
        x = x_map[valid]
        per_date_i = []
        for r in per_date_vals:
            ok = np.isfinite(r)
            if ok.sum() > 2:
                per_date_i.append(morans_i(r[ok], grid_weights(ok, offs)))
            else:
                per_date_i.append(float("nan"))
            progress.check()
        mi, mp, _ = morans_i_permutation(x, Wm, n_permutations, seed, progress.sub(0.4, 0.8))
        n = x.size
        gi = getis_ord_gi_star(x, Wm)
        progress.set(0.85)
        z_map = np.full((H, W), np.nan, np.float32)
        z_map[valid] = gi
        cls = hotspot_classes(gi)
        c_map = np.zeros((H, W), np.uint8)
        c_map[valid] = cls
        counts = {c: int((cls == c).sum()) for c, *_ in HOTSPOT_CLASSES}
        written: Dict[str, str] = {}
        from ..io.raster import write_raster

        if hotspots_path:
            written["hotspots_path"] = write_raster(
                hotspots_path, z_map, grid, [f"Gi* z-score of mean {value.replace('_', ' ')}"],
                "float32", None, styles.pseudocolor(-3.0, 3.0, list(reversed(styles.RAMPS["deformation"])), 1),
                {"DEFORMCAST_KIND": "gi_star_z", "DEFORMCAST_VALUE": value, "DEFORMCAST_WEIGHTS": weights})
        if hotspot_classes_path:
            written["hotspot_classes_path"] = write_raster(
                hotspot_classes_path, c_map, grid, ["Gi* hot/cold spot class"], "uint8", 0,
                styles.categorical(HOTSPOT_CLASSES), {"DEFORMCAST_KIND": "hotspot_classes"})
        # ---- zones, correlations ------------------------------------------------------------
        zarr, znames = zones_array(zones, grid, zone_field)
        zone_rows = zone_statistics(zarr, sums, mean_abs, znames) if zarr is not None else []
        corr_rows = []
        from scipy.stats import spearmanr

        for upath in (uncertainty or []):
            uds, ug = _open(upath, "UNCERTAINTY layer")
            if not ug.same_as(grid):
                raise DeformCastError(f"The UNCERTAINTY layer '{os.path.basename(str(upath))}' is not on the "
                                      f"FORECAST grid ({_grid_problem(ug, grid)}). Use layers from 'uncertainty' "
                                      "run on the same stack.")
            for b in range(uds.RasterCount):
                u = _read(uds, b)
                ok = valid & np.isfinite(u)
                desc = uds.GetRasterBand(b + 1).GetDescription() or f"band {b + 1}"
                if ok.sum() < 3 or np.ptp(u[ok]) == 0 or np.ptp(mean_abs[ok]) == 0:
                    rho, p = float("nan"), float("nan")
                else:
                    rho, p = spearmanr(u[ok], mean_abs[ok])
                corr_rows.append([os.path.basename(str(upath)), desc, int(ok.sum()), float(rho), float(p)])
            progress.check()
        if writer is not None:
            written["residuals_path"] = writer.close()
            writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    res = ResidualResult([iso(d) for *_, d in pairs], mi, mp, -1.0 / (n - 1) if n > 1 else float("nan"),
                         per_date_i, n, counts, zone_rows, corr_rows, **written)
    if report_path:
        res.report_path = write_report(report_path, res, x, value, weights, n_permutations, seed, mean_res[valid])
    progress.set(1.0)
    return res


def write_report(path: str, res: ResidualResult, x: np.ndarray, value: str, weights: str, n_perm: int,
                 seed: int, mean_res: np.ndarray) -> str:
    from ..report import Report, new_figure

    rep = Report("DeformCast – spatial residual analysis")
    rep.paragraph(f"Residual = forecast - observed on {len(res.dates)} matched date(s): "
                  + ", ".join(res.dates) + f". {res.n_valid} valid pixels.")
    rep.table([["bias (mean residual, mm)", float(np.mean(mean_res))],
               ["MAE (mm)", float(np.mean(np.abs(mean_res)))],
               ["RMSE of per-pixel mean residual (mm)", float(np.sqrt(np.mean(mean_res ** 2)))]],
              ["statistic", "value"])
    rep.heading("Global spatial autocorrelation (Moran's I)")
    rep.table([[f"mean {value.replace('_', ' ')}", res.morans_i, res.morans_expected, res.morans_p]],
              ["variable", "Moran's I", "E[I] (no autocorrelation)",
               f"pseudo p-value ({n_perm} permutations, seed {seed})"])
    rep.table([[d, i] for d, i in zip(res.dates, res.per_date_i)], ["date", "Moran's I of the residual"])
    rep.paragraph(f"Binary {weights} contiguity between valid pixels. I > E[I] with a small p-value means "
                  "errors cluster in space rather than being random noise.")
    rep.heading("Hot spots (Getis-Ord Gi*)")
    rep.table([[lab, res.hotspot_counts.get(c, 0)] for c, lab, _ in HOTSPOT_CLASSES], ["class", "pixels"])
    rep.paragraph("Classes at |z| >= 1.645 / 1.960 / 2.576 (90 / 95 / 99 %), without multiple-testing correction.",
                  cls="muted")
    fig = new_figure(7, 3.2)
    ax = fig.add_subplot(111)
    ax.hist(mean_res, bins=60, color="#762a83")
    ax.axvline(0, color="k", lw=1)
    ax.set_xlabel("per-pixel mean residual (mm)")
    ax.set_ylabel("pixels")
    rep.figure(fig, "Distribution of the per-pixel mean residual.")
    if res.zone_rows:
        rep.heading("Residuals per zone")
        rep.table(res.zone_rows, ["zone", "pixels", "bias (mm)", "MAE (mm)", "RMSE (mm)", "P90 |residual| (mm)"])
    if res.correlations:
        rep.heading("Uncertainty vs |residual| (spatial collinearity)")
        rep.table(res.correlations, ["layer", "band", "pixels", "Spearman rho", "p-value"])
        rep.paragraph("A positive rank correlation means the uncertainty layer marks where the forecast errs "
                      "(Liu et al. 2026 report such spatial collinearity).")
    return rep.save(path)
