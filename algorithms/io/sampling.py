"""Results back on the points (QGIS-free).

:func:`sample_grid_at_points` reads any output raster (forecast, susceptibility, exceedance ...) at
the points' coordinates, taking the value of **the cell the point was averaged into**
(:mod:`.gridding`). We chose sampling rather than per-point prediction because a cell's forecast
already is the forecast for the points that defined it, and it needs no second model run.
:func:`sample_points_to_csv` does this for a whole point file (streamed) and writes a CSV with the
points' ids and coordinates and one column per band (Processing: ``deformcast:sample_at_points``).
"""
from __future__ import annotations

import csv
import os
from typing import Optional, Sequence

import numpy as np

from ..errors import DeformCastError, warn
from .raster import _gdal, read_band
from .crs import transformer
from .egms import read_egms_csv
from .formats import detect_format
from .points import read_point_layer


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
        tr = transformer(crs_wkt, self.wkt) if self.wkt and crs_wkt else None
        if tr is not None:
            xy = tr(xy)
        inv = _gdal().InvGeoTransform(self.gt)   # a rotated or sheared grid too
        with np.errstate(invalid="ignore"):
            col = np.floor(inv[0] + inv[1] * xy[:, 0] + inv[2] * xy[:, 1])
            row = np.floor(inv[3] + inv[4] * xy[:, 0] + inv[5] * xy[:, 1])
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
    it is streamed; a file of points only (no date columns) serves too. ``id`` is the CSV's ``pid`` (or ``id``,
    else the row number) or the layer's feature id;
    ``x, y`` are in the points' own CRS; band columns are named by the band descriptions (dates
    for forecasts) and hold the value of the cell containing the point (empty = no value).
    Written to ``<output>.part`` and renamed when complete.
    """
    from ..progress import Progress

    progress = progress or Progress()
    fmt = detect_format(str(points_input))
    if fmt == "csv":
        src = read_egms_csv(str(points_input), need_dates=False)   # ids and coordinates are all it reads
    elif fmt == "vector":
        src = read_point_layer(str(points_input), layer=layer, need_dates=False)
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
        skipped = src.skipped_message()
        if n_valid == 0:   # an empty table would look like a complete result
            raise DeformCastError(
                (f"None of the {n} points of '{os.path.basename(str(points_input))}' lies on a cell with a value "
                 f"of '{os.path.basename(str(raster_path))}'. Give the points the raster was made from (the same "
                 "area; their CRS is converted), or a raster that covers them." if n else
                 f"'{os.path.basename(str(points_input))}' holds no points with coordinates.")
                + (" " + skipped if skipped else ""))
        if skipped:
            warn(skipped)
        os.replace(tmp, output_csv)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {"output": output_csv, "n_points": n, "n_with_values": n_valid, "columns": sampler.names}


# ------------------------------------------------------------------------------------------
