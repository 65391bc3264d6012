"""Points to a grid (QGIS-free): a streamed mean of the points per cell.

Points go onto a north-up grid of ``cell_size`` (units of the output CRS) whose origin is snapped
to a multiple of the cell size, so grids made from different files with the same cell size line
up. A cell's value at an epoch is the **mean of the points in the cell that have a value at that
epoch** (NaN where none has). The paper works on gridded stacks and is silent on point products;
the mean is the unbiased choice for PS/DS points of one deformation regime per cell and keeps the
grid a plain displacement stack that every algorithm understands.
"""
from __future__ import annotations

import math
import os
from typing import Tuple

import numpy as np

from ..errors import DeformCastError
from .raster import Grid
from .crs import crs_wkt_of, srs_from, transformer
from .points import PointSource

#: at most this many grid cells for a points-to-grid result (refused with a clear message beyond)
MAX_GRID_CELLS = 50_000_000
#: ... and at most this many bytes of sums and counts while gridding (epochs x cells x 6)
MAX_GRID_BYTES = 8e9


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
    tr = transformer(crs_wkt, out_wkt)
    if tr is not None:
        xy = tr(xy)
    cell = _check_cell_size(cell_size, out_wkt)
    if xy.shape[0] == 0:
        raise DeformCastError("There are no points to grid.")
    grid = _snap_grid((xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()), cell, out_wkt)
    acc = _Accumulator(grid, values.shape[1])
    acc.add(xy, values)
    return acc.result(), grid


#: EPSG:3035 (ETRS89-LAEA, the easting/northing of every EGMS file) covers Europe within these bounds (metres;
#: its area of use is about 1.9-7.3 x 1.0-5.5 million m, widened here): UTM or national eastings are far below
EGMS_BOUNDS = (1.0e6, 0.5e6, 8.5e6, 7.5e6)


def check_coordinates(source: PointSource, lo, hi) -> None:
    """Refuse points whose coordinates cannot be in the CRS they are read in: degrees beyond +-180 / +-90 (a
    projected CRS in 'lon'/'lat' columns), or 'easting'/'northing' outside Europe's EPSG:3035 (a UTM or national
    grid in a CSV that is not from EGMS). Read as they are, such points landed far from their place, silently."""
    name = os.path.basename(source.path)
    def num(v):
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.6g}"

    span = f"x {num(lo[0])} to {num(hi[0])}, y {num(lo[1])} to {num(hi[1])}"
    fix = ("Load the file in QGIS in its own CRS (Layer > Add Layer > Add Delimited Text Layer, with its X and Y "
           "fields and CRS), save it as a GeoPackage (Export > Save Features As) and give that file as INPUT.")
    srs = srs_from(source.crs_wkt)
    if srs.IsGeographic() and (max(abs(lo[0]), abs(hi[0])) > 180.0 or max(abs(lo[1]), abs(hi[1])) > 90.0):
        raise DeformCastError(f"The coordinates of '{name}' are read as longitude and latitude in degrees, but they "
                              f"run over {span}: beyond 180 / 90 degrees, so they are in a projected CRS. " + fix)
    if str(getattr(source, "kind", "")).startswith("egms") and not (
            lo[0] >= EGMS_BOUNDS[0] and lo[1] >= EGMS_BOUNDS[1] and hi[0] <= EGMS_BOUNDS[2] and hi[1] <= EGMS_BOUNDS[3]):
        raise DeformCastError(f"The 'easting' and 'northing' of '{name}' are read as EPSG:3035 (ETRS89-LAEA, the CRS "
                              f"of EGMS files), but they run over {span}: outside Europe in that CRS, so they are in "
                              "another one (UTM or a national grid?). " + fix)


def _transform(tr, xy, source: PointSource):
    try:
        return tr(xy)
    except RuntimeError as e:   # PROJ: "Invalid coordinate" and the like
        raise DeformCastError(f"The coordinates of '{os.path.basename(source.path)}' cannot be transformed to the "
                              f"target CRS ({e}). Check the file's CRS and TARGET_CRS.") from None


def _fill_in_points(source: PointSource, v: np.ndarray) -> np.ndarray:
    """The fill values (:func:`fill.fill_values`: -9999 written where a point has no value at a date, in a file
    or layer that cannot hold NaN) among the values of the first chunk of points, said once; read as no data
    before the points of a cell are averaged (a cell's mean of -9999 and 3 mm is no longer recognisable)."""
    from ..errors import warn
    from . import fill

    vals = np.asarray(v, dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    found, counts, typical = fill.fill_values(vals)
    msg = fill.values_message(f"the first {v.shape[0]} points of '{os.path.basename(source.path)}'", found, counts,
                              vals.size, typical, "a fill value for dates without a value. They are read as no data "
                              "before the points of a cell are averaged. Write empty fields (NULL) for missing values "
                              "to silence this.")
    if msg:
        warn(msg)
    return np.asarray(found, dtype=np.float64)


def grid_points(source: PointSource, cell_size: float, target_crs=None, progress=None) -> Tuple[np.ndarray, Grid]:
    """Streaming :func:`points_to_grid` for a :class:`PointSource` (two passes over the file).

    Pass 1 reads only coordinates to find the extent; pass 2 adds each chunk of series into the
    grid. Memory depends on the grid (T x H x W x 6 bytes) and the chunk size, not on the number
    of points.
    """
    from ..progress import Progress

    progress = progress or Progress()
    out_wkt = crs_wkt_of(target_crs) if target_crs else source.crs_wkt
    cell = _check_cell_size(cell_size, out_wkt)
    tr = transformer(source.crs_wkt, out_wkt)
    lo = np.array([np.inf, np.inf])
    hi = np.array([-np.inf, -np.inf])
    raw_lo, raw_hi = lo.copy(), hi.copy()
    n_points = 0
    for xy, _ in source.chunks(False, progress.sub(0.0, 0.3)):
        ok = np.all(np.isfinite(xy), axis=1)
        if ok.any():   # checked before the transform, which fails on degrees beyond 90 (a traceback before)
            raw_lo = np.minimum(raw_lo, xy[ok].min(axis=0))
            raw_hi = np.maximum(raw_hi, xy[ok].max(axis=0))
            check_coordinates(source, raw_lo, raw_hi)
        if tr is not None:
            xy = _transform(tr, xy, source)
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
    drop = None
    for xy, v in source.chunks(True, progress.sub(0.3, 0.95)):
        if drop is None:   # the first chunk says whether a fill value stands for missing dates (before averaging)
            drop = _fill_in_points(source, v)
        if drop.size:
            v = np.where(np.isin(v, drop), np.nan, v)
        if tr is not None:
            xy = _transform(tr, xy, source)
        acc.add(xy, v)
    stack = acc.result()
    progress.set(1.0)
    source.n_points = n_points
    return stack, grid
