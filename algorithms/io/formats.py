"""Which reader an input path needs (QGIS-free): :func:`detect_format`."""
from __future__ import annotations

import os
import zipfile

from ..errors import DeformCastError
from .raster import _gdal
from .hdf5 import h5_kind
from .points import split_source


def detect_format(path: str) -> str:
    """``csv`` | ``vector`` | ``mintpy`` | ``licsbas`` | ``raster`` for an input path."""
    p, layer = split_source(path)
    low = p.lower()
    if layer is not None:
        return "vector"
    if not os.path.exists(p) and not p.startswith("/vsi"):
        raise DeformCastError(f"The input '{p}' does not exist.")
    if low.endswith((".csv", ".txt")) or (low.endswith(".zip") and _zip_has_csv(p)):
        return "csv"
    if low.endswith((".h5", ".he5", ".hdf5", ".hdf")):
        return h5_kind(p)
    gdal = _gdal()
    try:
        with open(p, "rb") as fh:
            if fh.read(8) == b"\x89HDF\r\n\x1a\n":
                return h5_kind(p)
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
