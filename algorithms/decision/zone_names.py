"""Names of the values of a zone (class) raster, so reports say "Mining subsidence bowl", not "zone 1"."""
from __future__ import annotations

from typing import Dict


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
