"""The synthetic scene's constants, the :class:`Scene` container, argument checks and its grid."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from ...errors import DeformCastError

COVARIATE_NAMES = ("fault_distance", "mining_mask", "lithology", "dem")

ZONE_NAMES = {
    0: "Background (quiet)",
    1: "Mining subsidence bowl",
    2: "Fault zone",
    3: "Groundwater-rebound uplift",
}
ZONE_COLOURS = {0: "#d9d9d9", 1: "#d7191c", 2: "#7b3294", 3: "#2c7bb6", 4: "#fdae61"}  # 4: varied only

LITHOLOGY = {
    # class: name, annual amplitude mm, day of year of annual peak uplift,
    #        semi-annual amplitude mm, day of year of its first peak, colour
    1: ("Quaternary terrace gravel and sand", 1.2, 200, 0.2, 200, "#f6e8a6"),
    2: ("Loess and loess loam", 2.5, 70, 0.4, 40, "#e0b36b"),
    3: ("Tertiary clay and silt", 5.5, 45, 1.0, 30, "#8c6d4f"),
    4: ("Holocene floodplain alluvium", 4.0, 90, 0.6, 60, "#9ecae1"),
}

YEAR_DAYS = 365.2425
DEFAULT_LONLAT = (6.50, 50.95)  # between the Hambach and Garzweiler open pits


@dataclass
class Scene:
    """A synthetic scene in memory (see the module docstring for the physics)."""

    grid: object  # algorithms.io.raster.Grid
    dates: np.ndarray  # datetime64[D], n_epochs
    future_dates: np.ndarray  # datetime64[D], n_future
    observed: np.ndarray  # float32 (n_epochs, H, W), mm, NaN = decorrelated
    truth: np.ndarray  # float32 (n_epochs + n_future, H, W), noise-free, finite
    future_observed: np.ndarray  # float32 (n_future, H, W), noisy, same NaN holes
    covariates: Dict[str, np.ndarray]  # name -> float32 (H, W)
    zones: np.ndarray  # int (H, W): 0 quiet, 1 bowls, 2 fault, 3 uplift (4 step area: varied only)
    params: dict  # JSON-serialisable, every physical parameter used
    zone_names: Dict[int, str] = field(default_factory=lambda: dict(ZONE_NAMES))
    lithology_names: Dict[int, str] = field(
        default_factory=lambda: {k: v[0] for k, v in LITHOLOGY.items()})

    @property
    def all_dates(self) -> np.ndarray:
        """Observed then future dates (the time axis of ``truth``)."""
        return np.concatenate([self.dates, self.future_dates])

    @property
    def valid(self) -> np.ndarray:
        """(H, W) bool: pixels with data in every observed epoch."""
        return np.all(np.isfinite(self.observed), axis=0)


def as_int(name: str, value, lo: int, hi: int, why: str) -> int:
    try:
        v = int(value)
        if v != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise DeformCastError(f"{name} must be a whole number, got '{value}'.") from None
    if v < lo or v > hi:
        raise DeformCastError(f"{name} = {v} is out of range: give a value from {lo} to {hi} ({why}).")
    return v


def check_args(seed, width, height, n_epochs, n_future, step_days, start, cell, epsg, gap_fraction):
    from ...io.raster import parse_date

    seed = as_int("SEED", seed, 0, 2 ** 32 - 1, "any non-negative integer; the same seed gives the same scene")
    width = as_int("WIDTH", width, 16, 20000, "pixels; small scenes need at least 16 to hold the features")
    height = as_int("HEIGHT", height, 16, 20000, "pixels; small scenes need at least 16 to hold the features")
    n_epochs = as_int("N_EPOCHS", n_epochs, 30, 5000,
                       "the forecasters need at least 30 acquisitions for windows, training and validation")
    n_future = as_int("N_FUTURE", n_future, 1, 1000, "epochs of future truth after the stack")
    step_days = as_int("STEP_DAYS", step_days, 1, 366, "days between acquisitions; Sentinel-1 uses 6 or 12")
    try:
        cell = float(cell)
    except (TypeError, ValueError):
        raise DeformCastError(f"CELL_SIZE must be a number of metres, got '{cell}'.") from None
    if not np.isfinite(cell) or cell <= 0 or cell > 10000:
        raise DeformCastError(f"CELL_SIZE = {cell} m is out of range: give a cell size above 0 and up to "
                              "10000 m (EGMS Ortho uses 100 m).")
    d0 = parse_date(start)
    if d0 is None:
        raise DeformCastError(f"The start date '{start}' is not a date; give it as YYYY-MM-DD.")
    try:
        gap_fraction = float(gap_fraction)
    except (TypeError, ValueError):
        raise DeformCastError(f"gap_fraction must be a number from 0 to 0.5, got '{gap_fraction}'.") from None
    if not 0.0 <= gap_fraction <= 0.5:
        raise DeformCastError(f"gap_fraction = {gap_fraction} is out of range: give 0 to 0.5.")
    # the scene holds observed, truth and future arrays in float32, plus per-block temporaries
    need = 4.0 * width * height * (2 * n_epochs + 3 * n_future + 40)
    avail = available_memory()
    if avail is not None and need > 0.8 * avail:
        raise DeformCastError(
            f"A {width} x {height} px scene with {n_epochs} + {n_future} epochs needs about "
            f"{need / 2 ** 30:.1f} GiB of memory but only {avail / 2 ** 30:.1f} GiB is free. Make WIDTH, "
            "HEIGHT or N_EPOCHS smaller.")
    epsg = as_int("EPSG", epsg, 1024, 999999, "an EPSG code of a projected CRS in metres, e.g. 25832")
    return seed, width, height, n_epochs, n_future, step_days, d0, cell, epsg, gap_fraction


def available_memory() -> Optional[float]:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES")) * float(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def scene_grid(epsg: int, cell: float, width: int, height: int):
    """Grid in ``epsg`` centred on the Rhineland point, corner snapped to whole cells."""
    from osgeo import osr

    from ...io.raster import make_grid

    osr.UseExceptions()
    srs = osr.SpatialReference()
    try:
        srs.ImportFromEPSG(int(epsg))
    except RuntimeError:
        raise DeformCastError(f"EPSG:{epsg} is not a known coordinate reference system; use a projected "
                              "CRS in metres such as EPSG:25832 (ETRS89 / UTM 32N).") from None
    if not srs.IsProjected():
        raise DeformCastError(f"EPSG:{epsg} is not a projected CRS; the scene needs metres. Use e.g. "
                              "EPSG:25832 (ETRS89 / UTM 32N) or EPSG:3035.")
    geo = osr.SpatialReference()
    geo.ImportFromEPSG(4326)
    geo.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    try:
        cx, cy, _ = osr.CoordinateTransformation(geo, srs).TransformPoint(*DEFAULT_LONLAT)
    except RuntimeError:
        raise DeformCastError(f"EPSG:{epsg} does not cover the Rhineland (6.5 E, 50.95 N); use "
                              "EPSG:25832.") from None
    x0 = np.floor((cx - 0.5 * width * cell) / cell) * cell
    y0 = np.ceil((cy + 0.5 * height * cell) / cell) * cell
    return make_grid(float(x0), float(y0), cell, width, height, epsg)
