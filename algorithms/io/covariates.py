"""Covariates on the stack grid (QGIS-free).

:func:`align_covariates` warps any number of rasters (any CRS and resolution) onto the stack grid
in memory: nearest neighbour for integer rasters (classes such as lithology or a mining mask, so
no invented class values), bilinear for continuous ones (DEM, distance to a fault). A covariate
that does not overlap the stack is refused, naming the file.
"""
from __future__ import annotations

import os
from typing import Dict, Sequence

import numpy as np

from ..errors import DeformCastError
from .raster import Grid, _gdal
from .crs import transformer


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
    tr = transformer(src, dst_wkt) if src and dst_wkt else None
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
