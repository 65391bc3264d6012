"""Length units of raster bands (GDAL ``GetUnitType``) and their factor to millimetres."""
from __future__ import annotations

from typing import Optional

#: band unit names (GDAL ``GetUnitType``, lower case) -> mm per unit
LENGTH_UNITS = {"mm": 1.0, "millimetre": 1.0, "millimetres": 1.0, "millimeter": 1.0, "millimeters": 1.0,
                "cm": 10.0, "centimetre": 10.0, "centimetres": 10.0, "centimeter": 10.0, "centimeters": 10.0,
                "m": 1000.0, "metre": 1000.0, "metres": 1000.0, "meter": 1000.0, "meters": 1000.0}


def unit_to_mm(unit: Optional[str]) -> Optional[float]:
    """mm per band unit; None when the band declares no unit or one that is not a length."""
    u = (unit or "").strip().lower()
    return LENGTH_UNITS.get(u) if u else None


def band_unit(band) -> str:
    try:
        return (band.GetUnitType() or "").strip()
    except Exception:  # noqa: BLE001 - drivers without units
        return ""


#: the median change between consecutive acquisitions (mm) of InSAR displacement stacks lies around 1-5 mm;
#: a stack whose median change is below :data:`SMALL_STEP` or above :data:`LARGE_STEP` is most likely not in mm
SMALL_STEP = 0.05
LARGE_STEP = 100.0
SAMPLE_ROWS = 64  #: rows of the stack (one contiguous strip at its middle) the check reads


def median_step(block) -> float:
    """The median over pixels of each pixel's median |change| between consecutive acquisitions (both with
    data), for a (T, rows, cols) block; NaN where no pixel has 10 such changes."""
    import warnings

    import numpy as np

    a = np.asarray(block, dtype=np.float32)
    d = np.abs(np.diff(a.reshape(a.shape[0], -1), axis=0))
    d = d[:, np.isfinite(d).sum(axis=0) >= 10]
    if d.shape[1] == 0:
        return float("nan")
    # the complete pixels (the usual case) by np.median, the others by np.nanmedian: the same medians, and
    # nanmedian alone took 0.9 s on predict's 64 x 1000-pixel sample (session 28), before the forecast began
    full = np.isfinite(d).all(axis=0)
    med = np.empty(d.shape[1], dtype=np.float64)
    med[full] = np.median(d[:, full], axis=0)
    if not full.all():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med[~full] = np.nanmedian(d[:, ~full], axis=0)
    return float(np.median(med.astype(d.dtype)))


def magnitude_message(step: float, name: str) -> str:
    """The warning for a stack whose values do not look like displacement in mm ('' when they do, or when
    ``step`` is NaN or 0: a constant stack is not a unit question). ``step``: :func:`median_step`."""
    import math

    if not math.isfinite(step) or step <= 0 or SMALL_STEP <= step <= LARGE_STEP:
        return ""
    if step < SMALL_STEP:
        return (f"The values of '{name}' change by a median of {step:.3g} from one acquisition to the next, about "
                "a thousand times less than InSAR displacements in millimetres (typically 1-5 mm): the stack looks "
                "like metres. DeformCast reads values without a declared unit as millimetres, so forecasts, "
                "thresholds and tiers would be a thousand times off. Set the band unit to 'm' (GDAL: "
                "band.SetUnitType('m'); DeformCast then converts) or multiply the stack by 1000.")
    return (f"The values of '{name}' change by a median of {step:.3g} from one acquisition to the next, far more "
            "than InSAR displacements in millimetres (typically 1-5 mm): the stack may be in micrometres, or "
            "integers without their scale factor. DeformCast reads values without a declared unit as "
            "millimetres. Set the band scale (or unit: mm, cm, m) or convert the stack to mm first.")
