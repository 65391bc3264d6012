"""Coordinate reference systems: parsing, transforming points, and the area of a pixel (QGIS-free)."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..errors import DeformCastError
from .raster import Grid, crs_equal

#: mean Earth radius (m, IUGG) for the area of a pixel in a geographic CRS
EARTH_RADIUS_M = 6371008.8


def osr_lib():
    """``osgeo.osr`` with exceptions on."""
    from osgeo import osr

    osr.UseExceptions()
    return osr


def ogr_lib():
    """``osgeo.ogr`` with exceptions on."""
    from osgeo import ogr

    ogr.UseExceptions()
    return ogr


def srs_from(crs) -> "object":
    """An osr.SpatialReference (x = east / longitude first) from WKT, ``EPSG:n``, an int or PROJ."""
    osr = osr_lib()
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
    """WKT of a CRS given as WKT, ``EPSG:n``, an int or PROJ (see :func:`srs_from`)."""
    return srs_from(crs).ExportToWkt()


def transformer(src_wkt: str, dst_wkt: Optional[str]):
    """A function (n,2) -> (n,2) from src to dst CRS, or None when they are the same."""
    if not dst_wkt or crs_equal(src_wkt, dst_wkt):
        return None
    osr = osr_lib()
    ct = osr.CoordinateTransformation(srs_from(src_wkt), srs_from(dst_wkt))

    def tr(xy: np.ndarray) -> np.ndarray:
        if len(xy) == 0:
            return np.empty((0, 2))
        out = np.array(ct.TransformPoints(np.ascontiguousarray(xy[:, :2], dtype=np.float64)))
        return out[:, :2]

    return tr


def pixel_area(grid: Grid) -> np.ndarray:
    """Area (m²) of one pixel per row, shape (H, 1): the one area rule of DeformCast.

    Projected CRS: the cell (|det| of the geotransform) times the square of the CRS's linear unit in
    metres (the same for every row). Geographic CRS: the cell in square degrees on a sphere of
    radius :data:`EARTH_RADIUS_M` at each row's centre latitude, ``cell (pi/180)² R² cos(lat)`` (so
    a degree grid near the pole is not counted as large as one on the equator). No CRS: the cell in
    map units², taken as metres.
    """
    gt = grid.geotransform
    cell = abs(gt[1] * gt[5] - gt[2] * gt[4])
    if grid.crs_wkt:
        s = srs_from(grid.crs_wkt)
        if s.IsGeographic():
            lat = gt[3] + (np.arange(grid.height) + 0.5) * gt[5]
            a = cell * (math.pi / 180.0) ** 2 * EARTH_RADIUS_M ** 2 * np.cos(np.radians(lat))
            return a[:, None]
        f = s.GetLinearUnits() or 1.0
        return np.full((grid.height, 1), cell * f * f)
    return np.full((grid.height, 1), cell)


def cell_area(grid: Grid) -> float:
    """Mean area (m²) of one pixel of ``grid`` (:func:`pixel_area` averaged over the rows; exact
    for a projected CRS). For areas of pixel sets in a geographic CRS sum :func:`pixel_area` per row."""
    return float(np.mean(pixel_area(grid))) if grid.height else 0.0
