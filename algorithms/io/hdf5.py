"""MintPy and LiCSBAS HDF5 time series (QGIS-free), read in row blocks.

* **MintPy** ``timeseries.h5`` (geocoded): dataset ``timeseries`` (T, rows, cols) in metres,
  ``date`` (YYYYMMDD bytes), attributes ``X_FIRST/Y_FIRST`` (upper-left corner of the first
  pixel, as MintPy's own GDAL export uses them), ``X_STEP/Y_STEP`` and ``EPSG`` (or ``UTM_ZONE``;
  without either, degrees mean EPSG:4326). Converted to mm.
* **LiCSBAS** ``cum.h5``: ``cum`` (T, rows, cols) in mm, ``imdates`` (YYYYMMDD integers),
  ``corner_lat/corner_lon`` (the *centre* of the upper-left pixel, GAMMA ``dem_par`` convention
  that LiCSBAS inherits), ``post_lat`` (negative) / ``post_lon``; EPSG:4326.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import DeformCastError, MissingDependency
from .raster import Grid, check_dates, parse_date
from .crs import crs_wkt_of


def _h5py():
    try:
        import h5py  # noqa: F401
    except ImportError:
        raise MissingDependency(
            "Reading MintPy/LiCSBAS HDF5 files needs the Python package h5py. On Debian/Ubuntu install "
            "it with 'sudo apt install python3-h5py' (use the system package: a pip-installed h5py "
            "brings its own HDF5 library, which clashes with the one QGIS loads).") from None
    return h5py


@dataclass
class GriddedSeries:
    """A gridded time series on disk read in row blocks: ``read(r0, r1)`` -> (T, h, W) mm."""

    path: str
    kind: str
    dates: np.ndarray
    grid: Grid
    dataset: str
    factor: float = 1.0

    def read(self, r0: int = 0, r1: Optional[int] = None) -> np.ndarray:
        h5py = _h5py()
        r1 = self.grid.height if r1 is None else r1
        with h5py.File(self.path, "r") as f:
            a = np.asarray(f[self.dataset][:, r0:r1, :], dtype=np.float32)
        if self.factor != 1.0:
            a *= np.float32(self.factor)
        return a

    def load(self) -> np.ndarray:
        return self.read()


def _attr(attrs, key, default=None):
    if key not in attrs:
        return default
    v = attrs[key]
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.ndarray):
        v = v.item() if v.size == 1 else v
        if isinstance(v, bytes):
            v = v.decode()
    return v


def _h5_dates(raw, what: str) -> np.ndarray:
    out = []
    for r in np.asarray(raw).ravel():
        s = r.decode() if isinstance(r, (bytes, np.bytes_)) else str(int(r)) if np.issubdtype(type(r), np.integer) else str(r)
        d = parse_date(s)
        if d is None:
            raise DeformCastError(f"{what}: '{s}' is not a YYYYMMDD date.")
        out.append(d)
    return check_dates(np.array(out, dtype="datetime64[D]"), what)


def read_mintpy_h5(path: str) -> GriddedSeries:
    """A geocoded MintPy ``timeseries.h5`` (metres) as a :class:`GriddedSeries` in mm."""
    h5py = _h5py()
    name = os.path.basename(str(path))
    with h5py.File(str(path), "r") as f:
        if "timeseries" not in f:
            raise DeformCastError(f"'{name}' has no 'timeseries' dataset; it is not a MintPy time-series file.")
        ds = f["timeseries"]
        T, H, W = ds.shape
        at = dict(f.attrs)
        at.update({k: v for k, v in ds.attrs.items() if k not in at})
        if "date" not in f:
            raise DeformCastError(f"'{name}' has no 'date' dataset; re-run MintPy's timeseries step.")
        dates = _h5_dates(f["date"][()], f"'{name}'")
    if dates.size != T:
        raise DeformCastError(f"'{name}': {dates.size} dates for {T} epochs; the file is inconsistent.")
    if _attr(at, "X_FIRST") is None or _attr(at, "Y_FIRST") is None:
        raise DeformCastError(
            f"'{name}' is in radar coordinates (no X_FIRST/Y_FIRST attributes). Geocode it first with "
            "MintPy: 'geocode.py timeseries.h5' and give the geo_timeseries.h5.")
    x0, y0 = float(_attr(at, "X_FIRST")), float(_attr(at, "Y_FIRST"))
    dx, dy = float(_attr(at, "X_STEP")), float(_attr(at, "Y_STEP"))
    epsg = _attr(at, "EPSG")
    utm = _attr(at, "UTM_ZONE")
    xunit = str(_attr(at, "X_UNIT", "degrees")).lower()
    if epsg not in (None, "", "None"):
        crs = crs_wkt_of(int(float(epsg)))
    elif utm:
        m = re.match(r"(\d+)\s*([NS]?)", str(utm).upper())
        crs = crs_wkt_of((32700 if m.group(2) == "S" else 32600) + int(m.group(1)))
    elif xunit.startswith("deg"):
        crs = crs_wkt_of(4326)
    else:
        raise DeformCastError(
            f"'{name}' gives no EPSG (or UTM_ZONE) attribute and its X_UNIT is '{xunit}'. Add the EPSG "
            "attribute to the file (e.g. MintPy's 'info.py'/'add_attribute.py timeseries.h5 EPSG=32632').")
    unit = str(_attr(at, "UNIT", "m")).lower()
    factor = {"m": 1000.0, "cm": 10.0, "mm": 1.0}.get(unit, 1000.0)
    grid = Grid((x0, dx, 0.0, y0, 0.0, dy), crs, int(W), int(H))
    return GriddedSeries(str(path), "mintpy", dates, grid, "timeseries", factor)


def read_licsbas_h5(path: str) -> GriddedSeries:
    """A LiCSBAS ``cum.h5`` (mm, EPSG:4326) as a :class:`GriddedSeries`."""
    h5py = _h5py()
    name = os.path.basename(str(path))
    with h5py.File(str(path), "r") as f:
        for k in ("cum", "imdates", "corner_lat", "corner_lon", "post_lat", "post_lon"):
            if k not in f:
                raise DeformCastError(f"'{name}' has no '{k}' dataset; it is not a LiCSBAS cum.h5 file "
                                      "(give cum.h5 or cum_filt.h5 from LiCSBAS step 13/16).")
        T, H, W = f["cum"].shape
        dates = _h5_dates(f["imdates"][()], f"'{name}'")
        lat1, lon1 = float(f["corner_lat"][()]), float(f["corner_lon"][()])
        dlat, dlon = float(f["post_lat"][()]), float(f["post_lon"][()])
    if dates.size != T:
        raise DeformCastError(f"'{name}': {dates.size} dates for {T} epochs; the file is inconsistent.")
    # corner_lat/lon are the centre of the upper-left pixel -> GDAL corner = centre - half a step
    grid = Grid((lon1 - dlon / 2.0, dlon, 0.0, lat1 - dlat / 2.0, 0.0, dlat), crs_wkt_of(4326), int(W), int(H))
    return GriddedSeries(str(path), "licsbas", dates, grid, "cum", 1.0)


def h5_kind(path: str) -> str:
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            keys = list(f.keys())
    except OSError as e:
        raise DeformCastError(f"'{os.path.basename(path)}' is not a readable HDF5 file: {e}") from None
    if "timeseries" in keys:
        return "mintpy"
    if "cum" in keys:
        return "licsbas"
    raise DeformCastError(
        f"'{os.path.basename(path)}' is HDF5 but neither a MintPy time series (dataset 'timeseries') nor a "
        f"LiCSBAS cum.h5 (dataset 'cum'); it holds: {', '.join(keys[:12]) or 'nothing'}.")


# ------------------------------------------------------------------------------------------
