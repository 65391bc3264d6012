"""Names of the values of a zone (class) raster, so reports say "Mining subsidence bowl", not "zone 1"."""
from __future__ import annotations

import os
from typing import Dict

import numpy as np

from ..errors import DeformCastError


def raster_zone_names(ds, path: str) -> Dict[int, str]:
    """Names of a zone raster's values: GDAL category names, else a raster attribute table's name
    column, else the labels of a paletted (unique values) ``.qml`` style beside the file (as QGIS and
    DeformCast write them). Empty when the raster names nothing."""
    band = ds.GetRasterBand(1)
    names: Dict[int, str] = {}
    cats = band.GetCategoryNames() or []
    for k, n in enumerate(cats):
        if n and str(n).strip():
            names[k] = str(n).strip()
    if names:
        return names
    rat = band.GetDefaultRAT()
    if rat is not None and rat.GetRowCount() > 0:
        from osgeo import gdal

        usage = [rat.GetUsageOfCol(i) for i in range(rat.GetColumnCount())]
        if gdal.GFU_Name in usage:
            ci = usage.index(gdal.GFU_Name)
            vi = next((usage.index(u) for u in (gdal.GFU_MinMax, gdal.GFU_Min) if u in usage), None)
            for r in range(rat.GetRowCount()):
                v = rat.GetValueAsInt(r, vi) if vi is not None else r
                n = rat.GetValueAsString(r, ci)
                if n and n.strip():
                    names[int(v)] = n.strip()
            if names:
                return names
    from ..io.styles import palette_labels, sidecar_path

    return palette_labels(sidecar_path(path)) or names


def check_zone_codes(ds, band1: np.ndarray, path: str, param: str = "ZONES", polygons: bool = True) -> None:
    """Refuse a raster that is not one band of zone codes (whole numbers, NaN = none): a displacement stack or
    forecast given as zones was read as zones by the rounded values of its first band."""
    fix = ("Give a one-band raster of integer zone codes (e.g. the zones.tif of synthetic_scenario)"
           + (", or polygons with ZONE_FIELD." if polygons else "."))
    name = os.path.basename(str(path))
    if ds.RasterCount != 1:
        raise DeformCastError(f"{param} '{name}' has {ds.RasterCount} bands, but a zone raster is one band of "
                              f"zone codes (is it a displacement stack or a forecast?). {fix}")
    v = band1[np.isfinite(band1)]
    frac = v[v != np.round(v)]
    if frac.size:
        raise DeformCastError(f"{param} '{name}' holds values that are not whole numbers (e.g. {float(frac[0]):g}), "
                              f"but zones are integer codes (is it a map of values, not of zones?). {fix}")
